"""A small CLIP tokenizer written in the hub's files (vocab.json, merges.txt, configs), for paper-tiny.

CLIP's vocabulary scheme, small: the 256 byte symbols in CLIP's order, the same
with ``</w>``, merges that spell ``TOKENIZER_WORDS`` whole, then the special tokens
last (CLIP's text model pools at the highest token id).
"""

from __future__ import annotations

import json
from pathlib import Path

#: Words whose byte-pair merges the tiny CLIP vocabulary holds (any other text is spelt byte by byte).
TOKENIZER_WORDS: tuple[str, ...] = (
    "photo", "of", "the", "city", "street", "road", "car", "in", "at", "night", "fog", "rain", "snow", "urban",
    "scene", "driving", "view", "from", "with", "and",
)  # fmt: skip


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's byte -> printable character table, in CLIP's vocabulary order."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(visible)
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(visible, map(chr, chars), strict=True))


def _clip_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's vocabulary scheme, small: bytes, bytes + "</w>", merges of TOKENIZER_WORDS, then the specials."""
    symbols = list(_bytes_to_unicode().values())
    tokens = [*symbols, *(s + "</w>" for s in symbols)]
    merges: list[tuple[str, str]] = []
    for word in TOKENIZER_WORDS:  # left to right: p h -> ph, ph o -> pho, ..., phot o</w> -> photo</w>
        parts = [*word[:-1], word[-1] + "</w>"]
        for part in parts[1:]:
            pair = (parts[0], part)
            merged = pair[0] + pair[1]
            if merged not in tokens:
                merges.append(pair)
                tokens.append(merged)
            parts[0] = merged
    tokens += ["<|startoftext|>", "<|endoftext|>"]  # last, as in CLIP
    return {t: i for i, t in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: Path) -> None:
    """vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json as in SD 1.5's tokenizer/."""
    vocab, merges = _clip_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    config = {
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "tokenizer_class": "CLIPTokenizer",
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))

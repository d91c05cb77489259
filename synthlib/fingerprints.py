"""Fingerprints of model weights, so a stage's key follows a model's contents, not only its path.

A stage that loads a model from a folder or hub id records the spec in its
parameters; weights replaced at the same path would then reuse stale stages.
``weights_fingerprint`` gives a short digest of the weight and config files
behind a spec, which such stages add to their parameters (only when there is
one, so stages of named in-code configs keep their hashes). A shared piece
below all stages: it knows no model classes, and callers decide which specs
are named configs.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from synthlib import zoo
from synthlib.integrity import safetensors_header

#: Files that make up a model. Configs (and tokenizer files) are always hashed in full.
CONFIG_SUFFIXES = (".json", ".txt", ".model", ".yaml", ".yml")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5", ".onnx", ".gguf", ".npz")
#: Weight files up to this size are hashed in full; bigger ones by header and sampled blocks.
FULL_HASH_BYTES = 4 * 2**20
BLOCKS = 16
BLOCK_BYTES = 64 * 2**10
DIGEST_CHARS = 16

#: Files changed this recently are hashed again on every call: a file rewritten within the file system's
#: timestamp granularity keeps its size and mtime (git's "racily clean" entries, handled the same way).
_RACY_NS = 2 * 10**9
_memo: dict[tuple, str] = {}


def weights_fingerprint(spec: str | os.PathLike) -> str | None:
    """A short hex digest of the model files behind ``spec``, or None when there are none to read.

    ``spec``: an existing local folder or file, a hub id, fingerprinted as its
    snapshot folder in the local Hugging Face cache, or ``zoo:NAME``, fingerprinted
    as the zoo model's folder (``synthlib.zoo``; built first when missing). Anything else — a named
    in-code config, a hub id not in the cache, "" — gives None. The digest covers
    every weight and config file (relative path, size, contents; hidden files and
    ``.cache`` left out), is memoised per path and file modification times within
    a process, and changes whenever the weights at the path are replaced. A
    corrupt (truncated, overwritten) safetensors file raises
    ``synthlib.integrity.CorruptFileError`` naming it: every stage that loads a
    model from a folder fingerprints it first, so this fails before anything runs.
    """
    text = os.fspath(spec)
    if not text:
        return None
    text = zoo.resolve(text)  # zoo:NAME -> the folder the stage will load (built now when missing); others unchanged
    root = _local(text)
    if root is None:
        return None
    files = _files(root)
    key = (str(root), tuple((rel, st.st_size, st.st_mtime_ns) for rel, _, st in files))
    if key in _memo:
        return _memo[key]
    digest = hashlib.sha256()
    for rel, path, st in files:
        digest.update(f"{rel}\0{st.st_size}\0{_file_digest(path, st.st_size)}\n".encode())
    fingerprint = digest.hexdigest()[:DIGEST_CHARS]
    if all(st.st_mtime_ns < time.time_ns() - _RACY_NS for _, _, st in files):
        _memo[key] = fingerprint
    return fingerprint


# --- helpers ------------------------------------------------------------------------------


def _local(text: str) -> Path | None:
    """The folder or file behind a spec: itself when it exists, else a hub id's cached snapshot folder."""
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve()
    from huggingface_hub import snapshot_download  # imported here: reading a run needs no hub client

    try:
        return Path(snapshot_download(text, local_files_only=True)).resolve()
    except (OSError, ValueError):  # not cached (LocalEntryNotFoundError), or not a valid repo id (HFValidationError)
        return None


def _files(root: Path) -> list[tuple[str, Path, os.stat_result]]:
    """(relative path, path, stat) of the model files under ``root`` (or ``root`` itself when it is a file), sorted."""
    if root.is_file():
        return [(root.name, root, root.stat())]
    out, seen = [], set()
    # followlinks: hub snapshots and linked stages hold symbolic links; ``seen`` stops link cycles.
    for folder, dirs, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders, .cache among them
        for name in names:
            if name.startswith(".") or not name.endswith(CONFIG_SUFFIXES + WEIGHT_SUFFIXES):
                continue
            path = Path(folder) / name
            out.append((path.relative_to(root).as_posix(), path, path.stat()))
    return sorted(out, key=lambda entry: entry[0])


def _file_digest(path: Path, size: int) -> str:
    """sha256 of a file's contents: in full for configs and small weights, sampled for big weights.

    Reading every byte of a multi-GB Stable Diffusion checkpoint each time a notebook
    asks for its stage would take longer than the stage check itself. A big weight
    file is hashed by its size, its safetensors header (every tensor's name, dtype,
    shape and offsets) and ``BLOCKS`` evenly spaced blocks of ``BLOCK_BYTES`` of its
    data. Retraining or fine-tuning changes practically every weight, so any real
    replacement changes every sampled block; a different architecture or dtype
    changes the header. Only an edit confined to a few bytes between the blocks
    would go unseen. A ``.safetensors`` file whose header does not describe
    exactly its bytes raises ``CorruptFileError`` naming it.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        # A truncated or overwritten safetensors file fails here, naming itself, not later deep inside a load.
        header = safetensors_header(f, size, path) if path.name.endswith(".safetensors") else None
        if path.name.endswith(CONFIG_SUFFIXES) or size <= FULL_HASH_BYTES:
            f.seek(0)
            for chunk in iter(lambda: f.read(2**20), b""):
                digest.update(chunk)
            return digest.hexdigest()
        start = 0
        if header is not None:
            digest.update(header)
            start = 8 + len(header)
        span = max(size - start - BLOCK_BYTES, 0)
        for i in range(BLOCKS):
            f.seek(start + span * i // (BLOCKS - 1))
            digest.update(f.read(BLOCK_BYTES))
    return digest.hexdigest()

"""SegFormer models: built from a named config, or loaded from a folder or hub id.

Small profiles use configs whose first stage downsamples by 2 instead of 4
(``-s2``), because SegFormer predicts at the first stage's resolution and at
64x128 a 1/4 output (16x32) erases poles, signs and lights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES

# Inputs are normalised like SegFormer's ImageNet-pretrained checkpoints expect.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_B0 = dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2], num_attention_heads=[1, 2, 5, 8], decoder_hidden_size=256)
_TINY = dict(hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 4, 8], decoder_hidden_size=64)
_S2 = dict(patch_sizes=[3, 3, 3, 3], strides=[2, 2, 2, 2])

#: Named configs: MiT-B0 as published, and smaller or less-downsampling variants.
ARCHITECTURES: dict[str, dict] = {
    "mit-b0": _B0,
    "mit-b0-s2": {**_B0, **_S2, "decoder_hidden_size": 128},
    "mit-tiny": _TINY,
    "mit-tiny-s2": {**_TINY, **_S2},
}


class ModelError(ValueError):
    """A model spec that is neither a known config, a model folder, nor a reachable hub id."""


def build(spec: str, seed: int = 0) -> SegformerForSemanticSegmentation:
    """A SegFormer for the 19 Cityscapes classes: a named config (random init) or a path / hub id."""
    if spec in ARCHITECTURES:
        torch.manual_seed(seed)
        config = SegformerConfig(
            num_labels=NUM_CLASSES,
            id2label=dict(enumerate(CLASS_NAMES)),
            label2id={n: i for i, n in enumerate(CLASS_NAMES)},
            semantic_loss_ignore_index=IGNORE,
            **ARCHITECTURES[spec],
        )
        return SegformerForSemanticSegmentation(config)
    return load(spec)


def load(path_or_id: str | Path) -> SegformerForSemanticSegmentation:
    """Load a saved SegFormer (``save_pretrained`` folder) or a hub id available offline."""
    path = Path(path_or_id).expanduser()
    looks_local = path.exists() or str(path_or_id).startswith((".", "/", "~")) or str(path_or_id).count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a SegFormer folder (expected config.json and model.safetensors from save_pretrained); "
            f"or pass one of the configs {', '.join(ARCHITECTURES)}"
        )
    try:
        model = SegformerForSemanticSegmentation.from_pretrained(str(path if looks_local else path_or_id))
    except OSError as e:
        raise ModelError(
            f"could not load segmenter {str(path_or_id)!r}: {e}. Without network access pass a local folder "
            f"(saved with save_pretrained) or one of the configs {', '.join(ARCHITECTURES)}."
        ) from e
    if model.config.num_labels != NUM_CLASSES:
        raise ModelError(f"{path_or_id}: the model predicts {model.config.num_labels} classes, expected {NUM_CLASSES}")
    return model


def save(model: SegformerForSemanticSegmentation, folder: str | Path) -> Path:
    """``save_pretrained`` (safetensors) into ``folder``; returns it."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 NxHxWx3 (or float 0-255) -> float Nx3xHxW normalised for the model."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std

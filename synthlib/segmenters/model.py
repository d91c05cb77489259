"""SegFormer models: built from a named config, or loaded from a folder or hub id.

A 19-class segmentation checkpoint loads whole; any other SegFormer checkpoint (an
ImageNet encoder such as ``nvidia/mit-b5``, an ADE20k segmenter) lends its encoder to
a new Cityscapes decode head. ``model.config.synthlib_init`` records which.

Small profiles use configs whose first stage downsamples by 2 instead of 4
(``-s2``), because SegFormer predicts at the first stage's resolution and at
64x128 a 1/4 output (16x32) erases poles, signs and lights.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from transformers import AutoConfig, SegformerConfig, SegformerForSemanticSegmentation, SegformerModel
from transformers.utils import logging as transformers_logging

from synthlib import zoo
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES
from synthlib.runs import processes

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
    """A SegFormer for the 19 Cityscapes classes: a named config (random init) or a path / hub id (see ``load``).

    ``seed`` fixes every newly initialised weight: the whole model of a named config, the
    decode head of a model built on a pretrained encoder. ``model.config.synthlib_init``
    says which it was: ``"config"``, ``"encoder"`` or ``"full"``.
    """
    if spec in ARCHITECTURES:
        torch.manual_seed(seed)
        config = SegformerConfig(
            num_labels=NUM_CLASSES,
            id2label=dict(enumerate(CLASS_NAMES)),
            label2id={n: i for i, n in enumerate(CLASS_NAMES)},
            semantic_loss_ignore_index=IGNORE,
            **ARCHITECTURES[spec],
        )
        model = SegformerForSemanticSegmentation(config)
        model.config.synthlib_init = "config"
        return model
    return load(spec, seed=seed)


def load(path_or_id: str | Path, seed: int = 0) -> SegformerForSemanticSegmentation:
    """A 19-class SegFormer from a ``save_pretrained`` folder, a hub id available offline, or ``zoo:NAME``.

    A 19-class segmentation checkpoint (a Cityscapes SegFormer, or one of ours) loads as is:
    ``model.config.synthlib_init == "full"``. Any other SegFormer checkpoint (an ImageNet
    classifier such as ``nvidia/mit-b5``, or a segmenter of other classes such as ADE20k's
    150) gives its encoder: the Cityscapes classes on a new decode head initialised from
    ``seed``, ``model.config.synthlib_init == "encoder"``, and a warning that says so.
    """
    path_or_id = zoo.resolve(path_or_id)
    source = _source(path_or_id)
    try:
        config = AutoConfig.from_pretrained(source)
        if not isinstance(config, SegformerConfig):
            raise ModelError(
                f"{path_or_id}: a {config.model_type!r} model, not a SegFormer (config.json model_type 'segformer'); "
                f"pass a SegFormer checkpoint or one of the configs {', '.join(ARCHITECTURES)}"
            )
        if _is_segmenter(config):
            model, info = SegformerForSemanticSegmentation.from_pretrained(source, output_loading_info=True)
            if not info["missing_keys"]:
                model.config.synthlib_init = "full"
                return model
            # a 19-class config without the decode head's weights: only the encoder is there to keep
        return _from_encoder(source, config, str(path_or_id), seed)
    except OSError as e:
        raise ModelError(
            f"could not load segmenter {str(path_or_id)!r}: {e}. Without network access pass a local folder "
            f"(saved with save_pretrained) or one of the configs {', '.join(ARCHITECTURES)}."
        ) from e


def save(model: SegformerForSemanticSegmentation, folder: str | Path) -> Path:
    """``save_pretrained`` (safetensors) into ``folder``; returns it."""
    folder = Path(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def to_accelerator(model: torch.nn.Module) -> torch.nn.Module:
    """``model``, moved in place to the device ``Accelerator`` would give this process; on a CPU nothing changes.

    The device is ``runs.processes().device``, as in the training loops: this process's GPU
    (under ``accelerate launch``, its own) unless ``ACCELERATE_USE_CPU`` is set. A model that
    already sits on an accelerator stays there.
    """
    if next(model.parameters()).device.type == "cpu":
        device = processes().device
        if device.type != "cpu":
            model.to(device)
    return model


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 NxHxWx3 (or float 0-255) -> float Nx3xHxW normalised for the model."""
    x = images.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


# --- helpers ------------------------------------------------------------------------------


def _source(path_or_id: str | Path) -> str:
    """What to hand ``from_pretrained``: a checked local folder, or the hub id as given."""
    path = Path(path_or_id).expanduser()
    looks_local = path.exists() or str(path_or_id).startswith((".", "/", "~")) or str(path_or_id).count("/") > 1
    if looks_local and not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a SegFormer folder (expected config.json and model.safetensors from save_pretrained); "
            f"or pass one of the configs {', '.join(ARCHITECTURES)}"
        )
    return str(path if looks_local else path_or_id)


def _cityscapes_config(config: SegformerConfig) -> SegformerConfig:
    """``config`` with the 19 Cityscapes classes, their names and the ignore label."""
    config = copy.deepcopy(config)
    config.num_labels = NUM_CLASSES
    config.id2label = dict(enumerate(CLASS_NAMES))
    config.label2id = {n: i for i, n in enumerate(CLASS_NAMES)}
    config.semantic_loss_ignore_index = IGNORE
    config.architectures = ["SegformerForSemanticSegmentation"]
    return config


def _is_segmenter(config: SegformerConfig) -> bool:
    """Whether the checkpoint claims a 19-class semantic segmentation head (its weights are checked on loading)."""
    architectures = config.architectures or ["SegformerForSemanticSegmentation"]
    return config.num_labels == NUM_CLASSES and "SegformerForSemanticSegmentation" in architectures


def _from_encoder(source: str, config: SegformerConfig, name: str, seed: int) -> SegformerForSemanticSegmentation:
    """A 19-class SegFormer: the encoder of checkpoint ``source``, a new decode head drawn from ``seed``."""
    torch.manual_seed(seed)
    model = SegformerForSemanticSegmentation(_cityscapes_config(config))
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # its load report lists the classifier we drop on purpose
    try:
        encoder, info = SegformerModel.from_pretrained(source, output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(verbosity)
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ModelError(
            f"{name}: the checkpoint lacks {len(missing)} SegFormer encoder weights (e.g. {', '.join(missing[:3])}); "
            "pass a SegFormer classification or segmentation checkpoint saved with save_pretrained"
        )
    model.segformer.load_state_dict(encoder.state_dict())
    model.config.synthlib_init = "encoder"
    architectures = config.architectures or []
    was = (
        f"a {config.num_labels}-class image classifier"
        if "SegformerForImageClassification" in architectures
        else f"a {config.num_labels}-class segmenter"
        if "SegformerForSemanticSegmentation" in architectures
        else "a checkpoint without a decode head"
    )
    warnings.warn(
        f"built a {NUM_CLASSES}-class SegFormer from the encoder of {name} ({was}); the decode head is new (seed {seed})",
        stacklevel=3,
    )
    return model.eval()

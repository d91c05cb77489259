"""What the zoo holds: each model's name, kind and the config that decides its weights.

A config holds everything its weights depend on (architecture, corpus, steps,
learning rate, seed): together with the fingerprint of the code that builds it,
it is the model's cache key. Sizes were chosen by measurement on a 2-core CPU
(docs/design.md §8); the ``-tiny`` entries build in seconds for the smoke profile
and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("encoder", "vae", "prior", "editor")


class ZooError(ValueError):
    """An unknown zoo model, a bad ``zoo:`` spec, or a cached model whose files no longer match its manifest."""


@dataclass(frozen=True)
class ZooModel:
    """One zoo entry: ``kind`` says which builder makes it, ``config`` everything its weights depend on."""

    name: str
    kind: str
    config: dict[str, Any]
    requires: tuple[str, ...] = field(default=())  # zoo models it is built on (a prior's VAE)
    about: str = ""


def _corpus(n: int, height: int, width: int, seed: int = 0) -> dict[str, Any]:
    return {"style": "mix", "n": n, "height": height, "width": width, "seed": seed}


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            "mit-b0", "encoder",
            {"architecture": "mit-b0", "corpus": _corpus(4000, 64, 128), "crop": [64, 64], "steps": 3000, "batch": 16,
             "lr": 1e-3, "seed": 0},
            about="MiT-B0 image classifier (the ImageNet stand-in): which classes a crop shows, in what shares",
        ),
        ZooModel(
            "mit-tiny-s2", "encoder",
            {"architecture": "mit-tiny-s2", "corpus": _corpus(32, 32, 64), "crop": [32, 32], "steps": 12, "batch": 8,
             "lr": 1e-3, "seed": 0},
            about="a tiny MiT image classifier for the smoke profile and tests",
        ),
        ZooModel(
            "vae", "vae",
            {"block_out_channels": [32, 64, 64], "layers_per_block": 1, "latent_channels": 4,
             "corpus": _corpus(4000, 64, 128), "crop": [32, 64], "steps": 3000, "batch": 8, "lr": 1e-3,
             "kl_weight": 1e-6, "seed": 0},
            about="AutoencoderKL, 4x downsampling (the Stable Diffusion VAE stand-in)",
        ),
        ZooModel(
            "vae-tiny", "vae",
            {"block_out_channels": [8, 16, 16], "layers_per_block": 1, "latent_channels": 4,
             "corpus": _corpus(32, 32, 64), "crop": [32, 32], "steps": 12, "batch": 8, "lr": 1e-3, "kl_weight": 1e-6,
             "seed": 0},
            about="a tiny AutoencoderKL for the smoke profile and tests",
        ),
        ZooModel(
            "prior", "prior",
            {"unet": {"block_out_channels": [32, 64, 64], "layers_per_block": 1, "attention_head_dim": 8},
             "text": {"hidden_size": 32, "layers": 2, "heads": 2}, "prediction": "v_prediction",
             "corpus": _corpus(4000, 64, 128), "steps": 3000, "batch": 16, "lr": 5e-4, "seed": 0},
            requires=("vae",),
            about="text-conditioned latent diffusion in Stable Diffusion's folder layout (the SD stand-in)",
        ),
        ZooModel(
            "prior-tiny", "prior",
            {"unet": {"block_out_channels": [16, 32], "layers_per_block": 1, "attention_head_dim": 8},
             "text": {"hidden_size": 32, "layers": 1, "heads": 2}, "prediction": "v_prediction",
             "corpus": _corpus(32, 32, 64), "steps": 12, "batch": 8, "lr": 1e-3, "seed": 0},
            requires=("vae-tiny",),
            about="a tiny text-conditioned latent diffusion model for the smoke profile and tests",
        ),
        ZooModel(
            "editor", "editor",
            {"corpus": _corpus(2000, 64, 128), "steps": 2000, "batch": 16, "lr": 2e-4, "seed": 0},
            requires=("prior",),
            about="InstructPix2Pix on the prior, taught weather edits on mix scenes (the instruct-pix2pix stand-in)",
        ),
        ZooModel(
            "editor-tiny", "editor",
            {"corpus": _corpus(16, 32, 64), "steps": 12, "batch": 8, "lr": 1e-3, "seed": 0},
            requires=("prior-tiny",),
            about="a tiny InstructPix2Pix editor for the smoke profile and tests",
        ),
    )
}  # fmt: skip


def get(name: str) -> ZooModel:
    """The zoo entry ``name``; ZooError listing the valid names otherwise."""
    if name not in MODELS:
        raise ZooError(f"{name!r} is not a zoo model; the zoo holds {', '.join(MODELS)}")
    return MODELS[name]

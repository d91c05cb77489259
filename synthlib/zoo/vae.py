"""The zoo's VAE: an ``AutoencoderKL`` trained on the corpus (the Stable Diffusion VAE stand-in).

Downsampling is 2^(levels-1): 4x with three levels, so a 64x128 image becomes a
4x16x32 latent (docs/design.md §8: latent steps at 16x32 cost about a third of
pixel steps at 32x64). The loss is L1 reconstruction plus a small KL term, as the
first stage of Stable Diffusion without its perceptual and adversarial terms
(neither has a pretrained network to stand on here). ``scaling_factor`` is set to
1 / std of the corpus latents, as Stable Diffusion's 0.18215 was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from synthlib.zoo import corpus, loop
from synthlib.zoo.registry import ZooModel

_HELD_OUT = 128


def new(cfg: dict[str, Any]) -> AutoencoderKL:
    """An untrained AutoencoderKL of ``cfg`` (block_out_channels, layers_per_block, latent_channels)."""
    channels = tuple(cfg["block_out_channels"])
    torch.manual_seed(cfg["seed"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels),
        block_out_channels=channels,
        layers_per_block=cfg["layers_per_block"],
        latent_channels=cfg["latent_channels"],
        norm_num_groups=min(32, min(channels)),
        sample_size=cfg["corpus"]["height"],
    )


def to_unit(images: np.ndarray) -> torch.Tensor:
    """uint8 NxHxWx3 -> float Nx3xHxW in [-1, 1], the VAE's input range."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def build(model: ZooModel, out: Path, checkpoints: Path, requires: dict[str, Path], progress: bool = True) -> dict[str, Any]:
    """Train the VAE of ``model.config``, set its scaling factor and ``save_pretrained`` it into ``out``."""
    cfg = model.config
    images, _, _ = corpus.render(cfg["corpus"], progress)
    vae = new(cfg)

    def step(accelerator, i: int) -> torch.Tensor:
        batch = images[corpus.batch_indices(cfg["seed"], i, len(images), cfg["batch"])]
        x = to_unit(_crop(batch, cfg["crop"], np.random.default_rng([cfg["seed"], i, 2]))).to(accelerator.device)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        return F.l1_loss(recon, x) + cfg["kl_weight"] * posterior.kl().mean()

    history = loop.train(f"zoo {model.name}", [vae], step, cfg["steps"], cfg["lr"], checkpoints, cfg["seed"], progress)
    spec = {**cfg["corpus"], "seed": cfg["corpus"]["seed"] + 1, "n": min(_HELD_OUT, cfg["corpus"]["n"])}
    held, _, _ = corpus.render(spec, progress)
    scale = latent_scale(vae, held)
    vae.register_to_config(scaling_factor=scale)
    vae.save_pretrained(out, safe_serialization=True)
    return {"final_loss": float(np.mean(history["loss"][-50:])), "held_out_psnr_db": round(psnr(vae, held), 2),
            "scaling_factor": round(scale, 5), "median_step_seconds": float(np.median(history["step_seconds"])),
            "parameters_M": round(sum(p.numel() for p in vae.parameters()) / 1e6, 3)}


def _crop(images: np.ndarray, crop: list[int], rng: np.random.Generator) -> np.ndarray:
    """One random ``crop`` window shared by the batch: the VAE is convolutional, and whole images cost 4x more a step."""
    h, w = images.shape[1:3]
    ch, cw = min(crop[0], h), min(crop[1], w)
    r, c = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return np.ascontiguousarray(images[:, r : r + ch, c : c + cw])


@torch.no_grad()
def psnr(vae: AutoencoderKL, images: np.ndarray) -> float:
    """Mean PSNR (dB, 8-bit range) of ``images`` through the VAE's round trip (posterior mode)."""
    x = to_unit(images).to(vae.device)
    recon = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
    mse = ((recon - x) / 2).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean())


@torch.no_grad()
def latent_scale(vae: AutoencoderKL, images: np.ndarray) -> float:
    """1 / std of the posterior samples of ``images``: scaled latents have unit variance."""
    std = float(vae.encode(to_unit(images).to(vae.device)).latent_dist.sample().std())
    return 1.0 / std if math.isfinite(std) and std > 0 else 1.0

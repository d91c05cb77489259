"""The zoo's text-conditioned prior: latent diffusion in Stable Diffusion's folder layout (the SD stand-in).

A UNet2DConditionModel on the zoo VAE's latents and a small CLIP text encoder,
trained together on the corpus's captioned renders (looks and weather drawn at
random), written by ``StableDiffusionPipeline.save_pretrained``: ``model_index.json``,
``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``. The
diffusion stages load it with the code that loads a downloaded Stable Diffusion.
The VAE is frozen, as in Stable Diffusion; latents are encoded once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTokenizer

from synthlib.tiny_hub import clip_text_encoder, save_sd_folder
from synthlib.tiny_tokenizer import write_clip_tokenizer
from synthlib.zoo import corpus, loop
from synthlib.zoo.registry import ZooModel
from synthlib.zoo.vae import to_unit

_ENCODE_BATCH = 64


def scheduler(prediction: str) -> DDPMScheduler:
    """Stable Diffusion v1's noise schedule (scaled linear, 1,000 steps) with ``prediction`` as its target."""
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type=prediction, clip_sample=False, steps_offset=1,
    )  # fmt: skip


def build(model: ZooModel, out: Path, checkpoints: Path, requires: dict[str, Path], progress: bool = True) -> dict[str, Any]:
    """Train the prior of ``model.config`` on the latents of its required VAE and save the pipeline into ``out``."""
    cfg = model.config
    vae = AutoencoderKL.from_pretrained(requires[model.requires[0]]).eval().requires_grad_(False)
    images, _, captions = corpus.render(cfg["corpus"], progress)
    mean, std = _encode(vae, images)
    tokenizer = _tokenizer(checkpoints.parent / "tokenizer")
    ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids  # fmt: skip
    torch.manual_seed(cfg["seed"])
    text_encoder = clip_text_encoder(len(tokenizer), cfg["text"]["hidden_size"], cfg["text"]["layers"], cfg["text"]["heads"])
    unet = _unet(cfg["unet"], mean.shape[1:], cfg["text"]["hidden_size"])
    noise_schedule = scheduler(cfg["prediction"])
    scale = vae.config.scaling_factor

    def step(accelerator, i: int) -> torch.Tensor:
        idx = torch.from_numpy(corpus.batch_indices(cfg["seed"], i, len(images), cfg["batch"]))
        g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + i)
        noisy, t, target = noisy_batch(mean[idx], std[idx], scale, noise_schedule, g)
        device = accelerator.device
        text = text_encoder(ids[idx].to(device))[0]
        pred = unet(noisy.to(device), t.to(device), encoder_hidden_states=text).sample
        return F.mse_loss(pred, target.to(device))

    what = f"zoo {model.name}"
    history = loop.train(what, [unet, text_encoder], step, cfg["steps"], cfg["lr"], checkpoints, cfg["seed"], progress)
    save_sd_folder(out, vae, text_encoder, tokenizer, unet, noise_schedule)
    (out / "captions.json").write_text(json.dumps(sorted({corpus.caption(c) for c in corpus.CONDITIONS}), indent=1))
    return {"final_loss": float(np.mean(history["loss"][-50:])), "latent_size": list(mean.shape[1:]),
            "median_step_seconds": float(np.median(history["step_seconds"])),
            "parameters_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 3)}


def noisy_batch(mean: torch.Tensor, std: torch.Tensor, scale: float, schedule: Any, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(noisy latents, timesteps, what the UNet learns to predict) of a batch of VAE posteriors (mean, std).

    Latents are drawn from the posterior and scaled as Stable Diffusion's; the noise
    schedule's ``prediction_type`` decides the target (velocity or noise).
    """
    latents = (mean + std * torch.randn(mean.shape, generator=g)) * scale
    noise = torch.randn(latents.shape, generator=g)
    t = torch.randint(0, schedule.config.num_train_timesteps, (len(latents),), generator=g)
    noisy = schedule.add_noise(latents, noise, t)
    target = noise if schedule.config.prediction_type == "epsilon" else schedule.get_velocity(latents, noise, t)
    return noisy, t, target


@torch.no_grad()
def _encode(vae: AutoencoderKL, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior's mean and std of every corpus image (unscaled), encoded once."""
    means, stds = [], []
    for i in range(0, len(images), _ENCODE_BATCH):
        dist = vae.encode(to_unit(images[i : i + _ENCODE_BATCH])).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def _tokenizer(folder: Path) -> CLIPTokenizer:
    write_clip_tokenizer(folder)
    return CLIPTokenizer.from_pretrained(folder)


def _unet(cfg: dict[str, Any], latent: tuple[int, ...], text_hidden: int) -> UNet2DConditionModel:
    channels = tuple(cfg["block_out_channels"])
    levels = len(channels)
    return UNet2DConditionModel(
        sample_size=tuple(int(s) for s in latent[1:]),
        in_channels=int(latent[0]),
        out_channels=int(latent[0]),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        block_out_channels=channels,
        layers_per_block=cfg["layers_per_block"],
        attention_head_dim=cfg["attention_head_dim"],
        norm_num_groups=min(32, min(channels)),
        cross_attention_dim=text_hidden,
    )

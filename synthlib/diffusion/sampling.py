"""Sampling: semantic maps in, target-looking images out (stages 2-4 call this).

``generate`` is the entry point; ``guided`` is its classifier-free guided
prediction of one step. Each image's starting noise comes from its own seed,
and the schedulers are deterministic (DDIM with eta = 0, DPM-Solver++), so an
image depends only on its map, depth, seed and settings, never on the batch it
was made in. On CUDA the networks run under autocast at the model's
``inference_dtype`` (half precision for Stable Diffusion); on a CPU everything
stays float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from tqdm.auto import tqdm

from synthlib.diffusion.conditioning import encode
from synthlib.diffusion.model import DiffusionModel, DiffusionModelError, load, resize
from synthlib.diffusion.precision import device_dtype

SCHEDULERS = {"ddim": DDIMScheduler, "dpm": DPMSolverMultistepScheduler}


@torch.no_grad()
def generate(
    model: DiffusionModel | str | Path,
    maps: np.ndarray | None,
    depth: np.ndarray | Sequence[np.ndarray] | None = None,
    seeds: Sequence[int] | None = None,
    guidance_scale: float = 1.0,
    conditioning_scale: float = 1.0,
    steps: int = 20,
    scheduler: str = "ddim",
    batch_size: int = 32,
    progress: bool = False,
    dtype: str | None = None,
) -> np.ndarray:
    """Images (uint8 NxHxWx3) generated from label maps (uint8 NxHxW trainIds, 255 = unknown).

    ``model``: a ``DiffusionModel`` or a model folder (``save``). The maps are
    encoded at their own size and area-averaged to the model's; the images are
    generated at the model's resolution and resized to the maps' size.
    ``depth`` (NxHxW, metres or up to scale) is required by models with a depth
    channel. ``seeds``: one per map (default 0..N-1). Classifier-free guidance
    mixes the conditional and unconditional predictions as
    ``uncond + guidance_scale * (cond - uncond)``; 1 is conditional only. The
    unconditional input is what training dropped to: an all-zero map and the
    model's ``uncond_prompt`` ("" for Stable Diffusion; the domain prompt for
    models trained without text dropout).
    ``conditioning_scale`` scales the branch (ControlNet residuals, or the
    concatenated channels). ``maps=None`` samples a model without a branch
    (stage 1) at its own resolution, one image per seed. ``dtype`` (a
    ``DTYPES`` name; default the model's ``inference_dtype``) is the autocast
    dtype on CUDA; ignored on a CPU.
    """
    if not isinstance(model, DiffusionModel):
        model = load(model)
    if scheduler not in SCHEDULERS:
        raise DiffusionModelError(f"scheduler {scheduler!r} unknown; valid: {', '.join(SCHEDULERS)}")
    if steps < 1:
        raise DiffusionModelError(f"steps must be >= 1, got {steps}")
    conditioned = model.conditioning is not None
    if maps is None:
        if conditioned:
            raise DiffusionModelError(f"this model has a {model.conditioning['branch']} branch: pass label maps")
        if seeds is None:
            raise DiffusionModelError("without maps pass seeds: one image is made per seed")
        n, out_size = len(seeds), tuple(model.resolution)
    else:
        maps = np.asarray(maps)
        maps = maps[None] if maps.ndim == 2 else maps
        n, out_size = len(maps), tuple(maps.shape[1:])
    seeds = list(range(n)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n:
        raise DiffusionModelError(f"{len(seeds)} seeds for {n} maps: pass one seed per map")
    wants_depth = conditioned and model.conditioning["depth"]
    if wants_depth and depth is None:
        raise DiffusionModelError("this model was trained with a depth channel: pass depth (NxHxW) for the maps")
    if not wants_depth:
        depth = None

    device = model.device
    amp = device_dtype(model.inference_dtype if dtype is None else dtype, device)
    sampler = _sampler(model, scheduler)
    text = model.encode_prompt([model.prompt])
    uncond_text = text if model.uncond_prompt is None else model.encode_prompt([model.uncond_prompt])
    out = np.zeros((n, *out_size, 3), np.uint8)
    for start in tqdm(range(0, n, batch_size), desc="generate", disable=not progress, leave=False):
        stop = min(start + batch_size, n)
        condition = None
        if conditioned:
            d = None if depth is None else np.asarray(depth[start:stop], np.float32)
            condition = encode(maps[start:stop], model.condition_size, 0, d).to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp != torch.float32):
            x = _denoise(model, sampler, (text, uncond_text), condition, seeds[start:stop], guidance_scale, conditioning_scale, steps)
            images = resize(model.decode(x), out_size)
        out[start:stop] = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return out


def guided(
    model: DiffusionModel,
    x: torch.Tensor,
    t: torch.Tensor,
    text: torch.Tensor,
    uncond_text: torch.Tensor,
    condition: torch.Tensor,
    guidance_scale: float,
    conditioning_scale: float = 1.0,
) -> torch.Tensor:
    """One step's prediction with classifier-free guidance: ``uncond + guidance_scale * (cond - uncond)``.

    ``cond`` is the prediction for ``condition`` and ``text`` (1 x tokens x dim,
    the domain prompt), ``uncond`` for an all-zero map and ``uncond_text``. Both
    run as one batch of 2N through the networks; scale 1 runs only the
    conditional pass and 0 only the unconditional one.
    """
    n = x.shape[0]
    passes = []
    if guidance_scale != 0:
        passes.append((condition, text))
    if guidance_scale != 1:
        passes.append((torch.zeros_like(condition), uncond_text))
    k = len(passes)
    both = model.predict(
        x.repeat(k, 1, 1, 1),
        t.repeat(k),
        torch.cat([p[1].expand(n, -1, -1) for p in passes]),
        torch.cat([p[0] for p in passes]),
        conditioning_scale,
    ).float()
    parts = both.chunk(k)
    if k == 2:
        return parts[1] + guidance_scale * (parts[0] - parts[1])
    return parts[0]


def _sampler(model: DiffusionModel, scheduler: str):
    """A new sampling scheduler (``SCHEDULERS[scheduler]``) on the model's noise schedule.

    Latents reach beyond [-1, 1]: a latent model's sampler never clips its predicted x0,
    whatever the model's scheduler config says; pixel-space models keep their setting (clipping on).
    """
    no_clipping = {"clip_sample": False} if model.space == "latent" else {}
    return SCHEDULERS[scheduler].from_config(model.scheduler.config, **no_clipping)


def _denoise(model: DiffusionModel, sampler, texts, condition, seeds, guidance_scale, conditioning_scale, steps) -> torch.Tensor:
    """Latents (or pixels) denoised from each seed's noise; ``texts`` = (prompt, unconditional prompt) embeddings."""
    device = model.device
    channels = model.unet.config.out_channels
    noise = [torch.randn(channels, *model.sample_size, generator=torch.Generator().manual_seed(s)) for s in seeds]
    x = torch.stack(noise).to(device) * sampler.init_noise_sigma
    sampler.set_timesteps(steps, device=device)
    n = x.shape[0]
    for t in sampler.timesteps:
        xin = sampler.scale_model_input(x, t)
        if condition is None:
            pred = model.predict(xin, t.expand(n), texts[0].expand(n, -1, -1))
        else:
            pred = guided(model, xin, t.expand(n), *texts, condition, guidance_scale, conditioning_scale)
        x = sampler.step(pred.float(), t, x).prev_sample  # the sampler's arithmetic in float32, also under autocast
    return x

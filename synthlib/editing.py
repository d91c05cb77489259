"""Instruction-guided image editing (InstructPix2Pix), whole or patch-wise: the editor of zero-shot adaptation.

SDGPA (Luo, Zhao, Liu, IROS 2025) adapts a segmenter to a target it has only a
text description of: a pretrained text-guided editor turns labelled source
images into the described style, and the labels stay. Editing whole images at
once loses small objects and moves layout; SDGPA edits **patch-wise**: crops are
edited one by one and pasted back, so each crop keeps its objects at the
editor's working size. Here patches overlap by ``overlap`` of their size and are
blended with weights that fall off towards a patch's border, so no seam shows.

The editor is diffusers' ``StableDiffusionInstructPix2PixPipeline`` loaded from
a folder or hub id in ``timbrooks/instruct-pix2pix``'s layout (the paper
profile's ``timbrooks/instruct-pix2pix``), or the zoo's ``zoo:editor``, made the
same way from the zoo's prior (``tiny_hub.write_stable_diffusion(..., editor=True)``
writes a tiny random one). Every crop is edited with its own seed, a
function of (seed, image index, patch index), so a result does not depend on
how crops are batched (up to float rounding: a few pixels one level apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

#: Input channels of an InstructPix2Pix UNet: the noisy latents and the input image's latents.
EDITOR_CHANNELS = 8


class EditingError(ValueError):
    """An editor that is not an InstructPix2Pix model, or images, patches or settings it cannot take."""


@dataclass(frozen=True)
class EditSettings:
    """How images are edited: sampling (steps, text and image guidance) and the patches (None: whole images)."""

    steps: int = 20
    guidance: float = 7.5  # classifier-free guidance on the instruction
    image_guidance: float = 1.5  # ... and on the input image (InstructPix2Pix's second scale)
    patch: tuple[int, int] | None = None  # (height, width) in pixels
    overlap: float = 0.25  # share of a patch's height / width shared with its neighbour
    batch: int = 8  # crops per pipeline call


def load_editor(spec: str | Path, device: str | torch.device | None = None) -> Any:
    """The InstructPix2Pix pipeline of a folder, hub id or ``zoo:NAME``, on ``device`` (default: CUDA when there is one).

    A folder whose UNet does not take ``EDITOR_CHANNELS`` input channels (a plain
    Stable Diffusion) raises ``EditingError``.
    """
    from diffusers import StableDiffusionInstructPix2PixPipeline

    from synthlib import zoo

    try:
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(zoo.resolve(spec), safety_checker=None, requires_safety_checker=False)
    except (OSError, ValueError) as e:
        raise EditingError(f"editor {spec}: cannot load an InstructPix2Pix pipeline from it ({e})") from None
    channels = pipeline.unet.config.in_channels
    if channels != EDITOR_CHANNELS:
        raise EditingError(
            f"editor {spec}: its UNet takes {channels} input channels; an InstructPix2Pix UNet takes "
            f"{EDITOR_CHANNELS} (the noisy latents and the input image's latents), e.g. timbrooks/instruct-pix2pix"
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def size_multiple(editor: Any) -> int:
    """Image sizes the editor takes are multiples of this: the VAE's downsampling times the UNet's."""
    return int(editor.vae_scale_factor) * 2 ** (len(editor.unet.config.block_out_channels) - 1)


def patch_boxes(height: int, width: int, patch: tuple[int, int], overlap: float) -> list[tuple[int, int]]:
    """(top, left) of every patch: a grid whose neighbours share ``overlap`` of a patch, the last ones flush with the border."""
    if not 0 <= overlap < 1:
        raise EditingError(f"overlap must be in [0, 1) (the share of a patch its neighbour shares), got {overlap}")
    ph, pw = patch
    if ph > height or pw > width or ph < 1 or pw < 1:
        raise EditingError(f"patch {ph}x{pw} (height x width) must fit the {height}x{width} images")
    return [(top, left) for top in _starts(height, ph, overlap) for left in _starts(width, pw, overlap)]


def blend_weights(height: int, width: int) -> np.ndarray:
    """A patch's paste-back weights (HxW, all > 0): highest at its centre, falling linearly to its border."""
    rows = np.minimum(np.arange(height) + 1, height - np.arange(height)).astype(np.float64)
    cols = np.minimum(np.arange(width) + 1, width - np.arange(width)).astype(np.float64)
    return np.outer(rows, cols)


def edit(
    editor: Any, images: np.ndarray, instruction: str, settings: EditSettings, seed: int = 0,
    indices: Sequence[int] | None = None, progress: bool = True,
) -> np.ndarray:  # fmt: skip
    """The images (uint8 NxHxWx3) edited by ``instruction``, whole or patch-wise; uint8 of the same shape.

    Patch-wise, each patch is edited alone and the patches are blended back with
    ``blend_weights``; pixels covered by one patch only take that patch's edit.
    ``indices``: each image's index in its dataset (default 0..N-1), which seeds its edits.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise EditingError(f"images must be uint8 N x H x W x 3, got {images.dtype} {images.shape}")
    if settings.steps < 1 or settings.batch < 1:
        raise EditingError(f"steps and batch must be >= 1, got steps={settings.steps}, batch={settings.batch}")
    n, height, width, _ = images.shape
    indices = list(range(n)) if indices is None else list(indices)
    if len(indices) != n:
        raise EditingError(f"indices: {len(indices)} for {n} images")
    patch = tuple(settings.patch) if settings.patch is not None else (height, width)
    boxes = patch_boxes(height, width, patch, settings.overlap)
    multiple = size_multiple(editor)
    if patch[0] % multiple or patch[1] % multiple:
        what = "patch" if settings.patch is not None else "image size (edited whole)"
        raise EditingError(f"{what} {patch[0]}x{patch[1]}: the editor takes sizes that are multiples of {multiple}")
    weights = blend_weights(*patch)[..., None]
    jobs = [(i, k) for i in range(n) for k in range(len(boxes))]
    total = np.zeros((n, height, width, 3))
    norm = np.zeros((n, height, width, 1))
    bar = tqdm(total=len(jobs), desc=f"edit ({len(boxes)} patches per image)", disable=not progress, leave=False)
    for start in range(0, len(jobs), settings.batch):
        chunk = jobs[start : start + settings.batch]
        crops = [images[i, top : top + patch[0], left : left + patch[1]] for i, k in chunk for top, left in [boxes[k]]]
        edited = _run(editor, crops, instruction, settings, [(seed, int(indices[i]), k) for i, k in chunk])
        for (i, k), out in zip(chunk, edited, strict=True):
            top, left = boxes[k]
            total[i, top : top + patch[0], left : left + patch[1]] += out * weights
            norm[i, top : top + patch[0], left : left + patch[1]] += weights
        bar.update(len(chunk))
    bar.close()
    return np.clip(np.round(total / norm * 255.0), 0, 255).astype(np.uint8)


def _run(editor: Any, crops: list[np.ndarray], instruction: str, settings: EditSettings, seeds: list[tuple[int, int, int]]) -> np.ndarray:
    """One pipeline call: the crops edited, floats in [0, 1] (N x h x w x 3), each with its own generator."""
    generators = [torch.Generator().manual_seed(int(np.random.SeedSequence(list(s)).generate_state(1)[0])) for s in seeds]
    result = editor(
        prompt=[instruction] * len(crops), image=[Image.fromarray(c) for c in crops], num_inference_steps=settings.steps,
        guidance_scale=settings.guidance, image_guidance_scale=settings.image_guidance, generator=generators,
        output_type="np",
    )  # fmt: skip
    return np.asarray(result.images, dtype=np.float64)


def _starts(length: int, size: int, overlap: float) -> list[int]:
    stride = max(1, round(size * (1 - overlap)))
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)  # the last patch flush with the border, overlapping its neighbour more
    return starts

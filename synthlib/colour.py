"""Colour statistics in CIE Lab: conversions and Reinhard colour transfer.

Colour transfer (Reinhard et al., 2001) shifts and scales each channel to a
reference image's mean and standard deviation, in CIE Lab, where the channels
are close to decorrelated, so changing one barely changes the others (Reinhard
used the similar l-alpha-beta space). Stage 01 recolours the sources with it to
train a pseudo-labeller, stage 04 measures it as a translation baseline.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from skimage import color


def colour_transfer(images: np.ndarray, references: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Per-channel mean / std transfer in CIE Lab of uint8 NxHxWx3 ``images`` to their references (any size)."""
    images = check_images(images, "images")
    refs = check_references(references, len(images))
    lab = rgb_to_lab(images)
    mean, std = lab.mean((1, 2), keepdims=True), lab.std((1, 2), keepdims=True)
    ref_stats = [(lab_r.mean((0, 1)), lab_r.std((0, 1))) for lab_r in (rgb_to_lab(r) for r in refs)]
    ref_mean = np.stack([m for m, _ in ref_stats])[:, None, None]
    ref_std = np.stack([s for _, s in ref_stats])[:, None, None]
    # A flat channel (std 0) keeps its values shifted to the reference mean instead of dividing by zero.
    out = (lab - mean) / np.maximum(std, 1e-6) * np.where(std > 1e-6, ref_std, 0.0) + ref_mean
    return lab_to_rgb(out)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 (or 0-255 float) sRGB ...x3 -> CIE Lab (D65, 2° observer), float64: L in [0, 100]."""
    return color.rgb2lab(np.asarray(rgb, np.float64) / 255.0)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab (D65) ...x3 -> uint8 sRGB (out-of-gamut colours clipped)."""
    with warnings.catch_warnings():
        # Transferred statistics can leave the gamut (negative Z); clipping them is the intent, not a fault.
        warnings.filterwarnings("ignore", message=".*negative Z values.*")
        rgb = color.lab2rgb(np.asarray(lab, np.float64))
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def check_images(images: np.ndarray, what: str) -> np.ndarray:
    """``images`` as a uint8 NxHxWx3 array, or a ValueError naming ``what``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 NxHxWx3 RGB, got {images.dtype} {images.shape}")
    return images


def check_references(references, n: int) -> list[np.ndarray]:
    """One uint8 HxWx3 reference per image (``n``), or a ValueError saying which rule fails."""
    refs = list(references)
    if len(refs) != n:
        raise ValueError(f"one reference per image: got {len(refs)} references for {n} images")
    for r in refs:
        if np.asarray(r).dtype != np.uint8 or np.asarray(r).ndim != 3 or np.asarray(r).shape[-1] != 3:
            raise ValueError(f"references must be uint8 HxWx3 RGB, got {np.asarray(r).dtype} {np.asarray(r).shape}")
    return [np.asarray(r) for r in refs]

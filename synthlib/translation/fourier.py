"""Cheap translation baselines without training: Fourier amplitude swap (FDA) and colour transfer.

- FDA (Yang & Soatto, 2020): the low-frequency amplitude spectrum of an image
  (global colour, illumination, large-scale contrast) is replaced by a
  reference image's; the phase (edges, layout, hence the semantics) stays.
- Colour transfer (Reinhard et al., 2001), in ``synthlib.colour``: each channel
  shifted and scaled to the reference's mean and standard deviation in CIE Lab.

Both map a batch of uint8 images onto a batch of uint8 references (one
reference per image) with numpy, vectorised over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

# colour_transfer and the Lab conversions are translation baselines too: importable from here as before
from synthlib.colour import check_images, check_references, colour_transfer, lab_to_rgb, rgb_to_lab  # noqa: F401

#: FDA's beta must keep the swapped square inside the spectrum (and away from the Nyquist frequency).
MAX_BETA = 0.5


def check_beta(beta: float) -> None:
    """Raise a ValueError naming ``beta`` unless 0 <= beta <= 0.5."""
    if not isinstance(beta, (int, float)) or not 0.0 <= beta <= MAX_BETA:
        raise ValueError(
            f"FDA beta={beta!r} is outside [0, {MAX_BETA}]: it is the half-size of the swapped low-frequency square as a "
            f"fraction of min(height, width) (FDA uses 0.01-0.09; 0 leaves images unchanged)"
        )


def low_frequency_mask(height: int, width: int, beta: float) -> np.ndarray:
    """HxW bool mask over the (unshifted) spectrum: frequencies (ky, kx) with |ky|, |kx| < beta * min(height, width).

    In the fftshift-ed spectrum this is the centre square of half-size
    ceil(beta * min(height, width)) - 1 around the DC term; beta = 0 selects nothing.
    """
    check_beta(beta)
    limit = beta * min(height, width)
    ky = np.abs(np.fft.fftfreq(height) * height)
    kx = np.abs(np.fft.fftfreq(width) * width)
    return (ky[:, None] < limit) & (kx[None, :] < limit)


def amplitude_swap(images: np.ndarray, references: np.ndarray, beta: float) -> np.ndarray:
    """FDA on float arrays ...xHxWxC: the low-frequency amplitude of ``references`` with the phase of ``images``.

    Returns float64 of the same shape, unclipped (``fda`` rounds to uint8).
    """
    images, references = np.asarray(images, np.float64), np.asarray(references, np.float64)
    if images.shape != references.shape or images.ndim < 3:
        raise ValueError(f"FDA needs images and references of one shape ...xHxWxC; got {images.shape} and {references.shape}")
    mask = low_frequency_mask(images.shape[-3], images.shape[-2], beta)[..., None]
    spectrum = np.fft.fft2(images, axes=(-3, -2))
    amplitude = np.where(mask, np.abs(np.fft.fft2(references, axes=(-3, -2))), np.abs(spectrum))
    # The swapped region is symmetric about DC, so the spectrum stays Hermitian and the result real (up to rounding).
    return np.fft.ifft2(amplitude * np.exp(1j * np.angle(spectrum)), axes=(-3, -2)).real


def fda(images: np.ndarray, references: Sequence[np.ndarray] | np.ndarray, beta: float) -> np.ndarray:
    """FDA-translate uint8 NxHxWx3 ``images``, each to its reference's style (references are resized to the images' size)."""
    check_beta(beta)
    images = check_images(images, "images")
    refs = np.stack([_resize(r, images.shape[1:3]) for r in check_references(references, len(images))])
    return np.clip(np.round(amplitude_swap(images, refs, beta)), 0, 255).astype(np.uint8)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(size):
        return image
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR))

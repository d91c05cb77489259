"""The semantic conditioning input of stage 2: one-hot maps, erosion, depth.

A label map (trainIds, 255 = ignore) becomes ``NUM_CLASSES + 1`` channels —
one per class and an *unknown* channel for ignore and eroded pixels — plus
an optional depth channel (docs/design.md §5). Maps are encoded at their own
resolution (erosion radius in their pixels) and then area-averaged to the
size the model takes, so a one-pixel pole in a 64x128 map survives as a
half-strength channel at 32x64 instead of vanishing.

Depth enters as relative inverse depth in [0, 1] per image (1 = nearest
pixel): metric depth (minicity, or a metric depth model) and the relative
disparity of monocular models (DPT, Depth Anything) both map to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from synthlib.labels import IGNORE, NUM_CLASSES

#: Label value of unknown pixels (ignore and eroded): the ignore trainId.
UNKNOWN = IGNORE
#: Channel index of "unknown" in the conditioning input.
UNKNOWN_CHANNEL = NUM_CLASSES
#: Channel index of depth, when present.
DEPTH_CHANNEL = NUM_CLASSES + 1


class ConditioningError(ValueError):
    """Bad maps, depth or erosion radius."""


def num_channels(depth: bool) -> int:
    """Channels of the conditioning input: 19 classes + unknown (+ depth)."""
    return NUM_CLASSES + 1 + int(bool(depth))


def erode(labels: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` pixels (a (2r+1)^2 square) of another class become UNKNOWN (255).

    Works on one HxW map or a NxHxW batch. Ignore pixels stay ignore and do not
    erode their neighbours: only another *class* marks a border. 0 disables.
    """
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool) or radius < 0:
        raise ConditioningError(f"erosion radius must be an integer >= 0 (0 disables), got {radius!r}")
    labels = np.asarray(labels)
    if radius == 0:
        return labels.copy()
    size = (2 * radius + 1,) * 2
    if labels.ndim == 3:
        size = (1, *size)
    valid = labels != IGNORE
    wide = labels.astype(np.int16)
    high = ndimage.maximum_filter(np.where(valid, wide, -1), size=size, mode="nearest")
    low = ndimage.minimum_filter(np.where(valid, wide, 255), size=size, mode="nearest")
    keep = valid & (high == labels) & (low == labels)
    return np.where(keep, labels, UNKNOWN).astype(np.uint8)


def encode(
    maps: np.ndarray,
    size: Sequence[int] | None = None,
    erosion: int = 0,
    depth: np.ndarray | Sequence[np.ndarray] | None = None,
) -> torch.Tensor:
    """Label maps (uint8 NxHxW trainIds) -> conditioning input N x C x size (float32).

    One-hot classes and the unknown channel, computed at the maps' resolution after
    ``erode(maps, erosion)``, area-averaged to ``size`` (h, w); with ``depth``
    (NxHxW metres or any positive depth up to scale) a relative inverse-depth channel.
    """
    maps = np.asarray(maps)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.dtype != np.uint8:
        raise ConditioningError(f"maps must be uint8 NxHxW trainIds, got {maps.dtype} array of shape {maps.shape}")
    bad = np.setdiff1d(np.unique(maps), [*range(NUM_CLASSES), IGNORE])
    if bad.size:
        raise ConditioningError(f"maps hold values {bad.tolist()}, which are not trainIds (0-{NUM_CLASSES - 1}) or ignore (255)")
    eroded = torch.from_numpy(erode(maps, erosion).astype(np.int64))
    eroded[eroded == UNKNOWN] = UNKNOWN_CHANNEL
    channels = F.one_hot(eroded, NUM_CLASSES + 1).permute(0, 3, 1, 2).float()
    if depth is not None:
        channels = torch.cat([channels, torch.from_numpy(inverse_depth(depth, maps.shape))[:, None]], 1)
    if size is not None and tuple(size) != tuple(maps.shape[1:]):
        channels = F.interpolate(channels, size=tuple(size), mode="area")
    return channels


def inverse_depth(depth: np.ndarray | Sequence[np.ndarray], shape: Sequence[int] | None = None) -> np.ndarray:
    """Depth (NxHxW, metres or up to scale; <= 0 or non-finite = invalid) -> inverse depth / its per-image max.

    Invalid pixels get 0 (as far as the sky). ``shape`` (N, H, W) is checked.
    """
    depth = np.asarray(np.stack(depth) if not isinstance(depth, np.ndarray) else depth, np.float32)
    if depth.ndim == 2:
        depth = depth[None]
    if shape is not None and depth.shape != tuple(shape):
        raise ConditioningError(f"depth of shape {depth.shape} does not match the maps' shape {tuple(shape)}")
    valid = np.isfinite(depth) & (depth > 0)
    inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    peak = inv.reshape(len(inv), -1).max(1).reshape(-1, 1, 1)
    return (inv / np.where(peak > 0, peak, 1.0)).astype(np.float32)


def unknown_share(maps: np.ndarray, erosion: int) -> float:
    """Fraction of pixels that are unknown (ignore or eroded) after ``erode(maps, erosion)``."""
    return float((erode(np.asarray(maps), erosion) == UNKNOWN).mean())


def drop(condition: torch.Tensor, p_uncond: float, generator: torch.Generator) -> torch.Tensor:
    """Condition dropout for classifier-free guidance: each map becomes all zeros with probability ``p_uncond``."""
    dropped = unconditional_mask(condition.shape[0], p_uncond, generator)
    return condition * (~dropped).to(condition.device, condition.dtype).view(-1, 1, 1, 1)


def drop_with_text(
    condition: torch.Tensor, text: torch.Tensor, empty_text: torch.Tensor, p_uncond: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition dropout that drops the prompt too: (maps, text embeddings) with the unconditional examples replaced.

    Each example, with probability ``p_uncond``, gets an all-zero map and
    ``empty_text`` (the empty prompt's embedding, 1 x tokens x dim) in place of
    its ``text`` (N x tokens x dim), as Stable Diffusion and ControlNet train the
    unconditional branch that classifier-free guidance samples with. The same
    draws as ``drop``: the same examples lose their maps.
    """
    dropped = unconditional_mask(condition.shape[0], p_uncond, generator)
    maps = condition * (~dropped).to(condition.device, condition.dtype).view(-1, 1, 1, 1)
    text = torch.where(dropped.to(text.device).view(-1, 1, 1), empty_text.to(text.dtype), text)
    return maps, text


def unconditional_mask(n: int, p_uncond: float, generator: torch.Generator) -> torch.Tensor:
    """Which of ``n`` examples train the unconditional branch (bool, True with probability ``p_uncond``)."""
    if not 0.0 <= p_uncond <= 1.0:
        raise ConditioningError(f"p_uncond {p_uncond} must lie in [0, 1]")
    return torch.rand(n, generator=generator) < p_uncond


def check_pair(image: np.ndarray, label: np.ndarray, depth: np.ndarray | None, where: str) -> None:
    """Raise when a (target image, pseudo-label, depth) triple does not fit together."""
    if label.shape != image.shape[:2]:
        raise ConditioningError(
            f"{where}: pseudo-label of size {label.shape[0]}x{label.shape[1]} does not match its image of size "
            f"{image.shape[0]}x{image.shape[1]}; re-make the pseudo_labels stage from the same target images"
        )
    if depth is not None and depth.shape != label.shape:
        raise ConditioningError(f"{where}: depth of size {depth.shape} does not match the image size {label.shape}")

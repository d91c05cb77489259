"""How good a diffusion model is: appearance (stage 1) and faithfulness to maps (stage 2).

**Appearance** is a Fréchet distance between feature statistics of generated
and real target images, like FID, but the features are those of our own
target segmenter (the oracle of stage 01): its SegFormer encoder's last-stage
hidden states, averaged over space. Inception weights cannot be downloaded
offline, and a network trained on the target's classes is sensitive to what
matters here (textures, palette, class appearance). The numbers are therefore
comparable within a run, not with published FIDs, and like FID they are
biased upwards for small sample counts: compare scores computed on the same
number of images.

**Faithfulness** is the mIoU between the maps images were generated from and
the oracle's segmentation of the generated images.

Both run the segmenter on the accelerator, as every segmenter call does
(``synthlib.segmenters.infer``): on whole images, or with ``window`` (the
profile's ``seg_eval_window``, ``window_of``) in windows, one image at a time
and at most ``batch`` (``seg_batch``, ``batch_of``) windows a forward pass —
sliding, overlapping by half, for the predictions; tiling the image for the
features (see ``features``). Whole images go at most ``MAX_BATCH`` and
``PIXELS_PER_BATCH`` pixels (4 images of 1024x2048) a pass, so memory does not
grow with the number or size of images.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import linalg

from synthlib.metrics import ConfusionMatrix
from synthlib.segmenters.model import normalise, to_accelerator

#: Whole images per segmenter batch at most ...
MAX_BATCH = 64
#: ... and pixels (4 images of 1024x2048): small images go 64 at a time as they always did, full-resolution ones a few.
PIXELS_PER_BATCH = 2**23


@torch.no_grad()
def features(
    segmenter: torch.nn.Module, images: np.ndarray, window: tuple[int, int] | None = None, batch: int | None = None
) -> np.ndarray:
    """Space-averaged last-stage encoder features (N x channels, float64) of uint8 NxHxWx3 images.

    With ``window`` (h, w) smaller than the images, each image is tiled by
    windows (the last row and column aligned to the far edges, overlapping the
    one before when the image is not a multiple of the window), at most
    ``batch`` windows a forward pass, and its features are the mean of its
    windows'. Windows, not a shrunken image: the segmenter was trained on crops
    at full resolution, and its features depend on the objects' scale.
    """
    segmenter = to_accelerator(segmenter).eval()
    device = next(segmenter.parameters()).device
    if len(images) == 0:
        return np.zeros((0, 0))
    h, w = np.asarray(images[0]).shape[:2]
    out = []
    if window is None or (window[0] >= h and window[1] >= w):
        for start, stop in _batches(images):
            out.append(_pooled(segmenter, torch.as_tensor(np.asarray(images[start:stop]), device=device)).cpu().numpy())
        return np.concatenate(out)
    corners = _tiles((h, w), window)
    step = batch or len(corners)
    for image in images:
        x = torch.as_tensor(np.asarray(image), device=device)[None]
        pooled = [
            _pooled(segmenter, torch.cat([x[:, ys, xs] for ys, xs in corners[a : a + step]])) for a in range(0, len(corners), step)
        ]
        out.append(torch.cat(pooled).mean(0, keepdim=True).cpu().numpy())
    return np.concatenate(out)


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature matrix."""
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance between Gaussians (mean, covariance): |m1-m2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2).

    scipy's matrix square root with pytorch-fid's safeguards (regularise a singular product,
    refuse a result with a large imaginary part). torchmetrics' FID is not used: its public
    API owns the feature extractor and the running sums, while the stages cache a reference's
    (mean, covariance) once per run and score many image sets against it.
    """
    (m1, s1), (m2, s2) = a, b
    covmean = linalg.sqrtm(s1 @ s2)
    if _imaginary_share(covmean) > IMAGINARY_TOLERANCE:  # singular product (few samples): regularise, as FID does
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    share = _imaginary_share(covmean)
    if share > IMAGINARY_TOLERANCE:
        raise ValueError(
            f"Fréchet distance: the square root of the covariance product is not real (imaginary part {share:.2g} of its "
            f"trace, tolerance {IMAGINARY_TOLERANCE}); the feature statistics are degenerate: score more images"
        )
    covmean = np.real(covmean)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


#: The largest imaginary part of (S1 S2)^1/2's diagonal, as a share of its trace, that rounding explains.
IMAGINARY_TOLERANCE = 1e-3


def _imaginary_share(covmean: np.ndarray) -> float:
    if not np.isfinite(covmean).all():
        return float("inf")
    if not np.iscomplexobj(covmean):
        return 0.0
    return float(np.abs(np.diagonal(covmean).imag).max() / max(abs(np.trace(covmean.real)), 1e-12))


def appearance(
    segmenter: torch.nn.Module,
    images: np.ndarray,
    reference: tuple[np.ndarray, np.ndarray],
    window: tuple[int, int] | None = None,
    batch: int | None = None,
) -> float:
    """Fréchet distance of ``images`` (resized to the reference images' size by the caller) to reference statistics.

    ``window``: as the reference's features were computed (``features``).
    """
    return frechet_distance(statistics(features(segmenter, images, window, batch)), reference)


def faithfulness(
    images: np.ndarray,
    maps: np.ndarray,
    segmenter: torch.nn.Module | Callable[[np.ndarray], np.ndarray],
    window: tuple[int, int] | None = None,
    batch: int | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of the segmentation of generated ``images`` against the ``maps`` they came from.

    ``segmenter``: a SegFormer (predictions at the maps' size; sliding-window
    inference with ``window``, ``batch`` windows a pass) or any callable images -> uint8 NxHxW trainIds.
    """
    from synthlib.segmenters import predict

    cm = ConfusionMatrix()
    for start, stop in _batches(images):
        chunk = np.asarray(images[start:stop])
        if isinstance(segmenter, torch.nn.Module):
            pred, _ = predict(segmenter, chunk, window, batch=batch)
        else:
            pred = segmenter(chunk)
        cm.update(pred, np.asarray(maps[start:stop]))
    return cm


def to_size(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 NxHxWx3 images resized to (h, w) (area when shrinking, bicubic when enlarging)."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images
    from synthlib.diffusion.model import resize

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return resize(x, size).clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy()


def summary(cm: ConfusionMatrix) -> dict[str, Any]:
    """mIoU and pixel accuracy of a faithfulness confusion matrix."""
    return {"mIoU": cm.miou(), "pixel_acc": cm.pixel_accuracy()}


# --- helpers ---------------------------------------------------------------------------------------


def _batches(images: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of batches of at most MAX_BATCH images and PIXELS_PER_BATCH pixels (the first image's size)."""
    if len(images) == 0:
        return []
    h, w = np.asarray(images[0]).shape[:2]
    size = max(1, min(MAX_BATCH, PIXELS_PER_BATCH // (h * w)))
    return [(start, min(start + size, len(images))) for start in range(0, len(images), size)]


def _tiles(shape: tuple[int, int], window: tuple[int, int]) -> list[tuple[slice, slice]]:
    """Windows tiling an image of ``shape``: starts every window, the last ones aligned to the far edges."""
    (h, w), (wh, ww) = shape, (min(window[0], shape[0]), min(window[1], shape[1]))
    ys = sorted({*range(0, h - wh + 1, wh), h - wh})
    xs = sorted({*range(0, w - ww + 1, ww), w - ww})
    return [(slice(y, y + wh), slice(x, x + ww)) for y in ys for x in xs]


def _pooled(segmenter: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Last-stage encoder hidden states of uint8 NxHxWx3 images, averaged over space (N x C, float64)."""
    hidden = segmenter(pixel_values=normalise(x), output_hidden_states=True).hidden_states[-1]
    if hidden.ndim == 3:  # (N, tokens, C) layouts
        hidden = hidden.transpose(1, 2)
    return hidden.flatten(2).mean(-1).double()


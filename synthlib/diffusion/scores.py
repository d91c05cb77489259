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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import linalg

from synthlib.metrics import ConfusionMatrix
from synthlib.segmenters.model import normalise


@torch.no_grad()
def features(segmenter: torch.nn.Module, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Space-averaged last-stage encoder features (N x channels, float64) of uint8 NxHxWx3 images."""
    segmenter.eval()
    device = next(segmenter.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size]), device=device)
        hidden = segmenter(pixel_values=normalise(x), output_hidden_states=True).hidden_states[-1]
        if hidden.ndim == 3:  # (N, tokens, C) layouts
            hidden = hidden.transpose(1, 2)
        out.append(hidden.flatten(2).mean(-1).double().cpu().numpy())
    return np.concatenate(out)


def statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature matrix."""
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance between Gaussians (mean, covariance): |m1-m2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2)."""
    (m1, s1), (m2, s2) = a, b
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # singular product (few samples): regularise, as FID implementations do
        eps = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def appearance(segmenter: torch.nn.Module, images: np.ndarray, reference: tuple[np.ndarray, np.ndarray]) -> float:
    """Fréchet distance of ``images`` (resized to the segmenter's training size by the caller) to reference statistics."""
    return frechet_distance(statistics(features(segmenter, images)), reference)


def faithfulness(
    images: np.ndarray, maps: np.ndarray, segmenter: torch.nn.Module | Callable[[np.ndarray], np.ndarray]
) -> ConfusionMatrix:
    """Confusion matrix of the segmentation of generated ``images`` against the ``maps`` they came from.

    ``segmenter``: a SegFormer (predictions at the maps' size) or any callable
    images -> uint8 NxHxW trainIds.
    """
    from synthlib.segmenters import predict

    cm = ConfusionMatrix()
    for start in range(0, len(images), 64):
        chunk = np.asarray(images[start : start + 64])
        if isinstance(segmenter, torch.nn.Module):
            pred, _ = predict(segmenter, chunk)
        else:
            pred = segmenter(chunk)
        cm.update(pred, np.asarray(maps[start : start + 64]))
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


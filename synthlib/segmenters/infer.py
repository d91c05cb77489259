"""Inference (whole image or sliding window) and evaluation of a segmenter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthlib.datasets import Dataset
from synthlib.labels import NUM_CLASSES
from synthlib.metrics import ConfusionMatrix
from synthlib.segmenters.model import normalise, to_accelerator


def logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class logits at input resolution for uint8 NxHxWx3 images."""
    out = model(pixel_values=normalise(images)).logits
    return F.interpolate(out, size=images.shape[1:3], mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module,
    images: np.ndarray | Sequence[np.ndarray],
    window: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
) -> np.ndarray:
    """Softmax probabilities NxCxHxW (float32) for a batch of same-size uint8 images.

    ``window`` (h, w) switches to sliding-window inference with ``stride``
    (default: half the window); overlapping windows are averaged. A model on the CPU is first
    moved to the accelerator, if there is one (``segmenters.model.to_accelerator``); results come back
    to the CPU.
    """
    model = to_accelerator(model).eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.stack(images) if not isinstance(images, np.ndarray) else images, device=device)
    if window is None or tuple(window) == tuple(x.shape[1:3]):
        return torch.softmax(logits(model, x), 1).float().cpu().numpy()
    return _sliding(model, x, window, stride).cpu().numpy()


def predict(model: torch.nn.Module, images, window=None, stride=None) -> tuple[np.ndarray, np.ndarray]:
    """trainId predictions (uint8 NxHxW) and confidence (max softmax, float32 NxHxW)."""
    proba = predict_proba(model, images, window, stride)
    return proba.argmax(1).astype(np.uint8), proba.max(1)


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 16,
    window: tuple[int, int] | None = None,
    progress: bool = True,
    desc: str = "evaluate",
) -> ConfusionMatrix:
    """Confusion matrix of the model's predictions over a labelled dataset (on the accelerator, if there is one)."""
    model = to_accelerator(model)
    cm = ConfusionMatrix(NUM_CLASSES)
    for images, labels in tqdm(_batches(dataset, batch_size), total=-(-len(dataset) // batch_size), desc=desc, disable=not progress, leave=False):
        pred, _ = predict(model, images, window)
        cm.update(pred, labels)
    return cm


def _batches(dataset: Dataset, batch_size: int):
    """Batches of same-size samples (a size change starts a new batch)."""
    images, labels = [], []
    for i in range(len(dataset)):
        s = dataset[i]
        if images and s.image.shape != images[0].shape:
            yield np.stack(images), np.stack(labels)
            images, labels = [], []
        images.append(s.image)
        labels.append(s.label)
        if len(images) == batch_size:
            yield np.stack(images), np.stack(labels)
            images, labels = [], []
    if images:
        yield np.stack(images), np.stack(labels)


def _sliding(model: torch.nn.Module, x: torch.Tensor, window: tuple[int, int], stride: tuple[int, int] | None) -> torch.Tensor:
    n, h, w, _ = x.shape
    wh, ww = min(window[0], h), min(window[1], w)
    sh, sw = stride or (max(wh // 2, 1), max(ww // 2, 1))
    ys = sorted({*range(0, h - wh + 1, sh), h - wh})
    xs = sorted({*range(0, w - ww + 1, sw), w - ww})
    total = torch.zeros(n, NUM_CLASSES, h, w, device=x.device)
    count = torch.zeros(1, 1, h, w, device=x.device)
    for y0 in ys:
        for x0 in xs:
            total[:, :, y0 : y0 + wh, x0 : x0 + ww] += torch.softmax(logits(model, x[:, y0 : y0 + wh, x0 : x0 + ww]), 1)
            count[:, :, y0 : y0 + wh, x0 : x0 + ww] += 1
    return total / count

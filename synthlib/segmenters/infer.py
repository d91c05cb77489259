"""Inference (whole image or sliding window) and evaluation of a segmenter.

Every call on a stage's images takes the profile's window and batch cap
(``window_of``, ``batch_of``). Sliding-window inference runs one image at a
time: at most ``batch`` of its windows a forward pass, summed into one
C x H x W buffer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from synthlib.datasets import Dataset
from synthlib.labels import NUM_CLASSES
from synthlib.metrics import ConfusionMatrix
from synthlib.profiles import Profile
from synthlib.segmenters.model import normalise, to_accelerator


def window_of(cfg: Profile) -> tuple[int, int] | None:
    """The profile's inference window ``seg_eval_window`` as (h, w); None for whole-image inference (``()``)."""
    window = tuple(cfg.seg_eval_window)
    return _check_window(window, "seg_eval_window") if window else None


def batch_of(cfg: Profile) -> int | None:
    """The most windows one forward pass sees when the profile slides a window: ``seg_batch``; None for whole images.

    Whole images go through in their callers' batches (16 images; 64 for the MCOC judge): a smaller batch
    changes float sums on the CPU, and the embedded profiles' numbers were made that way.
    """
    if window_of(cfg) is None:
        return None
    if isinstance(cfg.seg_batch, bool) or not isinstance(cfg.seg_batch, int) or cfg.seg_batch < 1:
        raise ValueError(f"seg_batch {cfg.seg_batch!r} must be a positive integer (it also caps sliding-window inference batches)")
    return cfg.seg_batch


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
    batch: int | None = None,
) -> np.ndarray:
    """Softmax probabilities NxCxHxW (float32) for a batch of same-size uint8 images.

    ``window`` (h, w) switches to sliding-window inference with ``stride``
    (default: half the window); overlapping windows are averaged. ``batch``
    caps a forward pass at that many images, or that many windows of one image
    (None: all images, or all windows of one image). A model on the CPU is first moved to the
    accelerator, if there is one (``segmenters.model.to_accelerator``); results come back
    to the CPU.
    """
    parts = [proba.cpu().numpy() for proba in _probabilities(model, images, window, stride, batch)]
    return np.concatenate(parts)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray | Sequence[np.ndarray],
    window: tuple[int, int] | None = None,
    stride: tuple[int, int] | None = None,
    batch: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """trainId predictions (uint8 NxHxW) and confidence (max softmax, float32 NxHxW); arguments as ``predict_proba``.

    Reduces each forward batch as it comes: probabilities of all images are never held at once.
    """
    preds, confs = [], []
    for proba in _probabilities(model, images, window, stride, batch):
        p = proba.cpu().numpy()
        preds.append(p.argmax(1).astype(np.uint8))
        confs.append(p.max(1))
    return np.concatenate(preds), np.concatenate(confs)


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 16,
    window: tuple[int, int] | None = None,
    progress: bool = True,
    desc: str = "evaluate",
    batch: int | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of the model's predictions over a labelled dataset (on the accelerator, if there is one).

    ``batch_size`` images are read at a time; ``window`` and ``batch`` as ``predict``'s.
    """
    model = to_accelerator(model)
    cm = ConfusionMatrix(NUM_CLASSES)
    for images, labels in tqdm(_batches(dataset, batch_size), total=-(-len(dataset) // batch_size), desc=desc, disable=not progress, leave=False):
        pred, _ = predict(model, images, window, batch=batch)
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


def _probabilities(
    model: torch.nn.Module,
    images: np.ndarray | Sequence[np.ndarray],
    window: tuple[int, int] | None,
    stride: tuple[int, int] | None,
    batch: int | None,
) -> Iterator[torch.Tensor]:
    """Softmax probabilities kxCxHxW on the model's device, one forward batch (whole image) or one image (sliding) at a time."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"inference batch {batch!r} must be a positive integer or None (no cap)")
    window = None if window is None else _check_window(tuple(window), "window")
    model = to_accelerator(model).eval()
    device = next(model.parameters()).device
    x = torch.as_tensor(np.stack(images) if not isinstance(images, np.ndarray) else images)
    n, h, w = x.shape[:3]
    if window is None or (window[0] >= h and window[1] >= w):
        step = batch or n
        for start in range(0, n, step):
            yield torch.softmax(logits(model, x[start : start + step].to(device)), 1).float()
        return
    for i in range(n):
        yield _sliding(model, x[i : i + 1].to(device), window, stride, batch)[None]


def _sliding(model: torch.nn.Module, x: torch.Tensor, window: tuple[int, int], stride: tuple[int, int] | None, batch: int | None) -> torch.Tensor:
    """Averaged window probabilities CxHxW of one image (1xHxWx3), ``batch`` windows per forward pass."""
    _, h, w, _ = x.shape
    wh, ww = min(window[0], h), min(window[1], w)
    sh, sw = stride or (max(wh // 2, 1), max(ww // 2, 1))
    ys = sorted({*range(0, h - wh + 1, sh), h - wh})
    xs = sorted({*range(0, w - ww + 1, sw), w - ww})
    corners = [(y0, x0) for y0 in ys for x0 in xs]
    step = batch or len(corners)
    total = None
    count = torch.zeros(1, h, w, device=x.device)
    for start in range(0, len(corners), step):
        part = corners[start : start + step]
        proba = torch.softmax(logits(model, torch.cat([x[:, y0 : y0 + wh, x0 : x0 + ww] for y0, x0 in part])), 1).float()
        if total is None:
            total = torch.zeros(proba.shape[1], h, w, device=x.device)
        for p, (y0, x0) in zip(proba, part, strict=True):
            total[:, y0 : y0 + wh, x0 : x0 + ww] += p
            count[:, y0 : y0 + wh, x0 : x0 + ww] += 1
    return total / count


def _check_window(window: tuple, name: str) -> tuple[int, int]:
    if len(window) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in window):
        raise ValueError(f"{name} {window!r}: expected (h, w), two positive integers, e.g. (1024, 1024); () in the profile means whole images")
    return int(window[0]), int(window[1])

"""The zoo's training corpus: minicity renders in randomly drawn looks, with captions.

Every image is minicity's ``mix`` style (a look drawn per image: palette,
materials, lighting, sensor; the layout of a random source style), in one of the
weather conditions by turn, with pixel-perfect labels. The target's own look
(``real``) is never in it: the zoo stands in for weights pretrained on the wide
world (ImageNet, LAION), which never saw the target dataset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.minicity import generate

CONDITIONS = ("clear", "fog", "night", "rain", "snow")
_CAPTION_SUFFIX = {"clear": "", "fog": " in fog", "night": " at night", "rain": " in rain", "snow": " in snow"}


def caption(condition: str) -> str:
    """The caption of a corpus image: what a web caption of such a photo might say."""
    return "a photo of a city street" + _CAPTION_SUFFIX[condition]


def render(spec: dict[str, Any], progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N,H,W,3 uint8), labels (N,H,W uint8) and captions of the corpus ``spec`` (style, n, height, width, seed)."""
    n, h, w = int(spec["n"]), int(spec["height"]), int(spec["width"])
    images = np.empty((n, h, w, 3), np.uint8)
    labels = np.empty((n, h, w), np.uint8)
    captions = []
    for i in tqdm(range(n), desc="render zoo corpus", disable=not progress, leave=False):
        condition = CONDITIONS[i % len(CONDITIONS)]
        sample = generate(int(spec["seed"]), spec["style"], i, h, w, condition=condition)
        images[i], labels[i] = sample.image, sample.label
        captions.append(caption(condition))
    return images, labels, captions


def class_shares(labels: np.ndarray) -> np.ndarray:
    """Each label map's share of pixels per class (N x 19, rows summing to 1; ignore pixels left out)."""
    n = len(labels)
    flat = labels.reshape(n, -1).astype(np.int64)
    rows = np.repeat(np.arange(n), flat.shape[1])
    keep = flat.ravel() != IGNORE
    counts = np.bincount(rows[keep] * NUM_CLASSES + flat.ravel()[keep], minlength=n * NUM_CLASSES).reshape(n, NUM_CLASSES)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


def batch_indices(seed: int, step: int, n: int, batch: int) -> np.ndarray:
    """The corpus indices of training step ``step``: a function of (seed, step) alone, so a resumed build sees the same."""
    return np.random.default_rng([seed, step]).integers(0, n, batch)

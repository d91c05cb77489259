"""The zoo's MiT encoder: a SegFormer image classifier pretrained on the corpus (the ImageNet stand-in).

Its task is image-level, as ImageNet's is: from a random crop, predict the share
of each class's pixels (a soft-label cross-entropy over the 19 classes). It learns
what things look like across many looks without ever learning to segment; a
segmenter then takes its encoder (``synthlib.segmenters.model.load``) and learns
the decode head and the target task, as real segmenters start from ImageNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import SegformerConfig, SegformerForImageClassification

from synthlib.labels import CLASS_NAMES
from synthlib.segmenters.model import ARCHITECTURES, normalise
from synthlib.zoo import corpus, loop
from synthlib.zoo.registry import ZooModel

_HELD_OUT = 256  # corpus images (of another seed) the held-out loss is measured on


def build(model: ZooModel, out: Path, checkpoints: Path, requires: dict[str, Path], progress: bool = True) -> dict[str, Any]:
    """Train the classifier of ``model.config`` and ``save_pretrained`` it into ``out``; returns its metrics."""
    cfg = model.config
    images, labels, _ = corpus.render(cfg["corpus"], progress)
    torch.manual_seed(cfg["seed"])
    config = SegformerConfig(
        num_labels=len(CLASS_NAMES),
        id2label=dict(enumerate(CLASS_NAMES)),
        label2id={n: i for i, n in enumerate(CLASS_NAMES)},
        architectures=["SegformerForImageClassification"],
        **ARCHITECTURES[cfg["architecture"]],
    )
    net = SegformerForImageClassification(config)
    crop = tuple(cfg["crop"])

    def step(accelerator, i: int) -> torch.Tensor:
        rng = np.random.default_rng([cfg["seed"], i, 1])
        idx = corpus.batch_indices(cfg["seed"], i, len(images), cfg["batch"])
        x, y = _crops(images[idx], labels[idx], crop, rng)
        return _loss(net, x.to(accelerator.device), y.to(accelerator.device))

    history = loop.train(f"zoo {model.name}", [net], step, cfg["steps"], cfg["lr"], checkpoints, cfg["seed"], progress)
    net.save_pretrained(out, safe_serialization=True)
    return {"final_loss": float(np.mean(history["loss"][-50:])), "held_out": held_out(net, cfg, progress),
            "median_step_seconds": float(np.median(history["step_seconds"])), "parameters_M": _millions(net)}


def held_out(net: SegformerForImageClassification, cfg: dict[str, Any], progress: bool = False) -> dict[str, float]:
    """Loss and dominant-class accuracy on whole images of a corpus the classifier never saw (another seed)."""
    spec = {**cfg["corpus"], "seed": cfg["corpus"]["seed"] + 1, "n": min(_HELD_OUT, cfg["corpus"]["n"])}
    images, labels, _ = corpus.render(spec, progress)
    shares = torch.from_numpy(corpus.class_shares(labels)).float()
    with torch.no_grad():
        logits = net(pixel_values=normalise(torch.from_numpy(images))).logits
    loss = float(-(shares * F.log_softmax(logits, 1)).sum(1).mean())
    accuracy = float((logits.argmax(1) == shares.argmax(1)).float().mean())
    return {"loss": round(loss, 4), "dominant_class_accuracy": round(accuracy, 4)}


def _crops(images: np.ndarray, labels: np.ndarray, crop: tuple[int, int], rng: np.random.Generator):
    """Random ``crop``s (one per image, flipped half the time) and their class shares."""
    h, w = images.shape[1:3]
    ch, cw = min(crop[0], h), min(crop[1], w)
    xs, ys = [], []
    for img, lab in zip(images, labels, strict=True):
        r, c = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img, lab = img[r : r + ch, c : c + cw], lab[r : r + ch, c : c + cw]
        if rng.random() < 0.5:
            img, lab = img[:, ::-1], lab[:, ::-1]
        xs.append(img)
        ys.append(lab)
    x = normalise(torch.from_numpy(np.ascontiguousarray(np.stack(xs))))
    return x, torch.from_numpy(corpus.class_shares(np.stack(ys))).float()


def _loss(net: SegformerForImageClassification, x: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """Soft-label cross-entropy between the predicted class distribution and the crop's class shares."""
    return -(shares * F.log_softmax(net(pixel_values=x).logits, 1)).sum(1).mean()


def _millions(net: torch.nn.Module) -> float:
    return round(sum(p.numel() for p in net.parameters()) / 1e6, 3)

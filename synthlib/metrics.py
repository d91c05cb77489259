"""Semantic segmentation evaluation with the Cityscapes conventions.

A streaming confusion matrix over the 19 trainIds. Ignore pixels (255) are
excluded; a class absent from both ground truth and prediction has IoU NaN and
is left out of every mean. Means are reported over 19 classes and over the
SYNTHIA 16- and 13-class subsets. IoUs are in percent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, SYNTHIA13, SYNTHIA16

MEANS = {"mIoU": tuple(range(NUM_CLASSES)), "mIoU16": SYNTHIA16, "mIoU13": SYNTHIA13}


class ConfusionMatrix:
    """Accumulates (ground truth, prediction) pixel counts; ``table()`` turns them into IoUs.

    Its IoUs and means equal cityscapesScripts' exactly (tests/test_metrics.py runs the
    reference on the same images). It is kept because the reference reads labelId PNGs from
    disk one at a time, while the stages stream batches of trainId predictions in memory.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE) -> None:
        if num_classes != NUM_CLASSES:
            # The subset means and class names are those of the Cityscapes 19-class table.
            raise ValueError(f"num_classes={num_classes}: only the {NUM_CLASSES} Cityscapes trainIds are supported")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes, num_classes), np.int64)  # rows: ground truth, cols: prediction

    def update(self, prediction: np.ndarray, label: np.ndarray) -> ConfusionMatrix:
        """Add one image (or a batch) of trainId predictions and labels of the same shape."""
        prediction = np.asarray(prediction)
        label = np.asarray(label)
        if prediction.shape != label.shape:
            raise ValueError(f"prediction shape {prediction.shape} differs from label shape {label.shape}")
        valid = label != self.ignore_index
        gt = label[valid].astype(np.int64)
        pred = prediction[valid].astype(np.int64)
        if gt.size and (gt.max() >= self.num_classes or gt.min() < 0):
            raise ValueError(f"label holds values outside 0-{self.num_classes - 1} and {self.ignore_index}")
        if pred.size and (pred.max() >= self.num_classes or pred.min() < 0):
            raise ValueError(f"prediction holds values outside 0-{self.num_classes - 1}")
        n = self.num_classes
        self.matrix += np.bincount(gt * n + pred, minlength=n * n).reshape(n, n)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts (e.g. from another process)."""
        self.matrix += other.matrix
        return self

    def iou(self) -> np.ndarray:
        """Per-class IoU in percent; NaN for classes absent from ground truth and prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, 100.0 * tp / union, np.nan)

    def miou(self, classes: tuple[int, ...] = MEANS["mIoU"]) -> float:
        """Mean IoU (percent) over ``classes``, leaving out NaN classes; NaN if all are NaN."""
        values = self.iou()[list(classes)]
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct pixels / evaluated pixels, in percent."""
        total = self.matrix.sum()
        return float(100.0 * np.trace(self.matrix) / total) if total else float("nan")

    def summary(self) -> dict[str, float]:
        """The means (19, 16, 13 classes) and pixel accuracy."""
        out = {name: self.miou(classes) for name, classes in MEANS.items()}
        out["pixel_acc"] = self.pixel_accuracy()
        return out

    def table(self) -> pd.DataFrame:
        """One row per class (IoU %, ground-truth and predicted pixels), then rows mIoU, mIoU16, mIoU13, pixel_acc."""
        per_class = pd.DataFrame(
            {"IoU": self.iou(), "gt_pixels": self.matrix.sum(1), "pred_pixels": self.matrix.sum(0)},
            index=pd.Index(CLASS_NAMES, name="class"),
        )
        means = pd.DataFrame({"IoU": self.summary()}).rename_axis("class")
        return pd.concat([per_class, means])

    def row(self, name: str) -> pd.DataFrame:
        """A one-row wide table (columns: classes, then the means) to stack across methods."""
        values = dict(zip(CLASS_NAMES, self.iou(), strict=True)) | self.summary()
        return pd.DataFrame([values], index=pd.Index([name], name="method"))

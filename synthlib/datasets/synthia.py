"""SYNTHIA-RAND-CITYSCAPES as a ``Dataset``, with SYNTHIA's own class table.

Layout under ``root``::

    RGB/<stem>.png          image
    GT/LABELS/<stem>.png    16-bit multi-channel PNG: channel 0 class id, channel 1 instance id

PIL truncates 16-bit colour PNGs to 8 bit, so labels are read with pypng.
SYNTHIA ids map to trainIds as in DAFormer (16 classes; terrain, truck and
train never occur, see ``missing_classes``). Instances are channel 1 on pixels
of Cityscapes thing classes, 0 elsewhere. Splits as for GTA5: "train" or "all",
optionally narrowed by ``ids_file``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlib import labels
from synthlib.datasets._io import (
    Entry,
    FileDataset,
    index_files,
    pair_files,
    read_png16,
    require_dir,
    require_root,
    require_some,
    select_split,
)
from synthlib.datasets.base import DatasetError

MAX_SYNTHIA_ID = 22
"""SYNTHIA class ids are 0-22; ids not in SYNTHIA_TO_TRAIN are ignored."""

# SYNTHIA id -> Cityscapes trainId (DAFormer's mapping).
SYNTHIA_TO_TRAIN: dict[int, int] = {
    3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10,
    10: 11, 17: 12, 8: 13, 19: 15, 12: 17, 11: 18,
}  # fmt: skip

_LUT = np.full(MAX_SYNTHIA_ID + 1, labels.IGNORE, np.uint8)
_LUT[list(SYNTHIA_TO_TRAIN)] = list(SYNTHIA_TO_TRAIN.values())
_THING = np.zeros(256, bool)
_THING[list(labels.THING_TRAIN_IDS)] = True


class SynthiaDataset(FileDataset):
    """SYNTHIA-RAND-CITYSCAPES images with trainIds and instances."""

    missing_classes = tuple(t for t in range(labels.NUM_CLASSES) if t not in labels.SYNTHIA16)

    def __init__(self, root: str | Path, split: str = "all", ids_file: str | Path | None = None) -> None:
        root = require_root(root, "synthia", "RGB/ and GT/LABELS/")
        image_dir = require_dir(root / "RGB", "synthia images")
        label_dir = root / "GT" / "LABELS"
        images = index_files(image_dir, "*.png", ".png")
        require_some(images, image_dir, "*.png")
        label_files = index_files(label_dir, "*.png", ".png")
        ids = pair_files(images, label_files, lambda p: label_dir / p.name, lambda p: image_dir / p.name)
        ids = select_split("synthia", root, ids, split, ids_file)
        super().__init__(f"synthia {split}", [Entry(i, images[i], label_files[i]) for i in ids])

    def _load_label(self, entry: Entry) -> tuple[np.ndarray, np.ndarray | None]:
        raw = read_png16(entry.label)
        label = synthia_to_train(raw[..., 0], entry.label)
        if raw.shape[2] < 2:
            return label, None
        instances = np.where(_THING[label], raw[..., 1], 0).astype(np.int32)
        return label, instances


def synthia_to_train(ids: np.ndarray, source: Path | str = "label map") -> np.ndarray:
    """SYNTHIA class ids -> trainIds (uint8, 255 = ignore); ids above 22 raise DatasetError naming ``source``."""
    bad = [int(v) for v in np.unique(ids) if v > MAX_SYNTHIA_ID]
    if bad:
        raise DatasetError(
            f"{source} holds class ids {bad}; SYNTHIA ids are 0-{MAX_SYNTHIA_ID}. "
            "Is this a GT/LABELS file with the class in the first channel?"
        )
    return _LUT[ids.astype(np.intp)]

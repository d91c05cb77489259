"""GTA5 (Playing for Data) as a ``Dataset``.

Layout under ``root``::

    images/<stem>.png     image
    labels/<stem>.png     Cityscapes labelIds (paletted PNG: the indices are the ids)

GTA5 has no official split: ``split`` is "train" or "all" (every pair), and
``ids_file`` (a text file of stems, one per line) selects a subset. A few GTA5
pairs have images and labels of different sizes; they are skipped with one
warning that lists them (sizes come from file headers at construction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlib.datasets._io import (
    Entry,
    FileDataset,
    drop_size_mismatches,
    index_files,
    label_ids_to_train,
    pair_files,
    read_ids,
    require_dir,
    require_root,
    require_some,
    select_split,
)
from synthlib.datasets.base import DatasetError


class GTA5Dataset(FileDataset):
    """GTA5 images with Cityscapes labelIds mapped to trainIds."""

    def __init__(self, root: str | Path, split: str = "all", ids_file: str | Path | None = None) -> None:
        root = require_root(root, "gta5", "images/ and labels/")
        image_dir = require_dir(root / "images", "gta5 images")
        label_dir = root / "labels"
        images = index_files(image_dir, "*.png", ".png")
        require_some(images, image_dir, "*.png")
        label_files = index_files(label_dir, "*.png", ".png")
        ids = pair_files(images, label_files, lambda p: label_dir / p.name, lambda p: image_dir / p.name)
        ids = select_split("gta5", root, ids, split, ids_file)
        entries = drop_size_mismatches("gta5", [Entry(i, images[i], label_files[i]) for i in ids])
        if not entries:
            raise DatasetError(f"gta5: no pair under {root} has an image and a label of the same size.")
        super().__init__(f"gta5 {split}", entries)

    def _read_label(self, path: Path) -> np.ndarray:
        return label_ids_to_train(read_ids(path), path)

"""A plain folder of images and trainId labels as a ``Dataset``.

Layout: ``images/<stem>.png|.jpg|.jpeg`` and ``labels/<stem>.png`` holding
trainIds (0-18, 255 = ignore; plain or paletted PNG). If ``root/<split>/images``
exists that folder pair is used, otherwise ``root/images`` and ``root/labels``
serve every split. Sample ids are the stems.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlib.datasets._io import (
    Entry,
    FileDataset,
    check_train_ids,
    index_files,
    list_dir,
    pair_files,
    read_ids,
    require_root,
    require_some,
)
from synthlib.datasets.base import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class FolderDataset(FileDataset):
    """Images and trainId labels paired by stem."""

    def __init__(self, root: str | Path, split: str) -> None:
        root = require_root(root, "folder", "images/ and labels/ (or <split>/images/ and <split>/labels/)")
        base = root / split if (root / split / "images").is_dir() else root
        image_dir, label_dir = base / "images", base / "labels"
        if not image_dir.is_dir():
            raise DatasetError(
                f"folder split {split!r}: neither {root / split / 'images'} nor {image_dir} is a directory."
            )
        images: dict[str, Path] = {}
        for entry in list_dir(image_dir):  # other files (notes, thumbnails) are not samples
            path = Path(entry.path)
            if path.suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                if path.stem in images:
                    raise DatasetError(
                        f"{path} and {images[path.stem]} both have the sample id {path.stem!r}; ids must be unique."
                    )
                images[path.stem] = path
        require_some(images, image_dir, "*.png|*.jpg|*.jpeg")
        label_files = index_files(label_dir, "*.png", ".png")
        ids = pair_files(
            images, label_files, lambda p: label_dir / (p.stem + ".png"), lambda p: image_dir / (p.stem + ".png")
        )
        super().__init__(f"folder {split}", [Entry(i, images[i], label_files[i]) for i in ids])

    def _read_label(self, path: Path) -> np.ndarray:
        return check_train_ids(read_ids(path), path)

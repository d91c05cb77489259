"""Cityscapes (and anything written by ``write_cityscapes``) as a ``Dataset``.

Layout under ``root``::

    leftImg8bit/<split>/<city>/<id>_leftImg8bit.png       image
    gtFine/<split>/<city>/<id>_gtFine_labelIds.png        labelIds -> trainIds
    gtFine/<split>/<city>/<id>_gtFine_instanceIds.png     optional instances
    depth/<split>/<city>/<id>_depth.png                   optional, uint16 metres * 256, 0 = none
    meta/<split>.json                                     optional {id: meta dict}

Sample ids are file stems without ``_leftImg8bit`` (``frankfurt_000000_000294``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthlib.datasets._io import (
    Entry,
    FileDataset,
    index_files,
    label_ids_to_train,
    pair_files,
    read_ids,
    read_meta,
    require_dir,
    require_root,
    require_some,
)

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
DEPTH_SUFFIX = "_depth.png"


class CityscapesDataset(FileDataset):
    """Cityscapes images with fine labels, optional instances, depth and meta."""

    def __init__(self, root: str | Path, split: str) -> None:
        root = require_root(root, "cityscapes", "leftImg8bit/ and gtFine/")
        image_dir = require_dir(root / "leftImg8bit" / split, f"cityscapes split {split!r}")
        label_dir = root / "gtFine" / split
        images = index_files(image_dir, f"*/*{IMAGE_SUFFIX}", IMAGE_SUFFIX)
        require_some(images, image_dir, f"<city>/*{IMAGE_SUFFIX}")
        label_files = index_files(label_dir, f"*/*{LABEL_SUFFIX}", LABEL_SUFFIX)
        ids = pair_files(
            images,
            label_files,
            lambda p: label_dir / p.parent.name / (p.name[: -len(IMAGE_SUFFIX)] + LABEL_SUFFIX),
            lambda p: image_dir / p.parent.name / (p.name[: -len(LABEL_SUFFIX)] + IMAGE_SUFFIX),
        )
        instances = index_files(label_dir, f"*/*{INSTANCE_SUFFIX}", INSTANCE_SUFFIX)
        depths = index_files(root / "depth" / split, f"*/*{DEPTH_SUFFIX}", DEPTH_SUFFIX)
        meta = read_meta(root / "meta" / f"{split}.json")
        entries = [Entry(i, images[i], label_files[i], instances.get(i), depths.get(i), meta.get(i, {})) for i in ids]
        super().__init__(f"cityscapes {split}", entries)

    def _read_label(self, path: Path) -> np.ndarray:
        return label_ids_to_train(read_ids(path), path)

"""ACDC (adverse conditions, Cityscapes label ids) as a ``Dataset``.

Layout under ``root``::

    rgb_anon/<condition>/<split>/<sequence>/<id>_rgb_anon.png      image
    gt/<condition>/<split>/<sequence>/<id>_gt_labelIds.png         labelIds -> trainIds
    gt/<condition>/<split>/<sequence>/<id>_gt_instanceIds.png      optional instances

Conditions are fog, night, rain and snow; by default every one present under
``rgb_anon/`` is read. Sample ids are stems without ``_rgb_anon``; meta holds
the condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthlib.datasets._io import (
    Entry,
    FileDataset,
    index_files,
    label_ids_to_train,
    pair_files,
    read_ids,
    require_dir,
    require_root,
    require_some,
)
from synthlib.datasets.base import DatasetError

CONDITIONS: tuple[str, ...] = ("fog", "night", "rain", "snow")
IMAGE_SUFFIX = "_rgb_anon.png"
LABEL_SUFFIX = "_gt_labelIds.png"
INSTANCE_SUFFIX = "_gt_instanceIds.png"


class ACDCDataset(FileDataset):
    """ACDC images and labels of the chosen conditions, sorted by condition then id."""

    def __init__(self, root: str | Path, split: str, conditions: str | Sequence[str] | None = None) -> None:
        root = require_root(root, "acdc", "rgb_anon/ and gt/")
        self.conditions = _conditions(root, conditions)
        entries: list[Entry] = []
        seen: dict[str, Path] = {}
        for condition in self.conditions:
            image_dir = require_dir(root / "rgb_anon" / condition / split, f"acdc {condition} split {split!r}")
            label_dir = root / "gt" / condition / split
            images = index_files(image_dir, f"*/*{IMAGE_SUFFIX}", IMAGE_SUFFIX)
            require_some(images, image_dir, f"<sequence>/*{IMAGE_SUFFIX}")
            label_files = index_files(label_dir, f"*/*{LABEL_SUFFIX}", LABEL_SUFFIX)
            ids = pair_files(
                images,
                label_files,
                lambda p, d=label_dir: d / p.parent.name / (p.name[: -len(IMAGE_SUFFIX)] + LABEL_SUFFIX),
                lambda p, d=image_dir: d / p.parent.name / (p.name[: -len(LABEL_SUFFIX)] + IMAGE_SUFFIX),
            )
            instances = index_files(label_dir, f"*/*{INSTANCE_SUFFIX}", INSTANCE_SUFFIX)
            for i in ids:
                if i in seen:
                    raise DatasetError(f"{images[i]} and {seen[i]} both have the sample id {i!r}; ids must be unique.")
                seen[i] = images[i]
                entries.append(Entry(i, images[i], label_files[i], instances.get(i), meta={"condition": condition}))
        super().__init__(f"acdc {split} ({', '.join(self.conditions)})", entries)

    def _read_label(self, path: Path) -> np.ndarray:
        return label_ids_to_train(read_ids(path), path)


def _conditions(root: Path, conditions: str | Sequence[str] | None) -> tuple[str, ...]:
    """The requested conditions, checked; by default every known one present on disk."""
    if conditions is None:
        present = tuple(c for c in CONDITIONS if (root / "rgb_anon" / c).is_dir())
        if not present:
            raise DatasetError(f"acdc: {root / 'rgb_anon'} holds none of the conditions {list(CONDITIONS)}.")
        return present
    requested = (conditions,) if isinstance(conditions, str) else tuple(dict.fromkeys(conditions))
    unknown = [c for c in requested if c not in CONDITIONS]
    if unknown or not requested:
        raise DatasetError(
            f"acdc conditions={list(requested)}: unknown {unknown}; valid conditions are {list(CONDITIONS)}."
        )
    return requested

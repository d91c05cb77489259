"""Datasets: every source and target read through one interface, and written in the Cityscapes layout.

``open_dataset(kind, root, split, **options)`` returns an indexable ``Dataset``
of ``Sample(image, label, depth, instances, id, meta)`` with trainId labels;
``write_cityscapes(dataset, root, split)`` writes any of them so that the
``cityscapes`` adapter (and mmsegmentation) reads them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthlib.datasets.acdc import ACDCDataset
from synthlib.datasets.base import Dataset, DatasetError, Sample
from synthlib.datasets.cityscapes import CityscapesDataset
from synthlib.datasets.folder import FolderDataset
from synthlib.datasets.gta5 import GTA5Dataset
from synthlib.datasets.synthia import SynthiaDataset
from synthlib.datasets.writer import write_cityscapes

__all__ = ["KINDS", "Dataset", "DatasetError", "Sample", "open_dataset", "write_cityscapes"]

_ADAPTERS: dict[str, type[Dataset]] = {
    "cityscapes": CityscapesDataset,
    "acdc": ACDCDataset,
    "gta5": GTA5Dataset,
    "synthia": SynthiaDataset,
    "folder": FolderDataset,
}

KINDS: tuple[str, ...] = (*_ADAPTERS, "minicity")
"""Dataset kinds ``open_dataset`` accepts; "minicity" is generated, the others are read from ``root``."""


def open_dataset(kind: str, root: str | Path | None, split: str, **options: Any) -> Dataset:
    """The dataset of ``kind`` at ``root`` (None for the generated "minicity"), split ``split``.

    ``options`` go to the adapter: ``conditions`` (acdc), ``ids_file`` (gta5,
    synthia), or the MiniCity settings.
    """
    if kind == "minicity":
        if root is not None:
            raise DatasetError(f"minicity is generated, not read: pass root=None, not {root!r}.")
        from synthlib.minicity import MiniCity

        return MiniCity(split=split, **options)
    if kind not in _ADAPTERS:
        raise DatasetError(f"unknown dataset kind {kind!r}; choose one of {list(KINDS)}.")
    if root is None:
        raise DatasetError(f"{kind} is read from disk: pass its root folder (got root=None).")
    return _ADAPTERS[kind](root, split, **options)

"""What every dataset adapter yields: ``Sample``s, indexed, with stable ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset on disk (or its parameters) is not what the adapter expects."""


@dataclass
class Sample:
    """One training or evaluation example.

    image: HxWx3 uint8 RGB. label: HxW uint8 trainIds, 255 = ignore.
    depth: HxW float32 metres, or None. instances: HxW int32 instance ids
    (0 = no instance), or None. id: stable, unique within its split.
    meta: free-form per-sample facts (e.g. generation seed and settings).
    """

    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray | None = None
    instances: np.ndarray | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Dataset:
    """Base of every adapter: ``len()``, integer indexing and iteration."""

    name: str = "dataset"
    #: trainIds this dataset can never contain (e.g. SYNTHIA has no terrain/truck/train).
    missing_classes: tuple[int, ...] = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.name}: index must be an integer, got {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} samples")
        return int(index)

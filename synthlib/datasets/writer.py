"""Write any dataset in the Cityscapes layout, so any tool can train on it.

Under ``root`` (``<city>`` from the argument, else the id's prefix before the
first "_", else "all")::

    leftImg8bit/<split>/<city>/<id>_leftImg8bit.png
    gtFine/<split>/<city>/<id>_gtFine_labelIds.png        Cityscapes labelIds (ignore -> 0)
    gtFine/<split>/<city>/<id>_gtFine_labelTrainIds.png   trainIds, plain 8-bit
    gtFine/<split>/<city>/<id>_gtFine_instanceIds.png     when instances exist
    depth/<split>/<city>/<id>_depth.png                   when depth exists
    meta/<split>.json                                     when any sample has meta

instanceIds use the Cityscapes encoding: pixels of an instance hold
labelId * 1000 + k (k numbers the instances of each class from 0), all others
their labelId. They are 16-bit PNGs (as in Cityscapes; Pillow cannot write
32-bit PNGs). Instance ids on ignore pixels cannot be encoded and are dropped;
an instance spanning two classes becomes one instance per class. Depth is
uint16 metres * 256 (1/256 m steps, at most 255.99 m); 0, negative and
non-finite depths are written as 0 = invalid. Existing files are never
overwritten: write to a fresh root or delete the old split first. Each file
is written under a hidden temporary name and renamed when complete; a failed
write (a full disk) raises ``synthlib.integrity.WriteError`` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from synthlib import labels
from synthlib.datasets._io import DEPTH_SCALE, INSTANCE_OFFSET, check_train_ids, read_meta
from synthlib.datasets.base import DatasetError, Sample
from synthlib.datasets.cityscapes import DEPTH_SUFFIX, IMAGE_SUFFIX, INSTANCE_SUFFIX, LABEL_SUFFIX, TRAIN_ID_SUFFIX
from synthlib.integrity import write_error


class SampleSequence(Protocol):
    """Anything with ``len()`` whose integer indexing returns ``Sample``s."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Sample: ...


def write_cityscapes(
    dataset: SampleSequence, root: str | Path, split: str, city: str | None = None, progress: bool = True
) -> Path:
    """Write every sample of ``dataset`` under ``root`` in the Cityscapes layout; return ``root``.

    Each sample is checked (id, sizes, label values) before its files are written.
    """
    root = Path(root)
    _check_name(split, "split")
    if city is not None:
        _check_name(city, "city")
    meta_path = root / "meta" / f"{split}.json"
    metas = read_meta(meta_path)
    seen: set[str] = set()
    for index in tqdm(range(len(dataset)), desc=f"writing {split}", disable=not progress):
        sample = dataset[index]
        _check_name(sample.id, f"sample {index} id")
        if sample.id in seen:
            raise DatasetError(f"sample {index}: id {sample.id!r} occurs twice; ids must be unique within a split.")
        seen.add(sample.id)
        folder = city if city is not None else _city_of(sample.id)
        files = _encode(sample, index)
        meta = _encode_meta(sample, index)
        paths = {
            suffix: root / top / split / folder / f"{sample.id}{suffix}"
            for top, suffix in [
                ("leftImg8bit", IMAGE_SUFFIX),
                ("gtFine", LABEL_SUFFIX),
                ("gtFine", TRAIN_ID_SUFFIX),
                ("gtFine", INSTANCE_SUFFIX),
                ("depth", DEPTH_SUFFIX),
            ]
            if suffix in files
        }
        for path in paths.values():
            if path.exists():
                raise DatasetError(f"{path} already exists; write to a fresh root or delete the old split first.")
        for suffix, path in paths.items():
            _write(path, lambda p, a=files[suffix]: Image.fromarray(a).save(p, format="PNG", compress_level=1))
        if meta is not None:
            metas[sample.id] = json.loads(meta)
    if metas:
        _write(meta_path, lambda p: p.write_text(json.dumps(metas, indent=1, sort_keys=True)))
    return root


def _write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` then rename ``tmp`` to ``path``: a file is complete or absent, never half-written.

    A failed write (a full disk) removes the partial file and raises
    ``synthlib.integrity.WriteError`` naming the file and what to free.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e, "dataset file") from e


def _encode(sample: Sample, index: int) -> dict[str, np.ndarray]:
    """The arrays to write for one sample, keyed by file suffix, after checking it."""
    where = f"sample {index} ({sample.id})"
    image, label = np.asarray(sample.image), np.asarray(sample.label)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DatasetError(f"{where}: image is {image.dtype} {image.shape}; expected uint8 HxWx3 RGB.")
    if label.shape != image.shape[:2]:
        raise DatasetError(f"{where}: label is {label.shape} but image is {image.shape[:2]}; they must match.")
    train = check_train_ids(label, where)
    label_ids = labels.train_to_label(train, where)
    files = {IMAGE_SUFFIX: image, LABEL_SUFFIX: label_ids, TRAIN_ID_SUFFIX: train}
    if sample.instances is not None:
        instances = np.asarray(sample.instances)
        if instances.shape != label.shape:
            raise DatasetError(f"{where}: instances are {instances.shape} but the label is {label.shape}.")
        files[INSTANCE_SUFFIX] = _encode_instances(label_ids, train, instances, where)
    if sample.depth is not None:
        depth = np.asarray(sample.depth, np.float64)
        if depth.shape != label.shape:
            raise DatasetError(f"{where}: depth is {depth.shape} but the label is {label.shape}.")
        valid = np.isfinite(depth) & (depth > 0)
        scaled = np.clip(np.round(np.where(valid, depth, 0) * DEPTH_SCALE), 1, np.iinfo(np.uint16).max)
        files[DEPTH_SUFFIX] = np.where(valid, scaled, 0).astype(np.uint16)
    return files


def _encode_instances(label_ids: np.ndarray, train: np.ndarray, instances: np.ndarray, where: str) -> np.ndarray:
    """Cityscapes instanceIds: labelId * 1000 + per-class instance index on instance pixels, else labelId."""
    out = label_ids.astype(np.uint16)
    has = (instances != 0) & (train != labels.IGNORE)
    for label_id in np.unique(label_ids[has]):
        mask = has & (label_ids == label_id)
        ids, k = np.unique(instances[mask], return_inverse=True)
        if len(ids) > INSTANCE_OFFSET:
            raise DatasetError(
                f"{where}: {len(ids)} instances of label id {label_id}; Cityscapes encodes at most 1000."
            )
        out[mask] = int(label_id) * INSTANCE_OFFSET + k.reshape(-1)
    return out


def _encode_meta(sample: Sample, index: int) -> str | None:
    """The sample's meta as JSON, or None when it has none."""
    if not sample.meta:
        return None
    try:
        return json.dumps(sample.meta, default=_json_default)
    except (TypeError, ValueError) as e:
        raise DatasetError(f"sample {index} ({sample.id}): meta cannot be written as JSON: {e}.") from e


def _city_of(sample_id: str) -> str:
    """The id's prefix before the first "_", or "all" when there is none."""
    head, sep, _ = sample_id.partition("_")
    return head if sep and head else "all"


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
        raise DatasetError(
            f"{what} {name!r} cannot be a file name part: it must be a non-empty string without '/' or '\\'."
        )


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays in meta become plain JSON numbers and lists."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"meta value {value!r} of type {type(value).__name__} is not JSON serialisable")

"""Reading and indexing helpers shared by every file-based dataset adapter.

Every adapter indexes its files at construction into ``Entry`` rows (checking
that images and labels pair up) and reads them lazily through ``FileDataset``.
Every read error, size mismatch or unknown label value becomes a
``DatasetError`` that names the file.
"""

from __future__ import annotations

import fnmatch
import json
import os
import struct
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import png
from PIL import Image

from synthlib import labels
from synthlib.datasets.base import Dataset, DatasetError, Sample

# What PIL and pypng raise on files that are not images, truncated or corrupt.
_READ_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    png.Error,
    Image.DecompressionBombError,
)

INSTANCE_OFFSET = 1000
"""Cityscapes instanceIds: thing pixels hold labelId * 1000 + k, all others the labelId."""

DEPTH_SCALE = 256.0
"""Depth PNGs hold uint16 metres * 256; 0 marks pixels without depth."""

IGNORE_LABEL_ID = 255
"""A labelIds value read as ignore although the Cityscapes table lacks it (unlabelled, as trainIds' 255)."""


@dataclass(frozen=True)
class Entry:
    """One indexed sample: where its files are, and its meta."""

    id: str
    image: Path
    label: Path
    instances: Path | None = None
    depth: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class FileDataset(Dataset):
    """A dataset of indexed ``Entry`` rows whose files are read on access.

    Subclasses index their layout in ``__init__`` and implement ``_read_label``
    (path -> trainIds), or ``_load_label`` when one file holds more than labels.
    """

    def __init__(self, name: str, entries: list[Entry]) -> None:
        self.name = name
        self._entries = entries

    @property
    def ids(self) -> list[str]:
        """Sample ids in index order."""
        return [e.id for e in self._entries]

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: int) -> Sample:
        entry = self._entries[self._check_index(index)]
        image = read_rgb(entry.image)
        label, instances = self._load_label(entry)
        check_same_size(entry.image, image, entry.label, label)
        depth = None
        if entry.depth is not None:
            depth = read_depth(entry.depth)
            check_same_size(entry.image, image, entry.depth, depth)
        return Sample(image=image, label=label, depth=depth, instances=instances, id=entry.id, meta=dict(entry.meta))

    def _load_label(self, entry: Entry) -> tuple[np.ndarray, np.ndarray | None]:
        """trainIds and instances (or None) of one entry."""
        label = self._read_label(entry.label)
        instances = None
        if entry.instances is not None:
            instances = read_instances(entry.instances)
            check_same_size(entry.label, label, entry.instances, instances)
        return label, instances

    def _read_label(self, path: Path) -> np.ndarray:
        raise NotImplementedError


# --- reading -----------------------------------------------------------------


def read_rgb(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB") if im.mode != "RGB" else im).copy()
    except _READ_ERRORS as e:
        raise DatasetError(f"cannot read image {path}: {e}. Is the file complete? Re-copy or re-extract it.") from e


def read_ids(path: Path) -> np.ndarray:
    """A single-channel label PNG as its raw integer values (palette PNGs give indices)."""
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            values = np.asarray(im).copy()
    except _READ_ERRORS as e:
        raise DatasetError(f"cannot read label {path}: {e}. Is the file complete? Re-copy or re-extract it.") from e
    if values.ndim != 2:
        raise DatasetError(
            f"label {path} is a {mode} image with {values.shape[2]} channels; expected one channel of ids "
            "(a colour-coded label must be converted to ids first)."
        )
    return values


def read_png16(path: Path) -> np.ndarray:
    """A PNG at full bit depth (pypng; PIL truncates 16-bit colour) as HxWxC uint16."""
    try:
        width, height, rows, info = png.Reader(filename=str(path)).read()
        data = np.vstack([np.asarray(row, np.uint16) for row in rows])
    except _READ_ERRORS as e:
        raise DatasetError(f"cannot read label {path}: {e}. Is the file complete? Re-copy or re-extract it.") from e
    planes = info["planes"]
    return data.reshape(height, width, planes)


def read_instances(path: Path) -> np.ndarray:
    """A Cityscapes instanceIds PNG as int32: the raw value on thing pixels (>= 1000), else 0."""
    raw = read_ids(path).astype(np.int32)
    return np.where(raw >= INSTANCE_OFFSET, raw, 0).astype(np.int32)


def read_depth(path: Path) -> np.ndarray:
    """A uint16 depth PNG (metres * 256, 0 = invalid) as float32 metres, invalid -> 0.0."""
    return (read_ids(path).astype(np.float32) / DEPTH_SCALE).astype(np.float32)


def label_ids_to_train(label_ids: np.ndarray, path: Path) -> np.ndarray:
    """Cityscapes labelIds -> trainIds; unknown ids raise DatasetError naming the file and the ids.

    Valid: the table's ids 0-33, and 255, which some converters write for unlabelled
    pixels (trainIds' ignore value): it is read as ignore, like labelId 0.
    """
    label_ids = np.where(label_ids == IGNORE_LABEL_ID, 0, label_ids)
    try:
        return labels.label_to_train(label_ids, str(path))
    except labels.LabelError as e:
        raise DatasetError(str(e)) from e


def check_train_ids(train_ids: np.ndarray, path: Path | str) -> np.ndarray:
    """Return ``train_ids`` as uint8 after checking every value is 0-18 or 255."""
    try:
        labels.check_train_ids(train_ids, str(path))
    except labels.LabelError as e:
        raise DatasetError(str(e)) from e
    return train_ids.astype(np.uint8)


def check_same_size(path_a: Path, a: np.ndarray, path_b: Path, b: np.ndarray) -> None:
    """Raise DatasetError naming both files unless ``a`` and ``b`` have the same height and width."""
    if a.shape[:2] != b.shape[:2]:
        raise DatasetError(
            f"{path_a} is {_hw(a.shape)} (height x width) but {path_b} is {_hw(b.shape)}; "
            "an image and its label, depth and instances must have the same size."
        )


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from an image file's header, without decoding it."""
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except _READ_ERRORS as e:
        raise DatasetError(f"cannot read the header of {path}: {e}. Is the file complete?") from e


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]}"


# --- indexing ----------------------------------------------------------------


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else DatasetError naming it and listing its siblings."""
    if path.is_dir():
        return path
    parent = path.parent
    found = [e.name for e in list_dir(parent) if e.is_dir()] if parent.is_dir() else None
    hint = f" {parent} holds {found}." if found is not None else f" {parent} does not exist either."
    raise DatasetError(f"{what}: {path} is not a directory.{hint}")


def list_dir(folder: Path, missing_ok: bool = False) -> list[os.DirEntry]:
    """The entries of ``folder`` sorted by name, hidden ones (``.DS_Store``, macOS ``._*`` copies) left out.

    Unlike ``Path.glob``, which silently finds nothing in a folder it cannot read,
    a folder that cannot be listed raises DatasetError naming it; a missing one
    gives [] when ``missing_ok`` (an optional folder such as depth/).
    """
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)
    except FileNotFoundError:
        if missing_ok:
            return []
        raise DatasetError(f"folder {folder} does not exist.") from None
    except OSError as e:
        raise DatasetError(
            f"folder {folder} cannot be read ({e.strerror or e}); give this user permission to list it "
            f"(chmod u+rx {folder}) or point the dataset root elsewhere."
        ) from e


def _glob(directory: Path, parts: list[str]) -> list[Path]:
    """Files under ``directory`` matching the glob ``parts`` (one per folder level), sorted; see ``list_dir``."""
    entries = list_dir(directory, missing_ok=True)
    if len(parts) == 1:
        return [Path(e.path) for e in entries if fnmatch.fnmatchcase(e.name, parts[0]) and e.is_file()]
    folders = [Path(e.path) for e in entries if fnmatch.fnmatchcase(e.name, parts[0]) and e.is_dir()]
    return [path for folder in folders for path in _glob(folder, parts[1:])]


def index_files(directory: Path, pattern: str, suffix: str) -> dict[str, Path]:
    """Files under ``directory`` matching ``pattern`` (e.g. ``*/*.png``), keyed by name without ``suffix``.

    A missing ``directory`` has no files; one that cannot be read raises DatasetError (``list_dir``).
    """
    found: dict[str, Path] = {}
    for path in _glob(directory, pattern.split("/")):
        key = path.name[: -len(suffix)] if suffix else path.stem
        if key in found:
            raise DatasetError(f"{path} and {found[key]} both have the sample id {key!r}; ids must be unique.")
        found[key] = path
    return found


def pair_files(
    images: dict[str, Path],
    label_files: dict[str, Path],
    expected_label: Callable[[Path], Path],
    expected_image: Callable[[Path], Path],
) -> list[str]:
    """Sorted ids present in both; DatasetError naming files whose partner is missing."""
    lonely_images = sorted(images.keys() - label_files.keys())
    lonely_labels = sorted(label_files.keys() - images.keys())
    problems = [f"image {images[k]} has no label (expected {expected_label(images[k])})" for k in lonely_images]
    problems += [
        f"label {label_files[k]} has no image (expected {expected_image(label_files[k])})" for k in lonely_labels
    ]
    if problems:
        raise DatasetError(
            f"{len(problems)} unpaired file(s): "
            + _first("; ", problems)
            + ". Restore the missing files or remove these."
        )
    return sorted(images)


def require_some(ids: Iterable[str], where: Path, pattern: str) -> None:
    """DatasetError unless ``ids`` is non-empty."""
    if not list(ids):
        raise DatasetError(f"no files matching {pattern!r} under {where}; is this the right root and split?")


def select_split(kind: str, root: Path, ids: list[str], split: str, ids_file: str | Path | None) -> list[str]:
    """Ids of a dataset without official splits: "train" and "all" are every pair, ``ids_file`` narrows them."""
    if split not in ("train", "all"):
        raise DatasetError(
            f"{kind} has no official {split!r} split; use split='train' or 'all' (every pair), "
            "and ids_file=<text file of stems> for a subset."
        )
    if ids_file is None:
        return ids
    path = Path(ids_file)
    if not path.is_absolute() and not path.exists():
        path = root / path
    if not path.is_file():
        raise DatasetError(f"ids_file {ids_file} does not exist (also looked for {root / Path(ids_file)}).")
    wanted = [Path(s.strip()).name.removesuffix(".png") for s in path.read_text().splitlines() if s.strip()]
    missing = sorted(set(wanted) - set(ids))
    if missing:
        raise DatasetError(
            f"ids_file {path} lists {len(missing)} stem(s) without an image/label pair: {_first(', ', missing)}."
        )
    return sorted(set(wanted))


def drop_size_mismatches(kind: str, entries: list[Entry]) -> list[Entry]:
    """Entries whose image and label headers agree in size; one warning lists the rest."""
    kept, dropped = [], []
    for e in entries:
        a, b = image_size(e.image), image_size(e.label)
        if a == b:
            kept.append(e)
        else:
            dropped.append(f"{e.image} ({_hw(a)}) vs {e.label} ({_hw(b)})")
    if dropped:
        warnings.warn(
            f"{kind}: skipping {len(dropped)} pair(s) whose image and label sizes differ: " + _first("; ", dropped),
            stacklevel=3,
        )
    return kept


def _first(sep: str, items: list[str], n: int = 20) -> str:
    more = f"{sep}... and {len(items) - n} more" if len(items) > n else ""
    return sep.join(items[:n]) + more


def require_root(root: str | Path, kind: str, holds: str) -> Path:
    """``root`` as a Path if it is a directory, else DatasetError naming it and what it should hold."""
    path = Path(root).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is not a directory"
        raise DatasetError(f"{kind} root {path} {what}; expected the folder that holds {holds}.")
    return path


def read_meta(path: Path) -> dict[str, dict]:
    """{id: meta} from ``path``, or {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read meta file {path}: {e}. Fix or delete it.") from e
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise DatasetError(f"meta file {path} must hold a JSON object {{sample id: {{...}}}}.")
    return meta

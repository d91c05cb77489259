"""The generic checks: a table's rows and values, mIoUs, names, images, a dataset stage, a run's files."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from synthlib.datasets.cityscapes import IMAGE_SUFFIX, LABEL_SUFFIX
from synthlib.runs import RunDir

#: Where ``report.write_table`` and ``report.write_figure`` put a run's files.
TABLES = "tables"
_SHOWN = 8  # names listed in a message before "..."


class CheckError(AssertionError):
    """What a notebook made is missing, empty, of the wrong size or out of range; the message names it."""


def stage(run_dir: RunDir, name: str) -> dict[str, Any]:
    """The manifest of stage ``name``, which must have completed."""
    manifest = run_dir.manifest(name)
    if manifest is None:
        raise CheckError(f"run {run_dir.name!r} has no completed stage {name!r} (completed: {_few(run_dir.stages())})")
    return manifest


def table(
    df: pd.DataFrame,
    rows: Iterable[Any] = (),
    columns: Iterable[Any] = (),
    name: str = "table",
    n_rows: int | None = None,
    min_rows: int = 1,
) -> pd.DataFrame:
    """``df`` itself, after checking it is a DataFrame with ``rows`` (index entries) and ``columns``.

    It must have at least ``min_rows`` rows (exactly ``n_rows`` when given) and no
    row twice. In a MultiIndex a row is a whole key (a tuple) or a value of one level.
    """
    if not isinstance(df, pd.DataFrame):
        raise CheckError(f"{name}: expected a table (DataFrame), got {type(df).__name__}")
    if n_rows is not None and len(df) != n_rows:
        raise CheckError(f"{name}: {len(df)} rows, expected {n_rows} (rows: {_few(df.index)})")
    if len(df) < min_rows:
        raise CheckError(f"{name}: {len(df)} rows, expected at least {min_rows}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CheckError(f"{name}: no column {_few(missing)} (columns: {_few(df.columns)})")
    levels = [set(df.index.get_level_values(i)) for i in range(df.index.nlevels)] if df.index.nlevels > 1 else []
    missing = [r for r in rows if not _has_row(df.index, levels, r)]
    if missing:
        raise CheckError(f"{name}: no row {_few(missing)} (rows: {_few(df.index)})")
    twice = df.index[df.index.duplicated()]
    if len(twice):
        raise CheckError(f"{name}: row {_few(twice.unique())} appears more than once")
    return df


def values(
    data: pd.DataFrame | pd.Series | Sequence[float] | np.ndarray | float,
    name: str,
    low: float | None = None,
    high: float | None = None,
    allow_nan: bool = False,
) -> np.ndarray:
    """The numbers of ``data`` as a float array, after checking each is finite and in [``low``, ``high``].

    With ``allow_nan`` a cell may be NaN (an empty cell: a method measured from one source
    only, a class absent from the evaluation), but never every cell of a row of a table,
    nor every value. Infinities are never allowed.
    """
    frame = _frame(data, name)
    try:
        array = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise CheckError(f"{name}: holds values that are not numbers ({e})") from None
    if array.size == 0:
        raise CheckError(f"{name}: has no values")
    nan = np.isnan(array)
    if nan.any() and not allow_nan:
        raise CheckError(f"{name}: empty (NaN) at {_cells(frame, array, nan)}")
    if nan.all():
        raise CheckError(f"{name}: every value is empty (NaN)")
    if isinstance(data, pd.DataFrame) and nan.all(axis=1).any():
        raise CheckError(f"{name}: row {_few(frame.index[nan.all(axis=1)])} has no value (every cell NaN)")
    infinite = np.isinf(array)
    if infinite.any():
        raise CheckError(f"{name}: infinite at {_cells(frame, array, infinite)}")
    outside = np.zeros(array.shape, bool)
    if low is not None:
        outside |= array < low
    if high is not None:
        outside |= array > high
    if outside.any():
        raise CheckError(f"{name}: out of range [{_bound(low, '-inf')}, {_bound(high, 'inf')}] at {_cells(frame, array, outside)}")
    return array


def miou(data: pd.DataFrame | pd.Series | Sequence[float] | np.ndarray | float, name: str, allow_nan: bool = False) -> np.ndarray:
    """``values`` for IoUs and mIoUs (%): every value finite and in [0, 100]; NaN only with ``allow_nan``."""
    return values(data, name, 0.0, 100.0, allow_nan)


def named(value: Any, among: Collection[str], name: str) -> str:
    """``value``, after checking it is a non-empty name and one of ``among``."""
    if not isinstance(value, str) or not value.strip():
        raise CheckError(f"{name}: expected a name, got {value!r}")
    if value not in among:
        raise CheckError(f"{name}: {value!r} is not one of {_few(among)}")
    return value


def images(
    items: Iterable[str | os.PathLike] | Any,
    size: tuple[int, int] | Sequence[int] | None = None,
    name: str = "images",
    n: int | None = None,
) -> int:
    """How many images ``items`` holds: image files (paths) that exist and open, or a dataset's samples.

    Each image must be ``size`` (height, width) when given; ``n``: exactly that many
    images (else at least one). A dataset (anything with ``len`` whose items have an
    ``image`` array) is read sample by sample: each image must be HxWx3 uint8.
    """
    want = None if size is None else tuple(int(s) for s in size)
    count = 0
    if hasattr(items, "__len__") and hasattr(items, "__getitem__") and not isinstance(items, (str, list, tuple)):
        for i in range(len(items)):
            image = np.asarray(items[i].image)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise CheckError(f"{name}: sample {i} is {image.dtype} of shape {image.shape}, not an HxWx3 uint8 image")
            _check_size(image.shape[:2], want, f"{name}: sample {i}")
            count += 1
    else:
        for path in map(Path, items):
            if not path.is_file() or path.stat().st_size == 0:
                raise CheckError(f"{name}: {path} is missing or empty")
            try:
                with Image.open(path) as im:
                    im.load()
                    hw = (im.height, im.width)
            except (OSError, SyntaxError, ValueError) as e:
                raise CheckError(f"{name}: {path} does not open as an image ({e})") from None
            _check_size(hw, want, f"{name}: {path}")
            count += 1
    if n is not None and count != n:
        raise CheckError(f"{name}: {count} images, expected {n}")
    if count == 0:
        raise CheckError(f"{name}: no images")
    return count


def dataset(
    run_dir: RunDir,
    name: str,
    split: str = "train",
    n: int | None = None,
    size: tuple[int, int] | Sequence[int] | None = None,
    like: str | None = None,
    aspect: tuple[int, int] | Sequence[int] | None = None,
    min_n: int = 1,
) -> int:
    """How many image/label pairs the dataset stage ``name`` holds in ``split``, after checking them.

    The stage must have completed; every image must have its label and the other way
    round, each pair the same size (read from the files' headers), ``size`` (height,
    width) when given, and the ``aspect`` ratio of that (height, width) within 1 % when
    given. ``n``: exactly that many pairs (else at least ``min_n``). ``like``: another
    dataset stage whose ``split`` holds every id of this one, with an image of the same
    size (a pseudo-labelled or translated set and the images it came from). The first
    sample is read through the dataset adapter, which checks its label values.
    """
    stage(run_dir, name)
    where = f"{name} ({split})"
    root = run_dir.stage_path(name)
    found = _pairs(root, split, where)
    if n is not None and len(found) != n:
        raise CheckError(f"{where}: {len(found)} image/label pairs, expected {n}")
    if len(found) < min_n:
        raise CheckError(f"{where}: {len(found)} image/label pairs, expected at least {min_n}")
    want = None if size is None else tuple(int(s) for s in size)
    reference = None
    if like is not None:
        stage(run_dir, like)
        reference = _pairs(run_dir.stage_path(like), split, f"{like} ({split})")
    for sid, (image, label) in found.items():
        hw, label_hw = _header_size(image), _header_size(label)
        if hw != label_hw:
            raise CheckError(f"{where}: image {image.name} is {_hw(hw)} but its label is {_hw(label_hw)}")
        _check_size(hw, want, f"{where}: {image.name}")
        if aspect is not None and abs(hw[0] * aspect[1] - hw[1] * aspect[0]) > 0.01 * hw[1] * aspect[0]:
            raise CheckError(f"{where}: {image.name} is {_hw(hw)}, not of the aspect ratio of {_hw(tuple(aspect))}")
        if reference is not None:
            if sid not in reference:
                raise CheckError(f"{where}: sample {sid!r} is not among the samples of {like} ({split})")
            other = _header_size(reference[sid][0])
            if other != hw:
                raise CheckError(f"{where}: {image.name} is {_hw(hw)} but its image in {like} is {_hw(other)}")
    if found:
        try:
            run_dir.dataset(name, split)[0]
        except Exception as e:  # noqa: BLE001 - any reading error is what the check reports
            raise CheckError(f"{where}: its first sample does not read back ({e})") from None
    return len(found)


def files(run_dir: RunDir, tables: Iterable[str] = (), figures: Iterable[str] = ()) -> list[Path]:
    """The files under the run's tables folder, after checking each was written.

    A table ``NAME`` is ``NAME.csv`` (at least one row) and ``NAME.md``; a figure ``NAME``
    is ``NAME.png``, which must open as an image.
    """
    folder = run_dir.path / TABLES
    out = []
    for table_name in tables:
        csv, md = folder / f"{table_name}.csv", folder / f"{table_name}.md"
        for path in (csv, md):
            if not path.is_file() or path.stat().st_size == 0:
                raise CheckError(f"table {table_name}: {path} was not written (or is empty)")
        try:
            rows = len(pd.read_csv(csv))
        except (ValueError, pd.errors.ParserError) as e:
            raise CheckError(f"table {table_name}: {csv} does not read as a table ({e})") from None
        if rows == 0:
            raise CheckError(f"table {table_name}: {csv} has no rows")
        out += [csv, md]
    for figure in figures:
        path = folder / f"{figure}.png"
        images([path], name=f"figure {figure}")
        out.append(path)
    return out


def _has_row(index: pd.Index, levels: list[set], row: Any) -> bool:
    try:
        if row in index:
            return True
    except (TypeError, ValueError):
        pass
    return any(row in level for level in levels)


def _frame(data: Any, name: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    array = np.asarray(data, dtype=object)
    if array.ndim > 2:
        raise CheckError(f"{name}: expected numbers, a list or a table, got shape {array.shape}")
    return pd.DataFrame(array.reshape(-1, 1) if array.ndim < 2 else array)


def _cells(frame: pd.DataFrame, array: np.ndarray, mask: np.ndarray) -> str:
    """``(row, column) = value`` of the first cells where ``mask`` holds."""
    rows, cols = np.nonzero(mask)
    shown = [f"({_plain(frame.index[r])!r}, {_plain(frame.columns[c])!r}) = {array[r, c]:g}" for r, c in zip(rows[:_SHOWN], cols[:_SHOWN], strict=True)]
    return ", ".join(shown) + (f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else "")


def _plain(label: Any) -> Any:
    """An index label without numpy's scalar types, so that messages read ``0``, not ``np.int64(0)``."""
    if isinstance(label, tuple):
        return tuple(_plain(x) for x in label)
    return label.item() if isinstance(label, np.generic) else label


def _few(items: Iterable[Any]) -> str:
    items = list(items)
    text = ", ".join(repr(_plain(i)) for i in items[:_SHOWN])
    return (text + f", ... ({len(items)} in all)" if len(items) > _SHOWN else text) or "none"


def _bound(value: float | None, none: str) -> str:
    return none if value is None else f"{value:g}"


def _hw(hw: tuple[int, ...]) -> str:
    return f"{hw[0]}x{hw[1]}"


def _check_size(hw: tuple[int, int], want: tuple[int, int] | None, where: str) -> None:
    if want is not None and tuple(hw) != want:
        raise CheckError(f"{where} is {_hw(hw)} (height x width), expected {_hw(want)}")


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, SyntaxError, ValueError) as e:
        raise CheckError(f"{path} does not open as an image ({e})") from None


def _pairs(root: Path, split: str, where: str) -> dict[str, tuple[Path, Path]]:
    """id -> (image, label) of a Cityscapes-layout split, after checking every file has its partner."""
    image_dir, label_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_dir.is_dir():
        raise CheckError(f"{where}: no split folder {image_dir}")
    found = {p.name[: -len(IMAGE_SUFFIX)]: p for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}")}
    labels = {p.name[: -len(LABEL_SUFFIX)]: p for p in label_dir.glob(f"*/*{LABEL_SUFFIX}")}
    if set(found) != set(labels):
        raise CheckError(
            f"{where}: images without labels {_few(sorted(set(found) - set(labels)))}; labels without images {_few(sorted(set(labels) - set(found)))}"
        )
    return {sid: (found[sid], labels[sid]) for sid in sorted(found)}


def _counts(column: pd.Series, expected: Mapping[str, int], name: str) -> None:
    wrong = {k: _plain(column.loc[k]) for k, v in expected.items() if not math.isclose(float(column.loc[k]), v)}
    if wrong:
        raise CheckError(f"{name}: {wrong} do not match the sets on disk {dict(expected)}")

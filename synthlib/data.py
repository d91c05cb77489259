"""Stage 00: bring every dataset of a run into the run directory, standardised.

Input: the profile's source and target dataset names, and roots for real
datasets. Output: one stage ``data/<name>`` per dataset, in the Cityscapes
layout with trainId labels, which every later stage reads the same way.

Names: a minicity style (``flat``, ``game``, ``real``) is generated; any other
name is a dataset kind (``gta5``, ``synthia``, ``cityscapes``, ``folder``, ...)
read from ``roots[name]``. Target conditions are ``<target>-<condition>`` on
minicity and ``acdc-<condition>`` (from ``roots["acdc"]``) on real data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from synthlib import minicity
from synthlib.datasets import Dataset, DatasetError, open_dataset, write_cityscapes
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES
from synthlib.profiles import Profile
from synthlib.runs import RunDir

#: Kinds without an official validation split.
_TRAIN_ONLY = ("gta5", "synthia")
#: Separates a minicity style from the look it is rendered in: ``flat_as_real``.
AS = "_as_"


def dataset_names(cfg: Profile) -> dict[str, str]:
    """Every dataset of the run and its role: ``source``, ``target`` or ``condition``."""
    roles = {name: "source" for name in cfg.sources}
    roles[cfg.target] = "target"
    for name in condition_names(cfg):
        roles[name] = "condition"
    return roles


def condition_names(cfg: Profile) -> list[str]:
    """Dataset names of the target's adverse conditions (ACDC stand-ins on minicity)."""
    prefix = cfg.target if cfg.target in minicity.STYLES else "acdc"
    return [f"{prefix}-{c}" for c in cfg.conditions]


def eval_sets(cfg: Profile) -> list[str]:
    """What every segmenter is evaluated on (``"stage:split"``): target val, then each condition's val."""
    return [f"data/{cfg.target}:val"] + [f"data/{c}:val" for c in condition_names(cfg)]


def ceiling_names(cfg: Profile) -> list[str]:
    """minicity only: every source's scenes in the target's look (``flat_as_real``).

    The perfect translation of the source maps, so a segmenter trained on it
    measures how far any generation or translation method could go.
    """
    if cfg.target not in minicity.STYLES:
        return []
    return [f"{s}{AS}{cfg.target}" for s in cfg.sources if s in minicity.STYLES and s != cfg.target]


def splits_of(name: str, cfg: Profile) -> tuple[str, ...]:
    """The splits stage 00 writes for a dataset: conditions are for evaluation only."""
    if AS in name:
        return ("train",)
    role = dataset_names(cfg)[name]
    if role == "condition":
        return ("val",)
    if name in _TRAIN_ONLY:
        return ("train",)
    return ("train", "val")


def source_spec(name: str, cfg: Profile, roots: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """How dataset ``name`` is opened: adapter kind, root and options (JSON-ready, hashed).

    Roots come from the profile's ``roots`` field, with ``roots`` winning per dataset.
    """
    roots = {**cfg.roots, **(roots or {})}
    name, _, look = name.partition(AS)
    base, _, condition = name.partition("-")
    if look and (base not in minicity.STYLES or look not in minicity.STYLES or condition):
        raise DatasetError(f"{name}{AS}{look}: 'STYLE{AS}LOOK' takes two minicity styles ({', '.join(minicity.STYLES)})")
    if base in minicity.STYLES:
        options = {"style": base, "condition": condition or "clear", "height": cfg.height, "width": cfg.width, "seed": cfg.seed}
        if look:  # only then, so the specs (and stage hashes) of plain styles stay as they were
            options["look"] = look
        return {
            "kind": "minicity",
            "root": None,
            "options": options,
            "sizes": {
                "train": cfg.minicity_train,
                "val": cfg.minicity_condition_val if condition else cfg.minicity_val,
            },
            "world": _minicity_fingerprint(),
        }
    key = "acdc" if condition and base == "acdc" else name
    if key not in roots:
        raise DatasetError(
            f"dataset {name!r} (from the profile's sources/target/conditions) is not a minicity style "
            f"({', '.join(minicity.STYLES)}) and has no root: pass roots={{{key!r}: '/path/to/{key}'}}, "
            f"--roots {key}=/path/to/{key}, or roots: in a user profile"
        )
    entry = roots[key]
    spec = dict(entry) if isinstance(entry, Mapping) else {"root": entry}
    kind = spec.pop("kind", key)
    root = str(Path(spec.pop("root")).expanduser().resolve())
    if condition:
        spec["conditions"] = [condition]
    return {"kind": kind, "root": root, "options": spec, "sizes": {"train": cfg.max_train, "val": cfg.max_val}}


def check_roots(cfg: Profile, roots: Mapping[str, Any] | None = None) -> dict[str, dict[str, int]]:
    """Open every real dataset of the run once, before anything runs: {name: {split: images}}.

    Raises ``DatasetError`` for a dataset without a root, a root that does not
    exist, or one whose layout its adapter does not recognise (the adapters
    index their files when opened, so a wrong folder fails here, not in 00).
    """
    found = {}
    for name in dataset_names(cfg):
        spec = source_spec(name, cfg, roots)
        if spec["kind"] == "minicity":
            continue
        found[name] = {split: len(open_source(spec, split)) for split in splits_of(name, cfg)}
    return found


def open_source(spec: Mapping[str, Any], split: str) -> Dataset:
    """The raw adapter for a ``source_spec``, cut to its size for the split."""
    options = dict(spec["options"])
    size = spec["sizes"].get(split, 0)
    if spec["kind"] == "minicity":
        return open_dataset("minicity", None, split, n=size, **options)
    dataset = open_dataset(spec["kind"], spec["root"], split, **options)
    return _Head(dataset, size) if size and size < len(dataset) else dataset


def prepare(run_dir: RunDir, cfg: Profile, roots: Mapping[str, Any] | None = None, names: list[str] | None = None) -> dict[str, Path]:
    """Write every dataset of the run (or ``names``) as stage ``data/<name>``; cached stages are skipped."""
    names = list(dataset_names(cfg)) if names is None else names
    specs = {name: source_spec(name, cfg, roots) for name in names}  # all errors before any write
    out = {}
    for name, spec in specs.items():
        splits = splits_of(name, cfg)

        def build(ctx, spec=spec, splits=splits):
            if not ctx.is_main:  # one process writes the dataset; the others wait for it at the end of the stage
                return
            for split in splits:
                dataset = open_source(spec, split)
                write_cityscapes(dataset, ctx.out, split)
                ctx.info[f"{split}_images"] = len(dataset)

        out[name] = run_dir.stage(f"data/{name}", {"spec": spec, "splits": list(splits)}, build)
    return out


def open_all(run_dir: RunDir, cfg: Profile, split: str) -> dict[str, Dataset]:
    """The run's standardised datasets that have ``split``, by name."""
    return {name: run_dir.dataset(f"data/{name}", split) for name in dataset_names(cfg) if split in splits_of(name, cfg)}


def class_frequencies(datasets: Mapping[str, Dataset], max_images: int | None = None) -> pd.DataFrame:
    """Per class and dataset: share of all pixels (%) and of images containing the class (%).

    The last row, ``ignore``, is the share of pixels labelled 255 (void borders, hood).
    """
    columns = {}
    for name, dataset in datasets.items():
        n = len(dataset) if max_images is None else min(max_images, len(dataset))
        pixels = np.zeros(NUM_CLASSES + 1, np.int64)
        images = np.zeros(NUM_CLASSES + 1, np.int64)
        for i in tqdm(range(n), desc=f"class statistics {name}", leave=False):
            counts = np.bincount(dataset[i].label.ravel(), minlength=256)
            counts = np.append(counts[:NUM_CLASSES], counts[IGNORE])
            pixels += counts
            images += counts > 0
        columns[(name, "pixels %")] = 100.0 * pixels / max(pixels.sum(), 1)
        columns[(name, "images %")] = 100.0 * images / max(n, 1)
    table = pd.DataFrame(columns, index=pd.Index([*CLASS_NAMES, "ignore"], name="class"))
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["dataset", "measure"])
    return table


@cache
def _minicity_fingerprint() -> str:
    """Hash of minicity's source: a change to the world re-generates cached minicity stages."""
    folder = Path(minicity.__file__).parent
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.py")):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()[:16]


class _Head(Dataset):
    """The first ``n`` samples of a dataset (caps real datasets on small profiles)."""

    def __init__(self, dataset: Dataset, n: int) -> None:
        self.dataset, self.n = dataset, n
        self.name = getattr(dataset, "name", "dataset")
        self.missing_classes = getattr(dataset, "missing_classes", ())

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return self.dataset[self._check_index(index)]

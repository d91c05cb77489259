"""paper-tiny datasets: minicity scenes written in the Cityscapes, GTA5, SYNTHIA and ACDC folder layouts.

Part of ``synthlib.tiny_hub`` (which re-exports ``write_datasets``): each dataset
is rendered from minicity and written with the real dataset's label encoding, so
its adapter (``synthlib.datasets.open_dataset``) reads back exactly the trainIds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import png
from PIL import Image

from synthlib import labels
from synthlib.datasets import DatasetError, Sample, open_dataset, write_cityscapes
from synthlib.datasets import acdc as acdc_layout
from synthlib.datasets.synthia import SYNTHIA_TO_TRAIN

DATASETS: tuple[str, ...] = ("cityscapes", "gta5", "synthia", "acdc")


def write_datasets(
    folder: str | Path,
    *,
    height: int = 64,
    width: int = 128,
    n_train: int = 4,
    n_val: int = 3,
    seed: int = 0,
    conditions: Sequence[str] = acdc_layout.CONDITIONS,
) -> dict[str, Path]:
    """Cityscapes, GTA5, SYNTHIA and ACDC folders in their real layouts, rendered from minicity.

    Under ``folder``:

    - ``cityscapes/``: minicity ``real`` train (``n_train``) and val (``n_val``) in the
      Cityscapes layout (leftImg8bit, gtFine labelIds / labelTrainIds / instanceIds).
    - ``gta5/``: ``n_train`` ``game`` train scenes; ``images/00001.png``, ``labels/00001.png``
      (paletted PNG whose indices are Cityscapes labelIds).
    - ``synthia/``: ``n_train`` ``flat`` train scenes; ``RGB/0000000.png``, ``GT/LABELS/0000000.png``
      (16-bit RGB PNG: SYNTHIA class id, instance id, 0). Terrain, truck and train, which
      SYNTHIA lacks, become its void id 0 and read back as ignore.
    - ``acdc/``: minicity ``real`` scenes of each condition, train and val, as
      ``rgb_anon/<cond>/<split>/<seq>/<id>_rgb_anon.png`` and ``gt/.../<id>_gt_labelIds.png``
      (and ``_gt_labelTrainIds.png``); one sequence per condition and split.

    Scene i of a split is minicity's sample i of (style, split, condition, ``seed``), so
    ``open_dataset(kind, root, split)`` gives back exactly those trainIds. Raises
    ``DatasetError`` before writing anything when a dataset folder already exists or an
    option is invalid.
    """
    from synthlib import minicity

    folder = Path(folder)
    conditions = (conditions,) if isinstance(conditions, str) else tuple(conditions)
    unknown = [c for c in conditions if c not in acdc_layout.CONDITIONS]
    if unknown or not conditions:
        raise DatasetError(f"conditions={list(conditions)}: choose one or more of {list(acdc_layout.CONDITIONS)}")
    for name, n in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise DatasetError(f"{name}={n!r}: the number of samples must be a positive integer")
    minicity.check_options(style="real", condition="clear", split="train", height=height, width=width, seed=seed)
    roots = {name: folder / name for name in DATASETS}
    existing = [str(p) for p in roots.values() if p.exists()]
    if existing:
        raise DatasetError(f"{', '.join(existing)} already exist(s); write to a fresh folder or delete them first.")

    def scenes(style: str, split: str, n: int, condition: str = "clear"):
        return open_dataset(
            "minicity", None, split, n=n, style=style, condition=condition, height=height, width=width, seed=seed
        )

    for split, n in (("train", n_train), ("val", n_val)):
        write_cityscapes(_AsCityscapes(scenes("real", split, n)), roots["cityscapes"], split, progress=False)
    _write_gta5(scenes("game", "train", n_train), roots["gta5"])
    _write_synthia(scenes("flat", "train", n_train), roots["synthia"])
    for k, condition in enumerate(conditions):
        for split, n in (("train", n_train), ("val", n_val)):
            sequence = f"GOPR0{100 * (k + 1) + (50 if split == 'val' else 0)}"  # ACDC-like, unique per condition
            _write_acdc(scenes("real", split, n, condition), roots["acdc"], condition, split, sequence)
    return roots


class _AsCityscapes:
    """minicity samples renamed like Cityscapes frames (``minicity_000003_000019``), without depth or meta.

    Real Cityscapes folders hold neither depth nor meta; dropping them keeps code that
    falls back to a depth model on real data on that path.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        s = self.dataset[index]
        return Sample(image=s.image, label=s.label, instances=s.instances, id=f"minicity_{index:06d}_000019")


def _label_id_palette() -> list[int]:
    """Cityscapes colours indexed by labelId (GTA5's label palette), flattened for PIL."""
    palette = np.zeros((256, 3), np.uint8)
    for label in labels.LABELS:
        if label.id >= 0:
            palette[label.id] = label.color
    return palette.reshape(-1).tolist()


def _write_gta5(dataset: Any, root: Path) -> None:
    palette = _label_id_palette()
    for i in range(len(dataset)):
        sample, stem = dataset[i], f"{i + 1:05d}"
        _save_png(root / "images" / f"{stem}.png", sample.image)
        ids = Image.fromarray(labels.train_to_label(sample.label, sample.id))
        ids.putpalette(palette)  # makes the "L" image paletted: indices stay the labelIds
        _save_png(root / "labels" / f"{stem}.png", ids)


_TRAIN_TO_SYNTHIA = np.zeros(256, np.uint16)  # every trainId SYNTHIA lacks, and ignore, -> 0 (void)
_TRAIN_TO_SYNTHIA[list(SYNTHIA_TO_TRAIN.values())] = list(SYNTHIA_TO_TRAIN)


def _write_synthia(dataset: Any, root: Path) -> None:
    thing = np.zeros(256, bool)
    thing[list(labels.THING_TRAIN_IDS)] = True
    for i in range(len(dataset)):
        sample, stem = dataset[i], f"{i:07d}"
        _save_png(root / "RGB" / f"{stem}.png", sample.image)
        instances = np.zeros(sample.label.shape, np.int64) if sample.instances is None else sample.instances
        instances = np.where(thing[sample.label], instances, 0)
        if instances.max(initial=0) > np.iinfo(np.uint16).max:
            raise DatasetError(f"{sample.id}: instance ids above 65535 do not fit SYNTHIA's 16-bit labels")
        gt = np.stack([_TRAIN_TO_SYNTHIA[sample.label], instances, np.zeros_like(instances)], -1).astype(np.uint16)
        path = root / "GT" / "LABELS" / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # PIL cannot write 16-bit colour PNGs
            png.Writer(gt.shape[1], gt.shape[0], greyscale=False, bitdepth=16).write(f, gt.reshape(gt.shape[0], -1))


def _write_acdc(dataset: Any, root: Path, condition: str, split: str, sequence: str) -> None:
    for i in range(len(dataset)):
        sample, stem = dataset[i], f"{sequence}_frame_{i:06d}"
        _save_png(root / "rgb_anon" / condition / split / sequence / f"{stem}{acdc_layout.IMAGE_SUFFIX}", sample.image)
        gt = root / "gt" / condition / split / sequence
        _save_png(gt / f"{stem}{acdc_layout.LABEL_SUFFIX}", labels.train_to_label(sample.label, sample.id))
        _save_png(gt / f"{stem}_gt_labelTrainIds.png", sample.label)


def _save_png(path: Path, image: np.ndarray | Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(path, compress_level=1)


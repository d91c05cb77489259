"""What stage 04 feeds the sampler beside the maps, and how it keeps finished batches.

``Depth`` gives each batch of maps its depth channel (read from the source's depth
stage, the maps' own, or the depth model's); ``batch_folder``, ``by_shape`` and
``assemble`` keep every finished batch in the stage's checkpoints and write the
stage from them once all are done.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthlib import depth as depth_maps
from synthlib.datasets import DatasetError, Sample
from synthlib.diffusion.model import SETTINGS_FILE, DiffusionModel
from synthlib.generation.compose import GenerationError
from synthlib.runs import RunDir, processes

#: The split a generated set is written as.
SPLIT = "train"


class Depth:
    """Depth for the maps of a model with a depth channel (None for a model without one).

    ``stored`` (run, depth stage): the maps' depth is read from the source's
    depth stage (``synthlib.depth``), by sample id, and cropped as ``fit``
    cropped the maps. Otherwise ``prefer_own``: use a sample's own depth when
    it has one (composed maps); else, as in stage 2, estimate depth from the
    sample's image with ``depth_model`` when one is set (in-memory maps, which
    have no stage), else use the dataset's depth.
    """

    def __init__(self, model: DiffusionModel, depth_model: str, prefer_own: bool, stored: tuple[RunDir, str] | None = None) -> None:
        self.needed = bool(model.conditioning and model.conditioning.get("depth"))
        self.depth_model, self.prefer_own, self.stored, self.resolution = depth_model, prefer_own, stored, tuple(model.resolution)
        self._estimator = None

    def __call__(self, samples: Sequence[Sample], where: str) -> np.ndarray | None:
        if not self.needed:
            return None
        if self.stored is not None:
            return np.stack([self._read(x, where) for x in samples])
        own = all(x.depth is not None for x in samples)
        if self.depth_model and not (self.prefer_own and own):
            if self._estimator is None:
                model, processor = depth_maps.load_depth_model(self.depth_model)
                self._estimator = (model.to(processes().device), processor)
            return depth_maps.estimate_depth(*self._estimator, np.stack([x.image for x in samples]))
        missing = [x.id for x in samples if x.depth is None]
        if missing:
            raise GenerationError(
                f"{where}: maps {missing[:5]} have no depth, but the stage-2 model takes a depth channel: set "
                f"diff_depth_model to a monocular depth model (folder or hub id) to estimate it from the source images, "
                f"or give the maps depth (compose(...) makes one)"
            )
        return np.stack([np.asarray(x.depth, np.float32) for x in samples])

    def _read(self, sample: Sample, where: str) -> np.ndarray:
        """The stored depth of a (fitted) map: at its image's size, centre-cropped when ``fit`` cropped the map."""
        run_dir, stage = self.stored
        full = depth_maps.read(run_dir, stage, sample.id, split=SPLIT)  # at the size of the source's image
        shape, depth = np.asarray(sample.label).shape, full
        if depth.shape != shape:
            cut = centre_crop(full.shape, self.resolution)
            depth = full[cut] if cut is not None else full
        if depth.shape != shape:
            raise GenerationError(
                f"{where}: map {sample.id!r} is {shape[0]}x{shape[1]} (after gen_fit), but {stage} recorded its image as "
                f"{full.shape[0]}x{full.shape[1]}: the depth stage was not made from these maps' images. Delete "
                f"{run_dir.stage_path(stage)} to have it made again from the source."
            )
        return depth


def takes_depth(model_folder: Path) -> bool:
    """Whether the model saved in ``model_folder`` has a depth channel (False when its settings cannot be read)."""
    file = Path(model_folder) / SETTINGS_FILE
    settings = json.loads(file.read_text()) if file.is_file() else {}
    return bool((settings.get("conditioning") or {}).get("depth"))


def centre_crop(shape: Sequence[int], resolution: Sequence[int]) -> tuple[slice, slice] | None:
    """The centred crop of an image of ``shape`` (h, w) to the aspect ratio of ``resolution``; None when nothing is left."""
    (h, w), (mh, mw) = shape[:2], resolution
    th, tw = (h, h * mw // mh) if w * mh > h * mw else (w * mh // mw, w)
    if th < 1 or tw < 1:
        return None
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return slice(y0, y0 + th), slice(x0, x0 + tw)


def batch_folder(checkpoints: Path, inputs: dict[str, str], clean: bool = True) -> Path:
    """The folder of finished batches; with ``clean``, batches made from other inputs (a re-made source or model)
    and half-written ones are discarded (by one process: the others wait for it)."""
    folder = checkpoints / "batches"
    if not clean:
        return folder
    stamp = checkpoints / "inputs.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != inputs:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(inputs))
    for stale in folder.glob("*.tmp"):  # a batch being written when the process died
        shutil.rmtree(stale)
    return folder


def by_shape(samples: Sequence[Sample]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(samples):
        groups.setdefault(tuple(np.asarray(x.label).shape), []).append(i)
    return groups


def assemble(batches: Sequence[Path], out: Path) -> dict[str, dict]:
    """Hard-link (or copy) every finished batch's files into ``out`` and merge their meta; return the meta."""
    metas: dict[str, dict] = {}
    for batch in batches:
        meta_file = batch / "meta" / f"{SPLIT}.json"
        for file in sorted(batch.rglob("*")):
            if file.is_dir() or file == meta_file:
                continue
            dest = out / file.relative_to(batch)
            if dest.exists():
                raise DatasetError(f"{dest} is made by two generation batches; delete the stage's checkpoints and re-run")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, dest)
            except OSError:
                shutil.copy2(file, dest)
        if meta_file.is_file():
            metas.update(json.loads(meta_file.read_text()))
    (out / "meta").mkdir(parents=True, exist_ok=True)
    (out / "meta" / f"{SPLIT}.json").write_text(json.dumps(metas, indent=1, sort_keys=True))
    return metas

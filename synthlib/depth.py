"""Depth of a dataset from a monocular depth model: estimated once per dataset, stored compactly, read by id.

Input: a dataset stage of the run (``data/cityscapes``) and ``diff_depth_model``
(a transformers depth model folder or hub id). Output: stage
``depth/<name>`` (``depth/cityscapes``), one 16-bit PNG per image of every
split, which stage 2 (its training pairs and the faithfulness score) and
generation read with ``read`` instead of running the depth model again.
Only profiles with a depth model make these stages; the embedded profiles use
the datasets' own depth.

Format (``FORMAT``). A map is stored at the depth model's output resolution
(what its processor fed it: 518x1036 for Depth Anything V2 on a 1024x2048
Cityscapes image, a quarter of the image's pixels; ``info.megabytes`` in the
manifest says what a stage takes) as ``<split>/<id>_depth.png``: uint16
log-depth, 1..65535 spanning the map's own [log min, log max] linearly, 0 = no
depth. ``maps.json`` beside holds each
map's range and its image's size, and how the model's output is interpolated.
``read`` decodes a map and brings it to the requested size (default: its
image's) the way ``estimate_depth`` does (disparity interpolated for relative
models, depth for metric ones), so a map read at its image's size is
``estimate_depth``'s output to within a relative error of
ln(max / min) / 131068 (half a quantisation step of log-depth, plus float32
rounding): 5e-5 for a map spanning 1000:1, 1.1e-4 at the 1e6:1 that
``estimate_depth``'s clamp allows. The one exception: next to pixels where a
relative model predicts disparity under 1e-6 (sky; clamped to 1e-6 before
storing, not after interpolating) the interpolated disparity can differ by up
to that floor, 1e-6: nothing in the inverse depth the conditioning uses, but
the depth of those far pixels can differ by more than the tolerance.

Under ``accelerate launch`` the batches of images are shared out (batch c to
process c % N), each process writes its maps into the stage folder, and the
main process writes ``maps.json``: the same files as with one process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate.utils import gather_object
from PIL import Image
from tqdm.auto import tqdm

from synthlib.datasets import Sample
from synthlib.fingerprints import weights_fingerprint
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes

PREFIX = "depth"
SUFFIX = "_depth.png"
INDEX = "maps.json"
#: What a stored map is; part of the stage's parameters, so a new format re-makes the stages.
FORMAT = "log-depth uint16 PNG at the depth model's resolution, v1"
#: Codes of valid depth (1..LEVELS); 0 = no depth.
LEVELS = 65535
#: Images per call of the depth model.
BATCH = 8
#: estimate_depth's floor on predicted disparity / depth.
_FLOOR = 1e-6


class DepthError(ValueError):
    """No depth model, or a depth stage or map that is not there."""


def load_depth_model(path_or_id: str | Path):
    """A monocular depth model (transformers ``AutoModelForDepthEstimation``) and its image processor."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        processor = AutoImageProcessor.from_pretrained(str(path_or_id))
        model = AutoModelForDepthEstimation.from_pretrained(str(path_or_id))
    except (OSError, ValueError) as e:
        raise DepthError(
            f"could not load depth model {str(path_or_id)!r}: {e}. Pass a local folder holding a transformers depth "
            f"model and its preprocessor_config.json (e.g. Intel/dpt-hybrid-midas or depth-anything/Depth-Anything-V2-Small-hf "
            f"downloaded elsewhere), or set diff_depth_model='' to use the dataset's depth."
        ) from e
    return model.eval(), processor


@torch.no_grad()
def estimate_depth(model, processor, images: np.ndarray | Sequence[np.ndarray], batch_size: int = 8, resize: bool = True) -> np.ndarray:
    """Depth up to scale (NxHxW float32, larger = farther) of uint8 RGB images from a monocular depth model.

    Relative models (DPT, Depth Anything) predict disparity and are inverted;
    metric ones (GLPN, ZoeDepth, Depth Anything metric) predict depth.
    ``resize=False`` keeps the model's output resolution (what its processor fed
    it) instead of interpolating to the images' size (``synthlib.depth`` stores that).
    """
    images = list(images)
    config = model.config
    metric = getattr(config, "depth_estimation_type", None) == "metric" or config.model_type in ("glpn", "zoedepth")
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        inputs = processor(images=chunk, return_tensors="pt").to(device)
        predicted = model(**inputs).predicted_depth.float()
        if resize:
            predicted = F.interpolate(predicted[:, None], size=chunk[0].shape[:2], mode="bilinear", align_corners=False)[:, 0]
        predicted = predicted.clamp_min(_FLOOR)
        out.append((predicted if metric else 1.0 / predicted).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def stage_name(dataset_stage: str) -> str:
    """The depth stage of a dataset stage: ``data/cityscapes`` -> ``depth/cityscapes``; other stages -> ``depth/a-b``."""
    return f"{PREFIX}/{dataset_stage.removeprefix('data/').replace('/', '-')}"


def estimate_dataset(run_dir: RunDir, cfg: Profile, dataset_stage: str) -> Path:
    """Make (or reuse) stage ``depth/<name>``: ``cfg.diff_depth_model``'s depth of every image of ``dataset_stage``.

    Every split of the dataset stage is covered. The model runs on the
    accelerator, ``BATCH`` images at a time. Cached by the model, its weights'
    fingerprint and the dataset stage: a second call is skipped.
    """
    if not cfg.diff_depth_model:
        raise DepthError(
            f"depth of {dataset_stage} needs a monocular depth model: set diff_depth_model to a transformers depth "
            f"model folder or hub id (e.g. depth-anything/Depth-Anything-V2-Small-hf), or use the dataset's own depth "
            f"with diff_depth_model=''"
        )
    folder = run_dir.stage_path(dataset_stage) / "leftImg8bit"
    splits = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    datasets = {split: run_dir.dataset(dataset_stage, split) for split in splits or ["train"]}  # a missing stage raises here
    params = {
        "dataset": dataset_stage,
        "model": cfg.diff_depth_model,
        "model_weights": weights_fingerprint(cfg.diff_depth_model),
        "splits": splits,
        "format": FORMAT,
    }

    def build(ctx):
        model, processor = load_depth_model(cfg.diff_depth_model)
        model.to(processes().device)
        jobs = [(split, i) for split, dataset in datasets.items() for i in range(len(dataset))]
        chunks = [jobs[a : a + BATCH] for a in range(0, len(jobs), BATCH)]
        entries = []
        mine = range(ctx.process_index, len(chunks), ctx.num_processes)
        for c in tqdm(mine, desc=f"depth of {dataset_stage}", leave=False, disable=not ctx.is_main):
            samples = [(split, datasets[split][i]) for split, i in chunks[c]]
            for group in _same_size(samples):
                maps = estimate_depth(model, processor, [x.image for _, x in group], batch_size=BATCH, resize=False)
                for (split, x), depth in zip(group, maps, strict=True):
                    codes, low, high = _encode(depth)
                    file = ctx.out / split / f"{x.id}{SUFFIX}"
                    file.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(codes).save(file, compress_level=1)
                    entries.append((split, x.id, *x.image.shape[:2], *depth.shape, low, high))
        entries = gather_object(entries)  # returns once every process has written its maps
        if not ctx.is_main:
            return
        maps = {split: {} for split in datasets}
        for split, id_, h, w, mh, mw, low, high in sorted(entries):
            maps[split][id_] = {"size": [h, w], "stored": [mh, mw], "log_range": [low, high]}
        index = {"format": FORMAT, "levels": LEVELS, "interpolation": _interpolation(model), "maps": maps}
        (ctx.out / INDEX).write_text(json.dumps(index, indent=1, sort_keys=True))
        ctx.info.update({f"{split}_maps": len(m) for split, m in maps.items()})
        if entries:
            ctx.info["stored_size"] = list(entries[0][4:6])
        ctx.info["megabytes"] = round(sum(p.stat().st_size for p in ctx.out.rglob(f"*{SUFFIX}")) / 2**20, 1)

    return run_dir.stage(stage_name(dataset_stage), params, build, inputs=(dataset_stage,))


def read(run_dir: RunDir, stage: str, sample_id: str, size: Sequence[int] | None = None, split: str | None = None) -> np.ndarray:
    """The stored depth of a sample (float32 HxW, larger = farther, 0 = none) at ``size`` (h, w; default its image's).

    ``split`` is needed only when the id occurs in two splits.
    """
    index = _index(run_dir, stage)
    split = _split_of(index, stage, sample_id, split)
    entry = index["maps"][split][sample_id]
    with Image.open(run_dir.stage_path(stage) / split / f"{sample_id}{SUFFIX}") as im:
        codes = np.asarray(im)
    depth = _decode(codes, *entry["log_range"])
    size = tuple(entry["size"]) if size is None else tuple(int(s) for s in size)
    if depth.shape != size:
        depth = _resize(depth, size, index["interpolation"])
    return depth


def with_depth(maps: list[Sample], model, cfg: Profile) -> list[Sample]:
    """``maps`` with depth estimated once where they lack it and the model takes depth from ``diff_depth_model``.

    For in-memory maps scored under many settings (MCOC's search), so each setting does not re-run the depth model.
    """
    needs = cfg.diff_depth_model and (getattr(model, "conditioning", None) or {}).get("depth")
    if not needs or all(m.depth is not None for m in maps):
        return maps
    estimator = load_depth_model(cfg.diff_depth_model)
    estimator[0].to(processes().device)
    out = []
    for m in maps:
        out.append(m if m.depth is not None else replace(m, depth=estimate_depth(*estimator, [m.image])[0]))
    return out


class Maps(Sequence):
    """The stored depth of samples by index (``ids``), read on access at their images' size.

    What a training set or a sampling loop indexes in place of an array of
    every map in memory: ``maps[i]`` is one map, ``maps[a:b]`` a stacked array.
    """

    def __init__(self, run_dir: RunDir, stage: str, ids: Sequence[str], split: str | None = None) -> None:
        self.run_dir, self.stage, self.ids, self.split = run_dir, stage, list(ids), split

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            maps = [self[i] for i in range(*index.indices(len(self)))]
            return np.stack(maps) if maps else np.zeros((0, 0, 0), np.float32)
        return read(self.run_dir, self.stage, self.ids[index], split=self.split)


# --- helpers ---------------------------------------------------------------------------------------


def _same_size(samples: list) -> list[list]:
    """Runs of consecutive (split, sample) pairs whose images have one size (the depth model takes one size per call)."""
    groups: list[list] = []
    for item in samples:
        if groups and groups[-1][0][1].image.shape == item[1].image.shape:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _interpolation(model) -> str:
    """What ``estimate_depth`` interpolates for this model: "disparity" (relative models) or "depth" (metric ones)."""
    config = model.config  # the same test as estimate_depth's
    metric = getattr(config, "depth_estimation_type", None) == "metric" or config.model_type in ("glpn", "zoedepth")
    return "depth" if metric else "disparity"


def _encode(depth: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint16 codes (1..LEVELS: log-depth linear over [low, high]; 0: no depth) and (low, high) of one map."""
    valid = np.isfinite(depth) & (depth > 0)
    codes = np.zeros(depth.shape, np.uint16)
    if not valid.any():
        return codes, 0.0, 0.0
    log = np.log(depth[valid].astype(np.float64))
    low, high = float(log.min()), float(log.max())
    scaled = (log - low) / (high - low) * (LEVELS - 1) if high > low else np.zeros_like(log)
    codes[valid] = 1 + np.round(scaled).astype(np.uint16)
    return codes, low, high


def _decode(codes: np.ndarray, low: float, high: float) -> np.ndarray:
    log = low + (codes.astype(np.float64) - 1) * ((high - low) / (LEVELS - 1))
    return np.where(codes > 0, np.exp(log), 0.0).astype(np.float32)


def _resize(depth: np.ndarray, size: tuple[int, int], interpolation: str) -> np.ndarray:
    """Bilinear, as estimate_depth brings the model's output to the image: of disparity (then inverted) or of depth."""
    x = torch.from_numpy(depth)[None, None]
    if interpolation == "disparity":
        x = torch.where(x > 0, 1.0 / x.clamp_min(_FLOOR), 0.0)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)[0, 0].clamp_min(_FLOOR)
    return (1.0 / x if interpolation == "disparity" else x).numpy().astype(np.float32)


def _index(run_dir: RunDir, stage: str) -> dict:
    file = run_dir.stage_path(stage) / INDEX
    if run_dir.manifest(stage) is None or not file.is_file():
        dataset = stage.removeprefix(f"{PREFIX}/")
        raise DepthError(
            f"run {run_dir.name!r} has no completed depth stage {stage!r}: make it first with "
            f"synthlib.depth.estimate_dataset(run_dir, cfg, 'data/{dataset}')"
        )
    return _load_index(str(file), file.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load_index(path: str, mtime_ns: int) -> dict:  # the modification time keys the cache: a re-made stage is read anew
    return json.loads(Path(path).read_text())


def _split_of(index: dict, stage: str, sample_id: str, split: str | None) -> str:
    found = [s for s, maps in index["maps"].items() if sample_id in maps and split in (None, s)]
    if not found:
        where = f"split {split!r} of " if split else ""
        raise DepthError(
            f"{where}depth stage {stage!r} has no map of sample {sample_id!r}: was it made from the dataset stage "
            f"this sample comes from? (stage 2 reads depth/<target>, generation depth/<source>)"
        )
    if len(found) > 1:
        raise DepthError(f"sample {sample_id!r} is in splits {found} of {stage!r}: pass split=")
    return found[0]

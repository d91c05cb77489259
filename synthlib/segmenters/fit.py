"""Segmenters as run stages: train one on a dataset stage, evaluate one on dataset stages.

``fit`` writes stage ``models/<method>/<training set stage>`` (the model saved
with ``save_pretrained`` plus its loss history); ``evaluate`` writes stage
``eval/<model stage>`` with one row of per-class IoUs per evaluation set.
Both are cached like every stage, so tables can be re-read without retraining.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthlib.datasets import Dataset, Sample
from synthlib.fingerprints import weights_fingerprint
from synthlib.integrity import check_folder
from synthlib.labels import IGNORE
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.segmenters.infer import batch_of
from synthlib.segmenters.infer import evaluate as evaluate_model
from synthlib.segmenters.model import ARCHITECTURES, build, load, save, to_accelerator
from synthlib.segmenters.train import TrainSettings, recorded, train
from synthlib.segmenters.workers import run_all

#: Training methods: switches of TrainSettings. "supervised" is source-only (or the oracle on target labels).
METHODS: dict[str, dict[str, bool]] = {
    "supervised": {},
    "advent": {"advent": True},
    "road_dst": {"road_dst": True},
    "road_spt": {"road_spt": True},
    "road": {"road_dst": True, "road_spt": True},
    "self_training": {"self_training": True},
}
#: Segmenter training stacks (profile field ``seg_backend``).
BACKENDS = ("transformers", "mmseg")
LABELS = {
    "supervised": "source only",
    "advent": "ADVENT",
    "road_dst": "ROAD-Net (dst)",
    "road_spt": "ROAD-Net (spt)",
    "road": "ROAD-Net (dst+spt)",
    "self_training": "self-training",
}


def settings(cfg: Profile, method: str = "supervised") -> TrainSettings:
    """Training settings for ``method`` from the profile's seg_* fields."""
    if method not in METHODS:
        raise ValueError(f"segmenter method {method!r} unknown; valid: {', '.join(METHODS)}")
    base = TrainSettings(
        steps=cfg.seg_steps,
        batch_size=cfg.seg_batch,
        lr=cfg.seg_lr,
        crop=tuple(cfg.seg_crop) if cfg.seg_crop else None,
        rcs_temperature=cfg.seg_rcs_temperature,
        seed=cfg.seed,
        warmup_steps=min(50, max(cfg.seg_steps // 10, 1)),
        data_workers=cfg.data_workers,
    )
    return replace(base, **METHODS[method])


def model_stage(method: str, train_set: str) -> str:
    """Stage name of a segmenter trained with ``method`` on dataset stage ``train_set``."""
    return f"models/{method}/{train_set}"


def fit(
    run_dir: RunDir, cfg: Profile, train_set: str, method: str = "supervised", target: str | None = None, init: str | None = None
) -> Path:
    """Train (or reuse) the segmenter of ``method`` on ``train_set``; UDA methods adapt to ``target``'s images.

    The target's labels are hidden from training: UDA sees its images only. ``init``: a
    model stage to fine-tune instead of starting from ``seg_model`` (an input of the stage).
    """
    name, params, build_stage, inputs = _fit_stage(run_dir, cfg, train_set, method, target, init)
    return run_dir.stage(name, params, build_stage, inputs=inputs)


def fit_many(run_dir: RunDir, cfg: Profile, jobs: Sequence[tuple[str, str, str | None]]) -> list[Path]:
    """``fit`` for every ``(train_set, method, target)``, up to ``cfg.seg_workers`` at a time in their own processes.

    On a CPU these small segmenters use several cores poorly: two processes of one
    thread train about 1.5x the steps per second of one process of two threads. The
    CPU threads are divided among the processes. Stages already current are not
    retrained. With ``seg_workers`` 1, on a GPU, or under ``accelerate launch``,
    the segmenters train here one after another. Results are the same stages ``fit`` makes.
    """
    jobs = [(train_set, method, target) for train_set, method, target in jobs]
    todo = [job for job in jobs if not _current(run_dir, cfg, job)]
    workers = min(cfg.seg_workers, len(todo))
    if workers > 1 and not torch.cuda.is_available() and processes().num_processes == 1:
        threads = max(1, torch.get_num_threads() // workers)
        where = (run_dir.name, str(run_dir.path.parent), cfg)
        run_all(_fit_elsewhere, [(*where, *job) for job in todo], workers, threads, desc=f"segmenters ({workers} processes)")
    return [fit(run_dir, cfg, *job) for job in jobs]  # current now: each call only finds its stage


def _current(run_dir: RunDir, cfg: Profile, job: tuple[str, str, str | None]) -> bool:
    name, params, _, inputs = _fit_stage(run_dir, cfg, *job)
    return run_dir.is_current(name, params, inputs)


def _fit_elsewhere(run: str, runs_dir: str, cfg: Profile, train_set: str, method: str, target: str | None) -> str:
    from synthlib import runs

    return str(fit(runs.open(run, runs_dir), cfg, train_set, method, target))


def _fit_stage(run_dir: RunDir, cfg: Profile, train_set: str, method: str, target: str | None, init: str | None = None):
    """(stage name, params, build, inputs) of ``fit``."""
    s = settings(cfg, method)
    if init is not None and cfg.seg_backend != "transformers":
        raise ValueError(f"fine-tuning model stage {init!r} needs seg_backend 'transformers', got {cfg.seg_backend!r}")
    if s.needs_target and target is None:
        raise ValueError(f"method {method!r} adapts to a target: pass target= a dataset stage such as 'data/real'")
    if s.road_dst and cfg.seg_model in ARCHITECTURES:  # fails before fit_many trains anything
        raise ValueError(
            f"method {method!r}: ROAD-Net's distillation imitates a pretrained encoder, but seg_model {cfg.seg_model!r} "
            "is a config with random weights; set seg_model to a pretrained one ('zoo:mit-b0', 'nvidia/mit-b5', a "
            "SegFormer folder) or leave road_dst and road out of uda_methods"
        )
    if cfg.seg_backend not in BACKENDS:
        raise ValueError(f"seg_backend {cfg.seg_backend!r} unknown; valid: {', '.join(BACKENDS)}")
    # mmseg trains the supervised segmenters; the UDA methods are this project's loop whatever the backend.
    backend = cfg.seg_backend if method == "supervised" else "transformers"
    target = target if s.needs_target else None
    inputs = [train_set] + ([target] if target else [])
    params = {"model": cfg.seg_model, "train_set": train_set, "target": target, "settings": recorded(s)}
    if backend != "transformers":  # transformers stages keep the keys they had before there was a choice
        params["backend"] = backend
    weights = None if cfg.seg_model in ARCHITECTURES else weights_fingerprint(cfg.seg_model)
    if weights is not None:  # a folder / cached hub id: new weights at the same path re-run the stage
        params["model_weights"] = weights
    if init is not None:  # only then, so stages trained from seg_model keep their hashes
        params["init"] = init
        inputs.append(init)

    def build_stage(ctx):
        model = build(cfg.seg_model, seed=cfg.seed) if init is None else load(run_dir.stage_path(init) / "model")
        if backend == "mmseg":
            from synthlib.segmenters import mmseg_backend

            run_dir.dataset(train_set, "train")  # verified and readable before mmseg lists its files
            history = mmseg_backend.fit_folder(model, run_dir.stage_path(train_set), s, ctx.checkpoints, ctx.out / "model")
            (ctx.out / "history.json").write_text(json.dumps(history))
            ctx.info["final_losses"] = {"source": float(np.mean(history["source"][-20:]))}
            return
        unlabelled = Unlabelled(run_dir.dataset(target, "train")) if target else None
        history = train(model, run_dir.dataset(train_set, "train"), s, target=unlabelled, checkpoints=ctx.checkpoints)
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        save(model, ctx.out / "model")
        (ctx.out / "history.json").write_text(json.dumps(history))
        ctx.info["final_losses"] = {k: float(np.mean(v[-20:])) for k, v in history.items() if k != "step_seconds"}
        ctx.info["median_step_seconds"] = float(np.median(history["step_seconds"]))

    return model_stage(method, train_set), params, build_stage, inputs


def load_model(run_dir: RunDir, stage: str):
    """The segmenter saved by a ``fit`` stage, on this process's accelerator (if there is one).

    A truncated or overwritten weight file raises ``synthlib.integrity.CorruptFileError``
    naming it and saying to delete the stage (a finished stage is never rewritten in place).
    """
    folder = run_dir.stage_path(stage) / "model"
    check_folder(folder, f"delete the stage (rm -r {run_dir.stage_path(stage)}) so that the next run trains it again")
    if (folder / "mmseg_config.py").is_file():  # trained by the mmseg backend
        from synthlib.segmenters import mmseg_backend

        return to_accelerator(mmseg_backend.load(folder))
    return to_accelerator(load(folder))


def evaluate(run_dir: RunDir, cfg: Profile, stage: str, eval_sets: list[str]) -> pd.DataFrame:
    """Per-class IoU (%) and means of a model stage on ``eval_sets`` (``"data/real:val"``: stage and split).

    Cached as stage ``eval/<stage>``; returns one row per evaluation set.
    """
    parsed = [_parse_eval_set(e) for e in eval_sets]
    window = tuple(cfg.seg_eval_window) or None
    params = {"eval_sets": list(eval_sets), "window": window}

    def build_stage(ctx):
        if not ctx.is_main:  # one process writes the evaluation; the others wait for it at the end of the stage
            return
        model = load_model(run_dir, stage)
        rows = [
            evaluate_model(model, run_dir.dataset(name, split), window=window, desc=f"eval {name}:{split}", batch=batch_of(cfg))
            .row(f"{name}:{split}")
            for name, split in parsed
        ]
        pd.concat(rows).to_csv(ctx.out / "iou.csv")

    inputs = [stage, *dict.fromkeys(name for name, _ in parsed)]
    path = run_dir.stage(f"eval/{stage}", params, build_stage, inputs=inputs)
    return pd.read_csv(path / "iou.csv", index_col=0)


def _parse_eval_set(spec: str) -> tuple[str, str]:
    name, sep, split = spec.rpartition(":")
    if not sep or not name or split not in ("train", "val"):
        raise ValueError(f"evaluation set {spec!r}: expected '<dataset stage>:<split>', e.g. 'data/real:val'")
    return name, split


class Unlabelled(Dataset):
    """A view of a dataset with every label set to ignore: UDA may see target images only."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.name = f"{getattr(dataset, 'name', 'dataset')} (unlabelled)"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        s = self.dataset[index]
        return Sample(s.image, np.full_like(s.label, IGNORE), s.depth, None, s.id, s.meta)

"""Stage 06: train the downstream segmenter on every training set, evaluate every model on the target.

Input: dataset stages of the run (sources, the target for the oracle, and any
set later stages write under ``generated/`` or ``translated/``) and the UDA
models of stage 01. Output: one ``models/supervised/<set>`` stage per training
set and one ``eval/<model>`` stage per model, on target val and each condition.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib import tailoring
from synthlib.data import condition_names, eval_sets  # noqa: F401 - eval_sets is public here too
from synthlib.labels import colorize
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters import predict
from synthlib.segmenters.infer import batch_of, window_of
from synthlib.viz import image_grid

#: Folders where later stages write training sets that 06 picks up by name.
SET_FOLDERS = ("generated", "translated")


def training_sets(run_dir: RunDir, cfg: Profile) -> list[str]:
    """Default training sets: every source, the target (oracle), then every completed generated/translated set."""
    sets = [f"data/{s}" for s in cfg.sources] + [f"data/{cfg.target}"]
    sets += [name for name in run_dir.stages() if name.split("/", 1)[0] in SET_FOLDERS]
    return sets


def display_name(stage: str, cfg: Profile) -> str:
    """A row label for a model stage: ``source only (flat)``, ``oracle (real)``, ``ADVENT (game)``, ``generated/flat``."""
    _, method, train_set = stage.split("/", 2)
    folder, _, name = train_set.partition("/")
    if method == "supervised" and folder == tailoring.FOLDER:
        return f"{display_name(f'models/supervised/{name}', cfg)}, tailored"
    if method == "supervised" and folder == "data":
        return f"oracle ({name})" if name == cfg.target else f"source only ({name})"
    if method == "supervised":
        return train_set
    return f"{seg.LABELS.get(method, method)} ({name})"


def train_all(run_dir: RunDir, cfg: Profile, sets: list[str] | None = None, with_uda: bool = True) -> dict[str, str]:
    """Train (or reuse) a supervised segmenter per training set; returns display name -> model stage.

    With the profile's tailoring switches on, each set but the oracle's is trained as its
    ``tailored/`` copy (synthlib.tailoring).

    Rows come in table order: source only, the UDA models of stage 01 (when
    ``with_uda``), other training sets, and the oracle last.
    """
    sets = training_sets(run_dir, cfg) if sets is None else sets
    done = set(run_dir.stages())
    missing = [s for s in sets if s not in done]
    if missing:
        raise ValueError(f"training sets {missing} are not completed stages of run {run_dir.name!r}; completed: {sorted(done)}")
    if tailoring.enabled(cfg):  # every set but the oracle's becomes its tailored/ copy
        oracle = f"data/{cfg.target}"
        if cfg.tailor_camera:  # the untailored sets' segmenters read the target's horizon: trained side by side first
            seg.fit_many(run_dir, cfg, [(s, "supervised", None) for s in sets if s != oracle])
        sets = [s if s == oracle else tailoring.tailor(run_dir, cfg, s) for s in sets]
    seg.fit_many(run_dir, cfg, [(train_set, "supervised", None) for train_set in sets])  # seg_workers at a time
    trained = {}
    for train_set in sets:
        stage = seg.model_stage("supervised", train_set)
        trained[display_name(stage, cfg)] = stage
    oracle = {k: v for k, v in trained.items() if k.startswith("oracle")}
    sources = {k: v for k, v in trained.items() if k.startswith("source only")}
    others = {k: v for k, v in trained.items() if k not in oracle and k not in sources}
    return {**sources, **(uda_models(run_dir, cfg) if with_uda else {}), **others, **oracle}


def uda_models(run_dir: RunDir, cfg: Profile) -> dict[str, str]:
    """The UDA baselines stage 01 trained (those that exist), by display name."""
    stages = [seg.model_stage(m, f"data/{cfg.uda_source}") for m in cfg.uda_methods]
    return {display_name(s, cfg): s for s in stages if run_dir.manifest(s) is not None}


def evaluate_all(run_dir: RunDir, cfg: Profile, models: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-class IoU on target val (rows = model) and mIoU per condition (rows = model)."""
    sets = eval_sets(cfg)
    tables = {name: seg.evaluate(run_dir, cfg, stage, sets) for name, stage in models.items()}
    per_class = pd.DataFrame({name: t.loc[sets[0]] for name, t in tables.items()}).T.rename_axis("training data / method")
    conditions = pd.DataFrame(
        {name: {s.split(":")[0].removeprefix("data/"): t.loc[s, "mIoU"] for s in sets} for name, t in tables.items()}
    ).T.rename_axis("training data / method")
    return per_class, conditions


def prediction_grid(run_dir: RunDir, cfg: Profile, models: dict[str, str], n: int = 3, split: str = "val") -> plt.Figure:
    """Target images, ground truth, and each model's prediction, one row per image."""
    target = run_dir.dataset(f"data/{cfg.target}", split)
    samples = [target[i] for i in range(min(n, len(target)))]
    images = np.stack([s.image for s in samples])
    columns = [("image", images), ("ground truth", [colorize(s.label) for s in samples])]
    for name, stage in models.items():
        pred, _ = predict(seg.load_model(run_dir, stage), images, window_of(cfg), batch=batch_of(cfg))
        columns.append((name, [colorize(p) for p in pred]))
    rows = [("", [panels[r] for _, panels in columns]) for r in range(len(samples))]
    return image_grid(rows, [title for title, _ in columns], cell_inches=1.9)

"""Stage 04 (translation baselines), measured: both directions per method and source, the translated
sets' consistency with their maps, the CycleGAN training curves and a grid of translations.

Evaluations are cached stages ``i2i/test_time/<method>-<source>`` (direction b: target val translated
to the source style, segmented by the source-only model) and ``i2i/trained_on/<method>-<source>``
(direction a: the segmenter trained on the translated set, on target val).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib.datasets import Dataset
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters.infer import batch_of, window_of
from synthlib.segmenters.infer import evaluate as evaluate_model
from synthlib.translation.baselines import (
    CONSISTENCY,
    DIRECTIONS,
    TO_SOURCE,
    TO_TARGET,
    Translated,
    _method_inputs,
    check,
    cyclegan_method,
    display_name,
    methods,
    source_models,
    translator,
)
from synthlib.viz import image_grid


def test_time(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """Direction (b): per-class IoU (%) of each source-only segmenter on target val translated to its source's style.

    One cached stage ``i2i/test_time/<method>-<source>`` per row; rows (source, method), ``source only`` first.
    """
    check(run_dir, cfg)
    models = source_models(run_dir, cfg)
    rows = []
    for source in cfg.sources:
        for method in ["none", *methods(cfg)]:
            inputs, params = _method_inputs(run_dir, cfg, method, source)
            dataset = (f"data/{cfg.target}", "val")

            def make(method=method, source=source, dataset=dataset):
                return Translated(run_dir.dataset(*dataset), translator(run_dir, cfg, method, source, TO_SOURCE))

            stage = f"i2i/test_time/{method}-{source}"
            rows.append(
                _evaluation(run_dir, cfg, stage, models[source], make, params, inputs, (source, display_name(method)))
            )
    return _stack(rows)


def trained_on(run_dir: RunDir, cfg: Profile, train: bool = False) -> pd.DataFrame:
    """Direction (a): per-class IoU (%) on target val of the segmenter trained on each translated set.

    With ``train`` the segmenters are trained here (the same cached stages
    ``models/supervised/translated/...`` stage 06 trains); without, sets whose
    segmenter does not exist yet are left out. ``source only`` rows come first.
    """
    models = source_models(run_dir, cfg)
    target = (f"data/{cfg.target}", "val")
    rows = []
    for source in cfg.sources:
        for method in ["none", *methods(cfg)]:
            train_set = f"data/{source}" if method == "none" else f"translated/{method}-{source}"
            model = models[source] if method == "none" else seg.model_stage("supervised", train_set)
            if train and method != "none":
                seg.fit(run_dir, cfg, train_set, "supervised")
            if run_dir.manifest(model) is None:
                continue

            def make(dataset=target):
                return run_dir.dataset(*dataset)

            stage = f"i2i/trained_on/{method}-{source}"
            rows.append(
                _evaluation(
                    run_dir, cfg, stage, model, make, {"set": list(target)}, [target[0]], (source, display_name(method))
                )
            )
    return _stack(rows)


def consistency(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """Per-class IoU (%) of the target oracle on each translated training set against the source maps it keeps.

    How much of the maps' content survives translation, as a segmenter of the
    target domain sees it: a translator that paints trees into the sky or erases
    cars lowers it, and its training set then teaches wrong labels. ``none`` is
    the untranslated source. One cached stage ``i2i/consistency/<method>-<source>`` per row.
    """
    check(run_dir, cfg)
    oracle_set = f"data/{cfg.target}"
    seg.fit(run_dir, cfg, oracle_set, "supervised")  # stage 01's oracle, cached
    oracle = seg.model_stage("supervised", oracle_set)
    rows = []
    for source in cfg.sources:
        for method in ["none", *methods(cfg)]:
            train_set = f"data/{source}" if method == "none" else f"translated/{method}-{source}"
            if run_dir.manifest(train_set) is None:
                continue

            def make(train_set=train_set):
                return run_dir.dataset(train_set, "train")

            stage = f"i2i/consistency/{method}-{source}"
            rows.append(
                _evaluation(
                    run_dir, cfg, stage, oracle, make, {"set": train_set}, [train_set], (source, display_name(method))
                )
            )
    return _stack(rows)


def comparison(run_dir: RunDir, cfg: Profile, train_downstream: bool = False) -> pd.DataFrame:
    """mIoU (%) on target val per source and method, one column per direction, and the semantic ``consistency``
    of each translated training set.

    Direction (a) is filled only with ``train_downstream`` (its segmenters trained here);
    else it is NaN, even where 06 has trained them since: a table that depended on
    whether 06 ran before would differ between a resumed run and an uninterrupted one.
    06's tables and 07's hold direction (a).
    """
    b = test_time(run_dir, cfg)["mIoU"].rename(DIRECTIONS[TO_SOURCE])
    a = trained_on(run_dir, cfg, True)["mIoU"] if train_downstream else pd.Series(dtype=float)
    a = a.rename(DIRECTIONS[TO_TARGET])
    c = consistency(run_dir, cfg)["mIoU"].rename(CONSISTENCY)
    return pd.concat([a.reindex(b.index), b, c.reindex(b.index)], axis=1)


def training_summary(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """Per CycleGAN: steps, median seconds per step, total seconds and the final (unweighted) losses."""
    rows = {}
    for source in cfg.sources:
        for k in cfg.i2i_k:
            manifest = run_dir.manifest(f"i2i/cyclegan/{source}-k{k}")
            if manifest is None:
                continue
            info = manifest["info"]
            rows[(source, display_name(cyclegan_method(k)))] = {
                "steps": manifest["params"]["settings"]["steps"],
                "s/step": info["median_step_seconds"],
                "seconds": manifest["seconds"],
                **info["final_losses"],
            }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["source", "method"])


def loss_plot(run_dir: RunDir, cfg: Profile, smooth: int = 10) -> plt.Figure:
    """Cycle, adversarial and semantic losses over training (running mean over ``smooth`` steps), one panel per CycleGAN."""
    stages = [(s, k) for s in cfg.sources for k in cfg.i2i_k if run_dir.manifest(f"i2i/cyclegan/{s}-k{k}") is not None]
    if not stages:
        raise ValueError(f"run {run_dir.name!r} has no trained CycleGAN yet: call translation.train_cyclegans first")
    fig, axes = plt.subplots(1, len(stages), figsize=(3.6 * len(stages), 2.8), squeeze=False, sharey=True)
    for ax, (source, k) in zip(axes[0], stages, strict=True):
        history = json.loads((run_dir.stage_path(f"i2i/cyclegan/{source}-k{k}") / "history.json").read_text())
        for key in ("cycle_source", "cycle_target", "adv", "semantic", "d_target"):
            if key in history:
                values = pd.Series(history[key]).rolling(smooth, min_periods=1).mean()
                ax.plot(values.index + 1, values, label=key, lw=1)
        ax.set_title(f"{display_name(cyclegan_method(k))}\n{source} <-> {cfg.target}", fontsize=8)
        ax.set_xlabel("step")
        ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def grid(
    run_dir: RunDir, cfg: Profile, source: str | None = None, n: int = 4, direction: str = TO_TARGET
) -> plt.Figure:
    """Input | FDA | colour transfer | each CycleGAN, one row per image.

    ``to_target``: source train images into the target style (what direction a
    trains on); ``to_source``: target val images into the source style
    (direction b).
    """
    source = source or cfg.sources[0]
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} unknown; valid: {', '.join(DIRECTIONS)}")
    inputs = (
        run_dir.dataset(f"data/{source}", "train")
        if direction == TO_TARGET
        else run_dir.dataset(f"data/{cfg.target}", "val")
    )
    indices = list(range(min(n, len(inputs))))
    images = np.stack([inputs[i].image for i in indices])
    columns = [(source if direction == TO_TARGET else cfg.target, images)]
    columns += [
        (display_name(m), translator(run_dir, cfg, m, source, direction)(images, indices)) for m in methods(cfg)
    ]
    rows = [("", [panels[r] for _, panels in columns]) for r in range(len(indices))]
    return image_grid(rows, [title.replace(" (", "\n(") for title, _ in columns], cell_inches=1.9)


def _evaluation(
    run_dir: RunDir,
    cfg: Profile,
    stage: str,
    model: str,
    make: Callable[[], Dataset],
    params: dict,
    inputs: list[str],
    row: tuple[str, str],
) -> pd.DataFrame:
    """A cached evaluation stage holding one row of per-class IoU; returns the row indexed by ``row``."""
    window = window_of(cfg)

    def build(ctx):
        if not ctx.is_main:  # one process writes the evaluation; the others wait for it at the end of the stage
            return
        cm = evaluate_model(
            seg.load_model(run_dir, model), make(), window=window, desc=f"eval {stage}", batch=batch_of(cfg)
        )
        cm.row(stage).to_csv(ctx.out / "iou.csv")

    path = run_dir.stage(stage, {**params, "model": model, "window": window}, build, inputs=[model, *inputs])
    table = pd.read_csv(path / "iou.csv", index_col=0)
    table.index = pd.MultiIndex.from_tuples([row], names=["source", "method"])
    return table


def _stack(rows: list[pd.DataFrame]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["source", "method"]), columns=["mIoU"])
    return pd.concat(rows)

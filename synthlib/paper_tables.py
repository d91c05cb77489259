"""Stage 07: the paper's tables and figures, assembled from a run's cached stages.

Nothing here trains. Every number is read from the evaluation stages that 01, 04, 05
and 06 left in the run directory. The figures apply models that already exist to a few
images. Running 07 again rebuilds every file from the run directory alone.

Rows are training data or methods. Columns are source styles. The oracle row repeats in
every column, and so do UDA methods trained on ``uda_source`` only; they appear in their
own column. A source whose labels cover only SYNTHIA's 16 classes (``sixteen_class_sources``)
also gets its rows' 16- and 13-class means, as the field reports SYNTHIA.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib import mcoc, report
from synthlib.data import AS
from synthlib.generation import PREFIX as GENERATED
from synthlib.labels import CLASS_NAMES, colorize
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters import predict
from synthlib.segmenters.infer import batch_of, window_of
from synthlib.translation import display_name as i2i_name
from synthlib.viz import image_grid

SOURCE_ONLY = "source only"
ORACLE = "oracle (target labels)"
OURS_UNFILTERED = "generated (ours, unfiltered)"
OURS = "generated + MCOC filter + rectification (ours)"
CEILING = "source maps in the target's look (perfect translation; minicity only)"
#: Table files 07 writes under the run's tables folder, by name.
TABLES = ("paper_miou", "paper_gap_closed", "paper_per_class")
FIGURES = ("paper_figure1", "paper_mcoc_threshold", "paper_per_class_bars")
#: Dataset kinds whose labels cover only SYNTHIA's 16 classes: their adapter's ``missing_classes``
#: are terrain, truck and train (tests/test_paper_tables.py holds the adapters to this).
SIXTEEN_CLASS_KINDS = ("synthia",)
#: The class-subset means of such a source, by the suffix of their columns: ``"synthia (16)"``.
SUBSET_MEANS = {"16": "mIoU16", "13": "mIoU13"}


class TablesError(ValueError):
    """The run lacks what a table needs."""


def evaluations(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """Per-class IoU (%) on target val of every evaluated model of the run.

    The result is indexed by (row, source, stage): row names the training data or method,
    source names the column it belongs to, and stage is the stage holding the number.
    """
    target_val = f"data/{cfg.target}:val"
    rows = []
    for stage in run_dir.stages("eval/models/*/*/*") + run_dir.stages("i2i/test_time/*"):
        if stage.startswith("eval/models/"):
            model = stage.removeprefix("eval/")
            key = _classify_model(model, cfg)
        elif stage.startswith("i2i/test_time/"):
            key = _classify_test_time(stage.removeprefix("i2i/test_time/"))
        else:
            continue
        if key is None:
            continue
        table = pd.read_csv(run_dir.stage_path(stage) / "iou.csv", index_col=0)
        # Translation evaluations hold one row named after their stage; model evaluations one per set.
        row = table.loc[target_val] if target_val in table.index else (table.iloc[0] if stage.startswith("i2i/") else None)
        if row is None:
            continue
        rows.append(row.rename((*key, stage)))
    if not rows:
        raise TablesError(f"run {run_dir.name!r} has no evaluations on {target_val}: run 01 and 06 first")
    out = pd.DataFrame(rows)
    out.index = pd.MultiIndex.from_tuples(out.index, names=["row", "source", "stage"])
    return out.iloc[sorted(range(len(out)), key=lambda i: (_row_rank(out.index[i][0]), out.index[i][1]))]


def miou_table(evals: pd.DataFrame, cfg: Profile, sixteen_class: Collection[str] | None = None) -> pd.DataFrame:
    """19-class mIoU (%) with rows for methods and columns for source styles.

    The oracle fills every column. A source in ``sixteen_class`` (default: those
    ``sixteen_class_sources`` finds by name) gets two more columns right after its own,
    ``"<source> (16)"`` and ``"<source> (13)"``: every row's mean over SYNTHIA's 16 and 13
    classes, the oracle's included. Two extra columns: ``spread`` (max - min over the source
    styles, the "source-agnostic" measure; NaN where fewer than two sources have a value) and
    ``mean``, both over the 19-class columns only.
    """
    table = _by_source(evals, "mIoU", cfg)
    sources = list(table.columns)
    # A row measured from one source (a UDA method on ``uda_source``) has no spread: NaN, not 0.
    measured = table[sources].notna().sum(axis=1)
    table["spread"] = (table[sources].max(axis=1) - table[sources].min(axis=1)).where(measured >= 2)
    table["mean"] = table[sources].mean(axis=1)
    sixteen = sixteen_class_sources(sources) if sixteen_class is None else [s for s in sources if s in sixteen_class]
    if sixteen:
        # Flat column names rather than a (source, classes) MultiIndex: to_markdown prints a
        # MultiIndex header as tuples, the CSV would get a second header row, and runs without
        # such a source keep their columns exactly as they were.
        subsets = {suffix: _by_source(evals, mean, cfg) for suffix, mean in SUBSET_MEANS.items()}
        columns = []
        for source in sources:
            columns.append(source)
            if source in sixteen:
                for suffix, subset in subsets.items():
                    table[f"{source} ({suffix})"] = subset[source]
                    columns.append(f"{source} ({suffix})")
        table = table[[*columns, "spread", "mean"]]
    return table.rename_axis(index="training data / method", columns=None)


def sixteen_class_sources(sources: Iterable[str], run_dir: RunDir | None = None) -> list[str]:
    """The ``sources`` whose labels cover only SYNTHIA's 16 classes, in the order given.

    A source's kind is the adapter its data stage read it with (``spec.kind`` in the manifest
    of ``data/<source>``, so a SYNTHIA subset under another name counts); without a run
    directory or that manifest, the source's name. The kind must be in ``SIXTEEN_CLASS_KINDS``.
    """
    out = []
    for source in sources:
        manifest = run_dir.manifest(f"data/{source}") if run_dir is not None else None
        spec = manifest["params"].get("spec", {}) if manifest is not None else {}
        if spec.get("kind", source) in SIXTEEN_CLASS_KINDS:
            out.append(source)
    return out


def gap_closed(miou: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of the source-only -> oracle gap each row closes, per column of ``miou_table``.

    Each column is its own class set, so ``"synthia (16)"`` measures the gap on SYNTHIA's 16 classes.
    """
    if SOURCE_ONLY not in miou.index or ORACLE not in miou.index:
        raise TablesError(f"the gap needs both a {SOURCE_ONLY!r} and an {ORACLE!r} row; rows: {list(miou.index)}")
    cols = [c for c in miou.columns if c not in ("spread", "mean")]
    base, top = miou.loc[SOURCE_ONLY, cols], miou.loc[ORACLE, cols]
    out = (miou[cols] - base) / (top - base) * 100
    return out.drop(index=[SOURCE_ONLY, ORACLE]).rename_axis(index="training data / method")


def per_class_table(evals: pd.DataFrame) -> pd.DataFrame:
    """Per-class IoU (%) and the 19-class mIoU, one row per (training data / method, source)."""
    return evals[[*CLASS_NAMES, "mIoU"]].droplevel("stage")


def per_class_bars(evals: pd.DataFrame, cfg: Profile) -> plt.Figure:
    """Per-class IoU bars on target val for source-only, the best UDA method, ours, and the oracle.

    Source-only and ours use ``uda_source``, so all four rows start from the same source.
    """
    table = per_class_table(evals)
    source = cfg.uda_source
    uda = [r for r, s in table.index if s == source and r in seg.LABELS.values() and r != SOURCE_ONLY]
    best_uda = max(uda, key=lambda r: table.loc[(r, source), "mIoU"]) if uda else None
    wanted = [(SOURCE_ONLY, source), (best_uda, source), (OURS, source), (ORACLE, None)]
    bars = {}
    for row, src in wanted:
        if row is None:
            continue
        match = [k for k in table.index if k[0] == row and (src is None or k[1] == src)]
        if match:
            bars[f"{row} ({match[0][1]})" if src else row] = table.loc[match[0], list(CLASS_NAMES)]
    if not bars:
        raise TablesError(f"no source-only, UDA, generated or oracle evaluations for source {source!r}")
    frame = pd.DataFrame(bars)
    fig, ax = plt.subplots(figsize=(12, 3.6))
    frame.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("IoU (%) on target val")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=len(bars))
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig


def mcoc_threshold_curve(run_dir: RunDir, cfg: Profile, evals: pd.DataFrame) -> plt.Figure:
    """Per source, the share of generated images kept and their mean MCOC against the threshold.

    The downstream mIoU is marked where a model exists: unfiltered at threshold 0, and
    filtered + rectified at the threshold its stage used.
    """
    sources = [s for s in _source_columns(evals.index.get_level_values("source").unique(), cfg) if run_dir.manifest(mcoc.filtered_name(s)) is not None]
    if not sources:
        raise TablesError(f"run {run_dir.name!r} has no filtered generated sets: run 05 first")
    thresholds = np.linspace(0, 1, 41)
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.2), squeeze=False)
    miou = evals["mIoU"].droplevel("stage")
    for ax, source in zip(axes[0], sources, strict=True):
        scores = mcoc.image_scores(run_dir, source)["mcoc"].to_numpy(dtype=float)
        # Images without objects have no MCOC and are always kept, as in filtering.
        kept = np.array([np.mean(np.isnan(scores) | (scores >= t)) * 100 for t in thresholds])
        mean_kept = [np.nanmean(scores[scores >= t]) * 100 if (scores >= t).any() else np.nan for t in thresholds]
        ax.plot(thresholds, kept, label="images kept (%)")
        ax.plot(thresholds, mean_kept, label="mean MCOC of kept (%)")
        used = run_dir.manifest(mcoc.filtered_name(source))["params"]["threshold"]
        for row, t, marker in ((OURS_UNFILTERED, 0.0, "s"), (OURS, used, "o")):
            if (row, source) in miou.index:
                ax.plot([t], [miou.loc[(row, source)]], marker, color="k", label=f"downstream mIoU: {row.split(' (')[0]}")
        if (SOURCE_ONLY, source) in miou.index:
            ax.axhline(miou.loc[(SOURCE_ONLY, source)], color="grey", ls="--", lw=1, label="downstream mIoU: source only")
        ax.axvline(used, color="k", lw=0.5)
        ax.set_title(f"{source}: threshold used {used:g}", fontsize=9)
        ax.set_xlabel("MCOC threshold")
        ax.set_ylim(0, 100)
    axes[0, 0].set_ylabel("%")
    axes[0, -1].legend(fontsize=6, loc="center right")
    fig.tight_layout()
    return fig


def figure1(run_dir: RunDir, cfg: Profile, evals: pd.DataFrame, index: int = 0) -> plt.Figure:
    """One row per source style: the source image, its map, the image generated from the map,
    then a target val image with the predictions of source-only and ours (mIoU in the titles).
    """
    miou = evals["mIoU"].droplevel("stage")
    stages = dict(zip(evals.index.droplevel("stage"), evals.index.get_level_values("stage"), strict=True))
    target = run_dir.dataset(f"data/{cfg.target}", "val")
    probe = target[min(index, len(target) - 1)]
    rows = []
    for source in _source_columns(evals.index.get_level_values("source").unique(), cfg):
        generated = _generated_stage(run_dir, source)
        if generated is None:
            continue
        made = run_dir.dataset(generated, "train")[0]
        origin = made.meta.get("source", f"data/{source}")
        source_image = run_dir.dataset(origin, "train")[int(made.meta["map_index"])].image if "map_index" in made.meta else None
        panels = [("source image", source_image), ("map", colorize(made.label)), ("generated", made.image), ("target image", probe.image)]
        for row in (SOURCE_ONLY, OURS if (OURS, source) in stages else OURS_UNFILTERED):
            if (row, source) in stages:
                model = seg.load_model(run_dir, stages[(row, source)].removeprefix("eval/"))
                pred, _ = predict(model, probe.image[None], window_of(cfg), batch=batch_of(cfg))
                panels.append((f"{row.split(' (')[0]}: {miou.loc[(row, source)]:.1f} mIoU", colorize(pred[0])))
        panels.append(("ground truth", colorize(probe.label)))
        rows.append((source, panels))
    if not rows:
        raise TablesError(f"run {run_dir.name!r} has no generated sets with evaluated source styles: run 04 and 06 first")
    return image_grid(rows, cell_inches=1.3)


def write_all(run_dir: RunDir, cfg: Profile) -> dict[str, pd.DataFrame | plt.Figure]:
    """Every table and figure of 07, written under the run's tables folder; returns them by name.

    Figures whose inputs are missing (no generated or filtered set yet) are skipped.
    """
    evals = evaluations(run_dir, cfg)
    sixteen = sixteen_class_sources(evals.index.get_level_values("source").unique(), run_dir)
    miou = miou_table(evals, cfg, sixteen)
    out: dict[str, pd.DataFrame | plt.Figure] = {"paper_miou": miou}
    caption = f"mIoU (%, 19 classes) on {cfg.target} val: rows = training data / method, columns = source style"
    for source in (s for s in sixteen if s in miou.columns):
        caption += f"; '{source} (16)' and '{source} (13)': over SYNTHIA's 16 and 13 classes"
    report.write_table(miou, run_dir, cfg, "paper_miou", caption)
    if SOURCE_ONLY in miou.index and ORACLE in miou.index:
        out["paper_gap_closed"] = gap_closed(miou)
        report.write_table(out["paper_gap_closed"], run_dir, cfg, "paper_gap_closed", "Share (%) of the source-only -> oracle gap closed, per source style")
    out["paper_per_class"] = per_class_table(evals)
    report.write_table(out["paper_per_class"], run_dir, cfg, "paper_per_class", f"Per-class IoU (%) on {cfg.target} val")
    makers = {
        "paper_figure1": lambda: figure1(run_dir, cfg, evals),
        "paper_mcoc_threshold": lambda: mcoc_threshold_curve(run_dir, cfg, evals),
        "paper_per_class_bars": lambda: per_class_bars(evals, cfg),
    }
    for name, make in makers.items():
        try:
            fig = make()
        except TablesError as e:
            print(f"{name}: skipped ({e})")
            continue
        report.write_figure(fig, run_dir, name)
        plt.close(fig)  # shown where the caller displays it, not all at once
        out[name] = fig
    return out


def _classify_model(model: str, cfg: Profile) -> tuple[str, str] | None:
    """(row, source) of a model stage ``models/<method>/<folder>/<name>``."""
    _, method, train_set = model.split("/", 2)
    folder, _, name = train_set.partition("/")
    if folder == "data":
        if AS in name:  # benchmarks/translation_ceiling.py
            return (CEILING, name.split(AS)[0]) if method == "supervised" else None
        if name == cfg.target:
            return (ORACLE, name) if method == "supervised" else None
        return seg.LABELS.get(method, method), name
    if method != "supervised":
        return None
    if folder == GENERATED:
        if name.endswith(mcoc.FILTERED_SUFFIX):
            return OURS, name.removesuffix(mcoc.FILTERED_SUFFIX)
        return OURS_UNFILTERED, name
    if folder == "translated":
        method, _, source = name.partition("-")
        return f"{i2i_name(method)} (trained on translated)", source
    return train_set, name


def _classify_test_time(name: str) -> tuple[str, str] | None:
    method, _, source = name.partition("-")
    # "none" is the source-only model on untranslated images: the source-only row already.
    return None if method == "none" else (f"{i2i_name(method)} (target translated at test time)", source)


def _by_source(evals: pd.DataFrame, mean: str, cfg: Profile) -> pd.DataFrame:
    """Column ``mean`` of the evaluations as rows x source styles, the oracle's value in every column."""
    table = evals[mean].droplevel("stage").unstack("source")
    oracle = table.loc[ORACLE].dropna().iloc[0] if ORACLE in table.index else None
    table = table.reindex(columns=_source_columns(table.columns, cfg))
    if oracle is not None:
        table.loc[ORACLE] = oracle
    return table.reindex(sorted(table.index, key=_row_rank))


def _row_rank(row: str) -> tuple[int, str]:
    order = [SOURCE_ONLY, *[v for v in seg.LABELS.values() if v != SOURCE_ONLY]]
    if row in order:
        return order.index(row), row
    if row == ORACLE:
        return 99, row
    if row == CEILING:
        return 98, row
    if row in (OURS_UNFILTERED, OURS):
        return 50 + (row == OURS), row
    return 20 + ("test time" in row), row


def _source_columns(found, cfg: Profile) -> list[str]:
    """The profile's sources first (in its order), then any other columns found; the target never."""
    found = [s for s in found if s != cfg.target]
    return [s for s in cfg.sources if s in found] + sorted(s for s in found if s not in cfg.sources)


def _generated_stage(run_dir: RunDir, source: str) -> str | None:
    for stage in (mcoc.filtered_name(source), f"{GENERATED}/{source}"):
        if run_dir.manifest(stage) is not None:
            return stage
    return None

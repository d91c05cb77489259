"""The MCOC stages' names and what they hold: the filtered sets' tables and figures, the settings the runs used.

Read back from a run by notebooks, ``paper_tables`` and ``checks`` (through ``synthlib.mcoc``,
which re-exports these names); nothing here needs the judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from synthlib import generation
from synthlib.mcoc_objects import MCOCError
from synthlib.mcoc_search import rank
from synthlib.profiles import Profile
from synthlib.runs import RunDir

FILTERED_SUFFIX = "-filtered"


def filtered_name(source: str) -> str:
    """``generated/flat`` (or ``flat``, ``data/flat``) -> ``generated/flat-filtered``."""
    return generation_stage(source) + FILTERED_SUFFIX


def generation_stage(source: str) -> str:
    """The generated stage of a source: ``flat`` / ``data/flat`` -> ``generated/flat``; ``generated/...`` stays."""
    return source if source.startswith(f"{generation.PREFIX}/") else generation.stage_name(source)


def image_scores(run_dir: RunDir, source: str) -> pd.DataFrame:
    """``mcoc.csv`` of a filtered stage: every generated image's MCOC, whether it was kept, objects changed."""
    return _filtered_table(run_dir, source, "mcoc.csv")


def changed_objects(run_dir: RunDir, source: str) -> pd.DataFrame:
    """``objects.csv`` of a filtered stage: every object rectification changed (id, pixels, class, to, share, kept)."""
    return _filtered_table(run_dir, source, "objects.csv")


def summary(run_dir: RunDir, sources: Sequence[str]) -> pd.DataFrame:
    """One row per filtered set: images kept and dropped, MCOC before/after, objects relabelled or set to ignore."""
    rows = {}
    for source in sources:
        manifest = _manifest(run_dir, filtered_name(source))
        rows[generation_stage(source)] = {"judge": manifest["params"]["judge"], "threshold": manifest["params"]["threshold"], **manifest["info"]}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("generated set")


def histogram(run_dir: RunDir, sources: Sequence[str], bins: int = 20) -> plt.Figure:
    """Per-image MCOC of each generated set, with the filtering threshold."""
    fig, ax = plt.subplots(figsize=(6, 3))
    threshold = None
    for source in sources:
        table = image_scores(run_dir, source)
        ax.hist(table["mcoc"].dropna(), bins=bins, range=(0, 1), alpha=0.5, label=generation_stage(source))
        threshold = run_dir.manifest(filtered_name(source))["params"]["threshold"]
    if threshold is not None:
        ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("image MCOC")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def change_table(run_dir: RunDir, sources: Sequence[str]) -> pd.DataFrame:
    """How many kept objects rectification changed, by class and what they became (rows), per generated set (columns)."""
    counts = {}
    for source in sources:
        changes = changed_objects(run_dir, source)
        changes = changes[changes["kept"].astype(bool)] if len(changes) else changes
        counts[generation_stage(source)] = changes.groupby(["class", "to"]).size() if len(changes) else pd.Series(dtype=int)
    table = pd.DataFrame(counts).fillna(0).astype(int)
    return table.sort_values(list(table.columns), ascending=False) if len(table) else table


def settings_used(run_dir: RunDir, cfg: Profile, table: pd.DataFrame) -> pd.DataFrame:
    """The settings MCOC chose (best of ``search_settings``) beside those each generated set of the run was made with."""
    best = rank(table).iloc[0]
    keys = ("guidance_scale", "conditioning_scale", "steps", "scheduler")
    rows = {"chosen by MCOC": {**{k: best[k] for k in keys}, "MCOC (held-out maps)": best["MCOC"]}}
    for source in generation.sources(cfg):
        manifest = run_dir.manifest(generation_stage(source))
        if manifest is not None:
            used = manifest["params"]["settings"]
            match = table[(table["guidance_scale"] == used["guidance_scale"]) & (table["conditioning_scale"] == used["conditioning_scale"])
                          & (table["steps"] == used["steps"])]
            rows[f"used by {generation_stage(source)}"] = {**{k: used[k] for k in keys},
                                                          "MCOC (held-out maps)": match["MCOC"].iloc[0] if len(match) else math.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


# --- helpers -------------------------------------------------------------------------------------


def _manifest(run_dir: RunDir, stage: str, hint: str = "run filter_set first") -> dict:
    """The manifest of a completed stage; an error saying what to run (``hint``) when it is missing."""
    manifest = run_dir.manifest(stage)
    if manifest is None:
        raise MCOCError(f"run {run_dir.name!r} has no completed stage {stage!r}: {hint}")
    return manifest


def _filtered_table(run_dir: RunDir, source: str, name: str) -> pd.DataFrame:
    """Table ``name`` of the filtered stage of ``source`` (or of ``source`` itself when it is filtered)."""
    stage = source if source.endswith(FILTERED_SUFFIX) else filtered_name(source)
    _manifest(run_dir, stage)
    return pd.read_csv(run_dir.stage_path(stage) / name)

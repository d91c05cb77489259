"""MCOC-guided generation settings: how well images generated with each of a small grid of settings match their maps.

The grid (guidance scale x conditioning scale x steps) is scored on held-out maps, one
image each with the same seeds for every setting, by the MCOC a judge gives them. The
stage that runs it, ``mcoc/settings`` (``synthlib.mcoc.search_settings``), lives with the
judge in ``synthlib.mcoc``, which re-exports these names; the judge reaches this module
only as a ``predict`` function, so it never imports ``mcoc`` back.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib import depth, generation
from synthlib.datasets import DatasetError, Sample
from synthlib.labels import IGNORE
from synthlib.mcoc_objects import MCOCError, instances_of, nanmean, objects, score
from synthlib.profiles import Profile
from synthlib.runs import RunDir

SETTINGS_STAGE = "mcoc/settings"


def settings_grid(cfg: Profile) -> list[generation.Settings]:
    """Every combination of the profile's grid (guidance x conditioning scale x steps), scheduler ``gen_scheduler``."""
    points = list(itertools.product(cfg.mcoc_grid_guidance, cfg.mcoc_grid_conditioning, cfg.mcoc_grid_steps))
    if not points:
        raise MCOCError("the settings grid is empty: give mcoc_grid_guidance, mcoc_grid_conditioning and mcoc_grid_steps at least one value each")
    return [generation.sampling_settings(cfg, guidance_scale=float(g), conditioning_scale=float(c), steps=int(s)) for g, c, s in points]


def held_out_maps(run_dir: RunDir, cfg: Profile) -> list[Sample]:
    """``mcoc_grid_maps`` maps shared out over the generation sources: the first of each val split.

    A source without a val split (GTA5, SYNTHIA) gives the last maps of its train split instead.
    """
    sources = generation.sources(cfg)
    per_source = [cfg.mcoc_grid_maps // len(sources) + (i < cfg.mcoc_grid_maps % len(sources)) for i in range(len(sources))]
    maps = []
    for source, n in zip(sources, per_source, strict=True):
        try:
            dataset = run_dir.dataset(source, "val")
            maps += [dataset[i] for i in range(min(n, len(dataset)))]
        except DatasetError:
            dataset = run_dir.dataset(source, "train")
            maps += [dataset[i] for i in range(max(len(dataset) - n, 0), len(dataset))]
    if not maps:
        raise MCOCError(f"no held-out maps in {sources}")
    return maps


def score_grid(
    run_dir: RunDir, cfg: Profile, model, points: list[generation.Settings], judged: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]
) -> tuple[pd.DataFrame, int]:
    """One row per setting of ``points`` (its fields, MCOC, the judge's pixel accuracy, seconds per image), and how many maps.

    ``model``: the stage-2 model; ``judged``: the classes that make objects; ``predict``:
    the judge's trainIds for uint8 NxHxWx3 images.
    """
    maps = [generation.fit_to_model(m, model, cfg.gen_fit, "held-out maps") for m in held_out_maps(run_dir, cfg)]
    maps = depth.with_depth(maps, model, cfg)
    seeds = [generation.seed_of(cfg.seed, 10**6 + i, 0) for i in range(len(maps))]
    groups = {}  # same-size maps are generated and scored together
    for i, m in enumerate(maps):
        groups.setdefault(m.label.shape, []).append(i)
    prepared = []  # the maps' objects do not depend on the setting: found once
    for idx in groups.values():
        labels = np.stack([maps[i].label for i in idx])
        instances = np.stack([instances_of(maps[i]) for i in idx])
        prepared.append((idx, labels, objects(labels, instances, cfg.mcoc_min_pixels, judged)))
    rows = []
    for p in points:
        per_image, hits, valid, seconds = [], 0, 0, 0.0
        for idx, labels, found in prepared:
            t0 = time.perf_counter()
            images = generation.generate_from(model, cfg, [maps[i] for i in idx], [seeds[i] for i in idx], p)
            seconds += time.perf_counter() - t0
            predictions = predict(images)
            per_image.append(score(labels, predictions, found=found).image)
            hits += int(((predictions == labels) & (labels != IGNORE)).sum())
            valid += int((labels != IGNORE).sum())
        rows.append({**asdict(p), "MCOC": nanmean(np.concatenate(per_image)), "pixel accuracy": hits / max(valid, 1),
                     "seconds per image": seconds / len(maps)})
    return pd.DataFrame(rows), len(maps)


def rank(table: pd.DataFrame) -> pd.DataFrame:
    """The settings table best first: highest MCOC, then faster (NaN MCOC last)."""
    return table.sort_values(["MCOC", "seconds per image"], ascending=[False, True], na_position="last", kind="stable").reset_index(drop=True)


def best_settings(table: pd.DataFrame, cfg: Profile) -> generation.Settings:
    """The best row of ``search_settings`` as generation ``Settings`` (scheduler ``gen_scheduler``)."""
    best = rank(table).iloc[0]
    return generation.sampling_settings(cfg, guidance_scale=float(best["guidance_scale"]), conditioning_scale=float(best["conditioning_scale"]), steps=int(best["steps"]))


def settings_heatmap(table: pd.DataFrame, value: str = "MCOC") -> plt.Figure:
    """MCOC over guidance scale (rows) x conditioning scale (columns), one panel per step count; the best is boxed."""
    steps = sorted(table["steps"].unique())
    best = rank(table).iloc[0]
    lo, hi = float(table[value].min()), float(table[value].max())
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps) + 0.8, 2.8), squeeze=False)
    for ax, s in zip(axes[0], steps, strict=True):
        part = table[table["steps"] == s].pivot_table(index="guidance_scale", columns="conditioning_scale", values=value)
        image = ax.imshow(part.to_numpy(), cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1e-9, aspect="auto")
        ax.set_xticks(range(len(part.columns)), [f"{c:g}" for c in part.columns])
        ax.set_yticks(range(len(part.index)), [f"{g:g}" for g in part.index])
        ax.set_xlabel("conditioning scale")
        ax.set_ylabel("guidance scale")
        ax.set_title(f"{s} steps", fontsize=9)
        for (r, c), v in np.ndenumerate(part.to_numpy()):
            ax.text(c, r, f"{v:.3f}", ha="center", va="center", fontsize=8, color="w" if v < (lo + hi) / 2 else "k")
            if s == best["steps"] and part.index[r] == best["guidance_scale"] and part.columns[c] == best["conditioning_scale"]:
                ax.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="r", linewidth=2))
    fig.colorbar(image, ax=axes[0].tolist(), label=value, shrink=0.8)
    return fig

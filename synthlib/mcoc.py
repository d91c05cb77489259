"""Stage 05: MCOC — score generated images against their maps, filter them, rectify their labels.

Mean Class-wise Object Consistency (docs/design.md §5). For an image generated from
map *L*, a segmenter (the *judge*) predicts *P*. An *object* is an instance
of *L* where the map has instance ids, else an 8-connected component of one
class; ignore pixels never belong to one; objects under ``min_pixels`` are
not objects. An object's consistency is the share of its pixels where *P*
equals its class; a class's consistency the mean over its objects; the
image's MCOC the mean over the classes it has (NaN without objects); a
dataset's MCOC the mean over its images that are not NaN. Everything is
vectorised with ``np.bincount`` over object ids.

Input: a generated set (stage ``generated/<source>`` of 04) and the judge — the
run's pseudo-labeller by default, never the target oracle (it saw target
labels). Output: stage ``generated/<source>-filtered`` (images under
``mcoc_threshold`` dropped, objects the judge sees as ONE other class for more
than ``mcoc_rectify_fraction`` of their pixels relabelled to it or set to
ignore; with ``mcoc_rectify_within="category"`` only classes of the object's
Cityscapes category count, since a judge that misses a small car sees road),
with ``mcoc.csv`` (every image's score) and ``objects.csv`` (every changed
object); and stage ``mcoc/settings``: the MCOC of a small grid of
generation settings on held-out maps, to choose guidance, conditioning scale
and steps.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from synthlib import depth, generation
from synthlib.datasets import DatasetError, Sample, write_cityscapes
from synthlib.fingerprints import weights_fingerprint
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, TRAIN_LABELS, colorize
from synthlib.mcoc_objects import (  # noqa: F401 - public names of mcoc
    _BLOCK,
    MCOCError,
    Objects,
    Scores,
    _batch,
    _block_objects,
    _check_instances,
    _check_labels,
    _check_min_pixels,
    mcoc,
    nanmean,
    objects,
    score,
)
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.segmenters.infer import batch_of, predict, window_of
from synthlib.viz import image_grid

#: What happens to an object the judge sees as another class: take that class, become ignore, or nothing.
RECTIFY_MODES = ("relabel", "ignore", "off")
#: Which other classes rectification may move an object to: any class, or one of its Cityscapes category.
RECTIFY_WITHIN = ("any", "category")
# Category of each trainId (flat, construction, object, nature, sky, human, vehicle).
_CATEGORY = np.unique([lb.category for lb in TRAIN_LABELS], return_inverse=True)[1]
SETTINGS_STAGE = "mcoc/settings"
FILTERED_SUFFIX = "-filtered"
SPLIT = generation.SPLIT


# --- filtering decisions -----------------------------------------------------------------------


def check_threshold(threshold: float, name: str = "mcoc_threshold") -> float:
    """``threshold`` as a float after checking it lies in [0, 1]."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) or not 0.0 <= float(threshold) <= 1.0:
        raise MCOCError(
            f"{name} {threshold!r} must be a number in [0, 1] (MCOC is the mean share of an object's pixels the judge "
            f"agrees with); 0 keeps every image, e.g. 0.5 drops images whose objects are less than half right on average"
        )
    return float(threshold)


def keep(image_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which images survive filtering: MCOC >= ``threshold``; images without objects (NaN) are kept."""
    threshold = check_threshold(threshold)
    scores_ = np.asarray(image_scores, np.float64)
    return np.isnan(scores_) | (scores_ >= threshold)


def rectify(
    labels: np.ndarray,
    predictions: np.ndarray,
    instances: np.ndarray | None = None,
    min_pixels: int = 1,
    fraction: float = 0.5,
    mode: str = "relabel",
    found: Objects | None = None,
    within: str = "any",
) -> tuple[np.ndarray, pd.DataFrame]:
    """Labels with every object the judge assigns to ONE other class on more than ``fraction`` of its pixels changed.

    ``mode`` "relabel" gives the object that class, "ignore" sets it to 255,
    "off" changes nothing. ``within`` "category" only considers other classes
    of the object's Cityscapes category (a train seen as a bus, a sidewalk as
    road), "any" every class. Returns the new labels (same shape as ``labels``)
    and one row per changed object: image, object, pixels, class, to, share.
    """
    if mode not in RECTIFY_MODES:
        raise MCOCError(f"rectification mode {mode!r} unknown; valid: {', '.join(RECTIFY_MODES)}")
    if within not in RECTIFY_WITHIN:
        raise MCOCError(f"rectification scope {within!r} unknown; valid: {', '.join(RECTIFY_WITHIN)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)) or not 0.0 <= fraction <= 1.0:
        raise MCOCError(f"rectification fraction {fraction!r} must lie in [0, 1] (e.g. 0.5: most of the object's pixels)")
    single = np.asarray(labels).ndim == 2
    labels, predictions = _batch(labels, "labels"), _batch(predictions, "predictions")
    if predictions.shape != labels.shape:
        raise MCOCError(f"predictions of shape {predictions.shape} do not match the maps' shape {labels.shape}")
    if found is not None:
        new, table = _rectify(found, labels, predictions, fraction, mode, within)
    else:
        _check_labels(labels)
        _check_min_pixels(min_pixels)
        inst = None if instances is None else _check_instances(instances, labels)
        parts, tables, offset = [], [], 0
        for start in range(0, len(labels), _BLOCK):
            block = slice(start, start + _BLOCK)
            part = _block_objects(labels[block], None if inst is None else inst[block], min_pixels)
            new_block, changed = _rectify(part, labels[block], predictions[block], fraction, mode, within)
            parts.append(new_block)
            tables.append(changed.assign(image=changed["image"] + start, object=changed["object"] + offset))
            offset += len(part)
        new = np.concatenate(parts) if parts else labels.copy()
        table = pd.concat(tables, ignore_index=True) if tables else _rectify(objects(labels), labels, predictions, fraction, mode, within)[1]
    return (new[0] if single else new), table


# --- the judge ------------------------------------------------------------------------------------


def judge_name(cfg: Profile) -> str:
    """The judge the profile asks for: ``mcoc_judge``, else the pseudo-labeller."""
    return cfg.mcoc_judge or cfg.pseudo_labeller


def judge_stage(cfg: Profile) -> str | None:
    """The model stage of the judge (None for a folder / hub id); the oracle is refused.

    A method name (``self_training``, ``advent``, ...) is that method's model on
    ``uda_source`` from stage 01; a ``models/...`` name is that stage.
    """
    from synthlib.segmenters import fit as seg

    name = judge_name(cfg)
    oracle = seg.model_stage("supervised", f"data/{cfg.target}")
    if name == "oracle" or name == oracle:
        raise MCOCError(
            f"mcoc_judge {name!r}: the target oracle was trained on target labels, which the framework never uses; "
            f"judge with the pseudo-labeller (mcoc_judge='') or another segmenter trained without target labels "
            f"({', '.join(m for m in seg.METHODS if m != 'supervised')}, or a source-only model stage)"
        )
    if name in seg.METHODS:
        return seg.model_stage(name, f"data/{cfg.uda_source}")
    if name.startswith("models/"):
        return name
    return None


def ensure_judge(run_dir: RunDir, cfg: Profile) -> str | None:
    """The judge's model stage, trained first (stage 01's code, cached) when it is a method the run lacks."""
    from synthlib.segmenters import fit as seg

    stage = judge_stage(cfg)
    name = judge_name(cfg)
    if stage is not None and run_dir.manifest(stage) is None:
        if name not in seg.METHODS:
            raise MCOCError(f"mcoc_judge {name!r}: run {run_dir.name!r} has no completed stage {stage!r}")
        seg.fit(run_dir, cfg, f"data/{cfg.uda_source}", name, target=f"data/{cfg.target}")
    return stage


def load_judge(run_dir: RunDir, cfg: Profile):
    """The judge segmenter on the accelerator's device."""
    from synthlib.segmenters import fit as seg
    from synthlib.segmenters import load

    stage = ensure_judge(run_dir, cfg)
    model = load(judge_name(cfg)) if stage is None else seg.load_model(run_dir, stage)
    return model.to(processes().device).eval()


def judged_classes(run_dir: RunDir, cfg: Profile, judge, n: int = 200) -> np.ndarray:
    """The classes the judge can see: predicted on at least ``mcoc_judged_share`` of the pixels of target images.

    A judge that never predicts a class (a weak pseudo-labeller blind to poles or
    riders) says nothing about whether that class was generated well: its objects
    would all score 0, dragging down the images that carry rare classes, and be
    relabelled to whatever the judge sees there. Only the classes returned here
    make objects. ``mcoc_judged_share`` 0 keeps all 19 classes (docs/design.md §5 as written).
    ``n`` target train images are enough to see every class a judge predicts; they are
    read 64 at a time and predicted as ``_predict`` does.
    """
    share = cfg.mcoc_judged_share
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share < 1.0:
        raise MCOCError(f"mcoc_judged_share {share!r} must lie in [0, 1) (e.g. 0.001: predicted on 0.1 % of target pixels)")
    if share == 0:
        return np.ones(NUM_CLASSES, bool)
    target = run_dir.dataset(f"data/{cfg.target}", "train")
    n, step = min(n, len(target)), 64
    counts, pixels = np.zeros(NUM_CLASSES, np.int64), 0
    for start in range(0, n, step):
        predictions = _predict(judge, np.stack([target[i].image for i in range(start, min(start + step, n))]), cfg)
        counts += np.bincount(predictions.reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES]
        pixels += predictions.size
    return counts / pixels >= share


# --- filtering and rectification (stage generated/<source>-filtered) -------------------------------


def filtered_name(source: str) -> str:
    """``generated/flat`` (or ``flat``, ``data/flat``) -> ``generated/flat-filtered``."""
    return generation_stage(source) + FILTERED_SUFFIX


def generation_stage(source: str) -> str:
    """The generated stage of a source: ``flat`` / ``data/flat`` -> ``generated/flat``; ``generated/...`` stays."""
    return source if source.startswith(f"{generation.PREFIX}/") else generation.stage_name(source)


def filter_all(run_dir: RunDir, cfg: Profile, **options) -> dict[str, Path]:
    """``filter_set`` for every generated source of the profile; generated stage -> filtered path."""
    return {generation_stage(s): filter_set(run_dir, cfg, s, **options) for s in generation.sources(cfg)}


def filter_set(
    run_dir: RunDir,
    cfg: Profile,
    source: str,
    threshold: float | None = None,
    rectify_mode: str | None = None,
    fraction: float | None = None,
    batch_size: int = 64,
    within: str | None = None,
) -> Path:
    """Make (or reuse) stage ``generated/<source>-filtered``: score every image, drop, rectify, write.

    Images whose MCOC is under ``threshold`` (default ``mcoc_threshold``) are
    dropped (images without objects are kept); in the others, objects the judge
    assigns to one other class on more than ``fraction`` of their pixels are
    relabelled or set to ignore (``rectify_mode``, default ``mcoc_rectify``);
    ``within`` (default ``mcoc_rectify_within``) limits that class to the
    object's Cityscapes category or not. Writes ``mcoc.csv`` (every image:
    MCOC, kept, objects changed) and ``objects.csv`` (every changed object)
    beside the dataset.
    """
    threshold = check_threshold(cfg.mcoc_threshold if threshold is None else threshold)
    mode = cfg.mcoc_rectify if rectify_mode is None else rectify_mode
    fraction = cfg.mcoc_rectify_fraction if fraction is None else fraction
    within = cfg.mcoc_rectify_within if within is None else within
    if mode not in RECTIFY_MODES:
        raise MCOCError(f"mcoc_rectify {mode!r} unknown; valid: {', '.join(RECTIFY_MODES)}")
    if within not in RECTIFY_WITHIN:
        raise MCOCError(f"mcoc_rectify_within {within!r} unknown; valid: {', '.join(RECTIFY_WITHIN)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise MCOCError(f"mcoc_rectify_fraction {fraction!r} must lie in [0, 1] (e.g. 0.5: most of the object's pixels)")
    _check_min_pixels(cfg.mcoc_min_pixels)
    stage = generation_stage(source)
    if run_dir.manifest(stage) is None:
        raise MCOCError(f"run {run_dir.name!r} has no completed stage {stage!r}: generate it first (04_generation)")
    jstage = ensure_judge(run_dir, cfg)
    window = window_of(cfg)
    params = {
        "source": stage,
        "judge": judge_name(cfg),
        "threshold": threshold,
        "min_pixels": cfg.mcoc_min_pixels,
        "rectify": mode,
        "fraction": float(fraction),
        "within": within,
        "window": window,
        "judged_share": cfg.mcoc_judged_share,
        **_judge_weights(cfg, jstage),
    }

    def build(ctx):
        if not ctx.is_main:  # one process writes the filtered set; the others wait for it at the end of the stage
            return
        judge = load_judge(run_dir, cfg)
        judged = judged_classes(run_dir, cfg, judge)
        ctx.info["classes not judged"] = [c for c, j in zip(CLASS_NAMES, judged, strict=True) if not j]
        dataset = run_dir.dataset(stage, SPLIT)
        rows, changed_tables = [], []
        for batch in _batches(dataset, batch_size):
            images = np.stack([x.image for x in batch])
            labels = np.stack([x.label for x in batch])
            instances = np.stack([_instances(x) for x in batch])
            predictions = _predict(judge, images, cfg)
            found = objects(labels, instances, cfg.mcoc_min_pixels, judged)
            scores_ = score(labels, predictions, found=found)
            kept = keep(scores_.image, threshold)
            new, changed = rectify(labels, predictions, fraction=fraction, mode=mode, found=found, within=within)
            after = score(new, predictions, found=objects(new, instances, cfg.mcoc_min_pixels, judged)).image
            per_image = changed.groupby("image").size().reindex(range(len(batch)), fill_value=0).to_numpy()
            ids = [x.id for x in batch]
            changed_tables.append(changed.assign(id=[ids[i] for i in changed["image"]], kept=kept[changed["image"]]).drop(columns=["image", "object"]))
            for j, x in enumerate(batch):
                rows.append({"id": x.id, "mcoc": scores_.image[j], "kept": bool(kept[j]), "objects": int((scores_.objects["image"] == j).sum()),
                             "objects changed": int(per_image[j]), "mcoc rectified": after[j]})
            out = [
                Sample(x.image, new[j], x.depth, x.instances, x.id, {**x.meta, "mcoc": _finite(scores_.image[j]), "objects_changed": int(per_image[j])})
                for j, x in enumerate(batch)
                if kept[j]
            ]
            if out:
                write_cityscapes(out, ctx.out, SPLIT, progress=False)
        table = pd.DataFrame(rows)
        changes = pd.concat(changed_tables, ignore_index=True)[["id", "kept", "pixels", "class", "to", "share"]]
        if not table["kept"].any():
            raise MCOCError(
                f"mcoc_threshold {threshold} drops every image of {stage} (highest MCOC {np.nanmax(table['mcoc'].to_numpy(), initial=0):.3f}); "
                f"lower the threshold, or check the judge ({judge_name(cfg)}) and the stage-2 model"
            )
        table.to_csv(ctx.out / "mcoc.csv", index=False)
        changes.to_csv(ctx.out / "objects.csv", index=False)
        kept_changes = changes[changes["kept"]]
        ctx.info.update(
            {
                "images": len(table),
                "kept": int(table["kept"].sum()),
                "dropped": int((~table["kept"]).sum()),
                "images without objects": int(table["mcoc"].isna().sum()),
                "mcoc": nanmean(table["mcoc"]),
                "mcoc kept": nanmean(table.loc[table["kept"], "mcoc"]),
                "mcoc kept, rectified": nanmean(table.loc[table["kept"], "mcoc rectified"]),
                "objects": int(table["objects"].sum()),
                "objects kept": int(table.loc[table["kept"], "objects"].sum()),
                "objects relabelled": int((kept_changes["to"] != "ignore").sum()),
                "objects set to ignore": int((kept_changes["to"] == "ignore").sum()),
                "images changed": int((table["kept"] & (table["objects changed"] > 0)).sum()),
            }
        )

    inputs = [stage] + ([jstage] if jstage else [])
    return run_dir.stage(filtered_name(stage), params, build, inputs=inputs)


def image_scores(run_dir: RunDir, source: str) -> pd.DataFrame:
    """``mcoc.csv`` of a filtered stage: every generated image's MCOC, whether it was kept, objects changed."""
    stage = filtered_name(source) if not source.endswith(FILTERED_SUFFIX) else source
    if run_dir.manifest(stage) is None:
        raise MCOCError(f"run {run_dir.name!r} has no completed stage {stage!r}: run filter_set first")
    return pd.read_csv(run_dir.stage_path(stage) / "mcoc.csv")


def changed_objects(run_dir: RunDir, source: str) -> pd.DataFrame:
    """``objects.csv`` of a filtered stage: every object rectification changed (id, pixels, class, to, share, kept)."""
    stage = filtered_name(source) if not source.endswith(FILTERED_SUFFIX) else source
    image_scores(run_dir, stage)  # raises when the stage is missing
    return pd.read_csv(run_dir.stage_path(stage) / "objects.csv")


def summary(run_dir: RunDir, sources: Sequence[str]) -> pd.DataFrame:
    """One row per filtered set: images kept and dropped, MCOC before/after, objects relabelled or set to ignore."""
    rows = {}
    for source in sources:
        stage = filtered_name(source)
        manifest = run_dir.manifest(stage)
        if manifest is None:
            raise MCOCError(f"run {run_dir.name!r} has no completed stage {stage!r}: run filter_set first")
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


def rectification_figure(run_dir: RunDir, cfg: Profile, sources: str | Sequence[str], n: int = 3, cell_inches: float = 1.6) -> plt.Figure:
    """Before / after rectification: image, the map it came from, the judge's prediction, the rectified label.

    Per source, the ``n`` kept images with the most changed objects (the first kept ones when none changed).
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    judge = load_judge(run_dir, cfg)
    rows = []
    for source in sources:
        stage = generation_stage(source)
        table = image_scores(run_dir, stage)
        kept = table[table["kept"]].sort_values("objects changed", ascending=False, kind="stable").head(n)
        before, after = run_dir.dataset(stage, SPLIT), run_dir.dataset(filtered_name(stage), SPLIT)
        index_before = {sid: i for i, sid in enumerate(before.ids)}
        index_after = {sid: i for i, sid in enumerate(after.ids)}
        for _, row in kept.iterrows():
            b, a = before[index_before[row["id"]]], after[index_after[row["id"]]]
            p = _predict(judge, b.image[None], cfg)[0]
            label = f"{stage}\nMCOC {row['mcoc']:.2f}, {int(row['objects changed'])} changed"
            rows.append((label, [b.image, colorize(b.label), colorize(p), colorize(a.label)]))
    if not rows:
        raise MCOCError(f"the filtered sets of {sources} kept no image to show")
    return image_grid(rows, ("generated image", "map (before)", "judge", "rectified (after)"), cell_inches)


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
    best = _rank(table).iloc[0]
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


# --- MCOC-guided settings (stage mcoc/settings) ------------------------------------------------


def settings_grid(cfg: Profile) -> list[generation.Settings]:
    """Every combination of the profile's grid (guidance x conditioning scale x steps), scheduler ``gen_scheduler``."""
    points = list(itertools.product(cfg.mcoc_grid_guidance, cfg.mcoc_grid_conditioning, cfg.mcoc_grid_steps))
    if not points:
        raise MCOCError("the settings grid is empty: give mcoc_grid_guidance, mcoc_grid_conditioning and mcoc_grid_steps at least one value each")
    return [generation.settings(cfg, guidance_scale=float(g), conditioning_scale=float(c), steps=int(s)) for g, c, s in points]


def search_settings(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """Make (or reuse) stage ``mcoc/settings``: the MCOC of images generated from held-out maps with each setting.

    Held-out maps: ``held_out_maps``, one image each, the same seeds for every
    setting. Returns one row per setting (guidance scale, conditioning scale,
    steps, scheduler, MCOC, the judge's pixel accuracy, seconds per image), best
    first: highest MCOC, then faster.
    """
    points = settings_grid(cfg)
    if cfg.mcoc_grid_maps < 1:
        raise MCOCError(f"mcoc_grid_maps must be >= 1, got {cfg.mcoc_grid_maps}")
    _check_min_pixels(cfg.mcoc_min_pixels)
    sources = generation.sources(cfg)
    jstage = ensure_judge(run_dir, cfg)
    generation.ensure_model(run_dir, cfg)
    window = window_of(cfg)
    params = {
        "grid": [asdict(p) for p in points],
        "maps": cfg.mcoc_grid_maps,
        "sources": sources,
        "judge": judge_name(cfg),
        "min_pixels": cfg.mcoc_min_pixels,
        "seed": cfg.seed,
        "fit": cfg.gen_fit,
        "window": window,
        "judged_share": cfg.mcoc_judged_share,
        **_judge_weights(cfg, jstage),
    }

    def build(ctx):
        if not ctx.is_main:  # one process writes the settings table; the others wait for it at the end of the stage
            return
        model = generation.load_model(run_dir, cfg)
        judge = load_judge(run_dir, cfg)
        judged = judged_classes(run_dir, cfg, judge)
        maps = [generation.fit(m, model, cfg.gen_fit, "held-out maps") for m in held_out_maps(run_dir, cfg)]
        maps = depth.with_depth(maps, model, cfg)
        seeds = [generation.seed_of(cfg.seed, 10**6 + i, 0) for i in range(len(maps))]
        groups = {}  # same-size maps are scored together
        for i, m in enumerate(maps):
            groups.setdefault(m.label.shape, []).append(i)
        prepared = []
        for idx in groups.values():
            labels = np.stack([maps[i].label for i in idx])
            instances = np.stack([_instances(maps[i]) for i in idx])
            prepared.append((idx, labels, objects(labels, instances, cfg.mcoc_min_pixels, judged)))
        rows = []
        for p in points:
            per_image, hits, valid, seconds = [], 0, 0, 0.0
            for idx, labels, found in prepared:
                t0 = time.perf_counter()
                images = generation.generate_from(model, cfg, [maps[i] for i in idx], [seeds[i] for i in idx], p)
                seconds += time.perf_counter() - t0
                predictions = _predict(judge, images, cfg)
                per_image.append(score(labels, predictions, found=found).image)
                hits += int(((predictions == labels) & (labels != IGNORE)).sum())
                valid += int((labels != IGNORE).sum())
            rows.append({**asdict(p), "MCOC": nanmean(np.concatenate(per_image)), "pixel accuracy": hits / max(valid, 1),
                         "seconds per image": seconds / len(maps)})
        table = pd.DataFrame(rows)
        table.to_csv(ctx.out / "settings.csv", index=False)
        best = _rank(table).iloc[0]
        ctx.info.update({"maps": len(maps), "best": {k: _plain(best[k]) for k in ("guidance_scale", "conditioning_scale", "steps", "MCOC")}})

    inputs = [*sources, generation.MODEL_STAGE] + ([jstage] if jstage else [])
    path = run_dir.stage(SETTINGS_STAGE, params, build, inputs=inputs)
    return _rank(pd.read_csv(path / "settings.csv"))


def best_settings(table: pd.DataFrame, cfg: Profile) -> generation.Settings:
    """The best row of ``search_settings`` as generation ``Settings`` (scheduler ``gen_scheduler``)."""
    best = _rank(table).iloc[0]
    return generation.settings(cfg, guidance_scale=float(best["guidance_scale"]), conditioning_scale=float(best["conditioning_scale"]), steps=int(best["steps"]))


def settings_heatmap(table: pd.DataFrame, value: str = "MCOC") -> plt.Figure:
    """MCOC over guidance scale (rows) x conditioning scale (columns), one panel per step count; the best is boxed."""
    steps = sorted(table["steps"].unique())
    best = _rank(table).iloc[0]
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


# --- helpers of rectification ------------------------------------------------------------------


def _rectify(
    found: Objects, labels: np.ndarray, predictions: np.ndarray, fraction: float, mode: str, within: str = "any"
) -> tuple[np.ndarray, pd.DataFrame]:
    n = len(found) + 1
    bins = NUM_CLASSES + 1  # the last bin: predictions that are not classes
    pred = np.where(predictions < NUM_CLASSES, predictions, NUM_CLASSES).astype(np.int64)
    counts = np.bincount((found.ids.astype(np.int64) * bins + pred).reshape(-1), minlength=n * bins).reshape(n, bins)[:, :NUM_CLASSES]
    if within == "category":
        counts[_CATEGORY[found.cls][:, None] != _CATEGORY[None, :]] = -1
    counts[np.arange(n), found.cls] = -1  # the object's own class is not "another class"
    other = counts.argmax(1)
    share = counts[np.arange(n), other] / np.maximum(found.pixels, 1)
    changed = (share > fraction) & (np.arange(n) > 0) & (mode != "off")
    target = np.where(changed, other if mode == "relabel" else IGNORE, -1)
    new = labels.copy()
    mask = changed[found.ids]
    new[mask] = target[found.ids[mask]]
    rows = np.flatnonzero(changed)
    table = pd.DataFrame(
        {
            "image": found.image[rows],
            "object": rows,
            "pixels": found.pixels[rows],
            "class": [CLASS_NAMES[c] for c in found.cls[rows]],
            "to": ["ignore" if t == IGNORE else CLASS_NAMES[t] for t in target[rows]],
            "share": share[rows],
        }
    )
    return new, table


# --- helpers of the stages -------------------------------------------------------------------------


def _judge_weights(cfg: Profile, stage: str | None) -> dict[str, str]:
    """``{"judge_weights": fingerprint}`` for a judge loaded from a folder / cached hub id, else nothing.

    New weights at the judge's path then re-run the stage; stages judged by a model stage keep their hashes.
    """
    weights = None if stage is not None else weights_fingerprint(judge_name(cfg))
    return {} if weights is None else {"judge_weights": weights}


def _predict(judge, images: np.ndarray, cfg: Profile) -> np.ndarray:
    """The judge's trainIds for uint8 NxHxWx3 images, with the profile's window and batch cap (``segmenters.infer``)."""
    return predict(judge, images, window_of(cfg), batch=batch_of(cfg))[0]


def _batches(dataset, batch_size: int):
    """Lists of same-size samples, in order."""
    batch = []
    for i in range(len(dataset)):
        x = dataset[i]
        if batch and (len(batch) == batch_size or x.label.shape != batch[0].label.shape):
            yield batch
            batch = []
        batch.append(x)
    if batch:
        yield batch


def _rank(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["MCOC", "seconds per image"], ascending=[False, True], na_position="last", kind="stable").reset_index(drop=True)


def _instances(sample: Sample) -> np.ndarray:
    return sample.instances if sample.instances is not None else np.zeros(sample.label.shape, np.int32)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _finite(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)

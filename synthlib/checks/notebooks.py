"""What each notebook must have made: its expected counts, sizes and rows, derived from the profile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from synthlib.checks.generic import CheckError, _counts, dataset, images, miou, named, stage, table, values
from synthlib.profiles import Profile
from synthlib.runs import RunDir


def run_datasets(run_dir: RunDir, cfg: Profile, roots: Mapping[str, Any] | None = None) -> dict[str, dict[str, int]]:
    """00: every dataset of the run, each split: {name: {split: pairs}}.

    A minicity dataset holds exactly the profile's ``minicity_train`` / ``minicity_val`` /
    ``minicity_condition_val`` pairs at ``height`` x ``width``; a real one the pairs its
    stage recorded (at most ``max_train`` / ``max_val`` when set), each image the size of
    its label.
    """
    from synthlib import data

    out = {}
    for name in data.dataset_names(cfg):
        spec = data.source_spec(name, cfg, roots)
        info = stage(run_dir, f"data/{name}")["info"]
        out[name] = {}
        for split in data.splits_of(name, cfg):
            if spec["kind"] == "minicity":
                n, size = spec["sizes"][split], (cfg.height, cfg.width)
            else:
                n, size, cap = info.get(f"{split}_images"), None, spec["sizes"].get(split, 0)
                if cap and n is not None and n > cap:
                    raise CheckError(f"data/{name} ({split}): {n} images, more than the profile's cap of {cap}")
            out[name][split] = dataset(run_dir, f"data/{name}", split, n=n, size=size)
    return out


def pseudo_labeller(run_dir: RunDir, cfg: Profile, quality: pd.DataFrame) -> str:
    """01: the chosen pseudo-labeller's row of the quality table (its name for a folder / hub id).

    Stage ``pseudo_labels`` must have been made by the profile's ``pseudo_labeller``; a
    method name must be one of the measured candidates (a row of ``quality``, with
    finite mIoUs).
    """
    from synthlib import pseudo_labels
    from synthlib.segmenters import fit as seg

    chosen = stage(run_dir, pseudo_labels.STAGE)["params"].get("labeller")
    named(chosen, [cfg.pseudo_labeller], f"the pseudo-labeller of stage {pseudo_labels.STAGE} (the profile's pseudo_labeller)")
    if chosen == pseudo_labels.COLOUR:
        row = f"{pseudo_labels.COLOUR_LABEL} ({'+'.join(cfg.sources)})"
    elif chosen in seg.METHODS:
        row = f"{seg.LABELS[chosen]} ({cfg.uda_source})"
    else:
        return chosen
    named(row, list(quality.index), "the chosen pseudo-labeller among the measured candidates (add it to uda_methods to measure it)")
    miou(quality.loc[[row]], f"pseudo_label_quality, row {row!r}")
    return row


def pseudo_labelled(run_dir: RunDir, cfg: Profile) -> dict[str, int]:
    """01: stage ``pseudo_labels`` holds every target image of train and val, each with its confidence map."""
    from synthlib import pseudo_labels

    out = {}
    for split in ("train", "val"):
        target = f"data/{cfg.target}"
        out[split] = dataset(run_dir, pseudo_labels.STAGE, split, n=len(run_dir.dataset(target, split)), like=target)
        ids = run_dir.dataset(pseudo_labels.STAGE, split).ids
        folder = run_dir.stage_path(pseudo_labels.STAGE) / "confidence" / split
        images([folder / f"{i}_confidence.png" for i in ids], name=f"{pseudo_labels.STAGE} confidence maps ({split})", n=len(ids))
    return out


def generated_sets(run_dir: RunDir, cfg: Profile, summary: pd.DataFrame | None = None) -> dict[str, int]:
    """04_generation: every source's generated set: {stage: images}.

    Each holds ``gen_per_map`` images per map of its source's first ``gen_max_maps`` train
    maps (all when 0), each image the size of its map and of the model's aspect
    (``diff_resolution``). ``summary``: the notebook's table, with a row per set whose
    ``images`` are those.
    """
    from synthlib import generation

    out = {}
    for source in generation.sources(cfg):
        maps = len(run_dir.dataset(source, generation.SPLIT))
        n_maps = maps if cfg.gen_max_maps <= 0 else min(cfg.gen_max_maps, maps)
        made = generation.stage_name(source)
        out[made] = dataset(run_dir, made, generation.SPLIT, n=n_maps * cfg.gen_per_map, aspect=cfg.diff_resolution)
    if summary is not None:
        table(summary, rows=list(out), columns=["maps", "images per map", "images"], name="generation_sets")
        _counts(summary["images"], out, "generation_sets, column 'images'")
    return out


def filtered_sets(run_dir: RunDir, cfg: Profile, summary: pd.DataFrame | None = None) -> dict[str, tuple[int, int]]:
    """05: every generated set and its filtered set: {generated stage: (images kept, images)}.

    The filtered set holds the images ``mcoc.csv`` marks kept (at least one, never more
    than the unfiltered set), each the size of the generated image of the same id; every
    image's MCOC is in [0, 1] (NaN: no object). ``summary``: the notebook's table, with a
    row per set whose ``images`` and ``kept`` are those.
    """
    from synthlib import generation, mcoc

    out = {}
    for source in generation.sources(cfg):
        made = mcoc.generation_stage(source)
        total = dataset(run_dir, made, generation.SPLIT)
        scores = mcoc.image_scores(run_dir, made)
        table(scores, columns=["id", "mcoc", "kept"], n_rows=total, name=f"{mcoc.filtered_name(made)}/mcoc.csv")
        values(scores["mcoc"], f"{mcoc.filtered_name(made)}/mcoc.csv, column 'mcoc'", 0.0, 1.0, allow_nan=True)
        kept = int(scores["kept"].astype(bool).sum())
        n = dataset(run_dir, mcoc.filtered_name(made), generation.SPLIT, n=kept, like=made)
        if n > total:
            raise CheckError(f"{mcoc.filtered_name(made)}: {n} images, more than the {total} of {made}")
        out[made] = (n, total)
    if summary is not None:
        table(summary, rows=list(out), columns=["images", "kept", "dropped"], name="mcoc_filtering")
        _counts(summary["images"], {k: v[1] for k, v in out.items()}, "mcoc_filtering, column 'images'")
        _counts(summary["kept"], {k: v[0] for k, v in out.items()}, "mcoc_filtering, column 'kept'")
    return out


def edited_sets(run_dir: RunDir, cfg: Profile) -> dict[str, int]:
    """05_zero_shot: each condition's edited set holds the first ``zs_max_images`` clear train images (0: all), at their size."""
    from synthlib import zero_shot

    clear = zero_shot.source_set(cfg)
    available = len(run_dir.dataset(clear, "train"))
    # as zero_shot.edited counts them; not a call into it, since a change to zero_shot.py re-keys its stages
    n = available if cfg.zs_max_images <= 0 else min(cfg.zs_max_images, available)
    return {c: dataset(run_dir, zero_shot.set_stage("edited", c), n=n, like=clear) for c in cfg.conditions}


def translated_sets(run_dir: RunDir, cfg: Profile) -> dict[str, int]:
    """04_translation_baselines: every ``translated/<method>-<source>``: {stage: images}.

    Each holds every train image of its source, with the same ids and sizes.
    """
    from synthlib import translation

    out = {}
    for source in cfg.sources:
        n = len(run_dir.dataset(f"data/{source}", "train"))
        for method in translation.methods(cfg):
            name = f"translated/{method}-{source}"
            out[name] = dataset(run_dir, name, "train", n=n, like=f"data/{source}")
    return out


def translation_rows(cfg: Profile) -> list[tuple[str, str]]:
    """04_translation_baselines: the rows of its tables, (source, method) with ``source only`` first per source."""
    from synthlib import translation

    return [(s, translation.display_name(m)) for s in cfg.sources for m in ["none", *translation.methods(cfg)]]


def segmentation_rows(run_dir: RunDir, cfg: Profile, training_sets: Sequence[str] | None = None) -> list[str]:
    """06: the rows its tables must have: a model per training set (the run's by default) and 01's UDA models."""
    from synthlib import segmentation
    from synthlib.segmenters import fit as seg

    sets = segmentation.training_sets(run_dir, cfg) if training_sets is None else training_sets
    rows = [segmentation.display_name(seg.model_stage("supervised", s), cfg) for s in sets]
    return rows + [r for r in segmentation.uda_models(run_dir, cfg) if r not in rows]


# --- helpers ------------------------------------------------------------------------------------

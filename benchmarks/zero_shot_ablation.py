"""SDGPA's parts ablated: patch-wise against whole-image editing, the intermediate domain, progressive adaptation, self-training.

    python benchmarks/zero_shot_ablation.py --run default                          # every variant, seed 0
    python benchmarks/zero_shot_ablation.py --run default --variants SDGPA "whole images" --seeds 0,1,2

Needs a run whose stages 00 and 01 are done (the clear target's data and segmenter,
the conditions' val sets). Each variant and seed is a run ``<run>-zs-<variant>-seed<k>``
that links those stages (nothing of the run is written) and adapts the clear target's
segmenter to every condition with the profile's ``zs_*`` fields changed as the variant
says (``zero_shot.adapt_all``, 05_zero_shot's code). Variants that edit as SDGPA does
link its edited sets instead of editing again. Every model is evaluated on each
condition's val. Writes the table ``zero_shot_ablation`` into the run's tables: mIoU
per condition, variant and seed, the mean and std over seeds, and the change from
source only and from SDGPA with every part on.
"""

from __future__ import annotations

import argparse
import re

import pandas as pd

from synthlib import data, profiles, report, runs, zero_shot
from synthlib.segmenters import fit

#: Variant -> profile overrides; the first has every part on, and the others are compared with it.
VARIANTS: dict[str, dict] = {
    "SDGPA": {},
    "whole images": {"zs_patch": ()},
    "no intermediate domain": {"zs_intermediate": False},
    "not progressive": {"zs_progressive": False},
    "no self-training": {"zs_self_training": False},
}
SOURCE_ONLY = "source only"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run with stages 00 and 01 done")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (editing and segmenter training)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = profiles.load(args.profile)
    source_run = runs.open(args.run)
    source_model = fit.model_stage("supervised", zero_shot.source_set(cfg))
    linked = [f"data/{n}" for n in (cfg.target, *data.condition_names(cfg))] + [source_model]
    vals = dict(zip(cfg.conditions, data.eval_sets(cfg)[1:], strict=True))
    results = {}
    for seed in seeds:
        sdgpa_run = None
        for variant in args.variants:
            vcfg = profiles.load(args.profile, seed=seed, **VARIANTS[variant])
            run_dir = runs.open(f"{args.run}-zs-{re.sub(r'[^a-z0-9]+', '-', variant.lower())}-seed{seed}", source_run.path.parent)
            run_dir.link_from(source_run, linked, hint=": run notebooks 00 and 01 on it first")
            if sdgpa_run is not None and zero_shot.edit_settings(vcfg) == zero_shot.edit_settings(cfg):
                run_dir.link_from(sdgpa_run, [zero_shot.set_stage("edited", c) for c in cfg.conditions])  # the same edits
            adapted = zero_shot.adapt_all(run_dir, vcfg)
            if not VARIANTS[variant]:
                sdgpa_run = run_dir
            for condition, model in adapted.items():
                table = fit.evaluate(run_dir, vcfg, model, [vals[condition]])
                results[(condition, variant, seed)] = table.loc[vals[condition], "mIoU"]
            if variant == args.variants[0]:  # the linked source model is the same in every variant's run
                before = fit.evaluate(run_dir, vcfg, source_model, list(vals.values()))["mIoU"]
                for condition, val in vals.items():
                    results[(condition, SOURCE_ONLY, seed)] = before[val]
    table = summarise(pd.Series(results))
    pd.set_option("display.width", 200)
    print("mIoU (%) on each condition's val")
    print(table.round(2).to_string())
    title = "SDGPA ablated: mIoU (%) on each condition's val (benchmarks/zero_shot_ablation.py)"
    report.write_table(table, source_run, cfg, "zero_shot_ablation", title, digits=2)


def summarise(results: pd.Series) -> pd.DataFrame:
    """(condition, variant, seed) -> mIoU as a row per condition and variant: each seed, mean, std, and the changes.

    ``- source only`` and ``- SDGPA`` are differences of means; a row without either
    reference gets NaN there.
    """
    wide = results.unstack(2)
    out = wide.rename(columns=lambda s: f"seed {s}")
    out["mean"] = wide.mean(axis=1)
    out["std"] = wide.std(axis=1, ddof=1) if wide.shape[1] > 1 else float("nan")
    conditions = out.index.get_level_values(0)
    for reference in (SOURCE_ONLY, next(iter(VARIANTS))):
        means = out["mean"].xs(reference, level=1) if reference in out.index.get_level_values(1) else pd.Series(dtype=float)
        out[f"- {reference}"] = out["mean"] - means.reindex(conditions).to_numpy()
    order = [SOURCE_ONLY, *VARIANTS]
    index = pd.MultiIndex.from_product([conditions.unique(), [v for v in order if v in out.index.get_level_values(1)]])
    return out.reindex(index).dropna(how="all").rename_axis(["condition", "variant"])


if __name__ == "__main__":
    main()

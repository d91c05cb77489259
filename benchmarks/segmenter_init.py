"""Segmenters from the zoo's pretrained encoder against random initialisation: quality, seeds and steps.

    python benchmarks/segmenter_init.py                                     # zoo:mit-b0 vs mit-b0, 600 steps, 3 seeds
    python benchmarks/segmenter_init.py --models zoo:mit-b0 --steps 300 600 1200 --seeds 0
    python benchmarks/segmenter_init.py --run segmenter-init                # also write the table into that run

Trains the oracle (target train) and source only (each source) through the project's own
stages, for each model spec, step budget, learning rate and training seed, on one set of
datasets (prepared once in the run ``segmenter-init-data`` and linked into the others),
and prints per configuration: mIoU on target val (mean and std over seeds), source-only as
a percentage of the oracle, the oracle's worst class and how many of the 19 classes it
learns (IoU >= 5), and the median step time. The zoo encoder is built first when missing
(``synthlib zoo build``).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics

import pandas as pd

from synthlib import data, profiles, report, runs
from synthlib.labels import CLASS_NAMES
from synthlib.segmenters import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--models", nargs="+", default=["zoo:mit-b0", "mit-b0"])
    ap.add_argument("--steps", type=int, nargs="+", default=[600])
    ap.add_argument("--lr", type=float, nargs="+", default=[None], help="seg_lr values (default: the profile's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (the datasets stay the same)")
    ap.add_argument("--oracle-only", action="store_true", help="train on the target alone (no source-only rows)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="other profile fields, e.g. seg_rcs_temperature=0.01")
    ap.add_argument("--run", help="write the table as table segmenter_init of this run (then `synthlib results --run`)")
    args = ap.parse_args()
    pd.set_option("display.width", 220)
    extra = profiles.parse_assignments(args.set)
    base = profiles.load(args.profile, extra)
    data_run = runs.open(f"segmenter-init-data-{args.profile}")
    data.prepare(data_run, base)
    train_sets = ([] if args.oracle_only else [f"data/{s}" for s in base.sources]) + [f"data/{base.target}"]
    tag = "".join(f"-{k}{v}" for k, v in extra.items())
    rows = []
    for model in args.models:
        for steps in args.steps:
            for lr in args.lr:
                for seed in args.seeds:
                    cfg = profiles.load(args.profile, extra, seg_model=model, seg_steps=steps, seg_lr=lr, seed=seed)
                    name = f"segmenter-init-{args.profile}-{model}-{steps}-{cfg.seg_lr:g}{tag}-s{seed}"
                    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                    run_dir = runs.open(name)
                    run_dir.link_from(data_run, train_sets)
                    fit.fit_many(run_dir, cfg, [(t, "supervised", None) for t in train_sets])
                    for train_set in train_sets:
                        stage = fit.model_stage("supervised", train_set)
                        row = fit.evaluate(run_dir, cfg, stage, [f"data/{cfg.target}:val"]).iloc[0]
                        history = json.loads((run_dir.path / stage / "history.json").read_text())
                        rows.append({"model": model, "steps": steps, "lr": cfg.seg_lr, "seed": seed,
                                     "trained on": train_set.split("/")[1], "mIoU": row["mIoU"],
                                     **{c: row[c] for c in CLASS_NAMES},
                                     "s/step": statistics.median(history["step_seconds"])})
    table = summarise(pd.DataFrame(rows), base.target)
    print(f"mIoU (%) on {base.target} val; mean and std over seeds {args.seeds}")
    print(table.round(2).to_string())
    if args.run:
        out = runs.open(args.run)
        report.write_table(table, out, base, "segmenter_init",
                           f"Segmenters from the zoo encoder vs random init: mIoU (%) on {base.target} val, mean and std "
                           f"over training seeds {args.seeds} (same datasets); source only as % of the oracle; the "
                           "oracle's worst class IoU and its classes with IoU >= 5")


def summarise(rows: pd.DataFrame, target: str) -> pd.DataFrame:
    """One row per (model, steps, lr, trained on): mIoU mean/std over seeds, % of oracle, the oracle's class coverage."""
    keys = ["model", "steps", "lr", "trained on"]
    out = rows.groupby(keys, sort=False)["mIoU"].agg(["mean", "std"]).rename(columns={"mean": "mIoU", "std": "std"})
    oracle = out.xs(target, level="trained on")["mIoU"]
    out["% of oracle"] = [100 * m / oracle.loc[k[:3]] for k, m in out["mIoU"].items()]
    classes = rows.groupby(keys, sort=False)[list(CLASS_NAMES)].mean()
    out["worst class IoU"] = classes.min(axis=1)
    out["classes >= 5"] = (classes >= 5).sum(axis=1)
    out["s/step"] = rows.groupby(keys, sort=False)["s/step"].median()
    return out


if __name__ == "__main__":
    main()

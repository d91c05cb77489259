"""The two segmenter backends side by side: transformers' loop and mmsegmentation's Runner, same budget.

    python benchmarks/seg_backends.py --run default                  # seed 0
    python benchmarks/seg_backends.py --run default --seeds 0,1,2    # three seeds

Trains source only (each source) and the oracle with ``seg_backend`` "transformers" and
"mmseg" (the 'mmseg' extra): the same SegFormer, the same pretrained encoder, steps,
batch, crop, learning-rate schedule and rare-class sampling, each in a run
``<run>-<backend>-seed<k>`` that links the run's stage-00 datasets (nothing of the run
is rewritten). Both are evaluated by the project's own code on the target val. Writes
the table ``seg_backends`` into the run's tables: mIoU per backend and seed, the mean,
and the difference mmseg - transformers with its spread over seeds.
"""

from __future__ import annotations

import argparse

import pandas as pd

from synthlib import data, profiles, report, runs
from synthlib.segmenters import fit

BACKENDS = ("transformers", "mmseg")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = profiles.load(args.profile)
    names = [*cfg.sources, cfg.target]
    source_run = runs.open(args.run)
    data.prepare(source_run, cfg, names=names)
    rows = {f"source only ({s})": f"data/{s}" for s in cfg.sources} | {"oracle": f"data/{cfg.target}"}
    results = {}
    for seed in seeds:
        for backend in BACKENDS:
            run_dir = runs.open(f"{args.run}-{backend}-seed{seed}", source_run.path.parent)
            run_dir.link_from(source_run, [f"data/{n}" for n in names], hint=": run notebook 00 on it first")
            bcfg = profiles.load(args.profile, seed=seed, seg_backend=backend)
            fit.fit_many(run_dir, bcfg, [(train_set, "supervised", None) for train_set in rows.values()])
            for label, train_set in rows.items():
                stage = fit.model_stage("supervised", train_set)
                row = fit.evaluate(run_dir, bcfg, stage, [f"data/{cfg.target}:val"]).iloc[0]
                results[(label, backend, seed)] = row["mIoU"]
    table = compare(pd.Series(results))
    pd.set_option("display.width", 200)
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(2).to_string())
    report.write_table(
        table, source_run, cfg, "seg_backends",
        f"Segmenter backends, same budget: mIoU (%) on {cfg.target} val (benchmarks/seg_backends.py)", digits=2,
    )


def compare(results: pd.Series) -> pd.DataFrame:
    """(row, backend, seed) -> mIoU as one row per training set: each backend's seeds and mean, and their difference."""
    wide = results.unstack([1, 2])
    out = pd.DataFrame(index=results.index.get_level_values(0).unique())
    for backend in BACKENDS:
        for seed in sorted(results.index.get_level_values(2).unique()):
            out[f"{backend} seed {seed}"] = wide[(backend, seed)]
        out[f"{backend} mean"] = wide[backend].mean(axis=1)
    diff = wide["mmseg"] - wide["transformers"]
    out["mmseg - transformers"] = diff.mean(axis=1)
    out["difference std"] = diff.std(axis=1, ddof=1) if diff.shape[1] > 1 else float("nan")
    return out


if __name__ == "__main__":
    main()

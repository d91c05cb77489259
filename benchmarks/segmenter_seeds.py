"""How far the main table's rows move with the downstream segmenter's seed.

    python benchmarks/segmenter_seeds.py --run default --seeds 1,2

Every row of the main table is one segmenter trained once. This retrains the rows that
the main comparison rests on (source only, the generated sets unfiltered and filtered, the
UDA methods named by ``--uda``) with other seeds: other initial weights, crops and batch
order, on the same training sets. Each seed trains in a run ``<run>-seed<k>`` that links
the source run's datasets and training sets, so nothing of the source run is written;
the run's own seed reads 06's models (trained there if missing).
Prints mIoU on target val per seed with the mean and standard deviation per row, and
writes the table ``segmenter_seeds`` into the source run's tables.
"""

from __future__ import annotations

import argparse

import pandas as pd

from synthlib import generation, mcoc, profiles, report, runs, segmentation
from synthlib.segmenters import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run with 06 done")
    ap.add_argument("--profile", default=None, help="default: the run's name if it is a profile, else 'default'")
    ap.add_argument("--seeds", default="1,2", help="comma-separated seeds besides the run's own")
    ap.add_argument("--uda", default="self_training", help="comma-separated UDA methods to retrain ('' = none)")
    args = ap.parse_args()
    cfg = profiles.load(args.profile or (args.run if args.run in profiles.names() else "default"))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if cfg.seed in seeds or not seeds:
        raise SystemExit(f"--seeds {args.seeds!r}: give seeds other than the run's own ({cfg.seed})")
    source = runs.open(args.run)
    target = f"data/{cfg.target}"
    jobs = {}
    for src in cfg.sources:
        jobs[f"source only ({src})"] = (f"data/{src}", "supervised", None)
        unfiltered = generation.stage_name(f"data/{src}")
        jobs[f"generated ({src})"] = (unfiltered, "supervised", None)
        jobs[f"generated, filtered + rectified ({src})"] = (mcoc.filtered_name(unfiltered), "supervised", None)
    for method in filter(None, args.uda.split(",")):
        jobs[f"{fit.LABELS.get(method, method)} ({cfg.uda_source})"] = (f"data/{cfg.uda_source}", method, target)
    sets = segmentation.eval_sets(cfg)  # 06's, so the run's cached evaluations are found; the table reads target val
    needed = {train_set for train_set, _, _ in jobs.values()} | {s.split(":")[0] for s in sets}
    columns = {}
    for seed in seeds:  # first: they need only the training sets, so they can run beside the run's own 06
        seed_cfg = profiles.load(cfg.name, seed=seed)
        run_dir = runs.open(f"{args.run}-seed{seed}", source.path.parent)
        run_dir.link_from(source, sorted(needed), hint=": run notebooks 00-05 on it first")
        columns[f"seed {seed}"] = _miou(run_dir, seed_cfg, jobs, sets)
    columns[f"seed {cfg.seed}"] = _miou(source, cfg, jobs, sets)  # the run's own models (trained here if missing)
    table = pd.DataFrame(columns).rename_axis("training data / method")
    table = table[[f"seed {cfg.seed}", *(f"seed {seed}" for seed in seeds)]]
    table = table.assign(mean=table.mean(axis=1), std=table.std(axis=1))
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(2).to_string())
    report.write_table(table, source, cfg, "segmenter_seeds",
                       f"mIoU (%) on {cfg.target} val of the main table's rows, the downstream segmenter trained with "
                       "other seeds on the same training sets; mean and standard deviation over the seeds")


def _miou(run_dir: runs.RunDir, cfg: profiles.Profile, jobs: dict, sets: list[str]) -> dict[str, float]:
    fit.fit_many(run_dir, cfg, list(jobs.values()))  # seg_workers at a time; current stages are only found
    return {name: fit.evaluate(run_dir, cfg, fit.model_stage(method, train_set), sets).loc[sets[0], "mIoU"]
            for name, (train_set, method, _) in jobs.items()}


if __name__ == "__main__":
    main()

"""How far the main table's rows move with the downstream segmenter's seed.

    python benchmarks/segmenter_seeds.py --run default --seeds 1,2

Every row of the main table is one segmenter trained once. This retrains the rows that
the main comparison rests on (source only, the generated sets unfiltered and filtered, the
translated sets of the methods named by ``--i2i``, the UDA methods named by ``--uda``, and
the oracle) with other seeds: other initial weights, crops and batch order, on the same
training sets. The seed moves the downstream segmenter only: the training sets (generated,
filtered, translated) are the source run's. Each seed trains in a run ``<run>-seed<k>`` that links
the source run's datasets and training sets, so nothing of the source run is written;
the run's own seed reads 06's models (trained there if missing).
Prints mIoU on target val per seed with the mean and standard deviation per row, and
writes the table ``segmenter_seeds`` (``--table``) into the source run's tables, and
``segmenter_seeds_margin``: per source, ours (filtered + rectified) against the best
translation row by mean, the margin, twice the pooled seed std, and the share of the
source-only -> oracle gap each closes (mean over seeds of the per-seed share).
"""

from __future__ import annotations

import argparse

import pandas as pd

from synthlib import generation, mcoc, profiles, report, runs, segmentation
from synthlib.segmenters import fit
from synthlib.translation import display_name as i2i_name

ORACLE = "oracle (target labels)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run with 06 done")
    ap.add_argument("--profile", default=None, help="default: the run's name if it is a profile, else 'default'")
    ap.add_argument("--seeds", default="1,2", help="comma-separated seeds besides the run's own")
    ap.add_argument("--uda", default="self_training", help="comma-separated UDA methods to retrain ('' = none)")
    ap.add_argument("--table", default="segmenter_seeds",
                    help="the tables' name (and NAME_margin), so that another run's rows can sit beside the main run's")
    ap.add_argument("--i2i", default="colour,cyclegan_k10",
                    help="comma-separated translation methods whose translated sets to retrain on ('' = none)")
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
        for method in filter(None, args.i2i.split(",")):
            jobs[f"{i2i_name(method)} ({src})"] = (f"translated/{method}-{src}", "supervised", None)
    for method in filter(None, args.uda.split(",")):
        jobs[f"{fit.LABELS.get(method, method)} ({cfg.uda_source})"] = (f"data/{cfg.uda_source}", method, target)
    jobs[ORACLE] = (target, "supervised", None)
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
    report.write_table(table, source, cfg, args.table,
                       f"mIoU (%) on {cfg.target} val of the main table's rows, the downstream segmenter trained with "
                       "other seeds on the same training sets; mean and standard deviation over the seeds")
    i2i = [m for m in args.i2i.split(",") if m]
    if i2i:
        margin = margins(table.drop(columns=["mean", "std"]), cfg.sources, [i2i_name(m) for m in i2i])
        print(margin.round(2).to_string())
        report.write_table(margin, source, cfg, f"{args.table}_margin",
                           f"Ours (generated + MCOC filter + rectification) against the best translation baseline, mIoU (%) on "
                           f"{cfg.target} val over {len(table.columns) - 2} downstream seeds; gap closed = share of the "
                           "source-only -> oracle gap (mean of the per-seed shares)")


def margins(per_seed: pd.DataFrame, sources: list[str], i2i: list[str]) -> pd.DataFrame:
    """Per source: ours and the best translation row (by mean over seeds), the margin and twice the pooled std.

    ``per_seed`` has one column per seed and rows named as ``main`` writes them. The pooled
    std is the root mean square of the two rows' standard deviations over seeds.
    """
    rows = {}
    for src in sources:
        ours = per_seed.loc[f"generated, filtered + rectified ({src})"]
        unfiltered = per_seed.loc[f"generated ({src})"]
        baselines = {name: per_seed.loc[f"{name} ({src})"] for name in i2i}
        best_name = max(baselines, key=lambda name: baselines[name].mean())
        best = baselines[best_name]
        only, oracle = per_seed.loc[f"source only ({src})"], per_seed.loc[ORACLE]
        gap = oracle - only
        rows[src] = {
            "ours": ours.mean(), "ours std": ours.std(), "unfiltered": unfiltered.mean(),
            "best translation": best_name, "its mIoU": best.mean(), "its std": best.std(),
            "margin": ours.mean() - best.mean(),
            "2 x pooled std": 2 * ((ours.std() ** 2 + best.std() ** 2) / 2) ** 0.5,
            "ours gap closed %": (100 * (ours - only) / gap).mean(),
            "best translation gap closed %": (100 * (best - only) / gap).mean(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("source")


def _miou(run_dir: runs.RunDir, cfg: profiles.Profile, jobs: dict, sets: list[str]) -> dict[str, float]:
    fit.fit_many(run_dir, cfg, list(jobs.values()))  # seg_workers at a time; current stages are only found
    return {name: fit.evaluate(run_dir, cfg, fit.model_stage(method, train_set), sets).loc[sets[0], "mIoU"]
            for name, (train_set, method, _) in jobs.items()}


if __name__ == "__main__":
    main()

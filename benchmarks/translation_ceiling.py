"""minicity's gap, decomposed at the run's budget: what colour statistics, FDA and a perfect translation close.

    python benchmarks/translation_ceiling.py --run default                # the run's own training seed
    python benchmarks/translation_ceiling.py --run default --seeds 1,2    # and two more

minicity can shade a source style's scenes with the target style's appearance
(``data/flat_as_real``): the perfect translation of every source map, with its
pixel-perfect labels. Per source, the downstream segmenter (06's settings) is trained
on the source (source only), on the source in Lab colour transfer and in FDA (the
run's ``translated/colour-<source>`` and ``translated/fda-<source>`` sets), on the
perfect translation, and on the target (oracle). The share of the source-only ->
oracle gap each closes says how much of the gap is appearance that global statistics
fix, how much needs semantics (the rest of the perfect translation's share), and how
much is layout, which no appearance model removes.

Needs a run whose stage-00 datasets exist (the translated sets and every model are made
if missing). Other seeds train in runs ``<run>-seed<k>`` that link this run's datasets,
as ``segmenter_seeds.py`` does; nothing of this run is rewritten. Writes the
``data/<source>_as_<target>`` stages, their models and evaluations into the run (07
shows them as the ceiling row) and the table ``translation_ceiling`` into its tables:
mIoU per seed, mean and std per row, and the share of the gap closed (mean and std
over seeds).
"""

from __future__ import annotations

import argparse

import pandas as pd

from synthlib import data, profiles, report, runs, segmentation
from synthlib.segmenters import fit
from synthlib.translation import baselines

#: Rows per source: label -> training set (``{s}`` the source, ``{c}`` its perfect translation).
ROWS = {
    "source only": "data/{s}",
    "Lab colour transfer": "translated/colour-{s}",
    "FDA": "translated/fda-{s}",
    "perfect translation": "data/{c}",
}
ORACLE = "oracle"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default")
    ap.add_argument("--profile", default=None, help="default: the run's name if it is a profile, else 'default'")
    ap.add_argument("--seeds", default="", help="comma-separated training seeds besides the run's own")
    args = ap.parse_args()
    cfg = profiles.load(args.profile or (args.run if args.run in profiles.names() else "default"))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if cfg.seed in seeds:
        raise SystemExit(f"--seeds {args.seeds!r}: the run's own seed {cfg.seed} is always measured; give others")
    names = data.ceiling_names(cfg)
    if not names:
        raise SystemExit(f"profile {cfg.name!r}: the ceiling needs minicity sources and target (got {cfg.sources} -> {cfg.target})")
    source_run = runs.open(args.run)
    data.prepare(source_run, cfg, names=names)
    jobs = {}
    for ceiling in names:
        source = ceiling.split(data.AS)[0]
        for method in ("colour", "fda"):
            baselines.write_set(source_run, cfg, method, source)
        for label, pattern in ROWS.items():
            jobs[(source, label)] = pattern.format(s=source, c=ceiling)
    jobs[("", ORACLE)] = f"data/{cfg.target}"
    sets = segmentation.eval_sets(cfg)  # 06's evaluation sets, so 06's cached evaluations are reused
    needed = set(jobs.values()) | {s.split(":")[0] for s in sets}
    columns = {}
    for seed in seeds:  # first: they need only the datasets, so they can run beside the run's own 06
        run_dir = runs.open(f"{args.run}-seed{seed}", source_run.path.parent)
        run_dir.link_from(source_run, sorted(needed), hint=": run notebook 00 on it first")
        columns[f"seed {seed}"] = _miou(run_dir, profiles.load(cfg.name, seed=seed), jobs, sets)
    columns[f"seed {cfg.seed}"] = _miou(source_run, cfg, jobs, sets)
    table = decompose(pd.DataFrame(columns)[[f"seed {cfg.seed}", *(f"seed {s}" for s in seeds)]])
    pd.set_option("display.width", 200)
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(2).to_string())
    report.write_table(table, source_run, cfg, "translation_ceiling",
                       f"mIoU (%) on {cfg.target} val of the downstream segmenter trained on each source, on it in Lab "
                       "colour transfer and FDA, on its perfect translation (its maps in the target's look), and on the "
                       f"target (oracle), per training seed; mean, std, and the share of the source-only -> oracle gap "
                       "each closes (mean and std over seeds)")


def decompose(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Rows (source, training data) x columns ``seed k``: add mean, std and the share of the gap each row closes.

    The share is computed per seed, (row - source only) / (oracle - source only) in %, then
    averaged, so its std says how far one seed's decomposition can be trusted.
    """
    seeds = list(per_seed.columns)
    oracle = per_seed.loc[("", ORACLE)]
    closed = {}
    for (source, label), row in per_seed.iterrows():
        if label != ORACLE:
            only = per_seed.loc[(source, "source only")]
            closed[(source, label)] = 100 * (row - only) / (oracle - only)
    closed = pd.DataFrame(closed).T.reindex(per_seed.index)
    table = per_seed.assign(mean=per_seed[seeds].mean(axis=1), std=per_seed[seeds].std(axis=1))
    table["gap closed (%)"] = closed.mean(axis=1)
    table["gap closed std"] = closed.std(axis=1)
    return table.rename_axis(["source", "training data"])


def _miou(run_dir: runs.RunDir, cfg: profiles.Profile, jobs: dict, sets: list[str]) -> dict:
    fit.fit_many(run_dir, cfg, [(train_set, "supervised", None) for train_set in jobs.values()])
    return {key: fit.evaluate(run_dir, cfg, fit.model_stage("supervised", train_set), sets).loc[sets[0], "mIoU"]
            for key, train_set in jobs.items()}


if __name__ == "__main__":
    main()

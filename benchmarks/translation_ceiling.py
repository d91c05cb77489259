"""The ceiling of generation and translation on minicity: source maps rendered in the target's look.

    python benchmarks/translation_ceiling.py --run default

minicity can shade a source style's scenes with the target style's appearance
(``data/flat_as_real``): the perfect translation of every source map, with its
pixel-perfect labels. The downstream segmenter (06's settings) trained on it shows
how much of the source-only -> oracle gap any method that keeps the source maps
(generation, image-to-image translation) could close; the rest is the layout gap
(camera, class mix, object sizes), which no appearance model removes.

Needs a run whose stage-00 datasets exist (the source-only and oracle models are
trained if missing). Writes the ``data/<source>_as_<target>`` stages, their models
and evaluations into the run (07 shows them as the ceiling row) and the table
``translation_ceiling`` into the run's tables.
"""

from __future__ import annotations

import argparse

import pandas as pd

from synthlib import data, profiles, report, runs, segmentation
from synthlib.segmenters import fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default")
    ap.add_argument("--profile", default=None, help="default: the run's name if it is a profile, else 'default'")
    args = ap.parse_args()
    cfg = profiles.load(args.profile or (args.run if args.run in profiles.names() else "default"))
    names = data.ceiling_names(cfg)
    if not names:
        raise SystemExit(f"profile {cfg.name!r}: the ceiling needs minicity sources and target (got {cfg.sources} -> {cfg.target})")
    run_dir = runs.open(args.run)
    data.prepare(run_dir, cfg, names=names)
    sets = segmentation.eval_sets(cfg)  # 06's evaluation sets, so 06's cached evaluations are reused
    for ceiling in names:  # first: the rest are 06's models, which a running 06 may be training now
        fit.fit(run_dir, cfg, f"data/{ceiling}")
    rows = {}
    for ceiling in names:
        source = ceiling.split(data.AS)[0]
        miou = {}
        for label, train_set in (("source only", f"data/{source}"), ("perfect translation", f"data/{ceiling}"),
                                 ("oracle", f"data/{cfg.target}")):
            fit.fit(run_dir, cfg, train_set)
            miou[label] = fit.evaluate(run_dir, cfg, fit.model_stage("supervised", train_set), sets).loc[sets[0], "mIoU"]
        miou["gap closed (%)"] = 100 * (miou["perfect translation"] - miou["source only"]) / (miou["oracle"] - miou["source only"])
        rows[source] = miou
    table = pd.DataFrame(rows).T.rename_axis("source")
    print(table.round(1).to_string())
    report.write_table(table, run_dir, cfg, "translation_ceiling",
                       f"mIoU (%) on {cfg.target} val: source maps rendered in the target's look (the perfect translation) "
                       "beside source only and the oracle; the share of the gap it closes")


if __name__ == "__main__":
    main()

"""Measure minicity's synthetic-to-real gap: source-only vs oracle, own-domain val, colour normalisation.

    python benchmarks/minicity_gap.py                       # the default profile: 64x128, 500/200, 1200 steps
    python benchmarks/minicity_gap.py --seeds 0 1 2         # stability over worlds and initialisations
    python benchmarks/minicity_gap.py --run minicity-gap    # also write table minicity_gap into that run's tables

Trains one small UNet per training domain (flat, game, real; each source in Lab colour
transfer and in FDA to real images; each source's scenes in real's look: the perfect
translation) with the same budget and prints mIoU on real val and on each model's own val,
the percentage of the oracle, the share of the gap that per-channel colour normalisation,
colour transfer, FDA and perfect translation close, and whether minicity's promises hold
(docs/design.md §4). About ten minutes per seed on an idle 2-core CPU. The same
decomposition with the run's own segmenter and budget: benchmarks/translation_ceiling.py.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from synthlib import profiles, report, runs
from synthlib.minicity_gap import check_requirements, measure_gap, summary
from synthlib.translation import fourier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=500)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="world and training seeds, one run each")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-translation", action="store_true", help="skip the two perfect-translation models")
    ap.add_argument("--no-baselines", action="store_true", help="skip the Lab colour transfer and FDA models")
    ap.add_argument("--fda-beta", type=float, default=profiles.load("default").i2i_fda_beta)
    ap.add_argument("--run", help="write the full table (all seeds, per-class IoU) as table minicity_gap of this run "
                    "directory, with its provenance; `synthlib results --run NAME` publishes it")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)

    tables = []
    for seed in args.seeds:
        start = time.perf_counter()
        table = measure_gap(args.height, args.width, args.n_train, args.n_val, args.steps, seed=seed,
                            batch_size=args.batch_size, threads=args.threads, log=lambda m: print("  " + m, flush=True),
                            translation=not args.no_translation,
                            translators=None if args.no_baselines else {
                                "Lab colour transfer": fourier.colour_transfer,
                                "FDA": lambda images, refs: fourier.fda(images, refs, args.fda_beta)})
        print(f"\nseed {seed}: {args.height}x{args.width}, n_train {args.n_train}, n_val {args.n_val}, "
              f"{args.steps} steps x batch {args.batch_size}, {time.perf_counter() - start:.0f} s")
        print(summary(table).to_string())
        ious = table.drop(columns=["trained_on", "evaluated_on", "input_norm", "pct_of_oracle", "gap_closed",
                                   "mIoU16", "mIoU13", "pixel_acc"])
        print("\nper-class IoU (%)")
        print(ious.round(0).astype("Int64").T.to_string())
        for name, ok in check_requirements(table).items():
            print(f"  [{'ok' if ok else 'FAIL'}] {name}")
        tables.append(table.assign(seed=seed))
    full = pd.concat(tables)
    if len(args.seeds) > 1:
        agg = full.groupby(level=0, sort=False)[["mIoU", "pct_of_oracle", "gap_closed"]].agg(["mean", "min", "max"])
        print("\nover seeds", args.seeds)
        print(agg.round(1).to_string())
    if args.run:
        caption = (f"minicity's gap: mIoU (%) per training and evaluation domain, {args.height}x{args.width}, "
                   f"{args.n_train}/{args.n_val} images, {args.steps} steps x batch {args.batch_size}, seeds {args.seeds}")
        path = report.write_table(full, runs.open(args.run), profiles.load("default"), "minicity_gap", caption)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

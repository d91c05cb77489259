"""Which SegFormer config the embedded profile should train: quality per class against cost.

    python benchmarks/segmenter_choice.py                                  # mit-b0 vs mit-b0-s2, 400 steps
    python benchmarks/segmenter_choice.py --models mit-b0 --steps 200 400 800
    python benchmarks/segmenter_choice.py --models zoo:mit-b0 --steps 600 1500 3000 --oracle-only
    python benchmarks/segmenter_choice.py --models zoo:mit-b0 --steps 600 --size 128 256 --oracle-only

Trains the oracle (target train) and source only (``--source``) of each config through
the project's own stages (a run per config and budget, so results are cached) and
prints mIoU on target val, the thin classes a 1/4-resolution head loses first, and
the median step time. SegFormer predicts at the stride of its first stage: at 64x128
the stock MiT-B0 head sees 16x32, the ``-s2`` configs 32x64. ``--size H W`` renders the
world at another resolution (crop = whole image): is the oracle limited by pixels or by steps?
"""

from __future__ import annotations

import argparse
import json
import statistics

import pandas as pd

from synthlib import data, profiles, runs
from synthlib.labels import CLASS_NAMES
from synthlib.segmenters import fit

THIN = ["pole", "traffic light", "traffic sign", "person", "rider", "bicycle", "wall", "fence", "bus", "motorcycle"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--models", nargs="+", default=["mit-b0", "mit-b0-s2"])
    ap.add_argument("--steps", type=int, nargs="+", default=[400])
    ap.add_argument("--source", default="game")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="world resolution (default: the profile's)")
    ap.add_argument("--oracle-only", action="store_true", help="train the oracle alone")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    rows = []
    for model in args.models:
        for steps in args.steps:
            size = {"height": args.size[0], "width": args.size[1], "seg_crop": tuple(args.size)} if args.size else {}
            cfg = profiles.load(args.profile, {"seg_model": model, "seg_steps": steps, **size})
            tag = f"-{args.size[0]}x{args.size[1]}" if args.size else ""
            run_dir = runs.open(f"segmenter-choice-{args.profile}-{model.replace(':', '-')}-{steps}{tag}")
            sets = [f"data/{cfg.target}"] if args.oracle_only else [f"data/{args.source}", f"data/{cfg.target}"]
            data.prepare(run_dir, cfg, names=[s.split("/")[1] for s in sets])
            for train_set in sets:
                stage = fit.model_stage("supervised", train_set)
                fit.fit(run_dir, cfg, train_set)
                row = fit.evaluate(run_dir, cfg, stage, [f"data/{cfg.target}:val"]).iloc[0]
                history = json.loads((run_dir.path / stage / "history.json").read_text())
                rows.append({"model": model, "steps": steps, "trained on": train_set.split("/")[1], "mIoU": row["mIoU"],
                             "classes >= 5": int((row[list(CLASS_NAMES)] >= 5).sum()),
                             **{c: row[c] for c in THIN},
                             "s/step": statistics.median(history["step_seconds"]) if "step_seconds" in history else None})
    table = pd.DataFrame(rows).set_index(["model", "steps", "trained on"])
    print(table.round(2).to_string())


if __name__ == "__main__":
    main()

"""Does ROAD-Net's distillation (dst) help once the frozen copy holds learned features?

    python benchmarks/road_init.py --run default

ROAD-Net's dst pulls the encoder toward a frozen copy of its *initial* weights: ImageNet
features in the paper, random ones for our segmenters built from configs. This starts
both arms from the run's source-only segmenter (``models/supervised/data/<uda_source>``)
and trains them for ``seg_steps`` more on the source: plain supervised vs dst, adapting to
the target's unlabelled images. It prints target val mIoU of each and the difference.

Needs a run whose stages 00 and 01 are done. Trains in run directory ``<run>-road-init``
beside it, whose data stages are symbolic links to the run's; nothing of the run is written.
"""

from __future__ import annotations

import argparse

from synthlib import profiles, runs
from synthlib.segmenters import fit as seg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="default", help="the run with stages 00 and 01 done")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--methods", nargs="+", default=["supervised", "road_dst"])
    args = ap.parse_args()
    base = profiles.load(args.profile)
    source = runs.open(args.run)
    init = seg.model_stage("supervised", f"data/{base.uda_source}")
    if source.manifest(init) is None:
        raise SystemExit(f"run {args.run!r} has no stage {init!r}: run 01 first")
    cfg = profiles.load(args.profile, seg_model=str(source.stage_path(init) / "model"))
    run_dir = runs.open(f"{args.run}-road-init", source.path.parent)
    for name in (base.uda_source, base.target):
        link = run_dir.stage_path(f"data/{name}")
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source.stage_path(f"data/{name}").resolve())
    target_val = f"data/{base.target}:val"
    scores = {}
    for method in args.methods:
        seg.fit(run_dir, cfg, f"data/{base.uda_source}", method, target=f"data/{base.target}")
        table = seg.evaluate(run_dir, cfg, seg.model_stage(method, f"data/{base.uda_source}"), [target_val])
        scores[method] = float(table.loc[target_val, "mIoU"])
    for method, value in scores.items():
        print(f"{method:>14} from the source-only segmenter: {value:.2f} mIoU on {target_val}")
    if "supervised" in scores:
        for method, value in scores.items():
            if method != "supervised":
                print(f"{method} - supervised: {value - scores['supervised']:+.2f}")


if __name__ == "__main__":
    main()

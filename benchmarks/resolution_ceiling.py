"""What the generator's resolution alone costs downstream: the perfect translation, sharp and through the sampling size.

    python benchmarks/resolution_ceiling.py --run default
    python benchmarks/resolution_ceiling.py --run default --seeds 1,2

The embedded diffusion model samples at ``diff_resolution`` (32x64) and its images are
enlarged to the world's size (64x128) with ``diffusion.model.resize``. minicity's
perfect translation (``data/<source>_as_<target>``: each source map in the target's look,
pixel-perfect labels) is the best any generator could give. Trained on it once as it is
and once shrunk to ``diff_resolution`` and enlarged back by the very same resize, the
downstream segmenter (06's settings) tells how much of the gap between ours and that
ceiling is resolution, which no better stage 1 or 2 at this size can remove; the rest
is what the generated images get wrong at their size.

Runs in ``<run>-resolution`` (and ``<run>-resolution-seed<k>`` per other seed), whose
datasets are links to the run's (the perfect translations are made there if missing);
the shrunk sets are stages ``lowres/<source>_as_<target>`` of those runs, so the run's
07 never lists them. Writes the table ``resolution_ceiling`` into the run's tables.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from synthlib import data, profiles, report, runs, segmentation
from synthlib.datasets import write_cityscapes
from synthlib.diffusion.model import resize
from synthlib.segmenters import fit
from synthlib.translation.baselines import Translated

PREFIX = "lowres"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default")
    ap.add_argument("--profile", default=None, help="default: the run's name if it is a profile, else 'default'")
    ap.add_argument("--seeds", default="", help="comma-separated training seeds besides the run's own")
    args = ap.parse_args()
    cfg = profiles.load(args.profile or (args.run if args.run in profiles.names() else "default"))
    seeds = [cfg.seed, *(int(s) for s in args.seeds.split(",") if s.strip() and int(s) != cfg.seed)]
    names = data.ceiling_names(cfg)
    if not names:
        raise SystemExit(f"profile {cfg.name!r}: the ceiling needs minicity sources and target (got {cfg.sources} -> {cfg.target})")
    size = tuple(cfg.diff_resolution)
    source_run = runs.open(args.run)
    data.prepare(source_run, cfg, names=names)
    sets = segmentation.eval_sets(cfg)
    columns = {}
    for seed in seeds:
        run_dir = runs.open(f"{args.run}-resolution" + (f"-seed{seed}" if seed != cfg.seed else ""), source_run.path.parent)
        run_dir.link_from(source_run, sorted({*(f"data/{n}" for n in names), *(s.split(":")[0] for s in sets)}))
        jobs = {}
        for name in names:
            jobs[(name.split(data.AS)[0], "perfect translation")] = f"data/{name}"
            jobs[(name.split(data.AS)[0], f"perfect translation through {size[0]}x{size[1]}")] = shrunk(run_dir, name, size)
        seed_cfg = profiles.load(cfg.name, seed=seed)
        fit.fit_many(run_dir, seed_cfg, [(train_set, "supervised", None) for train_set in jobs.values()])
        columns[f"seed {seed}"] = {key: fit.evaluate(run_dir, seed_cfg, fit.model_stage("supervised", train_set), sets).loc[sets[0], "mIoU"]
                                   for key, train_set in jobs.items()}  # fmt: skip
    table = pd.DataFrame(columns)
    table = table.assign(mean=table.mean(axis=1), std=table.std(axis=1)).rename_axis(["source", "training data"])
    print(f"mIoU (%) on {cfg.target} val")
    print(table.round(2).to_string())
    report.write_table(table, source_run, cfg, "resolution_ceiling",
                       f"mIoU (%) on {cfg.target} val of the downstream segmenter trained on each source's perfect "
                       f"translation, as it is and shrunk to the generator's {size[0]}x{size[1]} and enlarged back "
                       "(benchmarks/resolution_ceiling.py)")  # fmt: skip


def shrunk(run_dir: runs.RunDir, name: str, size: tuple[int, int]) -> str:
    """Stage ``lowres/<name>``: ``data/<name>``'s train images through ``size`` and back, the same labels."""
    stage = f"{PREFIX}/{name}"

    def build(ctx):
        write_cityscapes(Translated(run_dir.dataset(f"data/{name}", "train"), lambda images, _: round_trip(images, size)), ctx.out, "train")

    run_dir.stage(stage, {"size": list(size), "resize": "diffusion.model.resize"}, build, inputs=[f"data/{name}"])
    return stage


def round_trip(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 NxHxWx3 images shrunk to ``size`` and enlarged back, as generated images are."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    back = resize(resize(x, size), images.shape[1:3])
    return (back.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


if __name__ == "__main__":
    main()

"""Batched generation against a naive loop that makes one image per call, same model and settings.

    python benchmarks/generation_speed.py --profile default             # the profile's model config, untrained
    python benchmarks/generation_speed.py --profile default --run default   # the run's trained stage-2 model
    python benchmarks/generation_speed.py --profile smoke --n 8 --steps 5   # a quick check

Maps are minicity ``game`` val scenes at the profile's size, with depth. The
batched path is what stage 04 runs (``synthlib.generation.generate_from``,
``gen_batch`` images per sampling call); the naive loop calls it once per map.
Both use the same seeds and settings (``gen_*``; ``--steps`` overrides the
step count), and the images agree up to float rounding. Prints each repeat,
the medians and the throughput ratio (target: batched >= 2x naive).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from synthlib import diffusion, generation, profiles, runs
from synthlib.minicity import generate_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--run", default=None, help="a run directory whose stage-2 model to use; default: an untrained model of the profile's config")
    ap.add_argument("--n", type=int, default=32, help="maps (images) per measurement")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps; default: the profile's gen_steps")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", default="{}", help='JSON profile overrides, e.g. \'{"diff_model": "zoo:prior", "diff_resolution": [64, 128]}\'')
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile, {**json.loads(args.set), "gen_steps": args.steps})
    if args.run:
        model = diffusion.load(runs.open(args.run).stage_path(generation.MODEL_STAGE) / "model")
    else:
        base = diffusion.build(cfg.diff_model, cfg.diff_resolution, cfg.diff_prompt, cfg.diff_prediction, cfg.seed, patch=cfg.diff_patch)
        model = diffusion.add_branch(base, cfg.diff_branch, cfg.diff_depth)
    maps = generate_many(cfg.seed, "game", range(args.n), cfg.height, cfg.width, split="val", workers=2)
    seeds = list(range(args.n))
    settings = generation.sampling_settings(cfg)
    print(f"{args.n} maps at {cfg.height}x{cfg.width}, model {model.info.get('config', model.info.get('source'))} at "
          f"{model.resolution[0]}x{model.resolution[1]} ({model.conditioning['branch']}), {settings}, batch {cfg.gen_batch}")

    generation.generate_from(model, cfg, maps[:2], seeds[:2])  # warm-up
    batched, naive = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        together = generation.generate_from(model, cfg, maps, seeds)
        batched.append(time.perf_counter() - start)
        start = time.perf_counter()
        alone = np.concatenate([generation.generate_from(model, cfg, [m], [s]) for m, s in zip(maps, seeds, strict=True)])
        naive.append(time.perf_counter() - start)
        diff = int(np.abs(together.astype(int) - alone.astype(int)).max())
        print(f"repeat {r}: batched {batched[-1]:.1f} s, one per call {naive[-1]:.1f} s (largest pixel difference {diff})", flush=True)
    b, n = statistics.median(batched), statistics.median(naive)
    print(f"median: batched {args.n / b:.2f} images/s, one per call {args.n / n:.2f} images/s -> ratio {n / b:.2f}x")


if __name__ == "__main__":
    main()

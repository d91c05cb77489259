"""Median training step time and sampling cost of the profile's diffusion model, per stage and branch.

    python benchmarks/diffusion_speed.py --profile default
    python benchmarks/diffusion_speed.py --profile default --resolution 64 128

Trains on random images through the project's own loop (the UNet alone, as in
pretraining and stage 1; the concat branch; the ControlNet branch with the
UNet frozen) and times ``generate`` with and without classifier-free guidance.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from synthlib import diffusion, profiles
from synthlib.datasets import Dataset, Sample
from synthlib.diffusion.common import settings
from synthlib.diffusion.train import Examples, train


class _Random(Dataset):
    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng(i)
        image = rng.integers(0, 255, (self.h, self.w, 3), dtype=np.uint8)
        label = rng.integers(0, 19, (self.h, self.w), dtype=np.uint8)
        return Sample(image, label, rng.uniform(1, 80, (self.h, self.w)).astype(np.float32), id=str(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--resolution", type=int, nargs=2, default=None, help="(h, w); default: the profile's diff_resolution")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=32, help="images per sampling measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile, diff_resolution=args.resolution)
    resolution = tuple(cfg.diff_resolution)
    data = _Random(64, cfg.height, cfg.width)
    base = diffusion.build(cfg.diff_model, resolution, cfg.diff_prompt, cfg.diff_prediction, seed=cfg.seed, patch=cfg.diff_patch)
    params = sum(p.numel() for p in base.unet.parameters()) / 1e6
    print(f"profile {cfg.name}: {cfg.diff_model} ({params:.2f} M UNet parameters, {base.space} space) at {resolution}, "
          f"batch {cfg.diff_batch}, {args.threads} threads")
    s = replace(settings(cfg, "stage2"), steps=args.steps, checkpoint_every=0, eval_every=0)
    maps = np.stack([data[i].label for i in range(args.images)])
    depth = np.stack([data[i].depth for i in range(args.images)])
    for name in ("unet", "concat", "controlnet"):
        model = base if name == "unet" else diffusion.add_branch(base, name, cfg.diff_depth)
        conditioning = None if name == "unet" else {"size": model.condition_size, "depth": "dataset" if cfg.diff_depth else None}
        history = train(model, Examples([(data, 0)], resolution, s, conditioning), [cfg.diff_prompt], s, progress=False)
        step = statistics.median(history["step_seconds"][2:])  # the first steps warm up allocators
        line = f"train {name:10s} median {step:.3f} s/step"
        for w in (1.0, 2.0) if name != "unet" else (1.0,):
            t = time.perf_counter()
            diffusion.generate(model, maps if name != "unet" else None, depth if name != "unet" else None,
                               seeds=range(args.images), guidance_scale=w, steps=cfg.diff_sample_steps, scheduler=cfg.diff_scheduler)
            line += f" | sampling w={w:g}: {(time.perf_counter() - t) / args.images * 1000:.1f} ms/image ({cfg.diff_sample_steps} steps)"
        print(line)


if __name__ == "__main__":
    main()

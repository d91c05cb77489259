"""Median training step time and inference throughput of the profile's segmenter.

    python benchmarks/segmenter_speed.py --profile default

Trains on random images at the profile's crop size through the project's own
training loop (source only and each UDA method, since they cost more per step),
and times batched whole-image inference at the profile's image size.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from synthlib import profiles, segmenters
from synthlib.datasets import Dataset, Sample
from synthlib.segmenters import fit


class _Random(Dataset):
    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng(i)
        return Sample(rng.integers(0, 255, (self.h, self.w, 3), dtype=np.uint8), rng.integers(0, 19, (self.h, self.w), dtype=np.uint8), id=str(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", default="supervised,advent,road,self_training")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile)
    data = _Random(64, cfg.height, cfg.width)
    print(f"profile {cfg.name}: {cfg.seg_model}, batch {cfg.seg_batch}, crop {tuple(cfg.seg_crop)}, {args.threads} threads")
    for method in args.methods.split(","):
        settings = fit.settings(cfg, method)
        settings = type(settings)(**{**settings.__dict__, "steps": args.steps, "checkpoint_every": 0})
        model = segmenters.build(cfg.seg_model)
        history = segmenters.train(model, data, settings, target=data if settings.needs_target else None, progress=False)
        step = statistics.median(history["step_seconds"][2:])  # the first steps warm up allocators
        print(f"train {method:14s} median {step:.3f} s/step")
    model = segmenters.build(cfg.seg_model).eval()
    images = np.stack([data[i].image for i in range(32)])
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        segmenters.predict(model, images)
        rates.append(len(images) / (time.perf_counter() - t))
    print(f"inference median {statistics.median(rates):.0f} images/s at {cfg.height}x{cfg.width} (batch 32)")


if __name__ == "__main__":
    main()

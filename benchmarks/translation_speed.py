"""Median CycleGAN training step time and translation throughput of the profile's translation baselines.

    python benchmarks/translation_speed.py --profile default

Trains the profile's CycleGAN (plain, and with semantic guidance through two of
the profile's segmenters) on random images at the profile's image size through
the project's own training loop, and times translation (CycleGAN generator,
FDA, colour transfer) of a batch of 32 images.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from synthlib import profiles, segmenters
from synthlib.datasets import Dataset, Sample
from synthlib.translation import baselines, cyclegan, fourier


class _Random(Dataset):
    def __init__(self, n: int, h: int, w: int, seed: int) -> None:
        self.n, self.h, self.w, self.seed = n, h, w, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, i])
        image = rng.integers(0, 255, (self.h, self.w, 3), dtype=np.uint8)
        return Sample(image, rng.integers(0, 19, (self.h, self.w), dtype=np.uint8), id=str(i))


def _rate(fn, n: int, repeats: int = 5) -> float:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="plain,guided")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiles.load(args.profile)
    h, w = cfg.height, cfg.width
    settings = replace(baselines.cyclegan_settings(cfg), steps=args.steps, decay_steps=args.steps // 2, checkpoint_every=0)
    source, target = _Random(64, h, w, 0), _Random(64, h, w, 1)
    print(
        f"profile {cfg.name}: {h}x{w}, ngf {settings.ngf}, ndf {settings.ndf}, {settings.blocks} blocks, "
        f"{settings.disc_layers}-layer PatchGAN, batch {settings.batch_size}, crop {settings.crop}, {args.threads} threads"
    )
    for variant in args.variants.split(","):
        guidance = None
        if variant == "guided":
            guidance = cyclegan.Guidance(segmenters.build(cfg.seg_model, 1), segmenters.build(cfg.seg_model, 2), _Random(10, h, w, 2))
        model = cyclegan.CycleGAN.build(settings)
        history = cyclegan.train(model, source, target, settings, guidance, progress=False)
        step = statistics.median(history["step_seconds"][2:])  # the first steps warm up allocators
        print(f"train {variant:7s} median {step:.3f} s/step ({settings.batch_size / step:.1f} image pairs/s)")
    images = np.stack([source[i].image for i in range(32)])
    references = [target[i].image for i in range(32)]
    print(f"translate CycleGAN  median {_rate(lambda: cyclegan.translate(model.g_st, images), 32):.0f} images/s (batch 32)")
    print(f"translate FDA       median {_rate(lambda: fourier.fda(images, references, cfg.i2i_fda_beta), 32):.0f} images/s")
    print(f"translate colour    median {_rate(lambda: fourier.colour_transfer(images, references), 32):.0f} images/s")


if __name__ == "__main__":
    main()

"""How fast MCOC scores and rectifies label maps (segmenter inference excluded).

    python benchmarks/mcoc_speed.py                      # 1000 maps at 128x256, instances and components, 3 repeats
    python benchmarks/mcoc_speed.py --no-instances       # objects = connected components only
    python benchmarks/mcoc_speed.py --n 200 --height 64 --repeats 1

The target: 1,000 maps of 128x256 scored in under 10 s on 2 cores. The maps
are minicity ``game`` scenes (``--unique`` of them, repeated to ``--n``); the
"predictions" are the maps with a tenth of the pixels and some whole objects
swapped to another class, so every code path (hits, misses, rectification)
does work. Prints each repeat and the median of scoring, and of rectifying.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from synthlib import mcoc
from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.minicity import generate_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--unique", type=int, default=100, help="distinct scenes, repeated to --n")
    ap.add_argument("--min-pixels", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-instances", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    scenes = generate_many(0, "game", range(min(args.unique, args.n)), args.height, 2 * args.height, workers=2)
    reps = -(-args.n // len(scenes))
    labels = np.concatenate([np.stack([s.label for s in scenes])] * reps)[: args.n]
    instances = None if args.no_instances else np.concatenate([np.stack([s.instances for s in scenes])] * reps)[: args.n]
    rng = np.random.default_rng(0)
    predictions = labels.copy()
    noise = rng.random(labels.shape) < 0.1
    predictions[noise] = rng.integers(0, NUM_CLASSES, int(noise.sum()))
    predictions[predictions == IGNORE] = 0
    predictions[labels == 16] = 15  # every train seen as a bus: objects to rectify
    print(f"{args.n} maps at {args.height}x{2 * args.height} ({len(scenes)} distinct) prepared in {time.perf_counter() - t0:.1f} s")

    score_times, rectify_times = [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        scores = mcoc.score(labels, predictions, instances, min_pixels=args.min_pixels)
        score_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        _, changed = mcoc.rectify(labels, predictions, instances, min_pixels=args.min_pixels)
        rectify_times.append(time.perf_counter() - start)
        print(
            f"repeat {r}: score {score_times[-1]:.2f} s, rectify {rectify_times[-1]:.2f} s "
            f"({len(scores.objects)} objects, dataset MCOC {scores.dataset:.3f}, {len(changed)} objects rectified)",
            flush=True,
        )
    what = "components only" if args.no_instances else "instances + components"
    print(
        f"median: score {statistics.median(score_times):.2f} s, rectify {statistics.median(rectify_times):.2f} s "
        f"for {args.n} maps at {args.height}x{2 * args.height} ({what}, min_pixels {args.min_pixels})"
    )


if __name__ == "__main__":
    main()

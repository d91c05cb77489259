"""How fast minicity generates samples (image, label, depth, instances).

    python benchmarks/minicity_speed.py                     # 1000 images at 128x256, 3 repeats, 1 process
    python benchmarks/minicity_speed.py --workers 2         # both cores
    python benchmarks/minicity_speed.py --style flat --n 200 --height 64
    python benchmarks/minicity_speed.py --style mix --n 150 --height 64   # the domain-randomised corpus

The target: 1,000 images at 128x256 in under 60 s on 2 cores. Prints each repeat and the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from synthlib.minicity import CONDITIONS, CORPUS_STYLES, STYLES, generate_many


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--style", choices=(*STYLES, *CORPUS_STYLES, "all"), default="all",
                    help="'all' splits n over the three styles; 'mix' is the pretraining corpus")
    ap.add_argument("--condition", choices=CONDITIONS, default="clear")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    styles = STYLES if args.style == "all" else (args.style,)
    times = []
    for r in range(args.repeats):
        start = time.perf_counter()
        for k, style in enumerate(styles):
            lo, hi = k * args.n // len(styles), (k + 1) * args.n // len(styles)
            cond = args.condition if style == "real" else "clear"
            generate_many(r, style, range(lo, hi), args.height, 2 * args.height, cond, workers=args.workers)
        times.append(time.perf_counter() - start)
        print(f"repeat {r}: {times[-1]:.1f} s ({1000 * times[-1] / args.n:.1f} ms/image)", flush=True)
    med = statistics.median(times)
    print(f"median: {med:.1f} s for {args.n} images at {args.height}x{2 * args.height} "
          f"(style {args.style}, {args.workers} worker(s)) -> {args.n / med:.0f} images/s")


if __name__ == "__main__":
    main()

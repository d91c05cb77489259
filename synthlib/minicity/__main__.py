"""Look at minicity from the command line.

    python -m synthlib.minicity stats --n 500            # class presence and pixel share per style
    python -m synthlib.minicity grid out.png --n 6       # images and colourised labels of every style
    python -m synthlib.minicity conditions out.png       # one target scene under every condition
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from PIL import Image

from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, colorize

from .world import CONDITIONS, STYLES, MiniCity, generate


def class_table(n: int, height: int, seed: int, split: str) -> pd.DataFrame:
    """Per style: % of images containing each class and % of all pixels it covers (void listed apart)."""
    cols = {}
    void = {}
    for style in STYLES:
        present = np.zeros(NUM_CLASSES)
        pixels = np.zeros(256)
        for s in MiniCity(style, split, n, height, 2 * height, seed=seed, cache=0):
            counts = np.bincount(s.label.ravel(), minlength=256)
            present += counts[:NUM_CLASSES] > 0
            pixels += counts
        cols[(style, "images %")] = 100 * present / n
        cols[(style, "pixels %")] = 100 * pixels[:NUM_CLASSES] / pixels.sum()
        void[style] = 100 * pixels[IGNORE] / pixels.sum()
    table = pd.DataFrame(cols, index=pd.Index(CLASS_NAMES, name="class"))
    table.loc["void (255)"] = [void[s] if k == "pixels %" else np.nan for s, k in table.columns]
    return table


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m synthlib.minicity", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stats", help="class presence and pixel share per style")
    gr = sub.add_parser("grid", help="a PNG of images and labels of every style")
    co = sub.add_parser("conditions", help="a PNG of one target scene under every condition")
    for p, n in ((st, 500), (gr, 6), (co, 1)):
        p.add_argument("--n", type=int, default=n)
        p.add_argument("--height", type=int, default=64 if p is st else 128)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--split", default="train")
    for p in (gr, co):
        p.add_argument("out")
        p.add_argument("--start", type=int, default=0, help="first scene index")
    args = ap.parse_args()
    if args.cmd == "stats":
        pd.set_option("display.width", 200)
        print(f"{args.n} {args.split} images per style at {args.height}x{2 * args.height}, seed {args.seed}")
        print(class_table(args.n, args.height, args.seed, args.split).round(2).to_string())
        return
    h, w = args.height, 2 * args.height
    if args.cmd == "grid":
        rows = []
        for i in range(args.start, args.start + args.n):
            row = []
            for style in STYLES:
                s = generate(args.seed, style, i, h, w, split=args.split)
                row += [s.image, colorize(s.label)]
            rows.append(np.concatenate(row, 1))
        grid = np.concatenate(rows, 0)
    else:
        grid = np.concatenate([
            np.concatenate([generate(args.seed, "real", i, h, w, c, args.split).image for c in CONDITIONS], 1)
            for i in range(args.start, args.start + args.n)
        ], 0)
    Image.fromarray(grid).save(args.out)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()

"""The zero-shot editor's guidance settings and speed: how much layout an edit keeps, and seconds per image.

    python benchmarks/editor_settings.py                           # zoo:editor, 8 clear minicity val images
    python benchmarks/editor_settings.py --editor /models/instruct-pix2pix --size 512 1024 --patch 512 512

For each (guidance, image guidance) pair, every image is edited by each instruction and
scored by how much of its layout the edit keeps: the correlation between the
horizontal gradients of the input and of the edit (1 = the same edges). The mean
brightness of the edits shows whether the instruction acts (fog brightens, night
darkens). Speed: seconds per image, whole and patch-wise, median over instructions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from synthlib import editing
from synthlib.minicity import MiniCity
from synthlib.zoo.editor import INSTRUCTIONS


def edge_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over images of the correlation of the two images' horizontal grey-level gradients."""
    def grad(x: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(x.astype(np.float64).mean(-1), axis=-1)).ravel()

    return float(np.mean([np.corrcoef(grad(x), grad(y))[0, 1] for x, y in zip(a, b, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--editor", default="zoo:editor")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, nargs=2, default=[64, 128])
    ap.add_argument("--patch", type=int, nargs=2, default=[32, 64])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, nargs="+", default=[3.0, 7.5])
    ap.add_argument("--image-guidance", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    args = ap.parse_args()
    editor = editing.load_editor(args.editor)
    images = MiniCity("real", "val", args.images, *args.size, seed=0).arrays()[0]
    rows = []
    for image_guidance in args.image_guidance:
        for guidance in args.guidance:
            s = editing.EditSettings(steps=args.steps, guidance=guidance, image_guidance=image_guidance, batch=16)
            row = {"guidance": guidance, "image guidance": image_guidance}
            for condition, instruction in INSTRUCTIONS.items():
                edited = editing.edit(editor, images, instruction, s, progress=False)
                row[f"edges kept ({condition})"] = edge_correlation(images, edited)
                row[f"brightness ({condition})"] = float(edited.mean())
            rows.append(row)
    table = pd.DataFrame(rows).set_index(["guidance", "image guidance"])
    print(f"input brightness {images.mean():.0f}")
    print(table.round(3).to_string())
    for name, patch in (("whole", None), ("patch-wise", tuple(args.patch))):
        s = editing.EditSettings(steps=args.steps, patch=patch, batch=16)
        seconds = []
        for instruction in INSTRUCTIONS.values():
            t0 = time.perf_counter()
            editing.edit(editor, images, instruction, s, progress=False)
            seconds.append((time.perf_counter() - t0) / len(images))
        print(f"{name}: {statistics.median(seconds):.3f} s per image ({args.steps} steps)")


if __name__ == "__main__":
    main()

"""What each diffusion design can reach at best: real target images through its bottleneck, scored like generated ones.

    python benchmarks/latent_ceiling.py --run default
    python benchmarks/latent_ceiling.py --run default --vae zoo:vae --n 200

A latent model can at best generate what its VAE decodes; a pixel model sampled at
32x64 and enlarged to 64x128 can at best generate an enlarged 32x64 image. Each row
sends the target's val images through one such bottleneck and scores them as stage
2 scores generated images: the oracle's mIoU against the images' own labels
(faithfulness), the Fréchet distance of the oracle's features to the target's train
images (appearance), and PSNR against the originals. Needs a run whose stage 01 is
done (the oracle). Prints the table and writes ``<run>/tables/latent_ceiling.{csv,md}``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch
from diffusers import AutoencoderKL

from synthlib import profiles, report, runs, zoo
from synthlib.diffusion import scores
from synthlib.diffusion.common import images_of, load_judge
from synthlib.diffusion.model import resize
from synthlib.zoo.vae import to_unit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="default", help="a run with stage 01 done (the oracle)")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--vae", default="zoo:vae", help="the VAE of the latent design: zoo:NAME or a diffusers AutoencoderKL folder")
    ap.add_argument("--low", default="32,64", help="the pixel design's sampling size, enlarged back to the images' size")
    ap.add_argument("--n", type=int, default=200, help="val images scored")
    args = ap.parse_args()
    cfg = profiles.load(args.profile)
    run_dir = runs.open(args.run)
    oracle = load_judge(run_dir, cfg)
    if oracle is None:
        raise SystemExit(f"run {args.run!r} has no oracle: run notebook 01 on it first")
    val = run_dir.dataset(f"data/{cfg.target}", "val")
    images = images_of(val, args.n)
    labels = np.stack([val[i].label for i in range(len(images))])
    reference = scores.statistics(scores.features(oracle, images_of(run_dir.dataset(f"data/{cfg.target}", "train"), args.n)))
    vae = AutoencoderKL.from_pretrained(zoo.resolve(args.vae)).eval()
    low = tuple(int(x) for x in args.low.split(","))
    rows = {
        "real images": images,
        f"through the VAE ({args.vae})": _through_vae(vae, images),
        f"at {low[0]}x{low[1]}, enlarged": _through_size(images, low),
    }
    table = pd.DataFrame.from_dict(
        {name: _scores(oracle, x, images, labels, reference) for name, x in rows.items()}, orient="index"
    ).rename_axis("images")
    print(table.round(2).to_markdown())
    report.write_table(table, run_dir, cfg, "latent_ceiling",
                       "What each diffusion design can reach at best: real target val images through its bottleneck")  # fmt: skip


@torch.no_grad()
def _through_vae(vae: AutoencoderKL, images: np.ndarray, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = to_unit(images[i : i + batch])
        out.append(vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1))
    return _to_uint8(torch.cat(out))


def _through_size(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return _to_uint8(resize(resize(to_unit(images), size), images.shape[1:3]).clamp(-1, 1))


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _scores(oracle, x: np.ndarray, originals: np.ndarray, labels: np.ndarray, reference) -> dict[str, float]:
    summary = scores.summary(scores.faithfulness(x, labels, oracle))
    mse = ((x.astype(np.float64) - originals.astype(np.float64)) ** 2).reshape(len(x), -1).mean(1)
    return {
        "oracle mIoU": summary["mIoU"],
        "pixel acc": summary["pixel_acc"],
        "appearance (FD to target train)": scores.appearance(oracle, x, reference),
        "PSNR dB": float(np.mean(10 * np.log10(255.0**2 / mse))) if mse.all() else float("inf"),  # the originals: inf
    }


if __name__ == "__main__":
    main()

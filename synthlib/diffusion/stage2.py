"""Stage 2: teach the stage-1 model to follow semantic maps.

Input: target images and their pseudo-labels (stage ``pseudo_labels``), depth
(the dataset's, or with ``diff_depth_model`` a monocular depth model's, read
from stage ``depth/<target>``, made once) and the stage-1 model. A
conditioning branch (``diff_branch``: ``controlnet`` with the UNet frozen, or
``concat``: the UNet's input widened and fine-tuned) is trained on the pairs,
with erosion (``diff_erosion``) and condition dropout (``diff_p_uncond``) for
classifier-free guidance. Output: stage
``diffusion/stage2`` with the conditioned model (``model/``, save_pretrained
layout; ``generate`` loads it), samples, and the faithfulness score — the
oracle's mIoU on images generated from held-out pseudo-label maps
(pseudo_labels val) — of the untrained and the trained branch. The score is
one-off work: under ``accelerate launch`` the main process makes it (on the
accelerator) while the others wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from synthlib import depth as depth_maps
from synthlib.diffusion import scores
from synthlib.diffusion.common import judge_stage, load_judge, sample_grid, settings
from synthlib.diffusion.conditioning import erode, unknown_share
from synthlib.diffusion.model import add_branch, load, save
from synthlib.diffusion.sampling import generate
from synthlib.diffusion.stage1 import STAGE as STAGE1
from synthlib.diffusion.train import Examples, settings_dict, train
from synthlib.fingerprints import weights_fingerprint
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.segmenters.infer import batch_of, window_of

STAGE = "diffusion/stage2"
PAIRS = "pseudo_labels"
N_SHOW = 8


def train_stage2(run_dir: RunDir, cfg: Profile, stage: str = STAGE) -> Path:
    """Make (or reuse) stage ``diffusion/stage2`` on stage 1's model (``train_stage1``, made first).

    ``stage`` names the output (benchmarks train both branches side by side).
    """
    s = settings(cfg, "stage2")
    _check(cfg)  # bad parameters fail before anything loads
    stage1 = run_dir.require(STAGE1, "step 'stage1' (diffusion.train_stage1, notebook 02_stage1)")
    depth_stage = _depth_stage(run_dir, cfg)
    judge = judge_stage(cfg) if run_dir.manifest(judge_stage(cfg)) is not None else None
    params = {
        "branch": cfg.diff_branch,
        "depth": cfg.diff_depth,
        "depth_model": cfg.diff_depth_model if cfg.diff_depth else "",
        "settings": settings_dict(s),
        "eval": _eval_params(cfg, judge),
    }
    depth_weights = weights_fingerprint(cfg.diff_depth_model) if cfg.diff_depth else None
    if depth_weights is not None:  # only then, so stages without a depth model keep their hashes
        params["depth_weights"] = depth_weights
    inputs = [STAGE1, PAIRS] + ([judge] if judge else []) + ([depth_stage] if depth_stage else [])

    def build_stage(ctx):
        model = add_branch(load(stage1 / "model"), cfg.diff_branch, cfg.diff_depth)
        pairs = run_dir.dataset(PAIRS, "train")
        depth = _depth_source(run_dir, cfg, pairs, depth_stage)
        sample = pairs[0]
        ctx.info["unknown_share"] = unknown_share(np.stack([pairs[i].label for i in range(min(len(pairs), 64))]), s.erosion)
        examples = Examples([(pairs, 0)], model.resolution, s, {"size": model.condition_size, "depth": depth})
        examples[(0, 0)]  # checks the first pair (sizes, depth) before anything else
        evaluation = _Faithfulness(run_dir, cfg) if judge and ctx.is_main else None
        if evaluation:
            model.to(processes().device)  # training moves it there too
            ctx.info["faithfulness_reference"] = evaluation.reference()
            ctx.info["faithfulness_untrained"], untrained = evaluation(model)
        history = train(model, examples, [model.prompt], s, ctx.checkpoints, desc=f"stage 2 ({cfg.diff_branch})")
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        model.info["stage2"] = {"erosion": s.erosion, "p_uncond": s.p_uncond, "image_size": list(sample.image.shape[:2])}
        save(model, ctx.out / "model", link_from=stage1 / "model")
        (ctx.out / "history.json").write_text(json.dumps(history))
        ctx.info["median_step_seconds"] = float(np.median(history["step_seconds"])) if history.get("step_seconds") else None
        ctx.info["final_loss"] = float(np.mean(history["loss"][-50:])) if history.get("loss") else None
        if evaluation:
            ctx.info["faithfulness"], trained = evaluation(model)
            n = min(N_SHOW, len(trained))
            stored = {"maps": evaluation.maps[:n], "target": evaluation.images[:n], "untrained": untrained[:n], "trained": trained[:n]}
            if evaluation.depth is not None:
                stored["depth"] = evaluation.depth[:n]
            np.savez_compressed(ctx.out / "samples.npz", **stored)

    return run_dir.stage(stage, params, build_stage, inputs=inputs)


def samples(run_dir: RunDir, stage: str = STAGE) -> dict[str, np.ndarray]:
    """Stored samples: pseudo-label ``maps`` (val), the ``target`` images they label, ``untrained`` and ``trained``
    generations, and the maps' ``depth`` when the model has a depth channel."""
    with np.load(run_dir.stage_path(stage) / "samples.npz") as f:
        return {k: f[k] for k in f.files}


def faithfulness_table(run_dir: RunDir, stage: str = STAGE) -> pd.DataFrame:
    """Faithfulness (oracle mIoU / pixel accuracy on generations vs their maps) of the untrained and trained branch."""
    info = run_dir.manifest(stage)["info"]
    branch = run_dir.manifest(stage)["params"]["branch"]
    rows = {
        "real target images (reference)": info.get("faithfulness_reference"),
        f"{branch}, untrained": info.get("faithfulness_untrained"),
        f"{branch}, trained": info.get("faithfulness"),
    }
    return pd.DataFrame({k: v for k, v in rows.items() if v}).T.rename_axis("model")


def sample_figure(run_dir: RunDir, n: int = 6, stage: str = STAGE):
    """Held-out pseudo-label maps, the target images they label, and generations of the untrained and trained branch."""
    stored = samples(run_dir, stage)
    size = stored["maps"].shape[1:]
    return sample_grid(
        {
            "pseudo-label map": stored["maps"],
            "target image": stored["target"],
            "untrained branch": scores.to_size(stored["untrained"], size),
            "trained branch": scores.to_size(stored["trained"], size),
        },
        n=n,
    )


def erosion_figure(run_dir: RunDir, cfg: Profile, radii: Sequence[int] | None = None, n: int = 4):
    """Pseudo-labels (train) eroded with each radius (black = unknown), with the share of unknown pixels."""
    pairs = run_dir.dataset(PAIRS, "train")
    maps = np.stack([pairs[i].label for i in range(min(n, len(pairs)))])
    radii = list(radii) if radii is not None else sorted({0, cfg.diff_erosion, cfg.diff_erosion + 1})
    rows = {}
    for r in radii:
        eroded = erode(maps, r)
        rows[f"radius {r}: {100 * unknown_share(maps, r):.0f}% unknown"] = eroded
    return sample_grid(rows, n=n)


def guidance_sweep(run_dir: RunDir, cfg: Profile, scales: Sequence[float], stage: str = STAGE) -> pd.DataFrame:
    """Faithfulness and seconds per image of the stage-2 model for each classifier-free guidance scale."""
    model = load(run_dir.stage_path(stage) / "model").to(processes().device)
    _depth_stage(run_dir, cfg)
    evaluation = _Faithfulness(run_dir, cfg)
    rows = {}
    for w in scales:
        t0 = time.perf_counter()
        result, _ = evaluation(model, guidance_scale=float(w))
        rows[float(w)] = {**result, "seconds per image": (time.perf_counter() - t0) / len(evaluation.maps)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("guidance scale")


def _check(cfg: Profile) -> None:
    from synthlib.diffusion.model import BRANCHES, DiffusionModelError
    from synthlib.diffusion.sampling import SCHEDULERS

    if cfg.diff_branch not in BRANCHES:
        raise DiffusionModelError(f"diff_branch {cfg.diff_branch!r} unknown; valid: {', '.join(BRANCHES)}")
    if cfg.diff_scheduler not in SCHEDULERS:
        raise DiffusionModelError(f"diff_scheduler {cfg.diff_scheduler!r} unknown; valid: {', '.join(SCHEDULERS)}")
    erode(np.zeros((1, 1), np.uint8), cfg.diff_erosion)  # raises on a negative radius
    if not 0.0 <= cfg.diff_p_uncond <= 1.0:
        raise ValueError(f"diff_p_uncond {cfg.diff_p_uncond} must lie in [0, 1]")


def _eval_params(cfg: Profile, judge: str | None) -> dict:
    out = {
        "images": cfg.diff_eval_images,
        "steps": cfg.diff_sample_steps,
        "scheduler": cfg.diff_scheduler,
        "guidance": cfg.diff_guidance,
        "conditioning_scale": cfg.diff_conditioning_scale,
        "judge": judge,
    }
    if window_of(cfg):  # only then, so stages scored on whole images keep their hashes
        out["window"] = list(window_of(cfg))
    return out


def _depth_stage(run_dir: RunDir, cfg: Profile) -> str | None:
    """Stage ``depth/<target>`` (made when missing) when the conditioning takes depth from ``diff_depth_model``, else None."""
    if not (cfg.diff_depth and cfg.diff_depth_model):
        return None
    target = f"data/{cfg.target}"
    depth_maps.estimate_dataset(run_dir, cfg, target)
    return depth_maps.stage_name(target)


def _depth_source(run_dir: RunDir, cfg: Profile, pairs, depth_stage: str | None) -> str | list | None:
    """None (no depth channel), "dataset" (the samples' depth), or the pairs' maps in ``depth_stage``, read on access.

    The pairs are the target's images (pseudo-labelled), so their ids are the target's.
    """
    if not cfg.diff_depth:
        return None
    if depth_stage is None:
        return "dataset"
    return [depth_maps.Maps(run_dir, depth_stage, pairs.ids, split="train")]


class _Faithfulness:
    """Generate from held-out pseudo-label maps (pseudo_labels val) and score with the oracle."""

    def __init__(self, run_dir: RunDir, cfg: Profile) -> None:
        self.cfg = cfg
        self.judge = load_judge(run_dir, cfg)
        self.window, self.batch = window_of(cfg), batch_of(cfg)
        val = run_dir.dataset(PAIRS, "val")
        n = min(cfg.diff_eval_images, len(val))
        samples_ = [val[i] for i in range(n)]
        self.maps = np.stack([x.label for x in samples_])
        self.images = np.stack([x.image for x in samples_])
        self.depth: np.ndarray | depth_maps.Maps | None = None
        if cfg.diff_depth:
            if cfg.diff_depth_model:  # stage depth/<target> (made by train_stage2 / guidance_sweep), read a batch at a time
                stage = depth_maps.stage_name(f"data/{cfg.target}")
                self.depth = depth_maps.Maps(run_dir, stage, [x.id for x in samples_], split="val")
            elif any(x.depth is None for x in samples_):
                raise ValueError(
                    f"{PAIRS} val has samples without depth, but the conditioning uses depth: set diff_depth_model to a "
                    f"monocular depth model (folder or hub id), or diff_depth=False"
                )
            else:
                self.depth = np.stack([x.depth for x in samples_])

    def reference(self) -> dict:
        """Faithfulness of the real target images the maps were predicted from: the oracle's agreement with the pseudo-labeller."""
        return scores.summary(scores.faithfulness(self.images, self.maps, self.judge, self.window, self.batch))

    def __call__(self, model, guidance_scale: float | None = None) -> tuple[dict, np.ndarray]:
        cfg = self.cfg
        images = generate(
            model,
            self.maps,
            self.depth,
            seeds=range(len(self.maps)),
            guidance_scale=cfg.diff_guidance if guidance_scale is None else guidance_scale,
            conditioning_scale=cfg.diff_conditioning_scale,
            steps=cfg.diff_sample_steps,
            scheduler=cfg.diff_scheduler,
        )
        return scores.summary(scores.faithfulness(images, self.maps, self.judge, self.window, self.batch)), images

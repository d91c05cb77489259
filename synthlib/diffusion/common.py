"""What the diffusion stages share: settings from the profile, the judge segmenter, figures."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from synthlib.diffusion.train import DiffusionSettings
from synthlib.labels import colorize
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.viz import image_grid

STAGES = ("pretrain", "stage1", "stage2")


def settings(cfg: Profile, stage: str) -> DiffusionSettings:
    """Training settings of ``stage`` ("pretrain", "stage1", "stage2") from the profile's diff_* fields."""
    if stage not in STAGES:
        raise ValueError(f"diffusion stage {stage!r} unknown; valid: {', '.join(STAGES)}")
    steps = {"pretrain": cfg.diff_pretrain_steps, "stage1": cfg.diff_stage1_steps, "stage2": cfg.diff_stage2_steps}[stage]
    return DiffusionSettings(
        steps=steps,
        batch_size=cfg.diff_batch,
        lr=cfg.diff_lr,
        warmup_steps=min(20, max(steps // 10, 1)),
        seed=cfg.seed,
        ema=cfg.diff_ema,
        lora_rank=cfg.diff_lora_rank if stage == "stage1" else 0,
        gradient_checkpointing=cfg.diff_gradient_checkpointing,
        mixed_precision=cfg.diff_mixed_precision,
        checkpoint_every=cfg.diff_checkpoint_every,
        jitter=cfg.diff_pretrain_jitter if stage == "pretrain" else 0.0,
        erosion=cfg.diff_erosion if stage == "stage2" else 0,
        p_uncond=cfg.diff_p_uncond if stage == "stage2" else 0.0,
        text_dropout=cfg.diff_text_dropout if stage == "stage2" else False,
        inference_dtype=cfg.diff_inference_dtype,
        data_workers=cfg.data_workers,
        eval_every=cfg.diff_eval_every if stage == "stage1" else 0,
    )


def judge_stage(cfg: Profile) -> str:
    """The segmenter stage that scores generated images: the target oracle of stage 01."""
    return f"models/supervised/data/{cfg.target}"


def load_judge(run_dir: RunDir, cfg: Profile):
    """The oracle segmenter (trained on target labels in 01), or None when the run has none."""
    from synthlib.segmenters import fit

    stage = judge_stage(cfg)
    if run_dir.manifest(stage) is None:
        print(f"[synthlib] no {stage} in run {run_dir.name!r}: scores that need the oracle segmenter are skipped (run 01 first)")
        return None
    return fit.load_model(run_dir, stage)


def images_of(dataset, n: int) -> np.ndarray:
    """The first ``n`` images of a dataset, stacked (uint8 NxHxWx3)."""
    return np.stack([dataset[i].image for i in range(min(n, len(dataset)))])


def sample_grid(rows: Mapping[str, np.ndarray], n: int = 6, cell_inches: float = 1.6) -> plt.Figure:
    """A grid of image sets: one row per named set (uint8 NxHxWx3, or NxHxW label maps, shown coloured)."""
    rows = {name: (colorize(x) if x.ndim == 3 else x) for name, x in rows.items()}
    n = min(n, *(len(x) for x in rows.values()))
    return image_grid([(name, list(images[:n])) for name, images in rows.items()], cell_inches=cell_inches)


def curve(history: Mapping, key: str, title: str) -> plt.Figure:
    """A training curve: ``history["eval"]`` entries' ``key`` against step, or the smoothed loss."""
    fig, ax = plt.subplots(figsize=(5, 3))
    if key == "loss":
        loss = np.asarray(history["loss"])
        k = max(len(loss) // 50, 1)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(np.arange(len(smooth)) + k, smooth)
    else:
        points = [(e["step"], e[key]) for e in history.get("eval", []) if key in e]
        ax.plot(*zip(*points, strict=True), marker="o")
    ax.set_xlabel("step")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig

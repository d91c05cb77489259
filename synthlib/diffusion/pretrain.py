"""The embedded stand-in for an off-the-shelf diffusion model: pretraining on a broad corpus.

Real runs start stage 1 from Stable Diffusion. The embedded profiles have no
pretrained weights, so stage ``diffusion/pretrain`` trains the small model on
a corpus that is *not* the target — the minicity source styles' train images
(``data/<source>`` of the run), with strong palette / colour jitter so the
prior is generic rather than one source's look — and stage 1 then genuinely
adapts a generic prior to the target. Each source has its own prompt; the
target's domain prompt is never seen here. Labels are not used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthlib.diffusion.common import settings
from synthlib.diffusion.model import CONFIGS, build, save
from synthlib.diffusion.train import Examples, settings_dict, train
from synthlib.profiles import Profile
from synthlib.runs import RunDir

STAGE = "diffusion/pretrain"


def needed(cfg: Profile) -> bool:
    """True when the profile builds its model from a named config (no pretrained weights to load)."""
    return cfg.diff_model in CONFIGS


def prompt_of(source: str) -> str:
    """The pretraining prompt of a source dataset."""
    return f"a {source} street scene"


def base(run_dir: RunDir, cfg: Profile) -> Path | None:
    """The pretrained stage stage 1 starts from (it must be made: ``pretrain``); None when the profile loads a model."""
    return run_dir.require(STAGE, "step 'pretrain' (diffusion.pretrain.pretrain, notebook 02_stage1)") if needed(cfg) else None


def pretrain(run_dir: RunDir, cfg: Profile) -> Path | None:
    """Make (or reuse) stage ``diffusion/pretrain``; None when the profile loads a pretrained model."""
    if not needed(cfg):
        return None
    s = settings(cfg, "pretrain")
    sources = [f"data/{name}" for name in cfg.sources]
    params = {
        "model": cfg.diff_model,
        "config": CONFIGS[cfg.diff_model],
        "resolution": list(cfg.diff_resolution),
        "prediction": cfg.diff_prediction,
        "sources": sources,
        "settings": settings_dict(s),
    }
    if cfg.diff_patch != 1:  # only then, so stages of unpatched models keep their hashes
        params["patch"] = cfg.diff_patch

    def build_stage(ctx):
        model = build(cfg.diff_model, cfg.diff_resolution, "", cfg.diff_prediction, seed=cfg.seed, patch=cfg.diff_patch)
        prompts = [prompt_of(name) for name in cfg.sources]
        parts = [(run_dir.dataset(stage, "train"), i) for i, stage in enumerate(sources)]
        history = train(model, Examples(parts, model.resolution, s), prompts, s, ctx.checkpoints, desc="pretrain diffusion")
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        model.prompt = prompts[0]
        save(model, ctx.out / "model")
        (ctx.out / "history.json").write_text(json.dumps(history))
        ctx.info["parameters_M"] = round(sum(p.numel() for p in model.unet.parameters()) / 1e6, 3)
        ctx.info["final_loss"] = float(np.mean(history["loss"][-50:]))
        ctx.info["median_step_seconds"] = float(np.median(history["step_seconds"]))

    return run_dir.stage(STAGE, params, build_stage, inputs=sources)

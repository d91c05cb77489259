"""Stage 1: adapt the diffusion model's appearance to the target domain.

Input: the unlabelled target train images (``data/<target>``; labels are never
read) and a starting model — Stable Diffusion on real runs, the
``diffusion/pretrain`` model on the embedded profiles. The UNet is
fine-tuned (fully, or LoRA adapters with ``diff_lora_rank``) on the images
with the domain prompt ``diff_prompt``. Output: stage ``diffusion/stage1``
with the adapted model (``model/``, every component saved with
save_pretrained), sample images before and after, and the appearance score
(``scores.appearance``: Fréchet distance in the oracle segmenter's feature
space to target val) before, during and after training, beside the same score
of the source images and of target train images (the floor at this sample
count). The samples and scores are one-off work: under ``accelerate launch``
the main process makes them (on the accelerator) while the others wait, and
every process trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from synthlib.diffusion import scores
from synthlib.diffusion.common import curve, images_of, judge_stage, load_judge, sample_grid, settings
from synthlib.diffusion.model import CONFIGS, build, load, save
from synthlib.diffusion.pretrain import STAGE as PRETRAIN
from synthlib.diffusion.pretrain import base as pretrained_base
from synthlib.diffusion.sampling import generate
from synthlib.diffusion.train import Examples, settings_dict, train
from synthlib.fingerprints import weights_fingerprint
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.segmenters.infer import batch_of, window_of

STAGE = "diffusion/stage1"
N_SHOW = 8  # sample images kept for the before / after grid


def train_stage1(run_dir: RunDir, cfg: Profile) -> Path:
    """Make (or reuse) stage ``diffusion/stage1`` from the pretraining stage (``pretrain``, made first) or the profile's model."""
    base = pretrained_base(run_dir, cfg)
    s = settings(cfg, "stage1")
    target = f"data/{cfg.target}"
    judge = judge_stage(cfg) if run_dir.manifest(judge_stage(cfg)) is not None else None
    sources = [f"data/{name}" for name in cfg.sources]
    params = {
        "model": cfg.diff_model,
        "resolution": list(cfg.diff_resolution),
        "prompt": cfg.diff_prompt,
        "target": target,
        "settings": settings_dict(s),
        "eval": {"images": cfg.diff_eval_images, "steps": cfg.diff_sample_steps, "scheduler": cfg.diff_scheduler, "judge": judge},
    }
    if window_of(cfg):  # only then, so stages scored on whole images keep their hashes
        params["eval"]["window"] = list(window_of(cfg))
    if cfg.diff_patch != 1:  # only then, so stages of unpatched models keep their hashes
        params["patch"] = cfg.diff_patch
    weights = None if cfg.diff_model in CONFIGS else weights_fingerprint(cfg.diff_model)
    if weights is not None:  # a folder / cached hub id: new weights at the same path re-run the stage
        params["model_weights"] = weights
    inputs = ([PRETRAIN] if base else []) + [target] + ([judge] if judge else []) + (sources if judge else [])

    def build_stage(ctx):
        if base is not None:
            model = load(base / "model")
            model.resolution = tuple(cfg.diff_resolution)
        else:
            model = build(cfg.diff_model, cfg.diff_resolution, cfg.diff_prompt, cfg.diff_prediction, seed=cfg.seed, patch=cfg.diff_patch)
        model.prompt = cfg.diff_prompt
        model.to(processes().device)  # where training puts it too
        # Samples and scores are made by the main process alone; train() calls ``evaluate`` there only, but every
        # process must pass one (or none) alike, as the evaluation steps synchronise the processes.
        appearance = _Appearance(run_dir, cfg, sources) if judge and ctx.is_main else None
        seeds = list(range(max(cfg.diff_eval_images, N_SHOW)))
        sample = lambda m: generate(m, None, seeds=seeds, steps=cfg.diff_sample_steps, scheduler=cfg.diff_scheduler)  # noqa: E731

        before = sample(model) if ctx.is_main else None
        evaluate = (lambda m: {"appearance": appearance(sample(m))}) if judge else None
        images = Examples([(run_dir.dataset(target, "train"), 0)], model.resolution, s)
        history = train(model, images, [cfg.diff_prompt], s, ctx.checkpoints, evaluate=evaluate, desc="stage 1")
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        after = sample(model)

        save(model, ctx.out / "model", link_from=base / "model" if base else None)
        np.savez_compressed(ctx.out / "samples.npz", before=before[:N_SHOW], after=after[:N_SHOW])
        ctx.info["median_step_seconds"] = float(np.median(history["step_seconds"])) if history.get("step_seconds") else None
        ctx.info["final_loss"] = float(np.mean(history["loss"][-50:])) if history.get("loss") else None
        if appearance:
            curve = [{"step": 0, "appearance": appearance(before)}]
            curve += [e for e in history.get("eval", []) if e["step"] < s.steps]
            curve.append({"step": s.steps, "appearance": appearance(after)})
            history["eval"] = curve
            ctx.info["appearance"] = {"before": curve[0]["appearance"], "after": curve[-1]["appearance"], **appearance.references()}
        (ctx.out / "history.json").write_text(json.dumps(history))

    return run_dir.stage(STAGE, params, build_stage, inputs=inputs)


def samples(run_dir: RunDir) -> dict[str, np.ndarray]:
    """The stored sample images of stage 1: ``before`` and ``after`` (uint8 NxHxWx3, same seeds)."""
    with np.load(run_dir.stage_path(STAGE) / "samples.npz") as f:
        return {k: f[k] for k in f.files}


def history(run_dir: RunDir) -> dict:
    """Stage 1's training history: loss per step and the appearance score at evaluation steps."""
    return json.loads((run_dir.stage_path(STAGE) / "history.json").read_text())


def sample_figure(run_dir: RunDir, cfg: Profile, n: int = 6):
    """Samples of the same seeds before and after stage 1, above real target train images."""
    stored = samples(run_dir)
    target = run_dir.dataset(f"data/{cfg.target}", "train")
    size = target[0].image.shape[:2]
    return sample_grid(
        {
            "before stage 1": scores.to_size(stored["before"], size),
            "after stage 1": scores.to_size(stored["after"], size),
            "target images": images_of(target, n),
        },
        n=n,
    )


def appearance_figure(run_dir: RunDir):
    """The appearance score over stage-1 training (lower = closer to target val)."""
    return curve(history(run_dir), "appearance", "appearance: Fréchet distance to target val (oracle features)")


def appearance_table(run_dir: RunDir):
    """Appearance scores (lower = closer to the target) of stage 1's samples and the references."""
    import pandas as pd

    measured = run_dir.manifest(STAGE)["info"].get("appearance")
    if not measured:
        return pd.DataFrame()
    labels = {"before": "generated, before stage 1", "after": "generated, after stage 1"}
    rows = {labels.get(k, k): v for k, v in measured.items()}
    return pd.DataFrame({"Fréchet distance to target val": rows}).rename_axis("images")


class _Appearance:
    """Appearance score against target val statistics, in the oracle's feature space."""

    def __init__(self, run_dir: RunDir, cfg: Profile, sources: list[str]) -> None:
        self.run_dir, self.cfg, self.sources = run_dir, cfg, sources
        self.judge = load_judge(run_dir, cfg)  # on the accelerator
        self.window, self.batch = window_of(cfg), batch_of(cfg)
        val = run_dir.dataset(f"data/{cfg.target}", "val")
        self.size = val[0].image.shape[:2]
        self.reference = scores.statistics(scores.features(self.judge, images_of(val, len(val)), self.window, self.batch))

    def __call__(self, images: np.ndarray) -> float:
        return scores.appearance(self.judge, scores.to_size(images, self.size), self.reference, self.window, self.batch)

    def references(self) -> dict[str, float]:
        n = self.cfg.diff_eval_images
        out = {f"source images ({s.split('/', 1)[1]})": self(images_of(self.run_dir.dataset(s, "train"), n)) for s in self.sources}
        out["target train images (floor)"] = self(images_of(self.run_dir.dataset(f"data/{self.cfg.target}", "train"), n))
        return out

"""Stage 05 (zero-shot): adapt a segmenter to a target known only by a text description (SDGPA).

SDGPA (Luo, Zhao, Liu, IROS 2025; docs/design.md §5) sees no target image. The
source is the labelled clear-weather target (``data/<target>``, as in SDGPA and
Cityscapes -> ACDC practice); each weather condition of the profile is a target
known only by its instruction (``zs_instructions``: "add fog"). Per condition:

1. ``zero_shot/edited/<condition>``: the source's train images (the first
   ``zs_max_images``) edited by the instruction (``editing.edit``; patch-wise with
   ``zs_patch``), the source's labels.
2. ``zero_shot/intermediate/<condition>`` (``zs_intermediate``): every source
   image blended half and half with its edit: a domain between the two.
3. Progressive adaptation: the source model (``models/supervised/data/<target>``,
   stage 01's) is fine-tuned on the intermediate set, then on the edited set, each
   phase starting from the previous phase's model (``zs_progressive``; else each
   from the source model), for ``zs_seg_steps`` steps. With ``zs_self_training`` the edited phase trains on
   ``zero_shot/agreed/<condition>``: the edited images with a label kept only where
   the previous phase's segmenter predicts it, so objects an edit hid (fog over a
   far sign) stop teaching what the image no longer shows.
4. Every model is evaluated on the condition's val (``data/<target>-<condition>``),
   whose images no phase saw.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from synthlib import data, editing
from synthlib.datasets import Sample, write_cityscapes
from synthlib.fingerprints import weights_fingerprint
from synthlib.labels import IGNORE
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.segmenters import fit as seg
from synthlib.segmenters.infer import batch_of, window_of

PREFIX = "zero_shot"
SPLIT = "train"
PHASES = ("intermediate", "edited")
_CHUNK = 32  # images edited and written at a time: a crash loses at most one chunk


class ZeroShotError(ValueError):
    """A condition without an instruction, or settings the editor cannot take."""


def instructions(cfg: Profile) -> dict[str, str]:
    """Each condition of the profile with its instruction; ``ZeroShotError`` names a condition without one."""
    missing = [c for c in cfg.conditions if c not in cfg.zs_instructions]
    if missing:
        raise ZeroShotError(f"zs_instructions has no instruction for condition(s) {', '.join(missing)} (has: {', '.join(cfg.zs_instructions) or 'none'})")
    return {c: cfg.zs_instructions[c] for c in cfg.conditions}


def source_set(cfg: Profile) -> str:
    """The labelled source: the clear-weather target's dataset stage."""
    return f"data/{cfg.target}"


def set_stage(kind: str, condition: str) -> str:
    """``zero_shot/<kind>/<condition>``: kind ``edited``, ``intermediate`` or ``agreed``."""
    return f"{PREFIX}/{kind}/{condition}"


def edit_settings(cfg: Profile) -> editing.EditSettings:
    """The profile's editing settings (``zs_*``)."""
    return editing.EditSettings(steps=cfg.zs_steps, guidance=cfg.zs_guidance, image_guidance=cfg.zs_image_guidance,
                                patch=tuple(cfg.zs_patch) or None, overlap=cfg.zs_overlap)  # fmt: skip


def edited(run_dir: RunDir, cfg: Profile, condition: str) -> Path:
    """Stage ``zero_shot/edited/<condition>``: the source's train images edited by the condition's instruction."""
    instruction = instructions(cfg)[condition]
    settings = edit_settings(cfg)
    source = source_set(cfg)
    params = {"source": source, "instruction": instruction, "editor": str(cfg.zs_editor), "settings": asdict(settings),
              "seed": cfg.seed, "max_images": cfg.zs_max_images}  # fmt: skip
    weights = weights_fingerprint(cfg.zs_editor)
    if weights is not None:
        params["editor_weights"] = weights

    def build(ctx):
        if not ctx.is_main:  # one process edits and writes the set; the others wait for it at the end of the stage
            return
        images = run_dir.dataset(source, SPLIT)
        n = len(images) if cfg.zs_max_images <= 0 else min(cfg.zs_max_images, len(images))
        editor = editing.load_editor(cfg.zs_editor, processes().device)
        for start in tqdm(range(0, n, _CHUNK), desc=f"edit {source} ({instruction!r})", leave=False):
            done = ctx.checkpoints / f"{start:06d}"
            if done.is_dir():
                continue  # edited before a crash
            shutil.rmtree(done.with_suffix(".tmp"), ignore_errors=True)  # half written when the process died
            samples = [images[i] for i in range(start, min(start + _CHUNK, n))]
            out = editing.edit(editor, np.stack([s.image for s in samples]), instruction, settings, cfg.seed,
                               indices=range(start, start + len(samples)), progress=False)  # fmt: skip
            write_cityscapes([Sample(o, s.label, s.depth, s.instances, s.id, s.meta) for o, s in zip(out, samples, strict=True)],
                             done.with_suffix(".tmp"), SPLIT, progress=False)  # fmt: skip
            done.with_suffix(".tmp").rename(done)
        _assemble(sorted(ctx.checkpoints.glob("[0-9]*[0-9]")), ctx.out)
        ctx.info["images"] = n

    return run_dir.stage(set_stage("edited", condition), params, build, inputs=[source])


def intermediate(run_dir: RunDir, cfg: Profile, condition: str) -> Path:
    """Stage ``zero_shot/intermediate/<condition>``: each source image blended half and half with its edit."""
    source, made = source_set(cfg), set_stage("edited", condition)
    run_dir.require(made, "zero_shot.edited")

    def build(ctx):
        if not ctx.is_main:
            return
        a, b = run_dir.dataset(source, SPLIT), run_dir.dataset(made, SPLIT)
        blended = []
        for i in range(len(b)):  # the edited set is the source's first images, in order
            x, y = a[i], b[i]
            image = np.round((x.image.astype(np.float32) + y.image.astype(np.float32)) / 2).astype(np.uint8)
            blended.append(Sample(image, x.label, x.depth, x.instances, x.id, x.meta))
        write_cityscapes(blended, ctx.out, SPLIT, progress=False)

    return run_dir.stage(set_stage("intermediate", condition), {"blend": 0.5}, build, inputs=[source, made])


def agreed(run_dir: RunDir, cfg: Profile, condition: str, model: str) -> Path:
    """Stage ``zero_shot/agreed/<condition>``: the edited set, a label kept only where ``model`` predicts it."""
    made = set_stage("edited", condition)
    run_dir.require(made, "zero_shot.edited")

    def build(ctx):
        if not ctx.is_main:
            return
        from synthlib.segmenters.infer import predict

        images = run_dir.dataset(made, SPLIT)
        segmenter = seg.load_model(run_dir, model)
        kept, out = [], []
        for start in range(0, len(images), _CHUNK):
            samples = [images[i] for i in range(start, min(start + _CHUNK, len(images)))]
            predicted, _ = predict(segmenter, np.stack([s.image for s in samples]), window=window_of(cfg), batch=batch_of(cfg))
            for s, p in zip(samples, predicted, strict=True):
                label = np.where(p == s.label, s.label, IGNORE).astype(np.uint8)
                kept.append(float((label != IGNORE).sum() / max((s.label != IGNORE).sum(), 1)))
                out.append(Sample(s.image, label, s.depth, s.instances, s.id, s.meta))
        write_cityscapes(out, ctx.out, SPLIT, progress=False)
        ctx.info["labels_kept"] = float(np.mean(kept))

    return run_dir.stage(set_stage("agreed", condition), {"model": model}, build, inputs=[made, model])


def schedule(cfg: Profile) -> list[str]:
    """The phases of the progressive adaptation, in order (``PHASES`` without the switched-off intermediate one)."""
    return [p for p in PHASES if p != "intermediate" or cfg.zs_intermediate]


def phase_steps(cfg: Profile) -> int:
    """Segmenter steps per phase: ``zs_seg_steps``, or a quarter of ``seg_steps`` when it is 0."""
    return cfg.zs_seg_steps or max(1, cfg.seg_steps // 4)


def adapt(run_dir: RunDir, cfg: Profile, condition: str) -> list[str]:
    """The model stages of the condition's phases, in order (the last is the adapted segmenter), each made if missing."""
    source_model = seg.model_stage("supervised", source_set(cfg))
    run_dir.require(source_model, "step 'pseudo_labels' (the clear target's segmenter, notebook 01)")
    edited(run_dir, cfg, condition)
    models, previous = [], source_model
    for phase in schedule(cfg):
        if phase == "intermediate":
            train_set = set_stage("intermediate", condition)
            intermediate(run_dir, cfg, condition)
        elif cfg.zs_self_training:
            train_set = set_stage("agreed", condition)
            agreed(run_dir, cfg, condition, previous)
        else:
            train_set = set_stage("edited", condition)
        init = previous if cfg.zs_progressive else source_model
        seg.fit(run_dir, replace(cfg, seg_steps=phase_steps(cfg)), train_set, "supervised", init=init)
        previous = seg.model_stage("supervised", train_set)
        models.append(previous)
    return models


def adapt_all(run_dir: RunDir, cfg: Profile) -> dict[str, str]:
    """``adapt`` for every condition: condition -> its adapted model stage."""
    return {condition: adapt(run_dir, cfg, condition)[-1] for condition in instructions(cfg)}


def table(run_dir: RunDir, cfg: Profile, adapted: dict[str, str]) -> pd.DataFrame:
    """mIoU (%) on each condition's val: source only (the clear target's model), zero-shot (SDGPA), and the change.

    Every model is evaluated on ``data.eval_sets`` (the sets 06 evaluates on), so the
    source model's evaluation stage is 06's.
    """
    source_model = seg.model_stage("supervised", source_set(cfg))
    sets = data.eval_sets(cfg)
    val_of = dict(zip(cfg.conditions, sets[1:], strict=True))
    before = seg.evaluate(run_dir, cfg, source_model, sets)["mIoU"]
    rows = {}
    for condition, model in adapted.items():
        after = seg.evaluate(run_dir, cfg, model, sets)["mIoU"]
        rows[condition] = {"source only": before[val_of[condition]], "zero-shot (SDGPA)": after[val_of[condition]]}
        rows[condition]["change"] = rows[condition]["zero-shot (SDGPA)"] - rows[condition]["source only"]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("condition")


def figure(run_dir: RunDir, cfg: Profile, index: int = 0, cell_inches: float = 1.6) -> plt.Figure:
    """One row per condition: a source image, its edit, the intermediate blend, and a real val image of the condition."""
    from synthlib.viz import image_grid

    source = run_dir.dataset(source_set(cfg), SPLIT)[index].image
    vals = dict(zip(cfg.conditions, data.condition_names(cfg), strict=True))
    rows = []
    for condition, instruction in instructions(cfg).items():
        panels = [source, run_dir.dataset(set_stage("edited", condition), SPLIT)[index].image]
        if cfg.zs_intermediate:
            panels.append(run_dir.dataset(set_stage("intermediate", condition), SPLIT)[index].image)
        panels.append(run_dir.dataset(f"data/{vals[condition]}", "val")[0].image)
        rows.append((f"{condition}: {instruction!r}", panels))
    columns = ["source (clear)", "edited", *(["intermediate"] if cfg.zs_intermediate else []), "the condition (never seen)"]
    return image_grid(rows, columns, cell_inches)


def _assemble(chunks: list[Path], out: Path) -> None:
    """The edited chunks' files in one dataset folder (hard links where possible)."""
    from synthlib.generation.inputs import assemble

    assemble(chunks, out)

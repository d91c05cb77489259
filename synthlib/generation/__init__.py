"""Stage 04: turn semantic maps of any source into target-looking images with the stage-2 model.

Input: a dataset stage of the run (``data/flat``, ``data/game``, ``data/gta5``, ...)
and the stage-2 model (``diffusion/stage2``). Output: stage
``generated/<source>``, a dataset in the Cityscapes layout whose labels,
instances and depth are the source's maps, with ``gen_per_map`` images per
map. Every image's seed and settings (guidance scale, conditioning scale,
steps, scheduler) are in its meta (``meta/train.json``) and in
``generation.csv`` beside the dataset. A model with a depth channel takes the
source's own depth, or with ``diff_depth_model`` the depth model's, read from
stage ``depth/<source>`` (``synthlib.depth``; made on demand, once per source).

Seeds are a function of (profile seed, map index, sample index), and the
samplers are deterministic, so a set does not depend on batching or on
interruptions. Images are generated a batch at a time and every finished
batch is kept in the stage's checkpoints: an interrupted stage resumes at the
first unfinished batch, and the stage is assembled from the batches once all
are done, so no image is made twice or written twice. Under ``accelerate
launch`` the batches are shared out (batch c to process c % N) and the main
process assembles the stage: the same files as with one process.

Edge cases: ``compose`` draws a map from simple shapes (``rect``, ``ellipse``,
``polygon`` of a class, in fractions of the image size, over a plain
``street``), ``edge_case_shapes`` holds a few scenes no source has (a pedestrian
crossing in front of a car, a tram across the road), ``generate_from`` turns
such in-memory maps into images, and ``painter`` is an ipywidgets painter.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from synthlib import depth as depth_maps
from synthlib.datasets import Sample, write_cityscapes
from synthlib.diffusion.model import DiffusionModel, load
from synthlib.diffusion.sampling import SCHEDULERS
from synthlib.diffusion.sampling import generate as sample_images
from synthlib.fingerprints import weights_fingerprint
from synthlib.generation.compose import (  # noqa: F401  (the composer is part of the stage's API)
    FAR,
    GenerationError,
    Shape,
    compose,
    edge_case_shapes,
    edge_cases,
    ellipse,
    polygon,
    rect,
    street,
)
from synthlib.generation.inputs import SPLIT, Depth, assemble, batch_folder, by_shape, centre_crop, takes_depth
from synthlib.labels import LabelError, check_train_ids, colorize
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.viz import image_grid

PREFIX = "generated"
TABLE = "generation.csv"
MODEL_STAGE = "diffusion/stage2"
#: How maps whose aspect ratio is not the model's are handled: an error, or a centred crop.
FITS = ("error", "crop")
@dataclass(frozen=True)
class Settings:
    """How images are sampled from maps (``synthlib.diffusion.generate``'s knobs)."""

    guidance_scale: float
    conditioning_scale: float
    steps: int
    scheduler: str


def sampling_settings(cfg: Profile, **overrides: Any) -> Settings:
    """The profile's gen_* sampling settings; overrides that are None are ignored."""
    base = Settings(cfg.gen_guidance, cfg.gen_conditioning_scale, cfg.gen_steps, cfg.gen_scheduler)
    unknown = set(overrides) - set(asdict(base))
    if unknown:
        raise GenerationError(f"unknown generation settings {sorted(unknown)}; valid: {', '.join(asdict(base))}")
    s = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    _check_settings(s)
    return s


def source_stage(source: str) -> str:
    """The dataset stage of a source: ``"flat"`` -> ``"data/flat"``; stage names stay as they are."""
    return source if "/" in source else f"data/{source}"


def stage_name(source: str) -> str:
    """The output stage of a source: ``data/flat`` (or ``flat``) -> ``generated/flat``; other stages -> ``generated/a-b``."""
    stage = source_stage(source)
    return f"{PREFIX}/{stage.removeprefix('data/').replace('/', '-')}"


def sources(cfg: Profile) -> list[str]:
    """The dataset stages the profile generates from: ``gen_sources``, or every source when empty."""
    return [source_stage(s) for s in (cfg.gen_sources or cfg.sources)]


def model_path(run_dir: RunDir, cfg: Profile) -> Path:
    """The run's stage-2 folder (``MODEL_STAGE``), which step 'stage2' (notebook 03) makes."""
    return run_dir.require(MODEL_STAGE, "step 'stage2' (diffusion.train_stage2, notebook 03_stage2)")


def load_model(run_dir: RunDir, cfg: Profile) -> DiffusionModel:
    """The run's stage-2 model (``model_path``) on the accelerator's device."""
    return load(model_path(run_dir, cfg) / "model").to(processes().device)


def generate_all(run_dir: RunDir, cfg: Profile, settings: Settings | None = None) -> dict[str, Path]:
    """``generate_set`` for every source of ``sources(cfg)``; source stage -> output path."""
    return {source: generate_set(run_dir, cfg, source, settings) for source in sources(cfg)}


def generate_set(run_dir: RunDir, cfg: Profile, source: str, settings: Settings | None = None) -> Path:
    """Make (or reuse) stage ``generated/<source>``: ``gen_per_map`` images per map of ``source``'s train split.

    ``settings`` default to the profile's (``sampling_settings(cfg)``). The first
    ``gen_max_maps`` maps are used (0 = all). Bad maps (ids outside the label
    table, an aspect ratio the model cannot take with ``gen_fit="error"``) and
    empty sets raise ``GenerationError`` naming the set and sample.
    """
    s = settings or sampling_settings(cfg)
    _check_settings(s)
    stage = source_stage(source)
    if cfg.gen_per_map < 1:
        raise GenerationError(f"gen_per_map must be >= 1 (images per map), got {cfg.gen_per_map}")
    if cfg.gen_batch < 1:
        raise GenerationError(f"gen_batch must be >= 1, got {cfg.gen_batch}")
    if cfg.gen_fit not in FITS:
        raise GenerationError(f"gen_fit {cfg.gen_fit!r} unknown; valid: {', '.join(FITS)}")
    maps = run_dir.dataset(stage, SPLIT)  # a missing stage raises here, naming the completed ones
    n_maps = len(maps) if cfg.gen_max_maps <= 0 else min(cfg.gen_max_maps, len(maps))
    if n_maps == 0:
        raise GenerationError(f"{stage} ({SPLIT}) has no maps to generate from; write the dataset first (00_data)")
    trained = model_path(run_dir, cfg)
    params = {
        "source": stage,
        "split": SPLIT,
        "maps": n_maps,
        "per_map": cfg.gen_per_map,
        "settings": asdict(s),
        "batch": cfg.gen_batch,
        "seed": cfg.seed,
        "fit": cfg.gen_fit,
        "depth_model": cfg.diff_depth_model,
    }
    depth_weights = weights_fingerprint(cfg.diff_depth_model)
    if depth_weights is not None:  # only then, so stages without a depth model keep their hashes
        params["depth_weights"] = depth_weights
    depth_stage = None
    if cfg.diff_depth_model and takes_depth(trained / "model"):  # estimated once for the whole source, then read
        depth_maps.estimate_dataset(run_dir, cfg, stage)
        depth_stage = depth_maps.stage_name(stage)
    stage_inputs = [stage, MODEL_STAGE] + ([depth_stage] if depth_stage else [])

    def build(ctx):
        model = load(trained / "model").to(processes().device)
        where = f"{stage} ({SPLIT})"
        fit_to_model(maps[0], model, cfg.gen_fit, where)  # the first map's size is checked before anything is generated
        depth = Depth(model, cfg.diff_depth_model, prefer_own=False, stored=(run_dir, depth_stage) if depth_stage else None)
        jobs = [(i, k) for i in range(n_maps) for k in range(cfg.gen_per_map)]
        chunks = [jobs[a : a + cfg.gen_batch] for a in range(0, len(jobs), cfg.gen_batch)]
        inputs = {name: run_dir.manifest(name)["fingerprint"] for name in stage_inputs}
        folder = batch_folder(ctx.checkpoints, inputs, clean=ctx.is_main)
        ctx.wait_for_everyone()  # the main process has cleaned the folder
        done = {p.name for p in folder.iterdir() if p.is_dir()}
        # Batch c is made and written by process c % num_processes alone (the others' batches may appear meanwhile).
        mine = [c for c in range(ctx.process_index, len(chunks), ctx.num_processes) if f"{c:06d}" not in done]
        for c in tqdm(mine, desc=f"generate {stage}", leave=False, disable=not ctx.is_main):
            name = f"{c:06d}"
            samples = _generate_chunk(model, maps, chunks[c], s, cfg, depth, where, stage)
            tmp = folder / f"{name}.tmp"
            write_cityscapes(samples, tmp, SPLIT, progress=False)
            os.replace(tmp, folder / name)
        made = gather_object([len(mine)])  # returns once every process has finished its batches
        if not ctx.is_main:
            return
        metas = assemble([folder / f"{c:06d}" for c in range(len(chunks))], ctx.out)
        table = metadata_table(metas)
        table.to_csv(ctx.out / TABLE, index=False)
        ctx.info.update({"maps": n_maps, "images": len(table), "per_map": cfg.gen_per_map, "settings": asdict(s)})
        ctx.info.update({"resumed_batches": len(chunks) - sum(made), "batches_per_process": made})

    return run_dir.stage(stage_name(stage), params, build, inputs=stage_inputs)


def generate_from(
    model: DiffusionModel, cfg: Profile, samples: Sequence[Sample], seeds: Sequence[int] | None = None, settings: Settings | None = None
) -> np.ndarray:
    """Images (uint8 NxHxWx3; a list when the maps differ in size) from in-memory maps, one per seed.

    ``samples``: ``compose``'d maps, a painter's, or any ``Sample``s. ``seeds``:
    one per sample (default 0..N-1). Depth comes from each sample (``compose``
    makes one), else from ``diff_depth_model`` applied to its image.
    """
    samples = list(samples)
    if not samples:
        raise GenerationError("no maps to generate from: pass at least one Sample (e.g. compose(...))")
    seeds = list(range(len(samples))) if seeds is None else [int(x) for x in seeds]
    if len(seeds) != len(samples):
        raise GenerationError(f"{len(seeds)} seeds for {len(samples)} maps: pass one seed per map")
    s = settings or sampling_settings(cfg)
    _check_settings(s)
    fitted = [fit_to_model(x, model, cfg.gen_fit, f"map {i} ({x.id or 'unnamed'})") for i, x in enumerate(samples)]
    depth = Depth(model, cfg.diff_depth_model, prefer_own=True)
    out: list[np.ndarray | None] = [None] * len(fitted)
    for idx in by_shape(fitted).values():
        group = [fitted[i] for i in idx]
        images = sample_images(
            model, np.stack([g.label for g in group]), depth(group, "maps"), seeds=[seeds[i] for i in idx],
            guidance_scale=s.guidance_scale, conditioning_scale=s.conditioning_scale, steps=s.steps,
            scheduler=s.scheduler, batch_size=cfg.gen_batch,
        )
        for i, image in zip(idx, images, strict=True):
            out[i] = image
    return np.stack(out) if len({o.shape for o in out}) == 1 else out


def seed_of(base: int, map_index: int, sample: int) -> int:
    """The seed of sample ``sample`` of map ``map_index`` (independent of batching and order)."""
    return int(np.random.SeedSequence([base, map_index, sample]).generate_state(1)[0])


def fit_to_model(sample: Sample, model: DiffusionModel, mode: str, where: str) -> Sample:
    """Check a map's ids and size against the model (raises ``GenerationError`` naming ``where`` and the map).

    ``mode`` (``gen_fit``): "error" refuses a map whose aspect ratio is more than
    1 % off the model's; "crop" centre-crops it (and its image, depth, instances).
    """
    if mode not in FITS:
        raise GenerationError(f"gen_fit {mode!r} unknown; valid: {', '.join(FITS)}")
    label = np.asarray(sample.label)
    name = f"{where}: map {sample.id!r}" if sample.id else where
    if label.ndim != 2:
        raise GenerationError(f"{name} has shape {label.shape}; a map is HxW trainIds")
    try:
        check_train_ids(label, name)
    except LabelError as e:
        raise GenerationError(f"{e} Convert the map to trainIds (synthlib.labels.label_to_train) before generating.") from e
    h, w = label.shape
    mh, mw = model.resolution
    if abs(h * mw - w * mh) <= 0.01 * w * mh:
        return sample
    if mode == "error":
        raise GenerationError(
            f"{name} is {h}x{w} (height x width), but the model generates {mh}x{mw}: the aspect ratio differs "
            f"({h / w:.3f} vs {mh / mw:.3f}). Resize or crop the maps to a {mh}:{mw} aspect (e.g. {h}x{h * mw // mh}), "
            f"or set gen_fit='crop' to centre-crop them."
        )
    cut = centre_crop((h, w), model.resolution)
    if cut is None:
        raise GenerationError(f"{name} of size {h}x{w} is too small to crop to a {mh}:{mw} aspect")

    def crop(a):
        return None if a is None else np.asarray(a)[cut]

    return Sample(crop(sample.image), label[cut], crop(sample.depth), crop(sample.instances), sample.id, dict(sample.meta))


def metadata_table(metas: dict[str, dict]) -> pd.DataFrame:
    """One row per generated image: id, source id, map index, sample, seed and settings."""
    columns = ["id", "source_id", "map_index", "sample", "seed", "guidance_scale", "conditioning_scale", "steps", "scheduler"]
    rows = [{"id": i, **{k: m.get(k) for k in columns[1:]}} for i, m in sorted(metas.items())]
    return pd.DataFrame(rows, columns=columns)


def table(run_dir: RunDir, stage: str) -> pd.DataFrame:
    """The ``generation.csv`` of a generated stage (``generated/flat``) or of a source name (``flat``)."""
    stage = stage if stage.startswith(f"{PREFIX}/") else stage_name(stage)
    if run_dir.manifest(stage) is None:
        raise GenerationError(f"run {run_dir.name!r} has no completed stage {stage!r}: run 04_generation first")
    return pd.read_csv(run_dir.stage_path(stage) / TABLE)


def summary(run_dir: RunDir, stages: Sequence[str]) -> pd.DataFrame:
    """One row per generated stage: maps, images per map, images, settings and seconds per image."""
    rows = {}
    for stage in stages:
        stage = stage if stage.startswith(f"{PREFIX}/") else stage_name(stage)
        manifest = run_dir.manifest(stage)
        info = manifest["info"]
        rows[stage] = {
            "source": manifest["params"]["source"],
            "maps": info["maps"],
            "images per map": info["per_map"],
            "images": info["images"],
            **info["settings"],
            "seconds per image": manifest["seconds"] / max(info["images"], 1),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("generated set")


def grid(run_dir: RunDir, stages: str | Sequence[str], n: int = 3, cell_inches: float = 1.6) -> plt.Figure:
    """One row per map (``n`` per generated set): the source image, the map, then every image generated from it."""
    stages = [stages] if isinstance(stages, str) else list(stages)
    rows = []
    for stage in stages:
        stage = stage if stage.startswith(f"{PREFIX}/") else stage_name(stage)
        made = table(run_dir, stage)
        source = run_dir.dataset(run_dir.manifest(stage)["params"]["source"], SPLIT)
        generated = run_dir.dataset(stage, SPLIT)
        position = {sid: i for i, sid in enumerate(generated.ids)}
        for m in sorted(made["map_index"].unique())[:n]:
            original = source[int(m)]
            images = [generated[position[i]].image for i in made[made["map_index"] == m].sort_values("sample")["id"]]
            rows.append((f"{stage}\n{original.id[-12:]}", [original.image, colorize(original.label), *images]))
    columns = max(len(panels) for _, panels in rows)
    return image_grid(rows, ["source image", "map"] + [f"generated {k}" for k in range(columns - 2)], cell_inches)


def edge_case_figure(model: DiffusionModel, cfg: Profile, seeds: Sequence[int] = (0, 1, 2), settings: Settings | None = None, cell_inches: float = 1.6) -> plt.Figure:
    """One row per edge case: its map, then an image per seed."""
    cases = edge_cases(cfg.height, cfg.width)
    samples = [x for x in cases.values() for _ in seeds]
    images = generate_from(model, cfg, samples, [s for _ in cases for s in seeds], settings)
    rows = [(name, [colorize(x.label), *images[r * len(seeds) : (r + 1) * len(seeds)]]) for r, (name, x) in enumerate(cases.items())]
    return image_grid(rows, ["map"] + [f"seed {s}" for s in seeds], cell_inches)


def painter(model: DiffusionModel, cfg: Profile, base: Sequence[Shape] | None = None, seeds: Sequence[int] = (0, 1, 2)):
    """An ipywidgets painter over ``base`` (default ``street()``) that generates with ``model``."""
    from synthlib.generation.widget import Painter  # the widget module imports this one

    return Painter(model, cfg, base, seeds)


def _check_settings(s: Settings) -> None:
    if s.scheduler not in SCHEDULERS:
        raise GenerationError(f"gen_scheduler {s.scheduler!r} unknown; valid: {', '.join(SCHEDULERS)}")
    if not isinstance(s.steps, (int, np.integer)) or isinstance(s.steps, bool) or s.steps < 1:
        raise GenerationError(f"gen_steps must be an integer >= 1, got {s.steps!r}")
    for name in ("guidance_scale", "conditioning_scale"):
        value = getattr(s, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value < 0:
            raise GenerationError(f"{name} must be a number >= 0, got {value!r}")


def _generate_chunk(model, maps, chunk, s: Settings, cfg: Profile, depth, where: str, stage: str) -> list[Sample]:
    """Samples (generated image, source map) for the (map index, sample) jobs of one batch."""
    originals = {i: fit_to_model(maps[i], model, cfg.gen_fit, where) for i in dict.fromkeys(i for i, _ in chunk)}
    items = [(i, k, originals[i]) for i, k in chunk]
    out: list[Sample] = []
    for idx in by_shape([x for _, _, x in items]).values():
        group = [items[j] for j in idx]
        samples = [x for _, _, x in group]
        seeds = [seed_of(cfg.seed, i, k) for i, k, _ in group]
        images = sample_images(
            model, np.stack([x.label for x in samples]), depth(samples, where), seeds=seeds,
            guidance_scale=s.guidance_scale, conditioning_scale=s.conditioning_scale, steps=s.steps,
            scheduler=s.scheduler, batch_size=cfg.gen_batch,
        )
        for (i, k, x), seed, image in zip(group, seeds, images, strict=True):
            meta = {"source": stage, "source_id": x.id, "map_index": i, "sample": k, "seed": seed, **asdict(s)}
            if x.meta:
                meta["source_meta"] = x.meta
            out.append(Sample(image, x.label, x.depth, x.instances, f"{x.id}_gen{k}", meta))
    order = {(m["map_index"], m["sample"]): n for n, m in enumerate(o.meta for o in out)}
    return [out[order[(i, k)]] for i, k in chunk]

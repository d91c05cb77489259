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

import io
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from accelerate.utils import gather_object
from PIL import Image
from tqdm.auto import tqdm

from synthlib import depth as depth_maps
from synthlib.datasets import DatasetError, Sample, write_cityscapes
from synthlib.diffusion.model import SETTINGS_FILE, DiffusionModel, load
from synthlib.diffusion.sampling import SCHEDULERS
from synthlib.diffusion.sampling import generate as sample_images
from synthlib.fingerprints import weights_fingerprint
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, THING_TRAIN_IDS, LabelError, check_train_ids, colorize
from synthlib.profiles import Profile
from synthlib.runs import RunDir, processes
from synthlib.viz import image_grid

PREFIX = "generated"
SPLIT = "train"
TABLE = "generation.csv"
MODEL_STAGE = "diffusion/stage2"
#: How maps whose aspect ratio is not the model's are handled: an error, or a centred crop.
FITS = ("error", "crop")
#: Depth (metres) of the sky and the horizon in composed maps: the farthest a depth PNG stores.
FAR = 255.0
_FLAT = tuple(CLASS_NAMES.index(c) for c in ("road", "sidewalk", "terrain"))
_SKY = CLASS_NAMES.index("sky")


class GenerationError(ValueError):
    """Bad maps, an empty set, or bad generation settings."""


@dataclass(frozen=True)
class Settings:
    """How images are sampled from maps (``synthlib.diffusion.generate``'s knobs)."""

    guidance_scale: float
    conditioning_scale: float
    steps: int
    scheduler: str


def settings(cfg: Profile, **overrides: Any) -> Settings:
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


def ensure_model(run_dir: RunDir, cfg: Profile) -> Path:
    """The run's stage-2 folder (``MODEL_STAGE``), trained first when missing or out of date (cached)."""
    from synthlib.diffusion.stage2 import train_stage2

    return train_stage2(run_dir, cfg)


def load_model(run_dir: RunDir, cfg: Profile) -> DiffusionModel:
    """The run's stage-2 model (``ensure_model``) on the accelerator's device."""
    return load(ensure_model(run_dir, cfg) / "model").to(processes().device)


def generate_all(run_dir: RunDir, cfg: Profile, settings_: Settings | None = None) -> dict[str, Path]:
    """``generate_set`` for every source of ``sources(cfg)``; source stage -> output path."""
    return {source: generate_set(run_dir, cfg, source, settings_) for source in sources(cfg)}


def generate_set(run_dir: RunDir, cfg: Profile, source: str, settings_: Settings | None = None) -> Path:
    """Make (or reuse) stage ``generated/<source>``: ``gen_per_map`` images per map of ``source``'s train split.

    ``settings_`` default to the profile's (``settings(cfg)``). The first
    ``gen_max_maps`` maps are used (0 = all). Bad maps (ids outside the label
    table, an aspect ratio the model cannot take with ``gen_fit="error"``) and
    empty sets raise ``GenerationError`` naming the set and sample.
    """
    s = settings_ or settings(cfg)
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
    model_path = ensure_model(run_dir, cfg)
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
    if cfg.diff_depth_model and _takes_depth(model_path / "model"):  # estimated once for the whole source, then read
        depth_maps.estimate_dataset(run_dir, cfg, stage)
        depth_stage = depth_maps.stage_name(stage)
    stage_inputs = [stage, MODEL_STAGE] + ([depth_stage] if depth_stage else [])

    def build(ctx):
        model = load(model_path / "model").to(processes().device)
        where = f"{stage} ({SPLIT})"
        fit(maps[0], model, cfg.gen_fit, where)  # the first map's size is checked before anything is generated
        depth = _Depth(model, cfg.diff_depth_model, prefer_own=False, stored=(run_dir, depth_stage) if depth_stage else None)
        jobs = [(i, k) for i in range(n_maps) for k in range(cfg.gen_per_map)]
        chunks = [jobs[a : a + cfg.gen_batch] for a in range(0, len(jobs), cfg.gen_batch)]
        inputs = {name: run_dir.manifest(name)["fingerprint"] for name in stage_inputs}
        folder = _batch_folder(ctx.checkpoints, inputs, clean=ctx.is_main)
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
        metas = _assemble([folder / f"{c:06d}" for c in range(len(chunks))], ctx.out)
        table = metadata_table(metas)
        table.to_csv(ctx.out / TABLE, index=False)
        ctx.info.update({"maps": n_maps, "images": len(table), "per_map": cfg.gen_per_map, "settings": asdict(s)})
        ctx.info.update({"resumed_batches": len(chunks) - sum(made), "batches_per_process": made})

    return run_dir.stage(stage_name(stage), params, build, inputs=stage_inputs)


def generate_from(
    model: DiffusionModel, cfg: Profile, samples: Sequence[Sample], seeds: Sequence[int] | None = None, settings_: Settings | None = None
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
    s = settings_ or settings(cfg)
    _check_settings(s)
    fitted = [fit(x, model, cfg.gen_fit, f"map {i} ({x.id or 'unnamed'})") for i, x in enumerate(samples)]
    depth = _Depth(model, cfg.diff_depth_model, prefer_own=True)
    out: list[np.ndarray | None] = [None] * len(fitted)
    for idx in _by_shape(fitted).values():
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


def fit(sample: Sample, model: DiffusionModel, mode: str, where: str) -> Sample:
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
    cut = _centre_crop((h, w), model.resolution)
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


# --- composing maps from shapes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A filled shape of one class; coordinates are (x, y) fractions of the width and height (0-1).

    ``kind`` "rect" and "ellipse" take two corners of the bounding box, "polygon"
    its vertices. ``depth`` (metres) None: flat classes lie on the ground plane,
    the sky is far, and everything else stands on the ground at its lowest row.
    """

    cls: int
    kind: str
    points: tuple[tuple[float, float], ...]
    depth: float | None = None


def rect(cls: int | str, x0: float, y0: float, x1: float, y1: float, depth: float | None = None) -> Shape:
    """A rectangle of class ``cls`` (trainId or name) from (x0, y0) to (x1, y1), in fractions of the image."""
    return Shape(_class_id(cls), "rect", ((x0, y0), (x1, y1)), depth)


def ellipse(cls: int | str, x0: float, y0: float, x1: float, y1: float, depth: float | None = None) -> Shape:
    """An ellipse of class ``cls`` inside the box (x0, y0)-(x1, y1), in fractions of the image."""
    return Shape(_class_id(cls), "ellipse", ((x0, y0), (x1, y1)), depth)


def polygon(cls: int | str, points: Sequence[tuple[float, float]], depth: float | None = None) -> Shape:
    """A polygon of class ``cls`` with vertices ``points`` ((x, y) fractions of the image)."""
    if len(points) < 3:
        raise GenerationError(f"a polygon needs at least 3 vertices, got {len(points)}")
    return Shape(_class_id(cls), "polygon", tuple((float(x), float(y)) for x, y in points), depth)


def street(horizon: float = 0.45) -> list[Shape]:
    """A plain street scene to paint on: sky, buildings, trees, sidewalks and the road, horizon at ``horizon``."""
    h = horizon
    return [
        rect("sky", 0, 0, 1, h + 0.01),
        polygon("sidewalk", [(0, h), (1, h), (1, 1), (0, 1)]),
        rect("building", 0, 0.08, 0.3, h + 0.06),
        rect("building", 0.72, 0.04, 1, h + 0.06),
        ellipse("vegetation", 0.26, h - 0.2, 0.42, h + 0.04),
        polygon("road", [(0.38, h), (0.62, h), (1.0, 0.76), (1.0, 1), (0, 1), (0, 0.76)]),
        rect("pole", 0.2, h - 0.15, 0.215, h + 0.15),
        rect("traffic sign", 0.19, h - 0.2, 0.225, h - 0.13),
    ]


def edge_case_shapes() -> dict[str, list[Shape]]:
    """Scenes that sources rarely or never show, as shapes to draw over ``street()``."""
    return {
        "pedestrian crossing in front of the car": [
            rect("car", 0.36, 0.5, 0.64, 0.74),
            polygon("person", [(0.485, 0.5), (0.515, 0.5), (0.535, 0.6), (0.53, 0.86), (0.505, 0.86), (0.5, 0.72), (0.495, 0.86), (0.47, 0.86), (0.465, 0.6)]),
        ],
        "tram across the road": [rect("train", 0.04, 0.3, 0.96, 0.64)],
        "cyclist beside a bus": [
            rect("bus", 0.55, 0.24, 0.92, 0.7),
            ellipse("bicycle", 0.3, 0.66, 0.44, 0.84),
            rect("rider", 0.34, 0.48, 0.4, 0.72),
        ],
        "motorcycle and truck at a traffic light": [
            rect("truck", 0.08, 0.3, 0.4, 0.66),
            ellipse("motorcycle", 0.52, 0.62, 0.62, 0.8),
            rect("rider", 0.545, 0.48, 0.6, 0.68),
            rect("pole", 0.78, 0.15, 0.795, 0.6),
            rect("traffic light", 0.77, 0.12, 0.805, 0.24),
        ],
    }


def compose(shapes: Sequence[Shape], height: int, width: int, base: Sequence[Shape] | None = None, name: str = "composed") -> Sample:
    """A map drawn from ``shapes`` over ``base`` (default ``street()``; pass [] for none), later shapes on top.

    Returns a ``Sample``: label (trainIds, undrawn pixels ignore), instances (one
    per shape of a thing class), a plausible depth (ground plane, objects standing
    on it), and the coloured map as a placeholder image.
    """
    if height < 1 or width < 1:
        raise GenerationError(f"map size must be positive, got {height}x{width}")
    everything = list(street() if base is None else base) + list(shapes)
    label = np.full((height, width), IGNORE, np.uint8)
    instances = np.zeros((height, width), np.int32)
    horizon = _horizon(everything)
    ground = _ground_depth(height, horizon)
    depth = np.full((height, width), FAR, np.float32)
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    for n, shape in enumerate(everything, start=1):
        mask = _mask(shape, xs, ys)
        if not mask.any():
            continue
        label[mask] = shape.cls
        instances[mask] = n if shape.cls in THING_TRAIN_IDS else 0
        if shape.depth is not None:
            depth[mask] = shape.depth
        elif shape.cls in _FLAT:
            depth[mask] = np.broadcast_to(ground[:, None], mask.shape)[mask]
        elif shape.cls == _SKY:
            depth[mask] = FAR
        else:
            depth[mask] = ground[np.flatnonzero(mask.any(1)).max()]
    return Sample(colorize(label), label, depth, instances, name, {"composed": True})


def edge_cases(height: int, width: int) -> dict[str, Sample]:
    """Every scene of ``edge_case_shapes`` composed at ``height`` x ``width``."""
    return {name: compose(shapes, height, width, name=f"edge_{i}") for i, (name, shapes) in enumerate(edge_case_shapes().items())}


def edge_case_figure(model: DiffusionModel, cfg: Profile, seeds: Sequence[int] = (0, 1, 2), settings_: Settings | None = None, cell_inches: float = 1.6) -> plt.Figure:
    """One row per edge case: its map, then an image per seed."""
    cases = edge_cases(cfg.height, cfg.width)
    samples = [x for x in cases.values() for _ in seeds]
    images = generate_from(model, cfg, samples, [s for _ in cases for s in seeds], settings_)
    rows = [(name, [colorize(x.label), *images[r * len(seeds) : (r + 1) * len(seeds)]]) for r, (name, x) in enumerate(cases.items())]
    return image_grid(rows, ["map"] + [f"seed {s}" for s in seeds], cell_inches)


class Painter:
    """An ipywidgets painter: pick a class and a shape, place it with the sliders, paint, generate.

    ``widget`` is the box to display (a notebook shows the Painter itself);
    ``paint``, ``undo`` and ``generate`` are what the buttons call.
    """

    def __init__(self, model: DiffusionModel, cfg: Profile, base: Sequence[Shape] | None = None, seeds: Sequence[int] = (0, 1, 2), zoom: int = 4) -> None:
        import ipywidgets as w

        self.model, self.cfg, self.seeds, self.zoom = model, cfg, list(seeds), zoom
        self.shapes: list[Shape] = list(street() if base is None else base)
        self.images: np.ndarray | None = None
        self.cls = w.Dropdown(options=list(CLASS_NAMES), value="person", description="class")
        self.kind = w.ToggleButtons(options=["rect", "ellipse"], value="rect", description="shape")
        self.x = w.FloatRangeSlider(value=(0.45, 0.55), min=0, max=1, step=0.01, description="x")
        self.y = w.FloatRangeSlider(value=(0.55, 0.85), min=0, max=1, step=0.01, description="y")
        buttons = {name: w.Button(description=name) for name in ("paint", "undo", "generate")}
        buttons["paint"].on_click(lambda _: self.paint())
        buttons["undo"].on_click(lambda _: self.undo())
        buttons["generate"].on_click(lambda _: self.generate())
        self.buttons = buttons
        self.status = w.Label()
        self.map_view = w.Image(format="png")
        self.result = w.Image(format="png")
        for control in (self.cls, self.kind, self.x, self.y):
            control.observe(lambda _: self.redraw(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.cls, self.kind]), self.x, self.y, w.HBox(list(buttons.values())), self.map_view, self.status, self.result]
        )
        self.redraw()

    def current(self) -> Shape:
        """The shape the controls describe."""
        (x0, x1), (y0, y1) = self.x.value, self.y.value
        return (rect if self.kind.value == "rect" else ellipse)(self.cls.value, x0, y0, x1, y1)

    def sample(self, preview: bool = False) -> Sample:
        """The painted map (with the shape under the controls when ``preview``)."""
        extra = [self.current()] if preview else []
        return compose(self.shapes + extra, self.cfg.height, self.cfg.width, base=[], name="painted")

    def paint(self) -> None:
        """Add the shape under the controls to the map."""
        self.shapes.append(self.current())
        self.redraw()

    def undo(self) -> None:
        """Remove the last painted shape."""
        if self.shapes:
            self.shapes.pop()
        self.redraw()

    def generate(self) -> np.ndarray:
        """Generate one image per seed from the painted map and show them."""
        self.status.value = "generating ..."
        sample = self.sample()
        self.images = generate_from(self.model, self.cfg, [sample] * len(self.seeds), self.seeds)
        self.result.value = _png(np.concatenate(list(self.images), 1), self.zoom)
        self.status.value = f"{len(self.images)} images, seeds {self.seeds}"
        return self.images

    def redraw(self) -> None:
        """Show the map with the shape under the controls."""
        self.map_view.value = _png(colorize(self.sample(preview=True).label), self.zoom)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def painter(model: DiffusionModel, cfg: Profile, base: Sequence[Shape] | None = None, seeds: Sequence[int] = (0, 1, 2)) -> Painter:
    """An ipywidgets painter over ``base`` (default ``street()``) that generates with ``model``."""
    return Painter(model, cfg, base, seeds)


# --- helpers ---------------------------------------------------------------------------------------

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
    originals = {i: fit(maps[i], model, cfg.gen_fit, where) for i in dict.fromkeys(i for i, _ in chunk)}
    items = [(i, k, originals[i]) for i, k in chunk]
    out: list[Sample] = []
    for idx in _by_shape([x for _, _, x in items]).values():
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


class _Depth:
    """Depth for the maps of a model with a depth channel (None for a model without one).

    ``stored`` (run, depth stage): the maps' depth is read from the source's
    depth stage (``synthlib.depth``), by sample id, and cropped as ``fit``
    cropped the maps. Otherwise ``prefer_own``: use a sample's own depth when
    it has one (composed maps); else, as in stage 2, estimate depth from the
    sample's image with ``depth_model`` when one is set (in-memory maps, which
    have no stage), else use the dataset's depth.
    """

    def __init__(self, model: DiffusionModel, depth_model: str, prefer_own: bool, stored: tuple[RunDir, str] | None = None) -> None:
        self.needed = bool(model.conditioning and model.conditioning.get("depth"))
        self.depth_model, self.prefer_own, self.stored, self.resolution = depth_model, prefer_own, stored, tuple(model.resolution)
        self._estimator = None

    def __call__(self, samples: Sequence[Sample], where: str) -> np.ndarray | None:
        if not self.needed:
            return None
        if self.stored is not None:
            return np.stack([self._read(x, where) for x in samples])
        own = all(x.depth is not None for x in samples)
        if self.depth_model and not (self.prefer_own and own):
            if self._estimator is None:
                model, processor = depth_maps.load_depth_model(self.depth_model)
                self._estimator = (model.to(processes().device), processor)
            return depth_maps.estimate_depth(*self._estimator, np.stack([x.image for x in samples]))
        missing = [x.id for x in samples if x.depth is None]
        if missing:
            raise GenerationError(
                f"{where}: maps {missing[:5]} have no depth, but the stage-2 model takes a depth channel: set "
                f"diff_depth_model to a monocular depth model (folder or hub id) to estimate it from the source images, "
                f"or give the maps depth (compose(...) makes one)"
            )
        return np.stack([np.asarray(x.depth, np.float32) for x in samples])

    def _read(self, sample: Sample, where: str) -> np.ndarray:
        """The stored depth of a (fitted) map: at its image's size, centre-cropped when ``fit`` cropped the map."""
        run_dir, stage = self.stored
        full = depth_maps.read(run_dir, stage, sample.id, split=SPLIT)  # at the size of the source's image
        shape, depth = np.asarray(sample.label).shape, full
        if depth.shape != shape:
            cut = _centre_crop(full.shape, self.resolution)
            depth = full[cut] if cut is not None else full
        if depth.shape != shape:
            raise GenerationError(
                f"{where}: map {sample.id!r} is {shape[0]}x{shape[1]} (after gen_fit), but {stage} recorded its image as "
                f"{full.shape[0]}x{full.shape[1]}: the depth stage was not made from these maps' images. Delete "
                f"{run_dir.stage_path(stage)} to have it made again from the source."
            )
        return depth


def _takes_depth(model_folder: Path) -> bool:
    """Whether the model saved in ``model_folder`` has a depth channel (False when its settings cannot be read)."""
    file = Path(model_folder) / SETTINGS_FILE
    settings = json.loads(file.read_text()) if file.is_file() else {}
    return bool((settings.get("conditioning") or {}).get("depth"))


def _centre_crop(shape: Sequence[int], resolution: Sequence[int]) -> tuple[slice, slice] | None:
    """The centred crop of an image of ``shape`` (h, w) to the aspect ratio of ``resolution``; None when nothing is left."""
    (h, w), (mh, mw) = shape[:2], resolution
    th, tw = (h, h * mw // mh) if w * mh > h * mw else (w * mh // mw, w)
    if th < 1 or tw < 1:
        return None
    y0, x0 = (h - th) // 2, (w - tw) // 2
    return slice(y0, y0 + th), slice(x0, x0 + tw)


def _batch_folder(checkpoints: Path, inputs: dict[str, str], clean: bool = True) -> Path:
    """The folder of finished batches; with ``clean``, batches made from other inputs (a re-made source or model)
    and half-written ones are discarded (by one process: the others wait for it)."""
    folder = checkpoints / "batches"
    if not clean:
        return folder
    stamp = checkpoints / "inputs.json"
    if stamp.is_file() and json.loads(stamp.read_text()) != inputs:
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(inputs))
    for stale in folder.glob("*.tmp"):  # a batch being written when the process died
        shutil.rmtree(stale)
    return folder


def _by_shape(samples: Sequence[Sample]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(samples):
        groups.setdefault(tuple(np.asarray(x.label).shape), []).append(i)
    return groups


def _assemble(batches: Sequence[Path], out: Path) -> dict[str, dict]:
    """Hard-link (or copy) every finished batch's files into ``out`` and merge their meta; return the meta."""
    metas: dict[str, dict] = {}
    for batch in batches:
        meta_file = batch / "meta" / f"{SPLIT}.json"
        for file in sorted(batch.rglob("*")):
            if file.is_dir() or file == meta_file:
                continue
            dest = out / file.relative_to(batch)
            if dest.exists():
                raise DatasetError(f"{dest} is made by two generation batches; delete the stage's checkpoints and re-run")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(file, dest)
            except OSError:
                shutil.copy2(file, dest)
        if meta_file.is_file():
            metas.update(json.loads(meta_file.read_text()))
    (out / "meta").mkdir(parents=True, exist_ok=True)
    (out / "meta" / f"{SPLIT}.json").write_text(json.dumps(metas, indent=1, sort_keys=True))
    return metas


def _class_id(cls: int | str) -> int:
    if isinstance(cls, str):
        if cls not in CLASS_NAMES:
            raise GenerationError(f"class {cls!r} unknown; valid: {', '.join(CLASS_NAMES)}")
        return CLASS_NAMES.index(cls)
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < NUM_CLASSES:
        raise GenerationError(f"class {cls!r} is not a trainId (0-{NUM_CLASSES - 1}) or a class name")
    return int(cls)


def _mask(shape: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    if shape.kind in ("rect", "ellipse"):
        (x0, y0), (x1, y1) = shape.points
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if shape.kind == "rect":
            return ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 1e-9), max((y1 - y0) / 2, 1e-9)
        return ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1
    if shape.kind == "polygon":
        from matplotlib.path import Path as Outline

        points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        return Outline(shape.points).contains_points(points, radius=1e-9).reshape(len(ys), len(xs))
    raise GenerationError(f"shape kind {shape.kind!r} unknown; valid: rect, ellipse, polygon")


def _horizon(shapes: Sequence[Shape]) -> float:
    """The horizon of a composed scene: the top of its flat ground (0.45 when it has none)."""
    tops = [min(y for _, y in s.points) for s in shapes if s.cls in _FLAT]
    return min(tops) if tops else 0.45


def _ground_depth(height: int, horizon: float, camera_height: float = 1.5, focal: float = 1.6) -> np.ndarray:
    """Depth (metres) of a flat ground per row, for a camera ``camera_height`` up with focal length ``focal`` (image heights)."""
    ys = (np.arange(height) + 0.5) / height
    below = ys - horizon
    return np.where(below > 0, np.minimum(camera_height * focal / np.maximum(below, 1e-6), FAR), FAR).astype(np.float32)


def _png(image: np.ndarray, zoom: int) -> bytes:
    im = Image.fromarray(np.asarray(image, np.uint8))
    if zoom > 1:
        im = im.resize((im.width * zoom, im.height * zoom), Image.NEAREST)
    buffer = io.BytesIO()
    im.save(buffer, format="png")
    return buffer.getvalue()

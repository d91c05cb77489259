"""Stage 04 (translation baselines): image-to-image translation between each source and the target, both ways.

Methods: ``fda`` (Fourier amplitude swap), ``colour`` (Lab mean/std transfer),
``cyclegan`` (plain CycleGAN) and ``cyclegan_k<K>`` (CycleGAN with semantic
guidance from K labelled target images; the profile's ``i2i_k`` lists the Ks,
0 standing for plain CycleGAN). Each is measured in two directions:

(a) source images translated to the target style become a training set
    ``translated/<method>-<source>`` (Cityscapes layout, train split, the
    source labels), which stage 06 trains its segmenter on like any other set;
(b) target val images translated to the source style at test time are
    segmented by the source-only segmenter (``models/supervised/data/<source>``).

Stages written: ``i2i/guide/<source>-k<K>`` (the target-side guidance
segmenter: the source-only model fine-tuned on the K labelled target images),
``i2i/cyclegan/<source>-k<K>`` (the four networks with ``save_pretrained``,
and the loss history), ``translated/<method>-<source>``,
``i2i/test_time/<method>-<source>`` (direction b) and
``i2i/trained_on/<method>-<source>`` (direction a, once a segmenter was
trained on the set). Guided CycleGAN is the only method that uses target
labels: K of them, chosen by the seed, and the rows say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from synthlib.datasets import Dataset, Sample, write_cityscapes
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters.model import load as load_segmenter
from synthlib.segmenters.model import save as save_segmenter
from synthlib.segmenters.train import recorded
from synthlib.segmenters.train import train as train_segmenter
from synthlib.translation import cyclegan, fourier

#: The directions, as the tables name them.
TO_TARGET, TO_SOURCE = "to_target", "to_source"
DIRECTIONS = {TO_TARGET: "(a) trained on translated source", TO_SOURCE: "(b) target translated at test time"}
CONSISTENCY = "oracle on the translated source vs its maps"
#: CycleGANSettings field -> the profile field it comes from (errors name the profile field).
PROFILE_FIELDS = {
    "ngf": "i2i_ngf", "ndf": "i2i_ndf", "blocks": "i2i_blocks", "disc_layers": "i2i_disc_layers",
    "steps": "i2i_steps", "decay_steps": "i2i_decay_steps", "batch_size": "i2i_batch", "lr": "i2i_lr",
    "cycle_weight": "i2i_cycle_weight", "identity_weight": "i2i_identity_weight",
    "semantic_weight": "i2i_semantic_weight", "buffer_size": "i2i_buffer", "crop": "i2i_crop",
    "seed": "seed", "checkpoint_every": "i2i_checkpoint_every",
}  # fmt: skip
_TRANSLATE_BATCH = 16


def methods(cfg: Profile) -> list[str]:
    """The run's translation methods: ``fda``, ``colour``, then one CycleGAN per K of ``i2i_k``."""
    return ["fda", "colour", *(cyclegan_method(k) for k in cfg.i2i_k)]


def cyclegan_method(k: int) -> str:
    """``cyclegan`` for K = 0, else ``cyclegan_k<K>``."""
    return "cyclegan" if k == 0 else f"cyclegan_k{k}"


def display_name(method: str) -> str:
    """A table row label: ``FDA``, ``colour transfer``, ``CycleGAN``, ``CycleGAN + guidance (K=10 target labels)``."""
    if method == "none":
        return "source only"
    if method == "fda":
        return "FDA"
    if method == "colour":
        return "colour transfer (Lab)"
    k = _k_of(method)
    return "CycleGAN" if k == 0 else f"CycleGAN + guidance (K={k} target labels)"


def check(run_dir: RunDir, cfg: Profile) -> None:
    """Raise a ValueError naming the profile field when a translation parameter is unusable, before anything trains."""
    fourier.check_beta(cfg.i2i_fda_beta)
    cyclegan_settings(cfg)
    ks = list(cfg.i2i_k)
    if len(set(ks)) != len(ks) or any(k < 0 for k in ks):
        raise ValueError(f"i2i_k={tuple(ks)} must list distinct numbers of labelled target images >= 0 (0 = plain CycleGAN)")
    if cfg.i2i_guide_steps < 1 and any(ks):
        raise ValueError(f"i2i_guide_steps={cfg.i2i_guide_steps}: guided CycleGAN (K > 0 in i2i_k) needs at least 1 fine-tuning step")
    available = len(run_dir.dataset(f"data/{cfg.target}", "train"))
    too_many = [k for k in ks if k > available]
    if too_many:
        raise ValueError(
            f"i2i_k={tuple(ks)} asks for K={max(too_many)} labelled target images, but data/{cfg.target} train has only "
            f"{available}; use K <= {available}"
        )


def cyclegan_settings(cfg: Profile) -> cyclegan.CycleGANSettings:
    """CycleGAN settings from the profile's i2i_* fields (a bad value raises a ValueError naming the field)."""
    values = {name: getattr(cfg, field) for name, field in PROFILE_FIELDS.items()}
    values["crop"] = tuple(values["crop"]) or None
    try:
        return cyclegan.CycleGANSettings(**values)
    except cyclegan.SettingsError as e:
        raise ValueError(f"profile field {PROFILE_FIELDS[e.field]}={e.value!r} {e.problem}") from None


def source_models(run_dir: RunDir, cfg: Profile) -> dict[str, str]:
    """Train (or reuse: stage 06 and 01 make the same stages) the source-only segmenter of every source; source -> model stage."""
    out = {}
    for source in cfg.sources:
        seg.fit(run_dir, cfg, f"data/{source}", "supervised")
        out[source] = seg.model_stage("supervised", f"data/{source}")
    return out


def labelled_indices(n: int, k: int, seed: int) -> list[int]:
    """The K labelled target images (indices into target train): a seeded permutation's first K, so smaller Ks nest."""
    if not 0 <= k <= n:
        raise ValueError(f"K={k} labelled target images requested, but the target train split has {n}; use 0 <= K <= {n}")
    return sorted(int(i) for i in np.random.default_rng([seed, 4]).permutation(n)[:k])


def train_guide(run_dir: RunDir, cfg: Profile, source: str, k: int) -> Path:
    """Stage ``i2i/guide/<source>-k<K>``: the source-only segmenter fine-tuned on K labelled target images."""
    target = f"data/{cfg.target}"
    base = source_models(run_dir, cfg)[source]
    indices = labelled_indices(len(run_dir.dataset(target, "train")), k, cfg.seed)
    settings = replace(seg.settings(cfg), steps=cfg.i2i_guide_steps, warmup_steps=min(50, max(cfg.i2i_guide_steps // 10, 1)))
    params = {"base": base, "target": target, "labelled": indices, "settings": recorded(settings)}

    def build(ctx):
        model = seg.load_model(run_dir, base)
        labelled = _Subset(run_dir.dataset(target, "train"), indices)
        history = train_segmenter(model, labelled, settings, checkpoints=ctx.checkpoints)
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        save_segmenter(model, ctx.out / "model")
        (ctx.out / "history.json").write_text(json.dumps(history))
        ctx.info["labelled_ids"] = [labelled[i].id for i in range(len(labelled))]

    return run_dir.stage(f"i2i/guide/{source}-k{k}", params, build, inputs=[base, target])


def train_cyclegan(run_dir: RunDir, cfg: Profile, source: str, k: int) -> Path:
    """Stage ``i2i/cyclegan/<source>-k<K>``: CycleGAN between ``data/<source>`` and the target, guided when K > 0."""
    settings = cyclegan_settings(cfg)
    target = f"data/{cfg.target}"
    inputs = [f"data/{source}", target]
    guide, base = f"i2i/guide/{source}-k{k}", seg.model_stage("supervised", f"data/{source}")
    indices: list[int] = []
    if k > 0:
        train_guide(run_dir, cfg, source, k)
        indices = labelled_indices(len(run_dir.dataset(target, "train")), k, cfg.seed)
        inputs += [guide, base]
    params = {"source": source, "target": target, "k": k, "labelled": indices, "settings": asdict(settings)}

    def build(ctx):
        model = cyclegan.CycleGAN.build(settings)
        guidance = None
        if k > 0:
            guidance = cyclegan.Guidance(
                target_segmenter=load_segmenter(run_dir.stage_path(guide) / "model"),
                source_segmenter=seg.load_model(run_dir, base),
                labelled=_Subset(run_dir.dataset(target, "train"), indices),
            )
        # The target's labels stay hidden (all ignore) except those of the K images guidance is allowed.
        unlabelled = seg.Unlabelled(run_dir.dataset(target, "train"))
        history = cyclegan.train(model, run_dir.dataset(f"data/{source}", "train"), unlabelled, settings, guidance, ctx.checkpoints)
        if not ctx.is_main:  # every process holds the same trained weights: one saves them
            return
        model.save(ctx.out)
        (ctx.out / "history.json").write_text(json.dumps(history))
        tail = max(len(history["step_seconds"]) // 10, 1)
        ctx.info["final_losses"] = {key: float(np.mean(v[-tail:])) for key, v in history.items() if key != "step_seconds"}
        ctx.info["median_step_seconds"] = float(np.median(history["step_seconds"]))

    return run_dir.stage(f"i2i/cyclegan/{source}-k{k}", params, build, inputs=inputs)


def train_cyclegans(run_dir: RunDir, cfg: Profile) -> dict[str, str]:
    """Every CycleGAN of the run (each source x each K of ``i2i_k``); ``<method>-<source>`` -> stage."""
    check(run_dir, cfg)
    out = {}
    for source in cfg.sources:
        for k in cfg.i2i_k:
            train_cyclegan(run_dir, cfg, source, k)
            out[f"{cyclegan_method(k)}-{source}"] = f"i2i/cyclegan/{source}-k{k}"
    return out


def translator(run_dir: RunDir, cfg: Profile, method: str, source: str, direction: str) -> Callable[[np.ndarray, Sequence[int]], np.ndarray]:
    """A function (uint8 NxHxWx3 images, their dataset indices) -> translated images.

    ``to_target`` translates source images into the target style, ``to_source``
    target images into the source style. FDA and colour transfer draw one
    reference image per input image from the other domain's train split,
    seeded by the input's index, so a re-run writes the same images.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} unknown; valid: {', '.join(DIRECTIONS)}")
    if method == "none":
        return lambda images, indices: images
    if method in ("fda", "colour"):
        references = run_dir.dataset(f"data/{cfg.target}" if direction == TO_TARGET else f"data/{source}", "train")

        def pick(indices: Sequence[int]) -> list[np.ndarray]:
            return [references[int(np.random.default_rng([cfg.seed, 5, i]).integers(len(references)))].image for i in indices]

        if method == "fda":
            return lambda images, indices: fourier.fda(images, pick(indices), cfg.i2i_fda_beta)
        return lambda images, indices: fourier.colour_transfer(images, pick(indices))
    stage = _cyclegan_stage(method, source)
    if run_dir.manifest(stage) is None:
        raise ValueError(f"{method} for {source} is not trained in run {run_dir.name!r}: call translation.train_cyclegans first")
    generator = cyclegan.ResnetGenerator.from_pretrained(run_dir.stage_path(stage) / ("g_st" if direction == TO_TARGET else "g_ts"))
    return lambda images, indices: cyclegan.translate(generator, images)


def write_sets(run_dir: RunDir, cfg: Profile) -> dict[str, Path]:
    """Direction (a): stage ``translated/<method>-<source>`` for every method and source (train split); name -> path."""
    check(run_dir, cfg)
    out = {}
    for source in cfg.sources:
        for method in methods(cfg):
            out[f"translated/{method}-{source}"] = write_set(run_dir, cfg, method, source)
    return out


def write_set(run_dir: RunDir, cfg: Profile, method: str, source: str) -> Path:
    """Stage ``translated/<method>-<source>``: the source's train images in the target style, with the source labels."""
    inputs, params = _method_inputs(run_dir, cfg, method, source)

    def build(ctx):
        if not ctx.is_main:  # one process writes the translated set; the others wait for it at the end of the stage
            return
        translated = Translated(run_dir.dataset(f"data/{source}", "train"), translator(run_dir, cfg, method, source, TO_TARGET))
        write_cityscapes(translated, ctx.out, "train")
        ctx.info["train_images"] = len(translated)

    return run_dir.stage(f"translated/{method}-{source}", params, build, inputs=inputs)


class Translated(Dataset):
    """A dataset whose images are translated a batch at a time on demand; labels, depth, instances and ids stay."""

    def __init__(self, dataset: Dataset, translate: Callable[[np.ndarray, Sequence[int]], np.ndarray], batch_size: int = _TRANSLATE_BATCH) -> None:
        self.dataset, self.translate, self.batch_size = dataset, translate, batch_size
        self.name = f"{getattr(dataset, 'name', 'dataset')} (translated)"
        self.missing_classes = getattr(dataset, "missing_classes", ())
        self._cache: dict[int, Sample] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        index = self._check_index(index)
        if index not in self._cache:
            self._translate_batch(index)
        return self._cache[index]

    def _translate_batch(self, start: int) -> None:
        indices = list(range(start, min(start + self.batch_size, len(self.dataset))))
        samples = [self.dataset[i] for i in indices]
        self._cache = {}
        # Images of one size are translated together (real datasets may mix sizes).
        for shape in dict.fromkeys(s.image.shape for s in samples):
            group = [(i, s) for i, s in zip(indices, samples, strict=True) if s.image.shape == shape]
            translated = self.translate(np.stack([s.image for _, s in group]), [i for i, _ in group])
            for (i, s), image in zip(group, translated, strict=True):
                self._cache[i] = Sample(image, s.label, s.depth, s.instances, s.id, s.meta)


# --- helpers ------------------------------------------------------------------------------


class _Subset(Dataset):
    """The samples of ``dataset`` at ``indices``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.name = f"{getattr(dataset, 'name', 'dataset')} ({len(self.indices)} labelled)"

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        return self.dataset[self.indices[self._check_index(index)]]


def _k_of(method: str) -> int:
    if method == "cyclegan":
        return 0
    if method.startswith("cyclegan_k") and method[len("cyclegan_k") :].isdigit():
        return int(method[len("cyclegan_k") :])
    raise ValueError(f"translation method {method!r} unknown; valid: none, fda, colour, cyclegan, cyclegan_k<K>")


def _cyclegan_stage(method: str, source: str) -> str:
    return f"i2i/cyclegan/{source}-k{_k_of(method)}"


def _method_inputs(run_dir: RunDir, cfg: Profile, method: str, source: str) -> tuple[list[str], dict]:
    """Input stages and parameters that decide what ``method`` makes for ``source`` (in either direction)."""
    inputs = [f"data/{source}", f"data/{cfg.target}"]
    params: dict = {"method": method, "source": source, "target": cfg.target}
    if method == "fda":
        params |= {"beta": cfg.i2i_fda_beta, "seed": cfg.seed}
    elif method == "colour":
        params |= {"seed": cfg.seed}
    elif method != "none":
        inputs.append(_cyclegan_stage(method, source))
    return inputs, params



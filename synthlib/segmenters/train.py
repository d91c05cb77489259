"""Training loop for segmenters on accelerate, with the UDA methods as switches.

Devices, mixed precision (on GPUs), gradient accumulation, checkpoint state
and multiple processes (``accelerate launch``) all come from accelerate.
Batches are random scale / crop / flip augmentations whose randomness is a
function of (seed, position in the sample stream), so an interrupted run that
resumes from a checkpoint sees exactly the batches an uninterrupted run sees.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from PIL import Image
from tqdm.auto import tqdm
from transformers import get_polynomial_decay_schedule_with_warmup

from synthlib import checkpoints as checkpoints_io
from synthlib.datasets import Dataset
from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.segmenters import uda
from synthlib.segmenters.model import normalise


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a training run (stages fill it from the profile)."""

    steps: int = 1000
    batch_size: int = 8
    lr: float = 6e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    poly_power: float = 1.0
    crop: tuple[int, int] | None = None  # (h, w); None = the full image size
    scale: tuple[float, float] = (0.75, 1.5)
    flip: bool = True
    rcs_temperature: float = 0.0  # rare-class sampling; 0 disables, DAFormer uses 0.01
    seed: int = 0
    grad_accum: int = 1
    mixed_precision: bool = True  # used only on CUDA
    checkpoint_every: int = 200
    data_workers: int = 0  # loader worker processes on CUDA (0 on CPUs); speed only, not part of a stage's key
    # ADVENT
    advent: bool = False
    advent_minent: float = 0.001
    advent_adv: float = 0.001
    advent_disc_lr: float = 1e-4
    # ROAD-Net
    road_dst: bool = False
    road_dst_weight: float = 0.1
    road_spt: bool = False
    road_spt_weight: float = 0.01
    road_grid: int = 3
    # Self-training (mean teacher)
    self_training: bool = False
    st_ema: float = 0.99
    st_threshold: float = 0.968
    st_classmix: bool = True

    @property
    def needs_target(self) -> bool:
        return self.advent or self.road_dst or self.road_spt or self.self_training


def train(
    model: torch.nn.Module,
    source: Dataset,
    settings: TrainSettings,
    target: Dataset | None = None,
    checkpoints: Path | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` in place on labelled ``source`` (and unlabelled ``target`` for UDA).

    With ``checkpoints`` the state is saved every ``checkpoint_every`` steps and
    a later call with the same folder resumes from the newest one. Returns the
    loss history (one value per step and term). A non-finite loss or weights raise
    ``checkpoints.DivergenceError`` naming the step (and the stage, from
    ``checkpoints``' place in the run), with the last good checkpoint kept.
    """
    if settings.needs_target and target is None:
        raise ValueError("the UDA switches (advent, road_dst, road_spt, self_training) need a target dataset")
    if len(source) == 0:
        raise ValueError(f"training set {getattr(source, 'name', '')!r} is empty")
    accelerator = _accelerator(settings)
    set_seed(settings.seed)
    crop = tuple(settings.crop) if settings.crop else source[0].image.shape[:2]
    micro_batches = settings.steps * settings.grad_accum
    total = micro_batches * settings.batch_size * accelerator.num_processes
    src_loader = _loader(source, settings, crop, total, stream=0, weights=_rcs_weights(source, settings.rcs_temperature))
    tgt_loader = _loader(target, settings, crop, total, stream=1) if settings.needs_target else None

    parts = _Parts(model, settings)
    optimizer = torch.optim.AdamW(parts.trainable(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = lr_schedule(optimizer, settings, accelerator.num_processes)
    prepared = accelerator.prepare(model, optimizer, scheduler, src_loader, *parts.extra_modules())
    model, optimizer, scheduler, src_loader = prepared[:4]
    parts.bind(model, prepared[4:])
    if parts.teacher is not None:
        accelerator.register_for_checkpointing(parts.teacher.model)
    disc_optimizer = None
    if settings.advent:
        disc_optimizer = accelerator.prepare(torch.optim.Adam(parts.disc.parameters(), lr=settings.advent_disc_lr, betas=(0.9, 0.99)))
    if tgt_loader is not None:
        tgt_loader = accelerator.prepare(tgt_loader)

    history: dict[str, list[float]] = {}
    start = checkpoints_io.resume(accelerator, checkpoints, history, what="segmenter training")
    guard = checkpoints_io.Guard("segmenter training", checkpoints, settings.steps, accelerator)  # NaN stops here
    src_iter = _batches_from(accelerator, src_loader, start * settings.grad_accum)
    tgt_iter = _batches_from(accelerator, tgt_loader, start * settings.grad_accum) if tgt_loader is not None else None

    model.train()
    bar = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc="train segmenter", disable=not (progress and accelerator.is_main_process))
    for step in bar:
        t0 = time.perf_counter()
        for _ in range(settings.grad_accum):
            with accelerator.accumulate(model):
                losses = parts.losses(next(src_iter), next(tgt_iter) if tgt_iter else None, step)
                accelerator.backward(sum(losses.values()))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                if disc_optimizer is not None:
                    losses["disc"] = parts.discriminator_step(disc_optimizer, accelerator)
        if parts.teacher is not None:
            parts.teacher.update(accelerator.unwrap_model(model))
        for key, value in losses.items():
            history.setdefault(key, []).append(float(value.detach()) if torch.is_tensor(value) else float(value))
        guard.check(step, {key: history[key][-1] for key in losses}, model.parameters)
        history.setdefault("step_seconds", []).append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{history['source'][-1]:.3f}")
        if checkpoints is not None and settings.checkpoint_every and (step + 1) % settings.checkpoint_every == 0 and step + 1 < settings.steps:
            guard.save(accelerator, step + 1, history, model.parameters())
    accelerator.wait_for_everyone()
    guard.finish(settings.steps, model.parameters())  # the last update may have made them NaN: never hand those on
    model.eval()
    return history


def _accelerator(settings: TrainSettings) -> Accelerator:
    # ADVENT and ROAD (spt) train domain discriminators beside the segmenter, and ADVENT freezes its own
    # (requires_grad toggled on a DDP-wrapped module) for the adversarial term: let DDP allow parameters
    # without gradients. In one process there is no DDP and this changes nothing.
    discriminators = settings.advent or settings.road_spt
    return Accelerator(
        mixed_precision="fp16" if settings.mixed_precision and torch.cuda.is_available() else "no",
        gradient_accumulation_steps=settings.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)] if discriminators else [],
    )


def _batches_from(accelerator: Accelerator, loader, skip: int):
    """An iterator over ``loader`` after its first ``skip`` batches: where a resumed run left off."""
    return iter(accelerator.skip_first_batches(loader, skip) if skip else loader)


# --- the model and its UDA companions -----------------------------------------------------


def _pretrained_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of the pretrained encoder ``model`` starts from: ROAD-Net's distillation target.

    ROAD imitates the ImageNet model's features; a segmenter built from a named config has no
    pretrained encoder, and imitating its random initial features would only hold it back.
    """
    if getattr(model.config, "synthlib_init", None) == "config":
        raise ValueError(
            "ROAD-Net's target-guided distillation (road_dst) imitates the features of a pretrained encoder, but this "
            "segmenter starts from random weights (a named config); build it from a pretrained one (seg_model "
            "'zoo:mit-b0', a hub id such as 'nvidia/mit-b5', or a SegFormer folder)"
        )
    return copy.deepcopy(model.segformer).eval().requires_grad_(False)


class _Parts:
    """The segmenter plus whatever the enabled UDA terms need, and their losses."""

    def __init__(self, model: torch.nn.Module, settings: TrainSettings) -> None:
        self.s = settings
        self.model = model
        channels = model.config.hidden_sizes[-1]
        self.disc = uda.EntropyDiscriminator(NUM_CLASSES) if settings.advent else None
        self.spatial = uda.SpatialDomainClassifier(channels, settings.road_grid) if settings.road_spt else None
        self.reference = _pretrained_encoder(model) if settings.road_dst else None
        self.teacher = uda.MeanTeacher(model, settings.st_ema) if settings.self_training else None
        self._disc_inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    def trainable(self) -> list[torch.nn.Parameter]:
        params = list(self.model.parameters())
        if self.spatial is not None:
            params += list(self.spatial.parameters())
        return params

    def extra_modules(self) -> list[torch.nn.Module]:
        return [m for m in (self.disc, self.spatial) if m is not None]

    def bind(self, model: torch.nn.Module, extras) -> None:
        self.model = model
        extras = list(extras)
        if self.disc is not None:
            self.disc = extras.pop(0)
        if self.spatial is not None:
            self.spatial = extras.pop(0)
        device = next(model.parameters()).device
        for frozen in (self.reference, self.teacher.model if self.teacher else None):
            if frozen is not None:
                frozen.to(device)

    def losses(self, src: dict, tgt: dict | None, step: int) -> dict[str, torch.Tensor]:
        s = self.s
        want_features = s.road_spt
        out = self.model(pixel_values=normalise(src["image"]), output_hidden_states=want_features)
        logits_s = _upsample(out.logits, src["label"].shape[1:])
        losses = {"source": F.cross_entropy(logits_s, src["label"].long(), ignore_index=IGNORE)}
        if tgt is None:
            return losses
        if s.advent or s.road_dst or s.road_spt:
            out_t = self.model(pixel_values=normalise(tgt["image"]), output_hidden_states=s.road_dst or s.road_spt)
            if s.advent:
                prob_t = torch.softmax(out_t.logits, 1)
                losses["minent"] = s.advent_minent * uda.minent_loss(prob_t)
                for p in self.disc.parameters():
                    p.requires_grad_(False)
                losses["adv"] = s.advent_adv * uda.domain_bce(self.disc(uda.self_information(prob_t)), 0.0)
                for p in self.disc.parameters():
                    p.requires_grad_(True)
                self._disc_inputs = (torch.softmax(out.logits, 1).detach(), prob_t.detach())
            if s.road_dst:
                with torch.no_grad():
                    reference = self.reference(pixel_values=normalise(tgt["image"])).last_hidden_state
                losses["road_dst"] = s.road_dst_weight * uda.distillation_loss(out_t.hidden_states[-1], reference)
            if s.road_spt:  # both domains in one call: each classifier's parameters are used once a step
                features = torch.cat([out.hidden_states[-1], out_t.hidden_states[-1]])
                domain = torch.cat([torch.zeros(len(src["box"])), torch.ones(len(tgt["box"]))]).to(features.device)
                losses["road_spt"] = s.road_spt_weight * self.spatial(features, torch.cat([src["box"], tgt["box"]]), domain)
        if s.self_training:
            losses["self_training"] = self._self_training_loss(src, tgt, step)
        return losses

    def _self_training_loss(self, src: dict, tgt: dict, step: int) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = _upsample(self.teacher.model(pixel_values=normalise(tgt["image"])).logits, tgt["image"].shape[1:3])
            pseudo, weight = uda.confidence_weight(torch.softmax(teacher_logits, 1), self.s.st_threshold)
        image, label = tgt["image"], pseudo
        if self.s.st_classmix:
            mix_rng = torch.Generator().manual_seed(self.s.seed * 1_000_003 + step)  # resumable: keyed by step
            image, label, weight = uda.class_mix(src["image"], src["label"].long(), tgt["image"], pseudo, weight, mix_rng)
        logits = _upsample(self.model(pixel_values=normalise(image)).logits, label.shape[1:])
        per_pixel = F.cross_entropy(logits, label, ignore_index=IGNORE, reduction="none")
        return (per_pixel * weight).mean()

    def discriminator_step(self, optimizer, accelerator: Accelerator) -> torch.Tensor:
        prob_s, prob_t = self._disc_inputs
        optimizer.zero_grad()
        loss = uda.domain_bce(self.disc(uda.self_information(prob_s)), 0.0) + uda.domain_bce(self.disc(uda.self_information(prob_t)), 1.0)
        accelerator.backward(loss / 2)
        optimizer.step()
        return loss.detach() / 2


def _upsample(logits: torch.Tensor, size) -> torch.Tensor:
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def lr_schedule(optimizer: torch.optim.Optimizer, settings: TrainSettings, num_processes: int = 1):
    """Linear warm-up then poly decay to 0 (transformers' schedule), in the optimiser steps of one process on any number.

    accelerate steps a prepared scheduler ``num_processes`` times per optimiser step (not per
    accumulated micro-batch), so the schedule is laid out over that many times the steps.
    """
    steps = max(settings.steps, 1)
    warmup = min(settings.warmup_steps, steps - 1)  # at least one decay step: transformers divides by their count
    return get_polynomial_decay_schedule_with_warmup(
        optimizer, warmup * num_processes, steps * num_processes, lr_end=0.0, power=settings.poly_power
    )


# --- data ---------------------------------------------------------------------------------


class _Crops(torch.utils.data.Dataset):
    """Random scale / crop / flip of dataset samples; randomness keyed by stream position."""

    def __init__(self, dataset: Dataset, settings: TrainSettings, crop: tuple[int, int], stream: int) -> None:
        self.dataset, self.settings, self.crop, self.stream = dataset, settings, crop, stream

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        position, index = key
        rng = np.random.default_rng([self.settings.seed, self.stream, position])
        sample = self.dataset[index]
        image, label, box = augment(sample.image, sample.label, self.crop, self.settings.scale, self.settings.flip, rng)
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(label), "box": torch.from_numpy(box)}


def augment(
    image: np.ndarray, label: np.ndarray, crop: tuple[int, int], scale: tuple[float, float], flip: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random rescale, crop (padded with ignore when the image is smaller) and horizontal flip.

    Returns the crop, its labels and its box: top, left, height, width as
    fractions of the original image, and the flip flag (for ROAD's grid).
    """
    h, w = image.shape[:2]
    ch, cw = crop
    s = float(rng.uniform(*scale))
    sh, sw = max(round(h * s), 1), max(round(w * s), 1)
    if (sh, sw) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((sw, sh), Image.BILINEAR))
        label = np.asarray(Image.fromarray(label).resize((sw, sh), Image.NEAREST))
    y0 = int(rng.integers(0, max(sh - ch, 0) + 1))
    x0 = int(rng.integers(0, max(sw - cw, 0) + 1))
    out_image = np.zeros((ch, cw, 3), np.uint8)
    out_label = np.full((ch, cw), IGNORE, np.uint8)
    part_image = image[y0 : y0 + ch, x0 : x0 + cw]
    out_image[: part_image.shape[0], : part_image.shape[1]] = part_image
    out_label[: part_image.shape[0], : part_image.shape[1]] = label[y0 : y0 + ch, x0 : x0 + cw]
    flipped = bool(flip and rng.random() < 0.5)
    if flipped:
        out_image, out_label = out_image[:, ::-1].copy(), out_label[:, ::-1].copy()
    box = np.array([y0 / sh, x0 / sw, ch / sh, cw / sw, float(flipped)], np.float32)
    return out_image, out_label, box


class _Stream(torch.utils.data.Sampler):
    """``total`` (position, index) pairs drawn with replacement by ``weights`` from a seeded generator."""

    def __init__(self, weights: np.ndarray, total: int, seed: int) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.total, self.seed = total, seed

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        indices = torch.multinomial(self.weights, self.total, replacement=True, generator=g).tolist()
        return iter(enumerate(indices))


def _loader(dataset: Dataset, settings: TrainSettings, crop, total: int, stream: int, weights: np.ndarray | None = None):
    weights = np.ones(len(dataset)) if weights is None else weights
    sampler = _Stream(weights, total, settings.seed * 2 + stream)
    # A loader of its own generator: starting an iterator would otherwise draw from the global
    # RNG, and a resumed run (which starts a fresh iterator) would then drop out other units.
    generator = torch.Generator().manual_seed(settings.seed)
    # Workers change nothing but speed: each crop's randomness is keyed by its stream position (_Crops).
    workers = settings.data_workers if torch.cuda.is_available() else 0
    return torch.utils.data.DataLoader(
        _Crops(dataset, settings, crop, stream), batch_size=settings.batch_size, sampler=sampler, generator=generator,
        num_workers=workers, pin_memory=workers > 0, persistent_workers=workers > 0,
    )  # fmt: skip


def recorded(settings: TrainSettings) -> dict[str, Any]:
    """The settings that decide the weights, for a stage's key: all but the speed-only ``data_workers``."""
    return {k: v for k, v in asdict(settings).items() if k != "data_workers"}


def rcs_weights(presence: np.ndarray, pixel_share: np.ndarray, temperature: float) -> np.ndarray:
    """Rare-class sampling (DAFormer): per-image sampling weights.

    A class c is drawn with P(c) proportional to exp((1 - f_c) / T), f_c its
    pixel share, then an image containing c uniformly. ``presence`` is an
    images x classes boolean matrix.
    """
    present = presence.any(0)
    logits = np.where(present, (1 - pixel_share) / temperature, -np.inf)
    p_class = np.exp(logits - logits[present].max())
    p_class /= p_class.sum()
    per_image = presence / np.maximum(presence.sum(0, keepdims=True), 1)
    return per_image @ p_class


def _rcs_weights(dataset: Dataset, temperature: float) -> np.ndarray | None:
    if temperature <= 0:
        return None
    presence = np.zeros((len(dataset), NUM_CLASSES), bool)
    pixels = np.zeros(NUM_CLASSES, np.int64)
    for i in range(len(dataset)):
        counts = np.bincount(dataset[i].label.ravel(), minlength=256)[:NUM_CLASSES]
        presence[i] = counts > 0
        pixels += counts
    return rcs_weights(presence, pixels / max(pixels.sum(), 1), temperature)

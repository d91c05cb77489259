"""CycleGAN (Zhu et al., 2017) in plain PyTorch on accelerate, with optional semantic guidance.

Two ResNet generators (source -> target ``g_st``, target -> source ``g_ts``)
and two PatchGAN discriminators are trained with the least-squares GAN loss,
the cycle-consistency loss and an optional identity loss; the discriminators
see a buffer of earlier translations; the learning rate is constant, then
decays linearly to zero.

*Semantic guidance* (CyCADA's semantic consistency, in the semi-supervised form
of the K-labels poster) adds a cross-entropy term: a frozen *target-side*
segmenter must recover the source label from the translated source image, and
a frozen *source-side* segmenter must recover the label of each of K labelled
target images from its translation to the source style. Without guidance
this is plain CycleGAN.

Like the segmenter and diffusion loops, every random choice is a function of
(seed, position in the sample stream) or (seed, step), and the image buffers
are part of the checkpoint, so a resumed run makes exactly the updates of an
uninterrupted one. The networks and the image buffer live in ``cyclegan_nets``
and are re-exported here.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from synthlib import checkpoints as checkpoints_io
from synthlib.datasets import Dataset
from synthlib.labels import IGNORE
from synthlib.segmenters.infer import logits as segmenter_logits
from synthlib.segmenters.train import augment
from synthlib.translation.cyclegan_nets import CycleGAN, ImageBuffer, PatchDiscriminator, ResnetGenerator  # noqa: F401 - public here too


@dataclass(frozen=True)
class CycleGANSettings:
    """Everything that decides a CycleGAN: architecture and training (stages fill it from the profile's i2i_* fields)."""

    ngf: int = 64  # generator base channels
    ndf: int = 64  # discriminator base channels
    blocks: int = 9  # residual blocks of each generator
    disc_layers: int = 3  # PatchGAN depth; 3 is the 70x70 PatchGAN
    steps: int = 1000
    decay_steps: int = 500  # the last ``decay_steps`` decay the learning rate linearly towards 0
    batch_size: int = 1
    lr: float = 2e-4
    cycle_weight: float = 10.0
    identity_weight: float = 0.5  # a fraction of cycle_weight, as in CycleGAN; 0 disables the identity loss
    semantic_weight: float = 1.0  # guidance loss weight (only with guidance)
    buffer_size: int = 50
    crop: tuple[int, int] | None = None  # (h, w) random training crop; None = the whole image
    flip: bool = True
    seed: int = 0
    checkpoint_every: int = 100
    mixed_precision: bool = True  # fp16, used only on CUDA

    def __post_init__(self) -> None:
        for name in ("ngf", "ndf", "disc_layers", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise SettingsError(name, getattr(self, name), "must be at least 1")
        for name in ("blocks", "buffer_size", "checkpoint_every", "decay_steps", "lr", "cycle_weight", "identity_weight", "semantic_weight"):
            if getattr(self, name) < 0:
                raise SettingsError(name, getattr(self, name), "must not be negative")
        if self.decay_steps > self.steps:
            raise SettingsError("decay_steps", self.decay_steps, f"exceeds the {self.steps} training steps; use at most that many")
        if self.crop is not None and (len(self.crop) != 2 or any(c < 1 or c % ResnetGenerator.size_multiple for c in self.crop)):
            raise SettingsError(
                "crop", self.crop, f"must be (h, w) with both multiples of {ResnetGenerator.size_multiple} (the generator "
                "downsamples twice), or empty for whole images"
            )


class SettingsError(ValueError):
    """A CycleGAN setting out of range; ``field`` names it (stages translate it to the profile field)."""

    def __init__(self, field: str, value: object, problem: str) -> None:
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"CycleGAN setting {field}={value!r} {problem}")


# --- losses -------------------------------------------------------------------------------


def lsgan_loss(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., 2017): mean squared distance of the scores to 1 (real) or 0 (fake)."""
    return F.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


@dataclass
class Guidance:
    """Frozen segmenters and the K labelled target images for the semantic guidance loss."""

    target_segmenter: nn.Module  # judges source images translated to the target style
    source_segmenter: nn.Module  # judges labelled target images translated to the source style
    labelled: Dataset  # the K labelled target images


def generator_losses(
    model: CycleGAN,
    real_s: torch.Tensor,
    real_t: torch.Tensor,
    settings: CycleGANSettings,
    label_s: torch.Tensor | None = None,
    guidance: Guidance | None = None,
    labelled_t: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The generators' loss terms (unweighted) and the two translations ``fake_s``, ``fake_t``.

    Images are Nx3xHxW in [-1, 1]. Terms: ``adv`` (LSGAN, both directions),
    ``cycle_source`` = |g_ts(g_st(s)) - s|_1, ``cycle_target`` likewise,
    ``identity`` (when weighted) and ``semantic`` (with guidance: cross-entropy
    of the target-side segmenter on g_st(s) against ``label_s``, plus the
    source-side segmenter on g_ts of the labelled target images ``labelled_t``
    = (images, labels)). ``total(losses, settings)`` weights them.
    """
    fake_t = model.g_st(real_s)
    fake_s = model.g_ts(real_t)
    losses = {
        "adv": lsgan_loss(model.d_t(fake_t), True) + lsgan_loss(model.d_s(fake_s), True),
        "cycle_source": F.l1_loss(model.g_ts(fake_t), real_s),
        "cycle_target": F.l1_loss(model.g_st(fake_s), real_t),
    }
    if settings.identity_weight > 0:
        # A generator shown an image already in its output style should leave it alone (keeps colours).
        losses["identity"] = F.l1_loss(model.g_st(real_t), real_t) + F.l1_loss(model.g_ts(real_s), real_s)
    if guidance is not None:
        if label_s is None or labelled_t is None:
            raise ValueError("semantic guidance needs the source labels (label_s) and a labelled target batch (labelled_t)")
        images_t, labels_t = labelled_t
        losses["semantic"] = _cross_entropy(guidance.target_segmenter, fake_t, label_s) + _cross_entropy(
            guidance.source_segmenter, model.g_ts(images_t), labels_t
        )
    return losses, fake_s, fake_t


def total(losses: dict[str, torch.Tensor], settings: CycleGANSettings) -> torch.Tensor:
    """The weighted sum of ``generator_losses``' terms."""
    out = losses["adv"] + settings.cycle_weight * (losses["cycle_source"] + losses["cycle_target"])
    if "identity" in losses:
        out = out + settings.cycle_weight * settings.identity_weight * losses["identity"]
    if "semantic" in losses:
        out = out + settings.semantic_weight * losses["semantic"]
    return out


def discriminator_losses(
    model: CycleGAN, real_s: torch.Tensor, real_t: torch.Tensor, fake_s: torch.Tensor, fake_t: torch.Tensor
) -> dict[str, torch.Tensor]:
    """LSGAN losses of the two discriminators (halved, as in CycleGAN, to slow them relative to the generators)."""
    return {
        "d_source": 0.5 * (lsgan_loss(model.d_s(real_s), True) + lsgan_loss(model.d_s(fake_s.detach()), False)),
        "d_target": 0.5 * (lsgan_loss(model.d_t(real_t), True) + lsgan_loss(model.d_t(fake_t.detach()), False)),
    }


def _cross_entropy(segmenter: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # The segmenters take 0-255 NHWC images (they normalise themselves); gradients flow to the generator only.
    pixels = ((images + 1) * 127.5).permute(0, 2, 3, 1)
    return F.cross_entropy(segmenter_logits(segmenter, pixels), labels.long(), ignore_index=IGNORE)


def linear_decay(settings: CycleGANSettings):
    """LR factor per step: 1, then linearly down over the last ``decay_steps`` steps (CycleGAN's ``linear`` policy)."""
    constant = settings.steps - settings.decay_steps

    def factor(step: int) -> float:
        return 1.0 - max(0, step - constant) / float(settings.decay_steps + 1)

    return factor


# --- training -----------------------------------------------------------------------------


def train(
    model: CycleGAN,
    source: Dataset,
    target: Dataset,
    settings: CycleGANSettings,
    guidance: Guidance | None = None,
    checkpoints: Path | None = None,
    progress: bool = True,
) -> dict[str, list[float]]:
    """Train ``model`` in place on unpaired ``source`` (with labels, for guidance) and ``target`` images.

    With ``checkpoints`` the state (networks, optimisers, schedules, image
    buffers) is saved every ``checkpoint_every`` steps and a later call with the
    same folder resumes from the newest one. Returns the history: one value per
    step of each loss term (unweighted) and ``step_seconds``. A non-finite loss or
    weights raise ``checkpoints.DivergenceError`` naming the step (and the stage),
    with the last good checkpoint kept.
    """
    for name, data in (("source", source), ("target", target)) + ((("labelled target", guidance.labelled),) if guidance else ()):
        if len(data) == 0:
            raise ValueError(f"CycleGAN {name} dataset {getattr(data, 'name', '')!r} is empty")
    run = _prepare(model, source, target, settings, guidance)
    accelerator, nets = run.accelerator, run.nets
    history: dict[str, list[float]] = {}
    start = checkpoints_io.resume(accelerator, checkpoints, history, what="CycleGAN training")
    guard = checkpoints_io.Guard("CycleGAN training", checkpoints, settings.steps, accelerator)  # NaN stops here
    weights = lambda: [p for net in nets.networks() for p in net.parameters()]  # noqa: E731
    iterators = [iter(accelerator.skip_first_batches(loader, start) if start else loader) for loader in run.loaders]

    for net in nets.networks():
        net.train()
    bar = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc="train CycleGAN", disable=not (progress and accelerator.is_main_process))
    for step in bar:
        t0 = time.perf_counter()
        losses = _update(run, [next(it) for it in iterators], step, settings, guidance)
        for key, value in losses.items():
            history.setdefault(key, []).append(float(value.detach()))
        guard.check(step, {key: history[key][-1] for key in losses}, weights)
        history.setdefault("step_seconds", []).append(time.perf_counter() - t0)
        bar.set_postfix(cycle=f"{history['cycle_source'][-1]:.3f}/{history['cycle_target'][-1]:.3f}")
        done = step + 1
        if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < settings.steps:
            guard.save(accelerator, done, history, weights())  # saves nothing without a checkpoint folder
    accelerator.wait_for_everyone()
    guard.finish(settings.steps, weights())  # the last update may have made them NaN: never hand those on
    model.g_st, model.g_ts, model.d_s, model.d_t = [accelerator.unwrap_model(net).eval() for net in nets.networks()]
    return history


@dataclass
class _Run:
    """What ``train`` steps: the accelerator, the objects it prepared, and the image buffers (source, target)."""

    accelerator: Accelerator
    nets: CycleGAN
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    loaders: list[torch.utils.data.DataLoader]  # source, target and (with guidance) labelled target streams
    buffers: tuple[ImageBuffer, ImageBuffer]


def _prepare(model: CycleGAN, source: Dataset, target: Dataset, settings: CycleGANSettings, guidance: Guidance | None) -> _Run:
    """The accelerator, with the networks, Adam optimisers, LR schedules and loaders prepared, and the buffers registered."""
    accelerator = Accelerator(mixed_precision="fp16" if settings.mixed_precision and torch.cuda.is_available() else "no")
    set_seed(settings.seed)
    total_samples = settings.steps * settings.batch_size * accelerator.num_processes
    streams = [source, target] + ([guidance.labelled] if guidance else [])
    loaders = [_loader(data, settings, total_samples, stream) for stream, data in enumerate(streams)]
    # Adam with beta1 = 0.5, as CycleGAN: momentum 0.9 makes the adversarial game oscillate.
    opt_g = torch.optim.Adam(itertools.chain(model.g_st.parameters(), model.g_ts.parameters()), lr=settings.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(itertools.chain(model.d_s.parameters(), model.d_t.parameters()), lr=settings.lr, betas=(0.5, 0.999))
    # accelerate steps a prepared scheduler once per process per step; the schedule counts optimiser steps.
    decay = linear_decay(settings)
    per_step = accelerator.num_processes

    def schedule(count: int) -> float:
        return decay(count // per_step)

    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, schedule)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, schedule)
    prepared = accelerator.prepare(*model.networks(), opt_g, opt_d, sched_g, sched_d, *loaders)
    buffers = ImageBuffer(settings.buffer_size), ImageBuffer(settings.buffer_size)
    accelerator.register_for_checkpointing(*buffers)
    if guidance is not None:
        for segmenter in (guidance.target_segmenter, guidance.source_segmenter):
            segmenter.to(accelerator.device).eval().requires_grad_(False)
    return _Run(accelerator, CycleGAN(*prepared[:4]), *prepared[4:8], list(prepared[8:]), buffers)


def _update(run: _Run, batches: list[dict], step: int, settings: CycleGANSettings, guidance: Guidance | None) -> dict[str, torch.Tensor]:
    """One training step, generators then discriminators; returns every loss term (unweighted), generators' first."""
    nets, accelerator = run.nets, run.accelerator
    real_s, real_t = _to_unit(batches[0]["image"]), _to_unit(batches[1]["image"])
    labelled_t = (_to_unit(batches[2]["image"]), batches[2]["label"]) if guidance else None

    # Generators: the discriminators only score, so their parameters stay out of this backward pass.
    _set_requires_grad([nets.d_s, nets.d_t], False)
    losses, fake_s, fake_t = generator_losses(nets, real_s, real_t, settings, batches[0]["label"], guidance, labelled_t)
    run.opt_g.zero_grad()
    accelerator.backward(total(losses, settings))
    run.opt_g.step()
    run.sched_g.step()

    # Discriminators, on a mix of this step's and earlier translations; buffer draws keyed by step.
    _set_requires_grad([nets.d_s, nets.d_t], True)
    draws = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
    d_losses = discriminator_losses(nets, real_s, real_t, run.buffers[0].query(fake_s, draws), run.buffers[1].query(fake_t, draws))
    run.opt_d.zero_grad()
    accelerator.backward(d_losses["d_source"] + d_losses["d_target"])
    run.opt_d.step()
    run.sched_d.step()
    return {**losses, **d_losses}


@torch.no_grad()
def translate(generator: nn.Module, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Translate uint8 NxHxWx3 images with a generator; any H, W (reflect-padded to the generator's multiple)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"translate expects uint8 NxHxWx3 images, got {images.dtype} {images.shape}")
    generator.eval()
    device = next(generator.parameters()).device
    m = ResnetGenerator.size_multiple
    h, w = images.shape[1:3]
    pad_h, pad_w = -h % m, -w % m
    out = np.empty_like(images)
    for start in range(0, len(images), batch_size):
        x = _to_unit(torch.from_numpy(images[start : start + batch_size]).to(device))
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = generator(x)[:, :, :h, :w]
        out[start : start + batch_size] = _to_uint8(y)
    return out


# --- data ---------------------------------------------------------------------------------


class _Stream(torch.utils.data.Dataset):
    """Position p of a sample stream: a random image of ``dataset`` with random crop and flip, keyed by (seed, stream, p)."""

    def __init__(self, dataset: Dataset, settings: CycleGANSettings, total: int, stream: int) -> None:
        self.dataset, self.settings, self.total, self.stream = dataset, settings, total, stream

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.settings.seed, self.stream, position])
        sample = self.dataset[int(rng.integers(len(self.dataset)))]
        crop = tuple(self.settings.crop) if self.settings.crop else sample.image.shape[:2]
        if crop[0] > sample.image.shape[0] or crop[1] > sample.image.shape[1]:
            raise ValueError(f"CycleGAN crop {crop} is larger than image {sample.id!r} of {sample.image.shape[:2]}; use a smaller i2i_crop")
        image, label, _ = augment(sample.image, sample.label, crop, (1.0, 1.0), self.settings.flip, rng)
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(label)}


def _loader(dataset: Dataset, settings: CycleGANSettings, total: int, stream: int) -> torch.utils.data.DataLoader:
    # Sequential positions (no sampler randomness): which sample a position holds is decided by _Stream.
    return torch.utils.data.DataLoader(_Stream(dataset, settings, total, stream), batch_size=settings.batch_size)


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 NxHxWx3 -> float Nx3xHxW in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """float Nx3xHxW in [-1, 1] -> uint8 NxHxWx3."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    for net in nets:
        net.requires_grad_(flag)

"""The denoising training loop shared by pretraining, stage 1 and stage 2, on accelerate.

Devices, mixed precision (on GPUs), gradient accumulation, checkpoint state
and multiple processes (``accelerate launch``) come from accelerate. Like the
segmenter loop, every random choice is a function of (seed, position in the
sample stream) or (seed, step): augmentations per sample, noise, timesteps and
condition dropout per step, so a run resumed from a checkpoint makes exactly
the updates an uninterrupted run makes — and data-loader workers, which only
prepare examples in parallel, change nothing.

On CUDA the modules that are not trained (VAE, text encoder, and the UNet
under a ControlNet) run at ``inference_dtype`` (half precision on the paper
profile), as the Stable Diffusion / ControlNet training scripts run them;
the trained module keeps float32 weights under accelerate's mixed precision.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from synthlib import checkpoints as checkpoints_io
from synthlib.diffusion.conditioning import drop, drop_with_text
from synthlib.diffusion.examples import Examples, loader
from synthlib.diffusion.model import DiffusionModel
from synthlib.diffusion.precision import cast, device_dtype, restore


@dataclass(frozen=True)
class DiffusionSettings:
    """Everything that decides a diffusion training run (stages fill it from the profile's diff_* fields)."""

    steps: int = 500
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 20
    max_grad_norm: float = 1.0
    seed: int = 0
    grad_accum: int = 1
    ema: float = 0.0  # EMA decay of the trained weights (diffusers EMAModel); 0 disables
    lora_rank: int = 0  # > 0: train LoRA adapters (peft) on the UNet's attention instead of all weights
    gradient_checkpointing: bool = False
    mixed_precision: bool = True  # fp16, used only on CUDA
    checkpoint_every: int = 100
    flip: bool = True
    jitter: float = 0.0  # palette / colour jitter strength (pretraining's broad corpus)
    erosion: int = 0  # stage 2: erosion radius at the maps' resolution
    p_uncond: float = 0.0  # stage 2: condition dropout for classifier-free guidance
    eval_every: int = 0  # call ``evaluate`` every this many steps (not after the last: callers score the result)
    # stage 2: the p_uncond-dropped examples lose their prompt too (the empty prompt's embedding), so the
    # unconditional branch that guidance samples with is "" + no map, as SD and ControlNet learn it
    text_dropout: bool = False
    inference_dtype: str = "float32"  # the frozen modules' dtype on CUDA (with mixed_precision); float32 elsewhere
    data_workers: int = 0  # data-loader worker processes on CUDA (0 on CPUs): speed only, the batches are the same


#: Settings recorded in a stage's parameters only when they differ from these values: the runs made before
#: they existed ran with exactly these, and keep their stage hashes.
_RECORDED_UNLESS = {"text_dropout": False, "inference_dtype": "float32"}
#: Settings that never change a result (so never enter a stage's parameters).
_NOT_RECORDED = ("data_workers",)


def train(
    model: DiffusionModel,
    examples: Examples,
    prompts: Sequence[str],
    settings: DiffusionSettings,
    checkpoints: Path | None = None,
    evaluate: Callable[[DiffusionModel], dict[str, float]] | None = None,
    progress: bool = True,
    desc: str = "train diffusion",
) -> dict[str, list]:
    """Train ``model`` in place: the ControlNet when it has one (UNet frozen), else the UNet.

    With ``checkpoints`` the state is saved every ``checkpoint_every`` steps and
    a later call with the same folder resumes from the newest one. ``evaluate``
    (called on the main process with the current — or EMA — weights) returns
    scores recorded in the history under ``eval``. Returns the history.
    The model records how to sample it: ``inference_dtype``, and with
    ``text_dropout`` an empty ``uncond_prompt`` (guidance's unconditional pass).
    A non-finite loss or weights raise ``checkpoints.DivergenceError`` naming the
    step (and the stage, from ``checkpoints``' place in the run), with the last
    good checkpoint kept.
    """
    _check(model, settings)
    accelerator = _accelerator(settings)
    set_seed(settings.seed)
    trained_name = "controlnet" if model.controlnet is not None else "unet"
    trained, params, amp, frozen, originals = _prepare(model, trained_name, settings, accelerator)
    ema = EMAModel(params, decay=settings.ema) if settings.ema > 0 else None

    micro_batches = settings.steps * settings.grad_accum
    workers = settings.data_workers if accelerator.device.type == "cuda" else 0
    batches_in = loader(examples, settings, micro_batches * settings.batch_size * accelerator.num_processes, workers)
    optimizer, lr_schedule = _optimizer(params, settings, accelerator.num_processes)
    wrapped, optimizer, lr_schedule, batches_in = accelerator.prepare(trained, optimizer, lr_schedule, batches_in)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    text = model.encode_prompt(prompts)
    empty_text = model.encode_prompt([""]) if settings.text_dropout else None
    noise_schedule = model.scheduler

    history: dict[str, list] = {}
    start = checkpoints_io.resume(accelerator, checkpoints, history, what="diffusion training")
    guard = checkpoints_io.Guard(desc, checkpoints, settings.steps, accelerator)  # NaN stops here
    batches = iter(accelerator.skip_first_batches(batches_in, start * settings.grad_accum) if start else batches_in)

    bar = tqdm(range(start, settings.steps), initial=start, total=settings.steps, desc=desc, disable=not (progress and accelerator.is_main_process))
    for step in bar:
        t0 = time.perf_counter()
        for micro in range(settings.grad_accum):
            batch = next(batches)
            generator = torch.Generator().manual_seed(_step_seed(settings.seed, step, micro, accelerator.process_index))
            with accelerator.accumulate(wrapped):
                # the frozen modules' forward passes at their dtype (the trained module autocasts itself)
                with torch.autocast(accelerator.device.type, dtype=amp, enabled=amp != torch.float32):
                    loss = _loss(model, wrapped, trained_name, batch, (text, empty_text), noise_schedule, settings, generator, accelerator.device)
                accelerator.backward(loss)
                if accelerator.sync_gradients and settings.max_grad_norm:
                    accelerator.clip_grad_norm_(params, settings.max_grad_norm)
                optimizer.step()
                lr_schedule.step()
                optimizer.zero_grad()
        if ema is not None:
            ema.step(params)
        history.setdefault("loss", []).append(float(loss.detach()))
        guard.check(step, {"loss": history["loss"][-1]}, lambda: params)
        history.setdefault("step_seconds", []).append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{np.mean(history['loss'][-20:]):.4f}")
        done = step + 1
        if evaluate is not None and settings.eval_every and done % settings.eval_every == 0 and done < settings.steps:
            _evaluate(accelerator, model, evaluate, ema, params, done, history)
        if checkpoints is not None and settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < settings.steps:
            guard.save(accelerator, done, history, params)
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(params)
    guard.finish(settings.steps, params)  # the last update may have made them NaN: never hand those on
    _finish(model, trained_name, accelerator.unwrap_model(wrapped), settings)
    restore(frozen, originals)
    return history


def _accelerator(settings: DiffusionSettings) -> Accelerator:
    """Mixed precision only on CUDA (fp16, as the diffusers training scripts); gradient accumulation from the settings."""
    return Accelerator(
        mixed_precision="fp16" if settings.mixed_precision and torch.cuda.is_available() else "no",
        gradient_accumulation_steps=settings.grad_accum,
    )


def _optimizer(params: list, settings: DiffusionSettings, num_processes: int):
    """AdamW and its cosine schedule with warm-up (counted per process, as accelerate steps it)."""
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    lr_schedule = get_scheduler(
        "cosine", optimizer, num_warmup_steps=settings.warmup_steps * num_processes,
        num_training_steps=settings.steps * num_processes,
    )
    return optimizer, lr_schedule


def _check(model: DiffusionModel, settings: DiffusionSettings) -> None:
    """Errors before anything loads or trains."""
    if settings.lora_rank > 0 and importlib.util.find_spec("peft") is None:
        raise ImportError("diff_lora_rank > 0 trains LoRA adapters with peft, which is not installed: pip install peft, or set diff_lora_rank=0")
    if settings.lora_rank > 0 and model.controlnet is not None:
        raise ValueError("LoRA is for stage-1 fine-tuning of a UNet; the ControlNet branch is trained in full")
    device_dtype(settings.inference_dtype, "cpu")  # an unknown name fails here


def _prepare(model: DiffusionModel, trained_name: str, settings: DiffusionSettings, accelerator: Accelerator):
    """(trained module, its trainable parameters, frozen dtype, frozen modules, their fp32 originals).

    Every module goes to the device; the frozen ones are cast to the frozen dtype
    (their fp32 weights kept for ``_restore``); the trained one gets LoRA adapters
    or all its weights trainable, and gradient checkpointing when asked.
    """
    trained = getattr(model, trained_name)
    for module in model.modules().values():
        module.requires_grad_(False)
        module.to(accelerator.device)
    amp = _frozen_dtype(settings, accelerator)
    frozen = {name: m for name, m in model.modules().items() if name != trained_name}
    originals = cast(frozen, amp)
    model.inference_dtype = settings.inference_dtype
    if settings.text_dropout and model.conditioning is not None:
        model.uncond_prompt = ""  # what the dropped examples are trained with, and so what guidance must sample with
    if settings.lora_rank > 0:
        _add_lora(trained, settings.lora_rank)
    else:
        trained.requires_grad_(True)
    if settings.gradient_checkpointing:
        trained.enable_gradient_checkpointing()
    trained.train()
    return trained, [p for p in trained.parameters() if p.requires_grad], amp, frozen, originals


def _finish(model: DiffusionModel, trained_name: str, trained: torch.nn.Module, settings: DiffusionSettings) -> None:
    """Put the trained module back into ``model``, LoRA adapters fused, frozen for sampling."""
    if settings.lora_rank > 0:
        trained.fuse_lora()
        trained.unload_lora()
    trained.eval().requires_grad_(False)
    setattr(model, trained_name, trained)


def settings_dict(settings: DiffusionSettings) -> dict:
    """The settings that decide a result, as a plain dict (for stage parameters and manifests).

    ``data_workers`` is left out (speed only); ``text_dropout`` and
    ``inference_dtype`` are in only when set, so stages made before they
    existed keep their hashes.
    """
    out = {k: v for k, v in asdict(settings).items() if k not in _NOT_RECORDED}
    return {k: v for k, v in out.items() if k not in _RECORDED_UNLESS or v != _RECORDED_UNLESS[k]}


def training_target(schedule, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the network learns to predict from ``add_noise(x0, noise, t)``: the velocity or the noise.

    ``schedule``: a diffusers noise scheduler; its ``prediction_type`` decides
    (v_prediction: ``get_velocity(x0, noise, t)``; epsilon: ``noise``).
    """
    kind = schedule.config.prediction_type
    if kind == "v_prediction":
        return schedule.get_velocity(x0, noise, t)
    if kind == "epsilon":
        return noise
    raise ValueError(f"prediction type {kind!r} is not supported (v_prediction, epsilon)")


def with_steps(settings: DiffusionSettings, steps: int) -> DiffusionSettings:
    """The same settings for a different number of steps (warm-up capped at a tenth)."""
    return replace(settings, steps=steps, warmup_steps=min(settings.warmup_steps, max(steps // 10, 1)))


# --- one step -----------------------------------------------------------------------------


def _loss(model, wrapped, trained_name, batch, texts, schedule, settings, generator, device) -> torch.Tensor:
    """The denoising loss of one batch; ``texts``: (the prompts' embeddings, the empty prompt's or None)."""
    x0 = model.encode_images(batch["image"].to(device), generator)
    noise = torch.randn(x0.shape, generator=generator).to(device, x0.dtype)
    t = torch.randint(0, schedule.config.num_train_timesteps, (x0.shape[0],), generator=generator).to(device)
    xt = schedule.add_noise(x0, noise, t)
    target = training_target(schedule, x0, noise, t)
    text, empty_text = texts
    text = text[batch["prompt"].to(text.device)]
    condition = None
    if "condition" in batch and settings.text_dropout:
        condition, text = drop_with_text(batch["condition"], text, empty_text, settings.p_uncond, generator)
        condition = condition.to(device, x0.dtype)
    elif "condition" in batch:
        condition = drop(batch["condition"], settings.p_uncond, generator).to(device, x0.dtype)
    modules = {trained_name: wrapped}
    pred = model.predict(xt, t, text, condition, **modules)
    return F.mse_loss(pred.float(), target.float())


def _evaluate(accelerator, model, evaluate, ema, params, step, history) -> None:
    if accelerator.is_main_process:
        if ema is not None:
            ema.store(params)
            ema.copy_to(params)
        was_training = [m.training for m in model.modules().values()]
        for m in model.modules().values():
            m.eval()
        scores = evaluate(model)
        for m, t in zip(model.modules().values(), was_training, strict=True):
            m.train(t)
        if ema is not None:
            ema.restore(params)
        history.setdefault("eval", []).append({"step": step, **scores})
    accelerator.wait_for_everyone()


def _frozen_dtype(settings: DiffusionSettings, accelerator: Accelerator) -> torch.dtype:
    """The frozen modules' dtype: ``inference_dtype`` on CUDA where the trained module gets mixed precision, else float32."""
    if accelerator.mixed_precision == "no":
        return torch.float32
    return device_dtype(settings.inference_dtype, accelerator.device)


def _step_seed(seed: int, step: int, micro: int, process: int) -> int:
    return int(np.random.SeedSequence([seed, step, micro, process]).generate_state(1)[0])


def _add_lora(unet, rank: int) -> None:
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=["to_k", "to_q", "to_v", "to_out.0"]))

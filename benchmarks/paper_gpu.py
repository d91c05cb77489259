"""Peak GPU memory and throughput of every stage at the paper settings, with models of the real sizes and random weights.

    python benchmarks/paper_gpu.py                                     # a GPU: every stage, diffusers' pipeline beside ours
    python benchmarks/paper_gpu.py --limit-gib 24 --out paper_gpu.md   # a 24 GB card's budget enforced: over it is OOM
    python benchmarks/paper_gpu.py --adam8bit                          # bitsandbytes' 8-bit AdamW in the training loops
    python benchmarks/paper_gpu.py --device cpu                        # no GPU: parameter counts and memory estimates
    python benchmarks/paper_gpu.py --tiny --device cpu --iterations 1  # every stage's code once on tiny configs (the test)

Models: Stable Diffusion 1.5's UNet and VAE, CLIP ViT-L/14's text encoder, the
ControlNet that ``synthlib.diffusion.add_branch`` makes from that UNet (21
conditioning channels: 19 classes, unknown, depth) and a MiT-B5 SegFormer of the
19 classes, built from the configs written below with random weights: nothing is
downloaded. Settings are the paper profile's (``--set FIELD=VALUE`` changes one):
``diff_batch`` images of ``diff_resolution`` per diffusion step, ``gen_batch``
images per sampling call at ``gen_guidance``, ``seg_batch`` crops of ``seg_crop``.
Each stage builds its models on the device, runs the project's own code, and
reports the median over ``--iterations`` after ``--warmup`` and the peak memory
(``torch.cuda.max_memory_allocated`` from before the models were built):

- stage 1 / stage 2: ``synthlib.diffusion.train.train`` on random images (and
  random maps and depth) with the profile's stage settings: mixed precision, the
  frozen modules at ``diff_inference_dtype``, gradient checkpointing, EMA, data-
  loader workers. Step times are the loop's own (data loading included, as in a run).
- generation, ours: ``synthlib.diffusion.generate`` (DDIM, ``--gen-steps``) with
  float32 weights under the model's autocast dtype, as stage 04 loads and runs
  it; then "ours, fp16 weights": the same with the weights cast to half.
- generation, diffusers: ``StableDiffusionControlNetPipeline`` assembled from the
  same (half) modules, a DDIMScheduler on the same schedule, the same maps
  (encoded by ``conditioning.encode`` inside the timing, as ``generate`` does),
  batch, steps and guidance, ``output_type="np"``. "ours / diffusers" is time over time.
- segmenter: ``synthlib.segmenters.train`` (supervised) on random images of the
  profile's size, a MiT-B5 built from its config.

Targets: every stage fits a 24 GB GPU; generation at 512x1024, 20
steps, fp16 makes >= 1 image/s on an H100-class GPU and takes at most 1.2x the
time of diffusers' pipeline. A stage that runs out of memory is reported as OOM
and the others still run. "fits 24 GB" leaves 0.5 GiB for the CUDA context: yes
when the peak reserved memory fits, "likely" when only the peak allocated does (the
allocator empties its cache before it fails; ``--limit-gib 24`` checks for certain).

Every run also prints each module's parameter count and a memory estimate per
stage, which is all a machine without CUDA gets: weights, gradients, optimiser
states and EMA exactly, and the activations of one step (training: forward and
backward; generation: one sampling step and the VAE decode) by running it on
PyTorch's meta device and tracking the bytes of live tensors, attention counted
as flash attention keeps it. Activations are counted all in fp16 and all in fp32;
under autocast the truth lies between. The GPU figures need a GPU. ``--tiny`` swaps
in tiny configs at 64x128 and runs every stage wherever it is, a CPU included, to show the code runs.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import diffusers
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionControlNetPipeline,
    UNet2DConditionModel,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from transformers import CLIPTextConfig, CLIPTextModel, SegformerConfig, SegformerForSemanticSegmentation

from synthlib import diffusion, profiles, segmenters
from synthlib.datasets import Dataset, Sample
from synthlib.diffusion.common import settings as diffusion_settings
from synthlib.diffusion.conditioning import encode
from synthlib.diffusion.model import DiffusionModel
from synthlib.diffusion.precision import device_dtype
from synthlib.diffusion.train import Examples
from synthlib.diffusion.train import train as train_diffusion
from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.runs import git_revision
from synthlib.segmenters import fit
from synthlib.segmenters.model import ARCHITECTURES, normalise

GIB = 2**30
BUDGET_GIB = 24.0  # the target card
CONTEXT_GIB = 0.5  # CUDA context and libraries, outside the allocator's counts
TEXT_TOKENS = 77  # CLIP's context: the text length the UNet cross-attends to

_X, _D, _U, _XU = "CrossAttnDownBlock2D", "DownBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"
#: Stable Diffusion 1.5 (the unet/, vae/ and text_encoder/ configs of stable-diffusion-v1-5/stable-diffusion-v1-5)
#: and MiT-B5 (nvidia/mit-b5's encoder under SegFormer-B5's decode head).
REAL: dict[str, dict[str, Any]] = {
    "unet": dict(
        sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        down_block_types=(_X, _X, _X, _D), up_block_types=(_U, _XU, _XU, _XU), cross_attention_dim=768,
        attention_head_dim=8, norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0, downsample_padding=1,
    ),
    "vae": dict(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
        sample_size=512, scaling_factor=0.18215,
    ),
    "text_encoder": dict(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
        max_position_embeddings=TEXT_TOKENS, projection_dim=768, hidden_act="quick_gelu", bos_token_id=0, pad_token_id=1,
        eos_token_id=2,
    ),
    "segmenter": dict(
        hidden_sizes=[64, 128, 320, 512], depths=[3, 6, 40, 3], num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1],
        mlp_ratios=[4, 4, 4, 4], decoder_hidden_size=768,
    ),
}  # fmt: skip
#: The same architectures, tiny (``--tiny``): four UNet and VAE levels as above, a few channels each.
TINY: dict[str, dict[str, Any]] = {
    "unet": {**REAL["unet"], "sample_size": 8, "block_out_channels": (32, 32, 64, 64), "layers_per_block": 1,
             "cross_attention_dim": 32, "norm_num_groups": 8},
    "vae": {**REAL["vae"], "block_out_channels": (8, 8, 16, 16), "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 64},
    "text_encoder": {**REAL["text_encoder"], "vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "projection_dim": 32},
    "segmenter": ARCHITECTURES["mit-tiny"],
}  # fmt: skip
#: Stable Diffusion 1.5's noise schedule, as ``synthlib.diffusion.load`` turns its scheduler config into a DDPMScheduler.
SD15_SCHEDULE = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon",
    clip_sample=False, steps_offset=1,
)
#: ``--tiny``: the profile's fields that decide sizes, made small.
TINY_FIELDS = dict(height=64, width=128, diff_resolution=(64, 128), diff_batch=1, seg_batch=1, seg_crop=(64, 64), gen_batch=2)
STAGE1, STAGE2, OURS, OURS16, THEIRS, SEGMENTER = STAGES = (
    "stage 1: UNet training",
    "stage 2: ControlNet training",
    "generation: ours",
    "generation: ours, fp16 weights",
    "generation: diffusers",
    "segmenter training",
)
#: ``--stages`` names.
KEYS = dict(zip(("stage1", "stage2", "ours", "ours16", "diffusers", "segmenter"), STAGES, strict=True))


def main(argv: Sequence[str] | None = None) -> dict[str, pd.DataFrame]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a profile field, e.g. diff_batch=1")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configs at 64x128, batch 1: every stage's code, on any device")
    ap.add_argument("--stages", default=",".join(KEYS), help=f"comma-separated, of: {', '.join(f'{k} ({v})' for k, v in KEYS.items())}")
    ap.add_argument("--iterations", type=int, default=10, help="timed training steps per stage (median)")
    ap.add_argument("--gen-iterations", type=int, default=3, help="timed generation calls per method (median)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps first (one call for generation)")
    ap.add_argument("--gen-steps", type=int, default=None, help="sampling steps; default 20, the target's (the paper profile's gen_steps is 50)")
    ap.add_argument("--adam8bit", action="store_true", help="bitsandbytes' AdamW8bit in place of torch's AdamW in the training loops")
    ap.add_argument("--limit-gib", type=float, default=0.0, help="cap the allocator at a card of this size less the context; 0 = no cap")
    ap.add_argument("--no-activations", action="store_true", help="estimate without the meta-device activation runs (faster)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="also write the tables as Markdown to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: there is no CUDA device here; --device cpu prints parameter counts and estimates")
    keys = [k.strip() for k in args.stages.split(",") if k.strip()]
    if set(keys) - set(KEYS):
        sys.exit(f"--stages: {sorted(set(keys) - set(KEYS))} unknown; valid: {', '.join(KEYS)}")
    stages = [KEYS[k] for k in keys]
    if args.adam8bit and (cuda or args.tiny):
        _adamw8bit()  # a missing bitsandbytes fails here, before anything runs (estimates need none)
    overrides = profiles.parse_assignments(args.set, "--set")
    cfg = profiles.load(args.profile, {**(TINY_FIELDS if args.tiny else {}), **overrides})
    gen_steps = args.gen_steps or (2 if args.tiny else 20)
    bench = _Bench(cfg, TINY if args.tiny else REAL, device, args, gen_steps)
    print(bench.describe(), flush=True)

    tables = {"parameters": parameter_table(bench.configs, cfg.diff_depth)}
    print("\n" + _markdown(tables["parameters"], 1), flush=True)
    with _quiet_diffusers():
        tables["estimate"] = bench.estimate(activations=not args.no_activations)
        print(f"\nMemory estimate, GiB (static: weights, gradients, optimiser states, EMA; activations all fp16 .. all fp32; "
              f"fits: total within a {BUDGET_GIB:g} GB card less {CONTEXT_GIB} GiB context):")  # fmt: skip
        print(_markdown(tables["estimate"], 2), flush=True)
        if cuda or args.tiny:
            if cuda and args.limit_gib:
                total = torch.cuda.get_device_properties(device).total_memory / GIB
                torch.cuda.set_per_process_memory_fraction(min(1.0, (args.limit_gib - CONTEXT_GIB) / total), device)
                print(f"allocator capped at {args.limit_gib - CONTEXT_GIB:g} of {total:.0f} GiB")
            tables["measured"] = bench.measure(stages)
            print("\nMeasured (medians):")
            print(_markdown(tables["measured"], 3))
            print("\n".join(_verdict(tables["measured"], gen_steps, cuda)), flush=True)
    if not cuda:
        print(f"\nThe GPU figures (peak memory, steps/s, images/s, the ratio to diffusers) need a GPU: run this script on a "
              f"CUDA device. {'Above: tiny configs on a CPU, to show the code runs.' if args.tiny else 'Above: counts and estimates.'}")
    if args.out is not None:
        _write(args.out, tables, bench.describe(), device)
        print(f"wrote {args.out}")
    return tables


# --- models ---------------------------------------------------------------------------------


def build_diffusion(configs: dict[str, dict], resolution: Sequence[int], prompt: str, depth: bool | None, seed: int = 0) -> DiffusionModel:
    """Stable Diffusion's components of ``configs`` with random weights, float32, on the current default device.

    ``depth`` None: no conditioning branch (stage 1); else the ControlNet that
    ``diffusion.add_branch`` makes, with or without the depth channel. Build under
    ``with torch.device(...)`` to place the weights (on "meta": not allocate them).
    The unconditional prompt is "", as ``diffusion.load`` gives Stable Diffusion.
    """
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**configs["unet"])
    vae = AutoencoderKL(**configs["vae"])
    text_encoder = CLIPTextModel(CLIPTextConfig(**configs["text_encoder"]))
    with torch.device("cpu"):  # the schedule's tables stay on the CPU wherever the weights go
        scheduler = DDPMScheduler(**SD15_SCHEDULE)
    tokenizer = diffusion.small_tokenizer(TEXT_TOKENS)  # any vocabulary will do: the text length is what costs
    model = DiffusionModel(unet, scheduler, text_encoder, tokenizer, vae=vae, resolution=tuple(resolution), prompt=prompt, uncond_prompt="")
    for module in (vae, text_encoder):
        module.eval().requires_grad_(False)
    return model if depth is None else diffusion.add_branch(model, "controlnet", depth)


def build_segmenter(configs: dict[str, dict], seed: int = 0) -> SegformerForSemanticSegmentation:
    """A SegFormer of the 19 classes on ``configs["segmenter"]``'s encoder, random weights, on the default device."""
    torch.manual_seed(seed)
    return SegformerForSemanticSegmentation(SegformerConfig(num_labels=NUM_CLASSES, semantic_loss_ignore_index=IGNORE, **configs["segmenter"]))


def parameter_table(configs: dict[str, dict], depth: bool = True) -> pd.DataFrame:
    """Parameters of every module (built on the meta device: nothing is allocated) and the size of their weights."""
    with torch.device("meta"):
        model = build_diffusion(configs, (64, 128), "", depth)
        segmenter = build_segmenter(configs)
    modules = {
        "UNet (SD 1.5)": model.unet,
        f"ControlNet ({model.condition_channels} channels)": model.controlnet,
        "VAE (SD 1.5)": model.vae,
        "text encoder (CLIP ViT-L/14)": model.text_encoder,
        "segmenter (MiT-B5 + head)": segmenter,
        "  of which the MiT-B5 encoder": segmenter.segformer,
    }
    rows = {name: {"parameters (M)": _count(m) / 1e6, "fp32 (GiB)": 4 * _count(m) / GIB, "fp16 (GiB)": 2 * _count(m) / GIB}
            for name, m in modules.items()}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index")


# --- the stages -----------------------------------------------------------------------------


class _Bench:
    """The stages of one configuration: measured on a device, or estimated on the meta device."""

    def __init__(self, cfg: profiles.Profile, configs: dict[str, dict], device: torch.device, args: argparse.Namespace, gen_steps: int) -> None:
        self.cfg, self.configs, self.device, self.args, self.gen_steps = cfg, configs, device, args, gen_steps
        self.cuda = device.type == "cuda"
        self.resolution = tuple(cfg.diff_resolution)

    def describe(self) -> str:
        cfg, a = self.cfg, self.args
        cap = f"allocator capped at {a.limit_gib:g} GB less the context" if a.limit_gib else "no allocator cap"
        return (
            f"profile {cfg.name}{' (tiny configs)' if a.tiny else ''} on {_device_name(self.device)}: diffusion "
            f"{_size(self.resolution)} batch {cfg.diff_batch}, frozen modules {cfg.diff_inference_dtype}, EMA {cfg.diff_ema:g}, "
            f"checkpointing {cfg.diff_gradient_checkpointing}, {cfg.data_workers} data workers; generation batch "
            f"{cfg.gen_batch} x {self.gen_steps} DDIM steps, guidance {cfg.gen_guidance:g}; segmenter crop "
            f"{_size(cfg.seg_crop)} batch {cfg.seg_batch}; {'8-bit AdamW' if a.adam8bit else 'AdamW'}; {cap}; "
            f"torch {torch.__version__}, diffusers {diffusers.__version__}, git {_revision()}"
        )

    # measured

    def measure(self, stages: Sequence[str]) -> pd.DataFrame:
        generation = [s for s in (OURS, OURS16, THEIRS) if s in stages]  # one model build for all three
        plan: list[tuple[list[str], Callable[[], list[dict]]]] = []
        if STAGE1 in stages:
            plan.append(([STAGE1], lambda: [self._train_diffusion(STAGE1)]))
        if STAGE2 in stages:
            plan.append(([STAGE2], lambda: [self._train_diffusion(STAGE2)]))
        if generation:
            plan.append((generation, lambda: self._generation(generation)))
        if SEGMENTER in stages:
            plan.append(([SEGMENTER], lambda: [self._train_segmenter()]))
        rows: list[dict] = []
        for names, run in plan:
            print(f"{' / '.join(names)} ...", flush=True)
            rows += self._attempt(names, run)
            self._free()
        table = pd.DataFrame(rows).set_index("stage")
        if THEIRS in table.index and "median (s)" in table:
            for name in (OURS, OURS16):
                if name in table.index:
                    table.loc[name, "ours / diffusers"] = table.loc[name, "median (s)"] / table.loc[THEIRS, "median (s)"]
        return table

    def _attempt(self, names: Sequence[str], run: Callable[[], list[dict]]) -> list[dict]:
        """``run()``'s rows, or an OOM row for each of ``names`` when it runs out of device memory."""
        failure = None
        try:
            return run()
        except torch.OutOfMemoryError as e:
            failure = str(e).splitlines()[0]
        # here, outside the except block, its frames and the tensors they held are gone
        print(f"  {' / '.join(names)}: out of memory ({failure})", flush=True)
        self._free()
        return [{"stage": name, "fits 24 GB": "OOM", "note": failure[:100]} for name in names]

    def _train_diffusion(self, stage: str) -> dict:
        cfg, args = self.cfg, self.args
        self._free()
        with torch.device(self.device):
            model = build_diffusion(self.configs, self.resolution, cfg.diff_prompt, None if stage == STAGE1 else cfg.diff_depth, cfg.seed)
        s = diffusion_settings(cfg, "stage1" if stage == STAGE1 else "stage2")
        s = replace(s, steps=args.warmup + max(args.iterations, 1), warmup_steps=1, checkpoint_every=0, eval_every=0)
        conditioning = None if stage == STAGE1 else {"size": model.condition_size, "depth": "dataset" if cfg.diff_depth else None}
        examples = Examples([(_Random(64, *self.resolution), 0)], model.resolution, s, conditioning)
        with _optimiser(args.adam8bit):
            history = train_diffusion(model, examples, [model.prompt], s, progress=False)
        trained = model.unet if stage == STAGE1 else model.controlnet
        return self._row(stage, cfg.diff_batch, _size(self.resolution), history["step_seconds"][args.warmup :], 1, "steps/s",
                         f"{_count(trained) / 1e6:.0f} M trained, loss {history['loss'][-1]:.3g}")  # fmt: skip

    def _train_segmenter(self) -> dict:
        cfg, args = self.cfg, self.args
        self._free()
        with torch.device(self.device):
            model = build_segmenter(self.configs, cfg.seed)
        s = replace(fit.settings(cfg, "supervised"), steps=args.warmup + max(args.iterations, 1), warmup_steps=1, checkpoint_every=0)
        with _optimiser(args.adam8bit):
            history = segmenters.train(model, _Random(16, cfg.height, cfg.width), s, progress=False)
        return self._row(SEGMENTER, cfg.seg_batch, _size(cfg.seg_crop), history["step_seconds"][args.warmup :], 1, "steps/s",
                         f"{_count(model) / 1e6:.0f} M trained, loss {history['source'][-1]:.3g}")  # fmt: skip

    def _generation(self, which: Sequence[str]) -> list[dict]:
        cfg, device, n = self.cfg, self.device, self.cfg.gen_batch
        self._free()
        with torch.device(device):
            model = build_diffusion(self.configs, self.resolution, cfg.diff_prompt, cfg.diff_depth, cfg.seed)
        model.inference_dtype = cfg.diff_inference_dtype  # what stage 2 saves with the model, and generate autocasts to
        for module in model.modules().values():
            module.eval().requires_grad_(False)
        half = device_dtype(cfg.diff_inference_dtype, device)
        rng = np.random.default_rng(cfg.seed)
        maps = rng.integers(0, NUM_CLASSES, (n, *self.resolution), dtype=np.uint8)
        depth = rng.uniform(1, 80, (n, *self.resolution)).astype(np.float32) if cfg.diff_depth else None
        seeds = list(range(n))

        def ours() -> None:
            diffusion.generate(model, maps, depth, seeds, cfg.gen_guidance, cfg.gen_conditioning_scale, self.gen_steps, "ddim", n)

        def theirs() -> None:
            condition = encode(maps, model.condition_size, 0, depth).to(device, half)
            pipe(
                prompt=[model.prompt] * n, image=condition, height=self.resolution[0], width=self.resolution[1],
                num_inference_steps=self.gen_steps, guidance_scale=cfg.gen_guidance, negative_prompt=None,
                controlnet_conditioning_scale=cfg.gen_conditioning_scale,
                generator=[torch.Generator(device).manual_seed(s) for s in seeds], output_type="np",
            )  # fmt: skip

        def timed(name: str) -> dict:
            weights = _allocated(device)
            _reset_peak(device)
            times = _time(theirs if name == THEIRS else ours, min(self.args.warmup, 1), self.args.gen_iterations, device)
            note = f"{self.gen_steps} DDIM steps" + (f", weights {weights:.1f} GiB" if self.cuda else "")
            return self._row(name, n, _size(self.resolution), times, n, "images/s", note)

        rows, pipe = [], None
        for name in (OURS, OURS16, THEIRS):  # float32 weights first, as stage 04 holds them; then all cast to half
            if name == OURS16:
                for module in model.modules().values():
                    module.to(half)
            if name == THEIRS:
                pipe = StableDiffusionControlNetPipeline(
                    vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
                    controlnet=model.controlnet, scheduler=DDIMScheduler.from_config(model.scheduler.config, clip_sample=False),
                    safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                )  # fmt: skip
                pipe.set_progress_bar_config(disable=True)
            if name in which:
                rows += self._attempt([name], lambda name=name: [timed(name)])
        return rows

    def _row(self, stage: str, batch: int, size: str, times: list[float], items: int, unit: str, note: str) -> dict:
        median = statistics.median(times)
        allocated, reserved = _peaks(self.device)
        print(f"  {stage}: {median:.3f} s, {items / median:.2f} {unit}"
              + (f", peak {allocated:.2f} GiB allocated / {reserved:.2f} GiB reserved" if self.cuda else ""), flush=True)  # fmt: skip
        return {"stage": stage, "batch": batch, "size": size, "median (s)": median, "throughput": items / median, "unit": unit,
                "peak allocated (GiB)": allocated, "peak reserved (GiB)": reserved, "fits 24 GB": _fits(allocated, reserved),
                "note": note}  # fmt: skip

    def _free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()
            _reset_peak(self.device)

    # estimated

    def estimate(self, activations: bool = True) -> pd.DataFrame:
        """Memory per stage without a GPU: exact static bytes, activations from the meta device (all fp16, all fp32)."""
        cfg = self.cfg
        with torch.device("meta"):
            model = build_diffusion(self.configs, self.resolution, cfg.diff_prompt, cfg.diff_depth)
            segmenter = build_segmenter(self.configs)
        frozen = torch.finfo(device_dtype(cfg.diff_inference_dtype, "cuda")).bits // 8 if cfg.diff_mixed_precision else 4
        unet, controlnet, rest = _count(model.unet), _count(model.controlnet), _count(model.vae) + _count(model.text_encoder)
        ema = cfg.diff_ema > 0
        weights = {  # stage: (trained parameters, frozen parameters at the frozen dtype, float32 weights held for sampling, EMA)
            STAGE1: (unet, rest, 0, ema),
            STAGE2: (controlnet, unet + rest, 0, ema),
            "generation (fp32 weights)": (0, 0, unet + controlnet + rest, False),
            SEGMENTER: (_count(segmenter), 0, 0, False),
        }
        rows = {}
        for stage, (trained, fixed, sampling, with_ema) in weights.items():
            static = fixed * frozen + sampling * 4
            rows[stage] = {"trained (M)": trained / 1e6, "frozen (M)": (fixed + sampling) / 1e6,
                           "static": (static + trained * self._per_param(with_ema, self.args.adam8bit)) / GIB,
                           "static, 8-bit Adam": (static + trained * self._per_param(with_ema, True)) / GIB}  # fmt: skip
        table = pd.DataFrame.from_dict(rows, orient="index")
        if not activations:
            return table
        stage1 = replace(model, controlnet=None, conditioning=None)
        for dtype, column in ((torch.float16, "activations fp16"), (torch.float32, "activations fp32")):
            table.loc[STAGE1, column] = self._activations_training(stage1, "unet", dtype)
            table.loc[STAGE2, column] = self._activations_training(model, "controlnet", dtype)
            table.loc["generation (fp32 weights)", column] = self._activations_generation(model, dtype)
            table.loc[SEGMENTER, column] = self._activations_segmenter(segmenter, dtype)
        table["total fp16"] = table["static"] + table["activations fp16"]
        table["total fp32"] = table["static"] + table["activations fp32"]
        budget = BUDGET_GIB - CONTEXT_GIB
        table["fits 24 GB"] = ["yes" if hi <= budget else "if fp16" if lo <= budget else "no"
                               for lo, hi in zip(table["total fp16"], table["total fp32"], strict=True)]  # fmt: skip
        return table

    def _per_param(self, ema: bool, adam8bit: bool) -> int:
        """Bytes per trained parameter: float32 weight and gradient, AdamW's two moments, EMA copy, autocast's half copy."""
        return 4 + 4 + (2 if adam8bit else 8) + (4 if ema else 0) + (2 if self.cfg.diff_mixed_precision else 0)

    def _activations_training(self, model: DiffusionModel, trained: str, dtype: torch.dtype) -> float:
        cfg, b = self.cfg, self.cfg.diff_batch
        for name, module in model.modules().items():
            module.to(dtype).requires_grad_(name == trained)
        module = getattr(model, trained)
        if cfg.diff_gradient_checkpointing:
            module.enable_gradient_checkpointing()
        module.train()

        def step() -> None:
            with torch.no_grad():
                x0 = model.vae.encode(torch.empty(b, 3, *self.resolution, dtype=dtype)).latent_dist.mean
            text = torch.empty(b, TEXT_TOKENS, model.text_encoder.config.hidden_size, dtype=dtype)
            condition = torch.empty(b, model.condition_channels, *model.condition_size, dtype=dtype) if model.controlnet is not None else None
            pred = model.predict(torch.empty_like(x0), torch.zeros(b, dtype=torch.long), text, condition)
            F.mse_loss(pred.float(), torch.empty_like(x0).float()).backward()

        try:
            return _live_peak(step, module.parameters()) / GIB
        finally:
            module.disable_gradient_checkpointing()

    def _activations_segmenter(self, segmenter: torch.nn.Module, dtype: torch.dtype) -> float:
        cfg = self.cfg
        segmenter.to(dtype).requires_grad_(True).train()

        def step() -> None:
            images = torch.empty(cfg.seg_batch, *cfg.seg_crop, 3, dtype=torch.uint8)
            logits = segmenter(pixel_values=normalise(images).to(dtype)).logits
            logits = F.interpolate(logits, size=tuple(cfg.seg_crop), mode="bilinear", align_corners=False)
            F.cross_entropy(logits.float(), torch.zeros(cfg.seg_batch, *cfg.seg_crop, dtype=torch.long), ignore_index=IGNORE).backward()

        return _live_peak(step, segmenter.parameters()) / GIB

    def _activations_generation(self, model: DiffusionModel, dtype: torch.dtype) -> float:
        cfg, n = self.cfg, self.cfg.gen_batch
        m = n * (1 + int(cfg.gen_guidance not in (0.0, 1.0)))  # classifier-free guidance: both passes in one batch
        for module in model.modules().values():
            module.to(dtype).eval().requires_grad_(False)

        def denoise() -> None:
            x = torch.empty(m, model.unet.config.in_channels, *model.sample_size, dtype=dtype)
            text = torch.empty(m, TEXT_TOKENS, model.text_encoder.config.hidden_size, dtype=dtype)
            condition = torch.empty(m, model.condition_channels, *model.condition_size, dtype=dtype)
            model.predict(x, torch.zeros(m, dtype=torch.long), text, condition)

        def decode() -> None:
            model.vae.decode(torch.empty(n, model.vae.config.latent_channels, *model.sample_size, dtype=dtype))

        with torch.no_grad():
            return max(_live_peak(denoise), _live_peak(decode)) / GIB


class _Random(Dataset):
    """Random images, label maps and depth of one size (the training loops' input; content does not change speed)."""

    name = "random"

    def __init__(self, n: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n, h, w

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng(i)
        image = rng.integers(0, 255, (self.h, self.w, 3), dtype=np.uint8)
        label = rng.integers(0, NUM_CLASSES, (self.h, self.w), dtype=np.uint8)
        return Sample(image, label, rng.uniform(1, 80, (self.h, self.w)).astype(np.float32), id=str(i))


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def _optimiser(adam8bit: bool) -> Iterator[None]:
    """The training loops' ``torch.optim.AdamW``, or bitsandbytes' AdamW8bit in its place."""
    if not adam8bit:
        yield
        return
    with mock.patch.object(torch.optim, "AdamW", _adamw8bit()):
        yield


def _adamw8bit():
    try:
        import bitsandbytes as bnb
    except ImportError as e:
        raise SystemExit(f"--adam8bit needs bitsandbytes ({e}): pip install bitsandbytes, or leave out --adam8bit") from e
    return bnb.optim.AdamW8bit


@contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """diffusers warns on every ``.to(dtype)`` of a model that has no float32-only modules; say nothing of it."""
    level = diffusers.utils.logging.get_verbosity()
    diffusers.utils.logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers.utils.logging.set_verbosity(level)


def _time(fn: Callable[[], None], warmup: int, iterations: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(iterations, 1)):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peaks(device: torch.device) -> tuple[float, float]:
    """(peak allocated, peak reserved) GiB since the last reset; NaN off CUDA."""
    if device.type != "cuda":
        return math.nan, math.nan
    return torch.cuda.max_memory_allocated(device) / GIB, torch.cuda.max_memory_reserved(device) / GIB


def _allocated(device: torch.device) -> float:
    return torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else math.nan


def _fits(allocated: float, reserved: float) -> str:
    if math.isnan(allocated):
        return "n/a (CPU)"
    budget = BUDGET_GIB - CONTEXT_GIB
    return "yes" if reserved <= budget else "likely" if allocated <= budget else "no"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _size(hw: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in hw)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} ({torch.get_num_threads()} threads)"


def _revision() -> str:
    git = git_revision()
    return (git["revision"] or "unknown")[:12] + (" (uncommitted changes)" if git["dirty"] else "")


class _LiveBytes(TorchDispatchMode):
    """The peak bytes of tensors alive at once among those made inside the mode (a view or alias is not new memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.sizes: dict[int, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(r.alias_info is not None for r in func._schema.returns):  # views, in-place and out= ops
            return out
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t) not in self.sizes:
                self.sizes[id(t)] = t.numel() * t.element_size()
                self.live += self.sizes[id(t)]
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._release, id(t))
        return out

    def _release(self, key: int) -> None:
        self.live -= self.sizes.pop(key, 0)


class _FlashAttention(torch.autograd.Function):
    """What flash / memory-efficient attention allocates and keeps for backward: the output and a logsumexp."""

    @staticmethod
    def forward(ctx, q, k, v):
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        ctx.save_for_backward(q, k, v, out, q.new_empty(q.shape[:-1], dtype=torch.float32))
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _flash_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
    return _FlashAttention.apply(q, k, v)


def _live_peak(fn: Callable[[], None], trained: Any = ()) -> int:
    """Peak bytes of live tensors while ``fn`` runs on the meta device; gradients of ``trained`` dropped as they arrive.

    The weights (made before) are not counted, nor the parameters' gradients (the
    static part of the estimate has them): what is left is activations and the
    temporaries of the backward pass. Attention runs as ``_FlashAttention``: on the
    meta device PyTorch would pick the math kernel, whose score matrices a GPU never holds.
    """
    handles = [p.register_post_accumulate_grad_hook(lambda p: setattr(p, "grad", None)) for p in trained if p.requires_grad]
    try:
        with torch.device("meta"), mock.patch.object(F, "scaled_dot_product_attention", _flash_sdpa), _LiveBytes() as live:
            fn()
        return live.peak
    finally:
        for h in handles:
            h.remove()


def _verdict(measured: pd.DataFrame, gen_steps: int, cuda: bool) -> list[str]:
    lines = []
    if cuda:
        over = [s for s, f in measured["fits 24 GB"].items() if f in ("no", "OOM")]
        lines.append(f"every stage fits a {BUDGET_GIB:g} GB GPU" if not over else f"over {BUDGET_GIB:g} GB: {', '.join(over)}")
    for name in (OURS, OURS16):
        if name in measured.index and "throughput" in measured and not math.isnan(measured.loc[name, "throughput"]):
            line = f"{name}: {measured.loc[name, 'throughput']:.2f} images/s at {gen_steps} steps (target >= 1 on an H100-class GPU)"
            if "ours / diffusers" in measured:
                line += f", {measured.loc[name, 'ours / diffusers']:.2f}x diffusers' time (target <= 1.2x)"
            lines.append(line)
    return lines


def _markdown(df: pd.DataFrame, digits: int) -> str:
    return df.round(digits).to_markdown()


def _write(path: Path, tables: dict[str, pd.DataFrame], setting: str, device: torch.device) -> None:
    titles = {"parameters": "Parameters", "estimate": "Memory estimate (GiB; static: weights, gradients, optimiser states, EMA; activations on the meta device, all fp16 .. all fp32)",
              "measured": "Measured (medians; memory in GiB)"}  # fmt: skip
    text = f"# Memory and throughput at the paper settings (real sizes, random weights)\n\n{setting}\n"
    for name, table in tables.items():
        text += f"\n## {titles[name]}\n\n{_markdown(table, 3)}\n"
    if device.type != "cuda":
        text += "\nThe GPU figures need a GPU: run `python benchmarks/paper_gpu.py` on a CUDA device.\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()

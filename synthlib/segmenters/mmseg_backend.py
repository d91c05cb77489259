"""SegFormer trained through mmsegmentation, the stack most of the field's UDA code (DAFormer, HRDA, MIC) uses.

``config`` writes an mmseg 1.x config for a dataset in Cityscapes layout (what every run
dataset is, and what ``synthlib export`` writes): SegFormer with the MiT of the profile's
encoder, mmseg's ``CityscapesDataset``, the profile's crop, batch, learning rate, warm-up +
poly schedule and rare-class sampling. ``train`` runs it with mmengine's ``Runner``
(checkpointed, resumable) starting from the same pretrained encoder as the transformers
backend (``encoder_state_dict`` renames its weights to mmseg's), and saves a folder that
``load`` turns into a module the project's own inference and evaluation run unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.segmenters.mmseg_compat import full_unpickler, import_mmseg
from synthlib.segmenters.model import MEAN, STD

CONFIG_FILE = "mmseg_config.py"
WEIGHTS_FILE = "model.safetensors"


class MMSegConfigError(ValueError):
    """An encoder that mmseg's MixVisionTransformer cannot express."""


def mit_backbone(encoder_config: Any) -> dict[str, Any]:
    """mmseg's ``MixVisionTransformer`` arguments for a transformers ``SegformerConfig``.

    mmseg derives each stage's width as ``embed_dims * num_heads[i]`` and uses one MLP
    ratio; an encoder that differs (a hand-made config) is refused with the reason.
    """
    c = encoder_config
    embed = c.hidden_sizes[0] // c.num_attention_heads[0]
    if [embed * h for h in c.num_attention_heads] != list(c.hidden_sizes):
        raise MMSegConfigError(
            f"hidden_sizes {c.hidden_sizes} are not {embed} x num_attention_heads {c.num_attention_heads}: "
            "mmseg's MixVisionTransformer cannot express this encoder"
        )
    if len(set(c.mlp_ratios)) != 1:
        raise MMSegConfigError(f"mlp_ratios {c.mlp_ratios}: mmseg's MixVisionTransformer takes one ratio for all stages")
    return dict(
        type="MixVisionTransformer",
        in_channels=3,
        embed_dims=embed,
        num_stages=c.num_encoder_blocks,
        num_layers=list(c.depths),
        num_heads=list(c.num_attention_heads),
        patch_sizes=list(c.patch_sizes),
        strides=list(c.strides),
        sr_ratios=list(c.sr_ratios),
        out_indices=tuple(range(c.num_encoder_blocks)),
        mlp_ratio=c.mlp_ratios[0],
        qkv_bias=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=float(c.drop_path_rate),
    )


def encoder_state_dict(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """A transformers ``SegformerModel``'s weights under mmseg ``MixVisionTransformer`` names.

    The same network in both: query/key/value are packed into one in-projection
    (``nn.MultiheadAttention``), the MLP's linear layers become 1x1 convolutions.
    """
    src = {k.removeprefix("segformer."): v for k, v in encoder.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    i = 0
    while f"stages.{i}.patch_embeddings.proj.weight" in src:
        out |= _copy(src, f"stages.{i}.patch_embeddings.proj", f"layers.{i}.0.projection")
        out |= _copy(src, f"stages.{i}.patch_embeddings.layer_norm", f"layers.{i}.0.norm")
        out |= _copy(src, f"stages.{i}.layer_norm", f"layers.{i}.2")
        j = 0
        while f"stages.{i}.blocks.{j}.layernorm_before.weight" in src:
            hf, mm = f"stages.{i}.blocks.{j}", f"layers.{i}.1.{j}"
            att = f"{hf}.attention"
            for part in ("weight", "bias"):
                out[f"{mm}.attn.attn.in_proj_{part}"] = torch.cat([src[f"{att}.{p}_proj.{part}"] for p in "qkv"])
            out |= _copy(src, f"{att}.o_proj", f"{mm}.attn.attn.out_proj")
            if f"{att}.sequence_reduction.sequence_reduction.weight" in src:  # stages with sr_ratio > 1
                out |= _copy(src, f"{att}.sequence_reduction.sequence_reduction", f"{mm}.attn.sr")
                out |= _copy(src, f"{att}.sequence_reduction.layer_norm", f"{mm}.attn.norm")
            out |= _copy(src, f"{hf}.layernorm_before", f"{mm}.norm1")
            out |= _copy(src, f"{hf}.layernorm_after", f"{mm}.norm2")
            out |= _copy(src, f"{hf}.mlp.fc1", f"{mm}.ffn.layers.0", as_conv=True)
            out |= _copy(src, f"{hf}.mlp.dwconv.dwconv", f"{mm}.ffn.layers.1")
            out |= _copy(src, f"{hf}.mlp.fc2", f"{mm}.ffn.layers.4", as_conv=True)
            j += 1
        i += 1
    if not out:
        raise MMSegConfigError(f"{type(encoder).__name__} holds no SegFormer encoder weights (stages.N.*)")
    return out


def _copy(src: dict, hf: str, mm: str, as_conv: bool = False) -> dict[str, torch.Tensor]:
    weight = src[f"{hf}.weight"]
    if as_conv:
        weight = weight[:, :, None, None]
    return {f"{mm}.weight": weight.clone(), f"{mm}.bias": src[f"{hf}.bias"].clone()}


def config(
    encoder_config: Any,
    data_root: str | Path,
    *,
    crop: Sequence[int],
    steps: int,
    batch: int,
    lr: float,
    weight_decay: float = 0.01,
    warmup_steps: int = 50,
    poly_power: float = 1.0,
    seed: int = 0,
    pretrained: str | Path | None = None,
    checkpoint_every: int = 200,
    sample_weights: str | Path | None = None,
    image_size: Sequence[int] | None = None,
    scale: Sequence[float] = (0.75, 1.5),
    split: str = "train",
    val_split: str | None = None,
) -> dict[str, Any]:
    """An mmseg 1.x config (as a dict; ``mmengine.Config(...)`` / ``.dump`` it) training SegFormer on ``data_root``.

    ``data_root`` is a Cityscapes-layout folder (``leftImg8bit/<split>``, ``gtFine/<split>``
    with ``_labelTrainIds`` PNGs). ``pretrained``: an mmseg-named encoder state dict
    (``encoder_state_dict``) to start from. ``sample_weights``: a ``.npy`` of one sampling
    weight per image in file order (rare-class sampling); else uniform. ``image_size``
    (h, w): images are first rescaled by a random factor in ``scale``, as the transformers
    backend augments (then a random crop, padded with ignore, and a random flip).
    ``val_split``: add mmseg's validation loop (IoUMetric on ``data_root``'s split, at the
    end) for use outside the project; the project evaluates with its own code instead.
    """
    h, w = (int(x) for x in crop)
    warmup = min(warmup_steps, max(steps - 1, 0))
    resize = []
    if image_size is not None:
        resize = [dict(type="RandomResize", scale=(int(image_size[1]), int(image_size[0])), ratio_range=tuple(scale), keep_ratio=True)]
    augment = [*resize, dict(type="RandomCrop", crop_size=(h, w)), dict(type="RandomFlip", prob=0.5)]
    sampler = (
        dict(type="WeightedInfiniteSampler", weights_file=str(sample_weights), seed=seed)
        if sample_weights is not None
        else dict(type="InfiniteSampler", shuffle=True, seed=seed)
    )
    validation = {}
    if val_split is not None:
        validation = dict(
            val_dataloader=dict(batch_size=1, num_workers=0, sampler=dict(type="DefaultSampler", shuffle=False),
                                dataset=_dataset(data_root, val_split, [])),
            val_evaluator=dict(type="IoUMetric", iou_metrics=["mIoU"]),
            val_cfg=dict(type="ValLoop"),
        )  # fmt: skip
    return dict(
        **validation,
        default_scope="mmseg",
        model=_segformer(encoder_config, (h, w), pretrained),
        train_dataloader=dict(batch_size=batch, num_workers=0, sampler=sampler, dataset=_dataset(data_root, split, augment)),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=steps, val_interval=steps if val_split else steps + 1),
        optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)),
        param_scheduler=[
            *([dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup)] if warmup else []),
            dict(type="PolyLR", eta_min=0.0, power=poly_power, begin=warmup, end=steps, by_epoch=False),
        ],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=max(1, min(50, steps)), log_metric_by_epoch=False),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=max(1, checkpoint_every), max_keep_ckpts=1),
            sampler_seed=dict(type="DistSamplerSeedHook"),
        ),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="nccl")),
        log_level="WARNING",
        randomness=dict(seed=seed),
        resume=True,  # from the newest checkpoint in work_dir, if any
        load_from=None,
    )


def _segformer(encoder_config: Any, crop: tuple[int, int], pretrained: str | Path | None) -> dict[str, Any]:
    """The EncoderDecoder: the encoder's MiT (from ``pretrained`` when given), a new 19-class SegformerHead."""
    backbone = mit_backbone(encoder_config)
    if pretrained is not None:
        backbone["init_cfg"] = dict(type="Pretrained", checkpoint=str(pretrained))
    return dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[255 * m for m in MEAN], std=[255 * s for s in STD],
                               bgr_to_rgb=True, pad_val=0, seg_pad_val=IGNORE, size=crop),
        backbone=backbone,
        decode_head=dict(
            type="SegformerHead", in_channels=list(encoder_config.hidden_sizes),
            in_index=list(range(len(encoder_config.hidden_sizes))), channels=int(encoder_config.decoder_hidden_size),
            dropout_ratio=0.1, num_classes=NUM_CLASSES, norm_cfg=dict(type="BN", requires_grad=True), align_corners=False,
            ignore_index=IGNORE,
            loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True),
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )  # fmt: skip


def _dataset(data_root: str | Path, split: str, augment: list[dict]) -> dict[str, Any]:
    """mmseg's CityscapesDataset over ``data_root``'s ``split``, loading, ``augment``ing and packing each sample."""
    return dict(
        type="CityscapesDataset",
        data_root=str(data_root),
        data_prefix=dict(img_path=f"leftImg8bit/{split}", seg_map_path=f"gtFine/{split}"),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations"), *augment, dict(type="PackSegInputs")],
    )


def train(cfg_dict: dict[str, Any], work_dir: str | Path, out: str | Path) -> dict[str, list[float]]:
    """Train ``cfg_dict`` with mmengine's Runner in ``work_dir`` (resumes there), save the model to ``out``.

    Returns the loss of every iteration (those of a resumed run's earlier part included).
    ``out`` gets ``mmseg_config.py`` and ``model.safetensors``, which ``load`` reads.
    """
    import_mmseg()
    _register()
    from mmengine.config import Config
    from mmengine.runner import Runner

    work_dir, out = Path(work_dir), Path(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    cfg = Config(dict(cfg_dict, work_dir=str(work_dir)))
    runner = Runner.from_cfg(cfg)
    recorder = _loss_history(work_dir / "loss_history.json", cfg.default_hooks.checkpoint.interval)
    runner.register_hook(recorder, priority="LOW")
    with full_unpickler():  # resuming reads mmengine's checkpoint (this run's own), which holds more than tensors
        runner.train()
    out.mkdir(parents=True, exist_ok=True)
    saved = Config(cfg_dict)
    saved.model.backbone.pop("init_cfg", None)  # the weights file holds the trained encoder
    saved.dump(str(out / CONFIG_FILE))
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    return {"source": recorder.losses}


def fit_folder(model: nn.Module, data_root: str | Path, settings: Any, work_dir: str | Path, out: str | Path) -> dict[str, list[float]]:
    """Train through mmseg what ``segmenters.train`` would train: ``model``'s encoder, ``settings``' budget.

    ``model`` is a transformers SegFormer as ``segmenters.build`` makes it: its config gives
    the architecture and, unless it was built from a named config, its encoder the
    pretrained weights to start from. ``settings`` is a ``TrainSettings`` of a supervised
    method (steps, batch, crop, lr, weight decay, warm-up, poly power, rare-class sampling,
    seed, checkpoint interval). Resumes from ``work_dir``; the model goes to ``out``.
    """
    work_dir, data_root = Path(work_dir), Path(data_root)
    work_dir.mkdir(parents=True, exist_ok=True)
    labels = sorted((data_root / "gtFine" / "train").rglob("*_gtFine_labelTrainIds.png"))
    if not labels:
        raise FileNotFoundError(f"{data_root}: no gtFine/train/*/*_gtFine_labelTrainIds.png (a Cityscapes-layout dataset)")
    pretrained = None
    if getattr(model.config, "synthlib_init", None) != "config":
        pretrained = work_dir / "pretrained_encoder.pth"
        torch.save(encoder_state_dict(model.segformer), pretrained)
    weights = None
    if settings.rcs_temperature > 0:
        weights = work_dir / "rcs_weights.npy"
        np.save(weights, _rcs_weights(labels, settings.rcs_temperature))
    size = np.asarray(Image.open(labels[0])).shape[:2]
    return train(config_of(model.config, data_root, settings, size, pretrained=pretrained, sample_weights=weights), work_dir, out)


def config_of(encoder_config: Any, data_root: str | Path, settings: Any, size: Sequence[int], **extra: Any) -> dict[str, Any]:
    """``config`` with the budget of a ``TrainSettings`` for images of ``size`` (h, w); ``extra``: further arguments."""
    return config(
        encoder_config, data_root, crop=settings.crop or size, steps=settings.steps, batch=settings.batch_size, lr=settings.lr,
        weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps, poly_power=settings.poly_power,
        seed=settings.seed, checkpoint_every=settings.checkpoint_every or settings.steps, image_size=size,
        scale=settings.scale, **extra,
    )  # fmt: skip


def _rcs_weights(label_files: Sequence[Path], temperature: float) -> np.ndarray:
    """Rare-class sampling weights of the images in mmseg's order (their sorted label files)."""
    from synthlib.segmenters.train import rcs_weights

    presence = np.zeros((len(label_files), NUM_CLASSES), bool)
    pixels = np.zeros(NUM_CLASSES, np.int64)
    for i, file in enumerate(label_files):
        counts = np.bincount(np.asarray(Image.open(file)).ravel(), minlength=256)[:NUM_CLASSES]
        presence[i] = counts > 0
        pixels += counts
    return rcs_weights(presence, pixels / max(pixels.sum(), 1), temperature)


class MMSegSegmenter(nn.Module):
    """An mmseg segmentor behind the interface of the transformers SegFormer that inference uses.

    ``forward(pixel_values=...)`` takes images normalised as ``segmenters.model.normalise``
    does (RGB, ImageNet mean / std: what mmseg's data preprocessor makes of a BGR file)
    and returns an object whose ``logits`` are N x 19 x H x W and, with
    ``output_hidden_states``, whose ``hidden_states`` are the encoder's stage outputs (as
    transformers gives them: N x C x h x w, the feature statistics' input).
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False) -> SimpleNamespace:
        h, w = pixel_values.shape[2:]
        metas = [dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))] * len(pixel_values)
        features = self.segmentor.extract_feat(pixel_values)
        logits = self.segmentor.decode_head.predict(features, metas, self.segmentor.test_cfg)
        return SimpleNamespace(logits=logits, hidden_states=tuple(features) if output_hidden_states else None)


def is_mmseg_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is a model saved by ``train``."""
    return (Path(folder) / CONFIG_FILE).is_file()


def load(folder: str | Path) -> MMSegSegmenter:
    """The segmenter ``train`` saved in ``folder``, in eval mode."""
    import_mmseg()
    from mmengine.config import Config
    from mmseg.registry import MODELS

    folder = Path(folder)
    cfg = Config.fromfile(str(folder / CONFIG_FILE))
    segmentor = MODELS.build(cfg.model)
    segmentor.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return MMSegSegmenter(segmentor).eval()


# --- rare-class sampling and the loss record ------------------------------------------------


def _register() -> None:
    """Register the sampler and hook with mmengine (once mmseg is importable)."""
    from mmengine.registry import DATA_SAMPLERS

    if "WeightedInfiniteSampler" not in DATA_SAMPLERS.module_dict:
        DATA_SAMPLERS.register_module(module=WeightedInfiniteSampler)


class WeightedInfiniteSampler(torch.utils.data.Sampler):
    """Endless image indices drawn with replacement by per-image weights (rare-class sampling, as DAFormer's RCS).

    The weights come from ``synthlib.segmenters.train.rcs_weights`` over the same images,
    saved as ``.npy`` in the dataset's file order. A resumed run continues the stream
    (mmengine's loop skips the batches it already trained on).
    """

    def __init__(self, dataset, weights_file: str, seed: int = 0) -> None:
        self.weights = torch.as_tensor(np.load(weights_file), dtype=torch.double)
        if len(self.weights) != len(dataset):
            raise ValueError(f"{weights_file}: {len(self.weights)} weights for a dataset of {len(dataset)} images")
        self.seed = seed

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed)
        while True:
            yield from torch.multinomial(self.weights, 1024, replacement=True, generator=g).tolist()

    def __len__(self) -> int:
        return len(self.weights)

    def set_epoch(self, epoch: int) -> None:  # mmengine's DistSamplerSeedHook calls it; one endless epoch here
        pass


def _loss_history(path: Path, every: int):
    """An mmengine hook that keeps every iteration's loss, on disk at each checkpoint so a resumed run keeps them."""
    from mmengine.hooks import Hook

    class LossHistory(Hook):
        priority = "LOW"

        def __init__(self) -> None:
            self.losses: list[float] = json.loads(path.read_text())["source"] if path.is_file() else []

        def before_train(self, runner) -> None:
            del self.losses[runner.iter :]  # iterations after the checkpoint resumed from run again

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            self.losses.append(float(torch.as_tensor(outputs["loss"]).detach()))
            if runner.iter + 1 == runner.max_iters or (runner.iter + 1) % every == 0:
                path.write_text(json.dumps({"source": self.losses}))

    return LossHistory()

"""paper-tiny: tiny stand-ins for the paper profile's hub models and datasets, built offline.

For tests and CI of the real-model code paths (Stable Diffusion, MiT / SegFormer
checkpoints, Depth Anything, GTA5 / SYNTHIA / Cityscapes / ACDC folders) on a CPU;
users can also try the paper profile with them without downloads. Nothing is
downloaded: every model is built from a config with random weights (fixed by
``seed``) and written with ``save_pretrained`` in exactly the folder layout its hub
repository has, and every dataset is rendered from minicity scenes into the real
dataset's folder layout and label encoding:

- ``write_stable_diffusion``: stable-diffusion-v1-5/stable-diffusion-v1-5 (``editor=True``: timbrooks/instruct-pix2pix)
- ``write_mit_classifier``: nvidia/mit-b5 (the ImageNet classifier a segmenter starts from)
- ``write_segformer_cityscapes``: nvidia/segformer-b0-finetuned-cityscapes-1024-1024
- ``write_depth_model``: depth-anything/Depth-Anything-V2-Small-hf
- ``write_datasets``: Cityscapes and ACDC (minicity ``real``), GTA5 (``game``), SYNTHIA-RAND-CITYSCAPES (``flat``)

``write_all(folder)`` writes everything (``models/...``, ``data/...``) and
``write_user_profile`` a user profile ``paper-tiny.yaml`` beside it: the paper
profile with only paths and sizes changed, so ``synthlib reproduce --config
DIR/paper-tiny.yaml`` runs every notebook on these stand-ins in minutes.
``python -m synthlib.tiny_hub DIR`` does both from the shell.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from synthlib import labels
from synthlib.datasets import acdc as acdc_layout
from synthlib.tiny_datasets import DATASETS, write_datasets
from synthlib.tiny_tokenizer import TOKENIZER_WORDS, write_clip_tokenizer  # noqa: F401

#: What ``write_all`` writes, relative to its folder.
MODEL_FOLDERS: dict[str, str] = {
    "stable-diffusion-v1-5": "models/stable-diffusion-v1-5",
    "mit-b5": "models/mit-b5",
    "segformer-cityscapes": "models/segformer-cityscapes",
    "depth-anything-small": "models/depth-anything-small",
    "instruct-pix2pix": "models/instruct-pix2pix",
}
SD_SCALING_FACTOR = 0.18215  # Stable Diffusion v1's VAE latent scale
_TEXT_HIDDEN = 32
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]
_MIT_TINY: dict[str, Any] = dict(
    hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_attention_heads=[1, 2, 4, 8], decoder_hidden_size=64
)


# --- models -------------------------------------------------------------------------------


def write_stable_diffusion(folder: str | Path, *, seed: int = 0, clip_sample: bool | None = False, editor: bool = False) -> Path:
    """A tiny Stable Diffusion v1 folder (latent space, VAE downsampling by 8, CLIP text encoder); returns ``folder``.

    Same files as ``stable-diffusion-v1-5/stable-diffusion-v1-5`` without the safety
    checker: ``model_index.json``, ``unet/``, ``vae/``, ``text_encoder/`` (safetensors),
    ``tokenizer/`` (vocab.json, merges.txt) and ``scheduler/`` (SD 1.5's PNDM settings).
    ``clip_sample`` is written to the scheduler config; None leaves the key out, as
    older SD folders do (diffusers' DDPM/DDIM schedulers then default to clipping).
    ``editor``: an InstructPix2Pix folder (``timbrooks/instruct-pix2pix``'s layout): the
    UNet takes the input image's latents beside the noisy ones (8 channels).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTokenizer

    if clip_sample is not None and not isinstance(clip_sample, bool):
        raise ValueError(f"clip_sample must be True, False or None (key left out), got {clip_sample!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = folder / "tokenizer"
    write_clip_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    text_encoder = clip_text_encoder(len(tokenizer), _TEXT_HIDDEN, layers=2, heads=4)
    unet = UNet2DConditionModel(
        sample_size=8,  # latents of 64x64 images
        in_channels=8 if editor else 4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        attention_head_dim=8,
        norm_num_groups=32,
        cross_attention_dim=_TEXT_HIDDEN,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),  # four levels: 8x downsampling, as SD's VAE
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=SD_SCALING_FACTOR,
    )
    save_sd_folder(folder, vae, text_encoder, tokenizer, unet, _sd_scheduler(clip_sample), editor=editor)
    # save_pretrained cannot write clip_sample (not a PNDM setting): SD 1.5's hand-kept scheduler config, written here.
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(_sd_scheduler_config(clip_sample), indent=2))
    return folder


def clip_text_encoder(vocab_size: int, hidden: int, layers: int, heads: int) -> Any:
    """A small ``CLIPTextModel`` configured as Stable Diffusion 1.5's (random weights from torch's current seed)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    # SD 1.5's text encoder config keeps CLIP's legacy ids (bos 0, pad 1, eos 2): with eos_token_id == 2
    # transformers pools at the highest token id, which is <|endoftext|> because it is last in the vocabulary.
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            projection_dim=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
            bos_token_id=0,
            pad_token_id=1,
            eos_token_id=2,
        )
    )


def save_sd_folder(folder: Path, vae: Any, text_encoder: Any, tokenizer: Any, unet: Any, scheduler: Any, editor: bool = False) -> None:
    """Write the components in Stable Diffusion's hub layout (``StableDiffusionPipeline.save_pretrained``, no safety checker).

    ``editor``: as ``StableDiffusionInstructPix2PixPipeline`` (its ``model_index.json`` names that class).
    save_pretrained writes the tokenizer as tokenizer.json alone; the hub ships vocab.json + merges.txt, written here.
    """
    from diffusers import StableDiffusionInstructPix2PixPipeline, StableDiffusionPipeline

    pipeline = (StableDiffusionInstructPix2PixPipeline if editor else StableDiffusionPipeline)(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipeline.save_pretrained(folder, safe_serialization=True)
    for path in (folder / "tokenizer").iterdir():
        path.unlink()
    write_clip_tokenizer(folder / "tokenizer")


def write_mit_classifier(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny ``SegformerForImageClassification`` with 1,000 ImageNet labels, shaped like ``nvidia/mit-b5``.

    ``config.json``, ``model.safetensors`` and ``preprocessor_config.json``: the
    ImageNet-pretrained MiT encoder a segmenter is initialised from.
    """
    from transformers import SegformerConfig, SegformerForImageClassification

    names = {i: f"class {i}" for i in range(1000)}
    torch.manual_seed(seed)
    config = SegformerConfig(id2label=names, label2id={n: i for i, n in names.items()}, image_size=64, **_MIT_TINY)
    return _save_with_processor(SegformerForImageClassification(config), folder, _segformer_processor())


def write_segformer_cityscapes(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny ``SegformerForSemanticSegmentation`` with the 19 Cityscapes classes (trainId order).

    Shaped like ``nvidia/segformer-b0-finetuned-cityscapes-1024-1024``: ``config.json``,
    ``model.safetensors`` and ``preprocessor_config.json``.
    """
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    names = dict(enumerate(labels.CLASS_NAMES))
    torch.manual_seed(seed)
    config = SegformerConfig(
        id2label=names,
        label2id={n: i for i, n in names.items()},
        semantic_loss_ignore_index=labels.IGNORE,
        image_size=64,
        **_MIT_TINY,
    )
    return _save_with_processor(SegformerForSemanticSegmentation(config), folder, _segformer_processor())


def write_depth_model(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny ``DepthAnythingForDepthEstimation`` (Dinov2 backbone, patch 14), like Depth-Anything-V2-Small-hf.

    Relative depth (disparity), ``config.json``, ``model.safetensors`` and the hub's
    ``preprocessor_config.json`` (DPTImageProcessor, keep aspect ratio, multiples of
    14) at 56x56 instead of 518x518, so a 32x64 image runs at 28x56 in milliseconds.
    """
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,  # the neck takes four feature maps, one per layer here
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=56,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        patch_size=14,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="relative",
    )
    processor = DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=3,  # bicubic
        do_pad=False,
        image_mean=_IMAGENET_MEAN,
        image_std=_IMAGENET_STD,
    )
    model = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():
        # At random init the head's last ReLU sees values around 1e-7 and outputs zero disparity on about half
        # the pixels, which estimate_depth clamps to one huge depth; a unit bias makes it positive everywhere.
        model.head.conv3.bias.fill_(1.0)
    return _save_with_processor(model, folder, processor)


def write_all(
    folder: str | Path,
    *,
    height: int = 64,
    width: int = 128,
    n_train: int = 4,
    n_val: int = 3,
    seed: int = 0,
    conditions: Sequence[str] = acdc_layout.CONDITIONS,
    clip_sample: bool | None = False,
) -> dict[str, Path]:
    """Every tiny model under ``folder/models`` and every dataset under ``folder/data``, by name.

    Names: the keys of ``MODEL_FOLDERS`` and ``DATASETS``. The datasets are written
    first, so a folder that already holds them fails before any model is built.
    """
    folder = Path(folder)
    out = write_datasets(
        folder / "data", height=height, width=width, n_train=n_train, n_val=n_val, seed=seed, conditions=conditions
    )
    writers = {
        "stable-diffusion-v1-5": lambda p: write_stable_diffusion(p, seed=seed, clip_sample=clip_sample),
        "mit-b5": lambda p: write_mit_classifier(p, seed=seed),
        "segformer-cityscapes": lambda p: write_segformer_cityscapes(p, seed=seed),
        "depth-anything-small": lambda p: write_depth_model(p, seed=seed),
        "instruct-pix2pix": lambda p: write_stable_diffusion(p, seed=seed, clip_sample=clip_sample, editor=True),
    }
    models = {name: writers[name](folder / relative) for name, relative in MODEL_FOLDERS.items()}
    return {**models, **out}


#: The paper profile's fields that ``write_user_profile`` changes: sizes, steps and counts only, so every
#: stage runs in seconds on a CPU. Models, branches, schedulers, sources, methods and the rest stay the paper's.
PAPER_TINY_SIZES: dict[str, Any] = {
    "conditions": ["fog", "night"],
    "seg_steps": 3,
    "seg_batch": 2,
    "diff_batch": 2,
    "diff_stage1_steps": 2,
    "diff_stage2_steps": 2,
    "diff_eval_every": 0,
    "diff_eval_images": 2,
    "diff_sample_steps": 2,
    "diff_checkpoint_every": 1,
    "gen_steps": 2,
    "gen_batch": 4,
    "gen_max_maps": 2,
    "gen_per_map": 1,
    "mcoc_min_pixels": 4,
    "mcoc_threshold": 0.0,  # random models: every MCOC is near 0, and an empty filtered set is an error
    "mcoc_grid_conditioning": [1.0],
    "mcoc_grid_steps": [2],
    "mcoc_grid_maps": 2,
    "i2i_k": [0, 2],
    "i2i_ngf": 4,
    "i2i_ndf": 4,
    "i2i_blocks": 1,
    "i2i_steps": 2,
    "i2i_decay_steps": 1,
    "i2i_guide_steps": 2,
    "i2i_checkpoint_every": 1,
    "zs_steps": 2,
    "cell_timeout": 900,
}


def write_user_profile(folder: str | Path, *, height: int = 64, width: int = 128, name: str = "paper-tiny.yaml") -> Path:
    """``folder/paper-tiny.yaml``: ``base: paper`` with the models and datasets ``write_all`` wrote there.

    Paths are relative to the file (the profile loader resolves them against it),
    so the folder can be moved. Only paths and ``PAPER_TINY_SIZES`` differ from the
    paper profile.
    """
    import yaml

    folder = Path(folder)
    fields: dict[str, Any] = {
        "base": "paper",
        "roots": {name: f"data/{name}" for name in DATASETS},
        "seg_model": MODEL_FOLDERS["mit-b5"],
        "diff_model": MODEL_FOLDERS["stable-diffusion-v1-5"],
        "diff_depth_model": MODEL_FOLDERS["depth-anything-small"],
        "zs_editor": MODEL_FOLDERS["instruct-pix2pix"],
        "height": height,
        "width": width,
        **PAPER_TINY_SIZES,
        "seg_crop": [height, height],
        "seg_eval_window": [height, height],  # narrower than the images: sliding-window inference runs
        "diff_resolution": [height, width],
        "i2i_crop": [height // 2, height // 2],
        "zs_patch": [height // 2, height // 2],
    }
    path = folder / name
    header = "# The paper profile on tiny stand-ins (python -m synthlib.tiny_hub): only paths and sizes changed.\n"
    path.write_text(header + yaml.safe_dump(fields, sort_keys=False, default_flow_style=None))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synthlib.tiny_hub DIR``: ``write_all(DIR)`` and print what was written."""
    parser = argparse.ArgumentParser(
        prog="python -m synthlib.tiny_hub",
        description="Write tiny, randomly initialised stand-ins of the paper profile's hub models and datasets "
        "(offline, in their real folder layouts).",
    )
    parser.add_argument("folder", type=Path, help="output folder (models/ and data/ are created under it)")
    parser.add_argument("--height", type=int, default=64, help="dataset image height (width = 2 x height by default)")
    parser.add_argument("--width", type=int, default=None, help="dataset image width (default: 2 x height)")
    parser.add_argument("--n-train", type=int, default=4, help="images per train split")
    parser.add_argument("--n-val", type=int, default=3, help="images per val split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    width = 2 * args.height if args.width is None else args.width
    written = write_all(
        args.folder, height=args.height, width=width, n_train=args.n_train, n_val=args.n_val, seed=args.seed
    )
    written["user profile"] = write_user_profile(args.folder, height=args.height, width=width)
    for name, path in written.items():
        print(f"{name:24s} {path}")
    print(f"run the paper profile on them: synthlib reproduce --config {written['user profile']}")
    return 0


# --- helpers ------------------------------------------------------------------------------


def _sd_scheduler_config(clip_sample: bool | None) -> dict[str, Any]:
    import diffusers

    config = {
        "_class_name": "PNDMScheduler",
        "_diffusers_version": diffusers.__version__,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "prediction_type": "epsilon",
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
    }
    if clip_sample is not None:
        config["clip_sample"] = clip_sample  # not a PNDM setting: read by the DDPM/DDIM schedulers built from it
    return config


def _sd_scheduler(clip_sample: bool | None):
    from diffusers import PNDMScheduler

    config = _sd_scheduler_config(clip_sample)
    return PNDMScheduler(**{k: v for k, v in config.items() if not k.startswith("_") and k != "clip_sample"})


def _segformer_processor() -> Any:
    from transformers import SegformerImageProcessor

    return SegformerImageProcessor(size={"height": 64, "width": 64}, image_mean=_IMAGENET_MEAN, image_std=_IMAGENET_STD)


def _save_with_processor(model: torch.nn.Module, folder: str | Path, processor: Any) -> Path:
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return Path(folder)


if __name__ == "__main__":
    raise SystemExit(main())

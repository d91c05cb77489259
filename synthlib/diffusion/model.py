"""The diffusion model of stages 1 and 2: Stable Diffusion's components, loaded or built small.

A ``DiffusionModel`` holds diffusers / transformers components under their
Stable Diffusion names — ``unet`` (UNet2DConditionModel), ``scheduler`` (the
training noise schedule), ``text_encoder`` (CLIPTextModel), ``tokenizer``
(CLIPTokenizer), ``vae`` (AutoencoderKL, or None in pixel space) and, after
stage 2, ``controlnet`` (ControlNetModel) — plus a few settings (resolution,
domain prompt, conditioning). ``build`` makes one from a named small config
(embedded profiles: random weights, no download) or loads a Stable Diffusion
folder / hub id; ``save`` writes every component with ``save_pretrained`` in the
Stable Diffusion folder layout and ``load`` reads any such folder back, so
every stage loads every model the same way. The ``DiffusionModel`` dataclass
itself lives in ``synthlib.diffusion.core`` and is re-exported here.

The small configs work in **pixel space** (``vae=None``): on a CPU budget a
small VAE trained from scratch lost small objects and capped quality at 20 dB
PSNR (docs/design.md §8), while pixel-space diffusion at 32x64 follows label maps
closely. With ``patch`` p > 1 the pixels are folded into p x p cells
(``pixel_unshuffle``, 3p² channels), a lossless and free stand-in for a VAE:
the UNet runs at 1/p of the image size, so 64x128 images cost what 32x64
ones did, without the blur of generating small and upsampling ("simple
diffusion", Hoogeboom et al. 2023, patches the same way). Stable Diffusion
runs in its VAE's latent space.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from synthlib import zoo
from synthlib.diffusion.core import DiffusionModel  # re-exported: callers import it from this module

#: File of synthlib's settings in a saved model folder (beside Stable Diffusion's subfolders).
SETTINGS_FILE = "synthlib_diffusion.json"
#: Subfolders every model folder has; ``vae`` too unless the model works in pixel space.
REQUIRED = ("unet", "scheduler", "text_encoder", "tokenizer")
BRANCHES = ("concat", "controlnet")
PREDICTION_TYPES = ("v_prediction", "epsilon")

_D, _X, _U, _XU = "DownBlock2D", "CrossAttnDownBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"

#: Named small configs (pixel space). Cross-attention on the domain prompt sits in the
#: mid block and the coarsest level, where it is cheap; the finer levels are convolutions.
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": {
        "unet": dict(
            block_out_channels=(32, 64, 64, 128),
            layers_per_block=1,
            down_block_types=(_D, _D, _D, _X),
            up_block_types=(_XU, _U, _U, _U),
            attention_head_dim=8,
            norm_num_groups=8,
        ),
        "text_encoder": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
    },
    # For unit tests and the smoke profile: three levels, about 0.4 M parameters.
    "micro": {
        "unet": dict(
            block_out_channels=(16, 32, 32),
            layers_per_block=1,
            down_block_types=(_D, _D, _X),
            up_block_types=(_XU, _U, _U),
            attention_head_dim=8,
            norm_num_groups=8,
        ),
        "text_encoder": dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2),
    },
}
_MAX_PROMPT_TOKENS = 48  # small tokenizers spell prompts byte by byte: room for ~45 characters


class DiffusionModelError(ValueError):
    """A model spec that is neither a named config, a model folder, nor a reachable hub id."""


def build(
    spec: str,
    resolution: Sequence[int] = (32, 64),
    prompt: str = "",
    prediction_type: str = "v_prediction",
    seed: int = 0,
    patch: int = 1,
) -> DiffusionModel:
    """A named small config (random weights, pixel space) or a Stable Diffusion folder / hub id.

    ``prediction_type`` and ``patch`` (pixel cells of patch x patch folded into
    channels) apply to built models; a loaded model keeps its scheduler and space.
    ``resolution`` and ``prompt`` set what the model is trained and sampled at.
    """
    if not isinstance(patch, int) or patch < 1:
        raise DiffusionModelError(f"patch must be a positive integer (pixels per cell side), got {patch!r}")
    if spec not in CONFIGS:
        if patch != 1:
            raise DiffusionModelError(f"patch={patch} applies to the built pixel-space configs ({', '.join(CONFIGS)}), not to {spec!r}")
        model = load(spec)
        multiple = model.vae_scale * 2 ** (len(model.unet.config.block_out_channels) - 1)
        model.resolution, model.prompt = _check_resolution(resolution, multiple), prompt
        return model
    if prediction_type not in PREDICTION_TYPES:
        raise DiffusionModelError(f"prediction_type {prediction_type!r} unknown; valid: {', '.join(PREDICTION_TYPES)}")
    config = CONFIGS[spec]
    resolution = _check_resolution(resolution, patch * 2 ** (len(config["unet"]["block_out_channels"]) - 1))
    torch.manual_seed(seed)
    tokenizer = small_tokenizer(_MAX_PROMPT_TOKENS)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=_MAX_PROMPT_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **config["text_encoder"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=[r // patch for r in resolution],
        in_channels=3 * patch**2,
        out_channels=3 * patch**2,
        cross_attention_dim=text_encoder.config.hidden_size,
        **config["unet"],
    )
    scheduler = DDPMScheduler(
        beta_schedule="squaredcos_cap_v2",  # the cosine schedule, made for small pixel-space images
        prediction_type=prediction_type,
        clip_sample=True,  # pixels live in [-1, 1]
        timestep_spacing="trailing",  # sampling starts from pure noise
    )
    text_encoder.eval().requires_grad_(False)
    return DiffusionModel(
        unet, scheduler, text_encoder, tokenizer, resolution=resolution, prompt=prompt, info={"config": spec}, patch=patch
    )


def load(path_or_id: str | Path) -> DiffusionModel:
    """A model folder written by ``save``, a Stable Diffusion folder, a hub id (network or cache), or ``zoo:NAME``.

    Raises ``DiffusionModelError`` naming the missing components of a folder, or
    saying to pass a local folder when a hub id cannot be fetched.
    """
    if zoo.is_zoo(path_or_id):  # the embedded stand-in for a hub model: its folder, built when missing
        path_or_id = zoo.resolve(path_or_id)
    path = Path(path_or_id).expanduser()
    text = str(path_or_id)
    local = path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1
    if local:
        if not path.is_dir():
            raise DiffusionModelError(f"diffusion model folder {path} does not exist")
        settings = json.loads((path / SETTINGS_FILE).read_text()) if (path / SETTINGS_FILE).is_file() else {}
        missing = [c for c in _expected(settings) if not (path / c).is_dir()]
        if missing:
            raise DiffusionModelError(
                f"{path} is not a diffusion model folder: missing {', '.join(f'{m}/' for m in missing)}. Expected the "
                f"Stable Diffusion layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/) as written by "
                f"save_pretrained / synthlib.diffusion.save, or pass a named config ({', '.join(CONFIGS)})."
            )
        return _load(str(path), settings, local_files_only=True)
    try:
        return _load(text, {}, local_files_only=False)
    except (OSError, ValueError) as e:
        raise DiffusionModelError(
            f"could not load diffusion model {text!r} from the Hugging Face hub (no network, offline mode, or no such "
            f"repository): {e} Without network access pass a local folder with the Stable Diffusion layout (unet/, vae/, text_encoder/, tokenizer/, scheduler/), "
            f"e.g. one downloaded elsewhere with huggingface_hub.snapshot_download, or a named config ({', '.join(CONFIGS)})."
        ) from e


def save(model: DiffusionModel, folder: str | Path, link_from: str | Path | None = None) -> Path:
    """Write every component with ``save_pretrained`` (Stable Diffusion layout) plus SETTINGS_FILE.

    ``link_from``: a model folder whose unchanged components (text encoder,
    tokenizer, VAE) are hard-linked instead of written again (big on real runs).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reusable = {"text_encoder", "tokenizer", "vae"} if link_from is not None else set()
    for name, component in _components(model).items():
        if name in reusable and (Path(link_from) / name).is_dir():
            _link_tree(Path(link_from) / name, folder / name)
        elif name == "tokenizer":
            component.save_pretrained(folder / name)
        elif name == "scheduler":
            component.save_pretrained(folder / name)
        else:
            component.save_pretrained(folder / name, safe_serialization=True)
    (folder / SETTINGS_FILE).write_text(json.dumps(model.settings(), indent=2))
    return folder


def small_tokenizer(max_length: int = _MAX_PROMPT_TOKENS) -> CLIPTokenizer:
    """A CLIP tokenizer built in memory: CLIP's byte-level alphabet, no merges (prompts spelled byte by byte).

    514 tokens: the 256 byte symbols, the same with CLIP's end-of-word marker, and
    the start / end tokens. It encodes any text; the text encoder built beside it
    is small because the vocabulary is.
    """
    from tokenizers import pre_tokenizers

    symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def add_branch(model: DiffusionModel, branch: str, depth: bool) -> DiffusionModel:
    """The stage-2 model: ``model`` plus an untrained semantic conditioning branch.

    ``controlnet``: ``ControlNetModel.from_unet`` (a trainable copy of the UNet's
    encoder whose zero-initialised outputs are added to the frozen UNet's skips).
    ``concat``: a copy of the UNet whose ``conv_in`` takes the conditioning
    channels too, their weights zero-initialised (InstructPix2Pix), so the
    untrained model behaves exactly like ``model``.
    """
    from synthlib.diffusion.conditioning import num_channels

    if branch not in BRANCHES:
        raise DiffusionModelError(f"conditioning branch {branch!r} unknown; valid: {', '.join(BRANCHES)}")
    if model.conditioning is not None:
        raise DiffusionModelError(f"the model already has a {model.conditioning['branch']} branch")
    channels = num_channels(depth)
    unet, controlnet = model.unet, None
    if branch == "controlnet":
        steps = int(np.log2(model.vae_scale))
        controlnet = ControlNetModel.from_unet(
            model.unet, conditioning_embedding_out_channels=(16, 32, 96, 256)[: steps + 1], conditioning_channels=channels
        )
    else:
        unet = _widen_conv_in(model.unet, channels)
    return DiffusionModel(
        unet=unet,
        scheduler=model.scheduler,
        text_encoder=model.text_encoder,
        tokenizer=model.tokenizer,
        vae=model.vae,
        controlnet=controlnet,
        resolution=tuple(model.resolution),
        prompt=model.prompt,
        conditioning={"branch": branch, "depth": bool(depth)},
        info=dict(model.info),
        patch=model.patch,
        uncond_prompt=model.uncond_prompt,
        inference_dtype=model.inference_dtype,
    )


# --- helpers ------------------------------------------------------------------------------


def _widen_conv_in(unet: UNet2DConditionModel, extra: int) -> UNet2DConditionModel:
    config = dict(unet.config)
    base = config["in_channels"]
    config["in_channels"] = base + extra
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state.pop("conv_in.weight")
    missing, unexpected = wide.load_state_dict(state, strict=False)
    assert missing == ["conv_in.weight"] and not unexpected, (missing, unexpected)
    with torch.no_grad():
        wide.conv_in.weight.zero_()
        wide.conv_in.weight[:, :base] = weight
    return wide.to(unet.device)


def _expected(settings: dict[str, Any]) -> list[str]:
    expected = list(REQUIRED)
    if settings.get("space", "latent") == "latent":
        expected.append("vae")
    if (settings.get("conditioning") or {}).get("branch") == "controlnet":
        expected.append("controlnet")
    return expected


def _load(where: str, settings: dict[str, Any], local_files_only: bool) -> DiffusionModel:
    kw = {"local_files_only": local_files_only}
    unet = UNet2DConditionModel.from_pretrained(where, subfolder="unet", **kw)
    scheduler = DDPMScheduler.from_pretrained(where, subfolder="scheduler", **kw)
    text_encoder = CLIPTextModel.from_pretrained(where, subfolder="text_encoder", **kw)
    tokenizer = CLIPTokenizer.from_pretrained(where, subfolder="tokenizer", **kw)
    vae = AutoencoderKL.from_pretrained(where, subfolder="vae", **kw) if "vae" in _expected(settings) else None
    conditioning = settings.get("conditioning")
    controlnet = None
    if conditioning and conditioning["branch"] == "controlnet":
        controlnet = ControlNetModel.from_pretrained(where, subfolder="controlnet", **kw)
    text_encoder.eval().requires_grad_(False)
    if vae is not None:
        vae.eval().requires_grad_(False)
        # Latents are not bounded by [-1, 1] (Stable Diffusion's scaled latents reach about ±4), but a scheduler
        # config without clip_sample gets diffusers' default, True, which clips every predicted x0 while sampling.
        scheduler = DDPMScheduler.from_config(scheduler.config, clip_sample=False)
    patch = int(settings.get("patch", 1)) if vae is None else 1
    scale = patch if vae is None else 2 ** (len(vae.config.block_out_channels) - 1)
    size = unet.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    resolution = tuple(settings.get("resolution") or (size[0] * scale, size[1] * scale))
    return DiffusionModel(
        unet=unet,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        vae=vae,
        controlnet=controlnet,
        resolution=resolution,
        prompt=settings.get("prompt", ""),
        conditioning=conditioning,
        info={**settings.get("info", {}), "source": where},
        patch=patch,
        # Stable Diffusion learnt "" as its unconditional prompt; pixel models say what theirs is (absent: the domain prompt).
        uncond_prompt=settings.get("uncond_prompt", "" if vae is not None else None),
        inference_dtype=settings.get("inference_dtype", "float32"),
    )


def _components(model: DiffusionModel) -> dict[str, Any]:
    out = {"unet": model.unet, "scheduler": model.scheduler, "text_encoder": model.text_encoder, "tokenizer": model.tokenizer}
    if model.vae is not None:
        out["vae"] = model.vae
    if model.controlnet is not None:
        out["controlnet"] = model.controlnet
    return out


def _check_resolution(resolution: Sequence[int], multiple: int) -> tuple[int, int]:
    resolution = tuple(int(r) for r in resolution)
    if len(resolution) != 2 or any(r <= 0 or r % multiple for r in resolution):
        raise DiffusionModelError(
            f"diffusion resolution {resolution} must be (height, width), each a positive multiple of {multiple} "
            f"(the model downsamples by {multiple})"
        )
    return resolution


def _link_tree(source: Path, target: Path) -> None:
    """Hard-link (or copy, across file systems) a component folder."""
    shutil.rmtree(target, ignore_errors=True)
    for file in source.rglob("*"):
        dest = target / file.relative_to(source)
        if file.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, dest)
        except OSError:
            shutil.copy2(file, dest)


def resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Float NxCxHxW images to ``size`` (area when shrinking, bicubic when enlarging)."""
    size = tuple(size)
    if tuple(images.shape[-2:]) == size:
        return images
    if images.shape[-2] >= size[0] and images.shape[-1] >= size[1]:
        return F.interpolate(images, size=size, mode="area")
    return F.interpolate(images, size=size, mode="bicubic", align_corners=False)

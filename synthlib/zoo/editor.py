"""The zoo's instruction-following editor: InstructPix2Pix on the zoo prior (the ``timbrooks/instruct-pix2pix`` stand-in).

As InstructPix2Pix was made from Stable Diffusion, the editor is made from the
zoo's prior: its UNet's first convolution takes the input image's latents as
four more channels (their weights start at zero, so training starts from the
prior), and the UNet learns, on pairs of the same corpus scene before and after
a change, to make the change an instruction names ("add fog", "make it night",
...). The pairs come free from minicity: one scene rendered clear and in a
weather condition, in ``mix`` looks only — never the target's. The VAE and the
text encoder stay frozen, as in InstructPix2Pix; text and image conditions are
dropped at random (5 % each, as its training) so both guidance scales work.
Saved by ``StableDiffusionInstructPix2PixPipeline.save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from tqdm.auto import tqdm

from synthlib.minicity import generate
from synthlib.tiny_hub import save_sd_folder
from synthlib.zoo import corpus, loop
from synthlib.zoo.prior import _encode, noisy_batch
from synthlib.zoo.registry import ZooModel

#: The instruction that turns a clear scene into each condition.
INSTRUCTIONS = {"fog": "add fog", "night": "make it night", "rain": "add rain", "snow": "add snow"}
_DROPOUT = 0.05  # InstructPix2Pix's conditioning dropout


def pairs(spec: dict[str, Any], progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(inputs, edited, instructions) of the corpus ``spec``: scene i clear, then in the i-th condition by turn."""
    n, h, w = int(spec["n"]), int(spec["height"]), int(spec["width"])
    conditions = list(INSTRUCTIONS)
    inputs, edited, instructions = np.empty((n, h, w, 3), np.uint8), np.empty((n, h, w, 3), np.uint8), []
    for i in tqdm(range(n), desc="render zoo editing pairs", disable=not progress, leave=False):
        condition = conditions[i % len(conditions)]
        inputs[i] = generate(int(spec["seed"]), spec["style"], i, h, w, condition="clear").image
        edited[i] = generate(int(spec["seed"]), spec["style"], i, h, w, condition=condition).image
        instructions.append(INSTRUCTIONS[condition])
    return inputs, edited, instructions


def widen(unet: UNet2DConditionModel, extra: int) -> UNet2DConditionModel:
    """A copy of ``unet`` whose first convolution takes ``extra`` more input channels, their weights zero."""
    config = dict(unet.config)
    config["in_channels"] = unet.config.in_channels + extra
    wide = UNet2DConditionModel.from_config(config)
    state = unet.state_dict()
    weight = state["conv_in.weight"]
    state["conv_in.weight"] = torch.cat([weight, weight.new_zeros(weight.shape[0], extra, *weight.shape[2:])], 1)
    wide.load_state_dict(state)
    return wide


def build(model: ZooModel, out: Path, checkpoints: Path, requires: dict[str, Path], progress: bool = True) -> dict[str, Any]:
    """Train the editor of ``model.config`` from its required prior and save the pipeline into ``out``."""
    cfg = model.config
    prior = StableDiffusionPipeline.from_pretrained(requires[model.requires[0]], safety_checker=None, requires_safety_checker=False)
    vae, text_encoder, tokenizer = prior.vae.eval().requires_grad_(False), prior.text_encoder.eval().requires_grad_(False), prior.tokenizer
    unet = widen(prior.unet, prior.unet.config.in_channels)
    inputs, edited, instructions = pairs(cfg["corpus"], progress)
    source_mean, _ = _encode(vae, inputs)  # the image condition: the posterior's mode, unscaled (as the pipeline encodes it)
    target_mean, target_std = _encode(vae, edited)
    with torch.no_grad():
        texts = sorted(set(instructions)) + [""]
        ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
        embedded = text_encoder(ids)[0]
    text_index = torch.tensor([texts.index(t) for t in instructions])
    schedule = prior.scheduler.__class__.from_config(prior.scheduler.config)
    scale = vae.config.scaling_factor

    def step(accelerator, i: int) -> torch.Tensor:
        idx = torch.from_numpy(corpus.batch_indices(cfg["seed"], i, len(inputs), cfg["batch"]))
        g = torch.Generator().manual_seed(cfg["seed"] * 1_000_003 + i)
        noisy, t, target = noisy_batch(target_mean[idx], target_std[idx], scale, schedule, g)
        # InstructPix2Pix's dropout: p < 2d drops the text, d <= p < 3d the image (both for d <= p < 2d)
        p = torch.rand(len(idx), generator=g)
        text = embedded[torch.where(p < 2 * _DROPOUT, len(texts) - 1, text_index[idx])]
        image = source_mean[idx] * ((p < _DROPOUT) | (p >= 3 * _DROPOUT)).float()[:, None, None, None]
        device = accelerator.device
        pred = unet(torch.cat([noisy, image], 1).to(device), t.to(device), encoder_hidden_states=text.to(device)).sample
        return F.mse_loss(pred, target.to(device))

    history = loop.train(f"zoo {model.name}", [unet], step, cfg["steps"], cfg["lr"], checkpoints, cfg["seed"], progress)
    save_sd_folder(out, vae, text_encoder, tokenizer, unet, prior.scheduler, editor=True)
    (out / "instructions.json").write_text(json.dumps(INSTRUCTIONS, indent=1))
    return {"final_loss": float(np.mean(history["loss"][-50:])), "median_step_seconds": float(np.median(history["step_seconds"])),
            "pairs": len(inputs), "parameters_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 3)}  # fmt: skip

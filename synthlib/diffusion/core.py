"""The ``DiffusionModel`` dataclass: Stable Diffusion's components plus synthlib's settings, and what they compute.

It holds the components and settings and maps between images, the UNet's space
(pixels, pixel cells or VAE latents) and predictions. Building, loading, saving
and adding a stage-2 branch live in ``synthlib.diffusion.model``, which re-exports
this class. It is kept apart so that module stays within the size limits, and it
imports nothing from it, so there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


@dataclass
class DiffusionModel:
    """Stable Diffusion's components plus what synthlib needs to train and sample them.

    ``resolution`` (h, w) is the image size the model generates; ``prompt`` the
    domain prompt it is trained and sampled with; ``conditioning`` None before
    stage 2, else ``{"branch": "concat" | "controlnet", "depth": bool}``.
    ``uncond_prompt`` is the prompt of classifier-free guidance's unconditional
    branch: "" for Stable Diffusion (trained with 10% of its captions dropped to "")
    and for models trained with text dropout; None means the domain prompt (the
    embedded models learn the unconditional branch as zero map + domain prompt).
    ``inference_dtype`` (a ``precision.DTYPES`` name) is what sampling autocasts to on CUDA.
    """

    unet: UNet2DConditionModel
    scheduler: DDPMScheduler
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    vae: AutoencoderKL | None = None
    controlnet: ControlNetModel | None = None
    resolution: tuple[int, int] = (32, 64)
    prompt: str = ""
    conditioning: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    patch: int = 1  # pixel space: the side of the pixel cells folded into channels
    uncond_prompt: str | None = None
    inference_dtype: str = "float32"

    @property
    def space(self) -> str:
        """"pixel" (no VAE) or "latent"."""
        return "pixel" if self.vae is None else "latent"

    @property
    def vae_scale(self) -> int:
        """How much smaller the UNet's input is than the image (the patch side in pixel space)."""
        return self.patch if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def sample_size(self) -> tuple[int, int]:
        """(h, w) of the UNet's input."""
        return (self.resolution[0] // self.vae_scale, self.resolution[1] // self.vae_scale)

    @property
    def condition_channels(self) -> int:
        """Channels of the semantic conditioning input (0 without a branch)."""
        if self.conditioning is None:
            return 0
        from synthlib.diffusion.conditioning import num_channels

        return num_channels(self.conditioning["depth"])

    @property
    def condition_size(self) -> tuple[int, int]:
        """(h, w) the conditioning map is given at: image size for ControlNet, the UNet's input size for concat."""
        if self.conditioning and self.conditioning["branch"] == "controlnet":
            return tuple(self.resolution)
        return self.sample_size

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device: torch.device | str) -> DiffusionModel:
        for module in self.modules().values():
            module.to(device)
        return self

    def modules(self) -> dict[str, torch.nn.Module]:
        """The torch modules by component name."""
        names = ("unet", "text_encoder", "vae", "controlnet")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def settings(self) -> dict[str, Any]:
        """What ``save`` writes to SETTINGS_FILE."""
        out = {
            "space": self.space,
            "resolution": list(self.resolution),
            "prompt": self.prompt,
            "conditioning": self.conditioning,
            "info": self.info,
            "patch": self.patch,
        }
        # Written only when set, so the folders of models that predate them stay byte for byte the same.
        if self.uncond_prompt is not None:
            out["uncond_prompt"] = self.uncond_prompt
        if self.inference_dtype != "float32":
            out["inference_dtype"] = self.inference_dtype
        return out

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """Text-encoder hidden states (N x tokens x dim) for the prompts."""
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        return self.text_encoder(ids.to(self.text_encoder.device))[0]

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 Nx3xHxW (at ``resolution``) -> the UNet's input space (pixels in [-1, 1], or scaled latents), float32.

        Latents are a sample of the VAE's posterior times its ``scaling_factor``
        (which brings SD's latents to about unit variance); ``decode`` divides by it.
        """
        x = images.float() / 127.5 - 1.0
        if self.vae is None:
            return F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x
        with torch.no_grad():
            dist = self.vae.encode(x.to(self.vae.dtype)).latent_dist
            # float32 even from a half-precision VAE: noise and training targets are built on these
            return dist.sample(generator).float() * self.vae.config.scaling_factor

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The UNet's space -> float images Nx3xHxW in [-1, 1]."""
        if self.vae is not None:
            with torch.no_grad():
                x = self.vae.decode(x.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        elif self.patch > 1:
            x = F.pixel_shuffle(x, self.patch)
        return x.float().clamp(-1, 1)

    def predict(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text: torch.Tensor,
        condition: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        unet: torch.nn.Module | None = None,
        controlnet: torch.nn.Module | None = None,
    ) -> torch.Tensor:
        """The UNet's prediction (noise or velocity) for noisy input ``x`` at timesteps ``t``.

        ``condition`` (N x condition_channels x condition_size) is the semantic map
        input; all zeros is the unconditional input (condition dropout, CFG).
        ``unet``/``controlnet`` replace the stored modules (accelerate's wrapped copies).
        """
        unet = unet or self.unet
        if self.conditioning is None:
            return unet(x, t, encoder_hidden_states=text).sample
        if condition is None:
            condition = torch.zeros(x.shape[0], self.condition_channels, *self.condition_size, device=x.device, dtype=x.dtype)
        if self.conditioning["branch"] == "concat":
            return unet(torch.cat([x, condition * conditioning_scale], 1), t, encoder_hidden_states=text).sample
        controlnet = controlnet or self.controlnet
        down, mid = controlnet(
            x, t, encoder_hidden_states=text, controlnet_cond=condition, conditioning_scale=conditioning_scale, return_dict=False
        )
        return unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down, mid_block_additional_residual=mid).sample

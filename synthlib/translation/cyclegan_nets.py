"""CycleGAN's networks and image buffer: ResNet generators, PatchGAN discriminators, the ``CycleGAN`` container.

``cyclegan`` holds the settings, losses and training loop, and re-exports every
name here (``synthlib.translation.cyclegan.ResnetGenerator`` and so on).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

if TYPE_CHECKING:  # cyclegan imports this module
    from synthlib.translation.cyclegan import CycleGANSettings


class ResnetGenerator(ModelMixin, ConfigMixin):
    """Johnson et al.'s ResNet generator as CycleGAN uses it: c7s1, two stride-2 downs, residual blocks, two ups, c7s1 + tanh.

    Images are Nx3xHxW in [-1, 1]; H and W must be multiples of ``size_multiple``
    (``cyclegan.translate`` pads any size). Saved and loaded with ``save_pretrained`` /
    ``from_pretrained`` (config.json + safetensors), like diffusers models.
    """

    size_multiple = 4

    @register_to_config
    def __init__(self, ngf: int = 64, blocks: int = 9, channels: int = 3) -> None:
        super().__init__()
        # InstanceNorm without affine parameters, so the convolutions keep their biases (as in CycleGAN).
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        c = ngf
        for _ in range(2):
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(c * 2), nn.ReLU(True)]
            c *= 2
        layers += [_ResidualBlock(c) for _ in range(blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(c, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(ModelMixin, ConfigMixin):
    """PatchGAN discriminator (Isola et al., 2017): one real/fake score per overlapping patch."""

    @register_to_config
    def __init__(self, ndf: int = 64, layers: int = 3, channels: int = 3) -> None:
        super().__init__()
        net: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for n in range(1, layers + 1):
            out = ndf * min(2**n, 8)
            stride = 2 if n < layers else 1  # the last block keeps the resolution, as in pix2pix
            net += [nn.Conv2d(c, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            c = out
        net.append(nn.Conv2d(c, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResidualBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), nn.InstanceNorm2d(c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass
class CycleGAN:
    """The four networks. ``g_st`` translates source to target style, ``g_ts`` target to source."""

    g_st: nn.Module
    g_ts: nn.Module
    d_s: nn.Module  # real source images vs target images translated to the source style
    d_t: nn.Module  # real target images vs source images translated to the target style

    @classmethod
    def build(cls, settings: CycleGANSettings) -> CycleGAN:
        """Fresh networks with CycleGAN's N(0, 0.02) initialisation, seeded by ``settings.seed``."""
        torch.manual_seed(settings.seed)
        model = cls(
            ResnetGenerator(settings.ngf, settings.blocks),
            ResnetGenerator(settings.ngf, settings.blocks),
            PatchDiscriminator(settings.ndf, settings.disc_layers),
            PatchDiscriminator(settings.ndf, settings.disc_layers),
        )
        for net in model.networks():
            net.apply(_init_weights)
        return model

    def networks(self) -> list[nn.Module]:
        return [self.g_st, self.g_ts, self.d_s, self.d_t]

    def save(self, folder: str | Path) -> Path:
        """``save_pretrained`` of each network into ``folder/<g_st|g_ts|d_s|d_t>``; returns ``folder``."""
        folder = Path(folder)
        for f in fields(self):
            getattr(self, f.name).save_pretrained(folder / f.name)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> CycleGAN:
        """The networks saved by ``save``, in eval mode."""
        folder = Path(folder)
        missing = [f.name for f in fields(cls) if not (folder / f.name / "config.json").is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} holds no saved CycleGAN: {', '.join(missing)} missing (expected save_pretrained folders)")
        gens = [ResnetGenerator.from_pretrained(folder / name).eval() for name in ("g_st", "g_ts")]
        discs = [PatchDiscriminator.from_pretrained(folder / name).eval() for name in ("d_s", "d_t")]
        return cls(*gens, *discs)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)


# --- image buffer -------------------------------------------------------------------------


class ImageBuffer:
    """Earlier translations shown to a discriminator (Shrivastava et al., 2017; CycleGAN's image pool).

    Until ``size`` images are stored, every queried image is stored and returned
    as is. After that, each queried image is, with probability ``p_earlier``,
    swapped for a uniformly drawn stored image (which the new image replaces in
    the buffer), else returned as is. ``size`` 0 returns the queries unchanged.
    Part of the checkpoint (``state_dict`` / ``load_state_dict``).
    """

    def __init__(self, size: int = 50, p_earlier: float = 0.5) -> None:
        if size < 0:
            raise ValueError(f"image buffer size={size} must not be negative")
        if not 0.0 <= p_earlier <= 1.0:
            raise ValueError(f"image buffer p_earlier={p_earlier} must lie in [0, 1]")
        self.size, self.p_earlier = size, p_earlier
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A batch for the discriminator: ``images`` (detached) with some swapped for earlier ones."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:  # one decision per image of the batch
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=generator)) < self.p_earlier:
                i = int(torch.randint(len(self.images), (), generator=generator))
                out.append(self.images[i].to(image.device))
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "p_earlier": self.p_earlier, "images": [i.cpu() for i in self.images]}

    def load_state_dict(self, state: dict) -> None:
        self.size, self.p_earlier, self.images = state["size"], state["p_earlier"], list(state["images"])

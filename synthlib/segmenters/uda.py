"""Unsupervised domain adaptation terms that plug into the training loop.

- ADVENT (Vu et al., 2019): entropy minimisation on target predictions and an
  adversarial discriminator on their weighted self-information maps.
- ROAD-Net (Chen et al., 2018): target-guided distillation (L2 to the features
  of a frozen copy of the initial model) and spatial-aware adaptation (one
  domain classifier per cell of a grid over the full image, behind a
  gradient-reversal layer).
- Self-training (DAFormer-style): a mean-teacher labels target crops; the
  student learns from them weighted by the teacher's confidence, optionally on
  ClassMix images that paste half of the source classes onto the target.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from synthlib.labels import IGNORE, NUM_CLASSES

# --- ADVENT -------------------------------------------------------------------------------


def self_information(prob: torch.Tensor) -> torch.Tensor:
    """Per-class weighted self-information -P log P / log C (NxCxHxW)."""
    return -prob * torch.log(prob.clamp_min(1e-12)) / math.log(prob.shape[1])


def entropy_map(prob: torch.Tensor) -> torch.Tensor:
    """Normalised entropy I = -sum_c P log P / log C (NxHxW), in [0, 1]."""
    return self_information(prob).sum(1)


def minent_loss(prob: torch.Tensor) -> torch.Tensor:
    """ADVENT's MinEnt loss: the mean normalised entropy of the target predictions."""
    return entropy_map(prob).mean()


class EntropyDiscriminator(nn.Module):
    """ADVENT's fully-convolutional discriminator over self-information maps (source 0, target 1)."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 64) -> None:
        super().__init__()
        layers, c = [], num_classes
        for out in (width, width * 2, width * 4):
            layers += [nn.Conv2d(c, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            c = out
        layers.append(nn.Conv2d(c, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, info: torch.Tensor) -> torch.Tensor:
        return self.net(info)


def domain_bce(logits: torch.Tensor, domain: float) -> torch.Tensor:
    """Binary cross-entropy of every logit against one domain label (0 source, 1 target)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, domain))


# --- ROAD-Net -----------------------------------------------------------------------------


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by -scale backward."""
    return _GradReverse.apply(x, scale)


def grid_cells(box: torch.Tensor, size: tuple[int, int], grid: int) -> torch.Tensor:
    """Grid cell (row * grid + col) of every location of an h x w feature map.

    ``box`` is Nx5: the crop's top, left, height, width as fractions of the full
    image, and a horizontal-flip flag, so each location is placed in the full
    image it was cut from.
    """
    h, w = size
    top, left, height, width, flip = box.float().unbind(1)
    ys = (torch.arange(h, device=box.device) + 0.5) / h
    xs = (torch.arange(w, device=box.device) + 0.5) / w
    xs = torch.where(flip[:, None] > 0.5, 1 - xs[None], xs[None])  # N x w
    fy = top[:, None] + ys[None] * height[:, None]  # N x h
    fx = left[:, None] + xs * width[:, None]  # N x w
    row = (fy * grid).floor().clamp(0, grid - 1).long()
    col = (fx * grid).floor().clamp(0, grid - 1).long()
    return row[:, :, None] * grid + col[:, None, :]


class SpatialDomainClassifier(nn.Module):
    """ROAD's spatial-aware adaptation: one domain classifier per grid cell, behind a GRL."""

    def __init__(self, channels: int, grid: int = 3, width: int = 64) -> None:
        super().__init__()
        self.grid = grid
        # One 1x1-conv head with grid*grid outputs = grid*grid independent classifiers.
        self.heads = nn.Sequential(nn.Conv2d(channels, width, 1), nn.ReLU(inplace=True), nn.Conv2d(width, grid * grid, 1))

    def forward(self, features: torch.Tensor, box: torch.Tensor, domain: float, scale: float = 1.0) -> torch.Tensor:
        """BCE of each location's own-cell classifier against ``domain``; gradients reach the features reversed.

        The loss is the forward pass, so that a DDP-wrapped classifier (``accelerate launch``) is called through DDP.
        """
        logits = self.heads(grad_reverse(features, scale))  # N x G*G x h x w
        cells = grid_cells(box, features.shape[2:], self.grid)
        own = logits.gather(1, cells[:, None]).squeeze(1)
        return domain_bce(own, domain)


def distillation_loss(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """ROAD's target-guided distillation: mean squared distance to the frozen model's features."""
    return F.mse_loss(features, reference.detach())


# --- Self-training ------------------------------------------------------------------------


class MeanTeacher:
    """An exponential-moving-average copy of the student that labels target images."""

    def __init__(self, student: nn.Module, alpha: float = 0.99) -> None:
        self.alpha = alpha
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> None:
        # DAFormer's warm-up: a young teacher follows the student closely.
        alpha = min(1 - 1 / (step + 1), self.alpha)
        for t, s in zip(self.model.parameters(), student.parameters(), strict=True):
            t.mul_(alpha).add_(s.detach(), alpha=1 - alpha)
        for t, s in zip(self.model.buffers(), student.buffers(), strict=True):
            t.copy_(s)


def confidence_weight(prob: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels and a per-image weight: the share of pixels whose confidence exceeds ``threshold``."""
    confidence, label = prob.max(1)
    weight = (confidence > threshold).float().mean((1, 2))
    return label, weight[:, None, None].expand_as(confidence)


def class_mix(
    source_image: torch.Tensor,
    source_label: torch.Tensor,
    target_image: torch.Tensor,
    target_label: torch.Tensor,
    target_weight: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ClassMix: paste half of each source crop's classes onto its target crop.

    Images are NxHxWx3, labels and weights NxHxW. Pasted pixels keep the source
    label with weight 1; the rest keep the pseudo-label and its weight.
    """
    mask = torch.zeros_like(source_label, dtype=torch.bool)
    for i in range(source_label.shape[0]):
        classes = source_label[i].unique()
        classes = classes[classes != IGNORE]
        if len(classes):
            pick = classes[torch.randperm(len(classes), generator=generator)[: (len(classes) + 1) // 2].to(classes.device)]
            mask[i] = torch.isin(source_label[i], pick)
    image = torch.where(mask[..., None], source_image, target_image)
    label = torch.where(mask, source_label, target_label)
    weight = torch.where(mask, torch.ones_like(target_weight), target_weight)
    return image, label, weight

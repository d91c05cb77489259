"""Unsupervised domain adaptation terms that plug into the training loop.

- ADVENT (Vu et al., 2019): entropy minimisation on target predictions and an
  adversarial discriminator on their weighted self-information maps.
- ROAD-Net (Chen et al., 2018, eqs. 1-3): target-guided distillation (the L2
  norm of each position's difference to the features of the frozen pretrained
  encoder, averaged over positions) and spatial-aware adaptation (the sum over
  the cells of a grid over the full image of each cell's mean domain loss, one
  independent classifier per cell, behind a gradient-reversal layer).
- Self-training (DAFormer-style): a mean-teacher labels target crops; the
  student learns from them weighted by the teacher's confidence, optionally on
  ClassMix images that paste half of the source classes onto the target.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel

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
    """ROAD's spatial-aware adaptation: M = grid x grid independent domain classifiers, one per region, behind a GRL."""

    def __init__(self, channels: int, grid: int = 3, width: int = 64) -> None:
        super().__init__()
        self.grid = grid
        # Independent classifiers, each with its own hidden layer, as the paper's D_m.
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(channels, width), nn.ReLU(inplace=True), nn.Linear(width, 1)) for _ in range(grid * grid)
        )

    def forward(self, features: torch.Tensor, box: torch.Tensor, domain: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """L_spt = sum over regions m and domains of the mean BCE of classifier m on region m's positions.

        ``domain`` holds each image's domain (0 source, 1 target): one call takes both domains'
        features, so that under DDP (``accelerate launch``) every parameter is used once per
        step. Regions the crops do not reach add nothing. Gradients reach the features reversed.
        """
        positions = grad_reverse(features, scale).permute(0, 2, 3, 1)  # N x h x w x C
        cells = grid_cells(box, features.shape[2:], self.grid)
        domains = domain.float()[:, None, None].expand_as(cells)
        loss = features.new_zeros(())
        for m, head in enumerate(self.heads):
            where = cells == m
            if not where.any():
                continue
            logits, labels = head(positions[where]).squeeze(1), domains[where]
            for d in labels.unique():
                same = labels == d
                loss = loss + F.binary_cross_entropy_with_logits(logits[same], labels[same])
        return loss


def distillation_loss(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """ROAD's target-guided distillation (eq. 1): 1/N sum_ij ||x_ij - z_ij||_2 over the N positions (NxCxhxw).

    The L2 norm of each position's feature difference, not its square, so lambda_1 = 0.1 weighs what it weighs in the paper.
    """
    return torch.linalg.vector_norm(features - reference.detach(), dim=1).mean()


# --- Self-training ------------------------------------------------------------------------


class MeanTeacher:
    """An exponential-moving-average copy of the student that labels target images.

    ``model`` is torch's ``AveragedModel`` (it counts its updates, which a resumed run restores
    from the checkpoint); the average is DAFormer's, whose decay warms up with that count.
    """

    def __init__(self, student: nn.Module, alpha: float = 0.99) -> None:
        self.alpha = alpha
        self.model = AveragedModel(student, avg_fn=self._average, use_buffers=False).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _average(self, teacher: torch.Tensor, student: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        # DAFormer's warm-up: a young teacher follows the student closely.
        alpha = min(1 - 1 / (float(updates) + 1), self.alpha)
        return teacher * alpha + student.detach() * (1 - alpha)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        self.model.update_parameters(student)
        # Batch-norm statistics are the student's own, not averaged (use_buffers=False leaves them alone).
        for t, s in zip(self.model.module.buffers(), student.buffers(), strict=True):
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

"""The small UNet minicity's gap is measured with: a conv net with BatchNorm and its own short training loop.

Not a stage: ``synthlib.minicity_gap`` trains one per domain in memory, on arrays
rendered in the same process, with one budget for all (AdamW + one-cycle, random
scale, crop and flips, inverse square-root class weights), so that the world's
properties are measured in minutes; the pipeline's segmenters are the SegFormers
of ``segmenters.model`` trained by ``segmenters.train``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthlib.labels import IGNORE, NUM_CLASSES
from synthlib.metrics import ConfusionMatrix


class SmallUNet(nn.Module):
    """A small UNet with BatchNorm: one full-resolution conv, then three levels from 1/2 to 1/8.

    Full resolution is kept only in a thin stem and the last refinement so thin classes
    (poles, signs) survive at 64x128 while most of the compute runs at half resolution.
    About 0.5 M parameters at base width 16.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, base_width: int = 16) -> None:
        super().__init__()
        w = base_width
        self.stem = _block(3, w, convs=1)
        self.enc = nn.ModuleList([_block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w)])
        self.dec = nn.ModuleList([_block(12 * w, 4 * w), _block(6 * w, 2 * w), _block(3 * w, w, convs=1)])
        self.head = nn.Conv2d(w, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for enc in self.enc:
            skips.append(enc(F.max_pool2d(skips[-1], 2)))
        x = skips.pop()
        for dec in self.dec:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], 1))
        return self.head(x)


def _block(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse square-root frequency weights (median class = 1, clipped to [0.25, 5]) for the loss.

    Without them a short budget never learns the rare classes at all; the same rule is
    applied to every domain's own training labels.
    """
    freq = np.bincount(labels.ravel(), minlength=256)[:NUM_CLASSES].astype(np.float64)
    freq = freq / max(freq.sum(), 1)
    present = freq > 0
    w = np.ones(NUM_CLASSES)
    w[present] = np.clip((freq[present] / np.median(freq[present])) ** -0.5, 0.25, 5.0)
    return torch.tensor(w, dtype=torch.float32)


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images (N,H,W,3), in [0, 1] units."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return x.mean(0).astype(np.float32), x.std(0).astype(np.float32)


def _to_input(images: np.ndarray, stats) -> torch.Tensor:
    mean, std = (torch.from_numpy(s).view(1, 3, 1, 1) for s in stats)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - mean) / std


def train_segmenter(images: np.ndarray, labels: np.ndarray, stats, steps: int, batch_size: int = 8, lr: float = 3e-3,
                    base_width: int = 16, seed: int = 0, weighted: bool = True) -> SmallUNet:
    """Train a SmallUNet with AdamW + one-cycle, random scale (0.75-1.25), crop (3/4 size) and flips."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallUNet(base_width=base_width).to(memory_format=torch.channels_last)
    weight = class_weights(labels) if weighted else None
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    x_all = _to_input(images, stats)
    y_all = torch.from_numpy(labels.astype(np.int64))
    n, _, h, w = x_all.shape
    ch, cw = (h * 3 // 4) // 8 * 8, (w * 3 // 4) // 8 * 8
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x, y = x_all[idx], y_all[idx]
        scale = float(torch.empty(1).uniform_(0.75, 1.25, generator=gen))
        sh, sw = max(ch, round(h * scale)), max(cw, round(w * scale))
        x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
        y = F.interpolate(y[:, None].float(), size=(sh, sw), mode="nearest")[:, 0].long()
        top = int(torch.randint(0, sh - ch + 1, (1,), generator=gen))
        left = int(torch.randint(0, sw - cw + 1, (1,), generator=gen))
        x, y = x[..., top:top + ch, left:left + cw], y[..., top:top + ch, left:left + cw]
        flip = torch.rand(batch_size, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None], y.flip(-1), y)
        x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y, weight=weight, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, stats, batch_size: int = 50) -> np.ndarray:
    """Argmax trainIds (N,H,W uint8) for uint8 images normalised with ``stats``."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = _to_input(images[i:i + batch_size], stats).contiguous(memory_format=torch.channels_last)
        out.append(model(x).argmax(1).to(torch.uint8).numpy())
    return np.concatenate(out)


def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, stats) -> ConfusionMatrix:
    """Confusion matrix of the model's predictions against trainId labels (255 ignored)."""
    return ConfusionMatrix(NUM_CLASSES).update(predict(model, images, stats), labels)

"""What the diffusion training loop learns from: examples, their seeded stream and the loader.

Every random choice of an example (flip, colour jitter) is a function of
(seed, stream, position in the sample stream), and which example a position
holds is drawn in this process, so a resumed run and any number of data-loader
workers see exactly the batches an uninterrupted single-process run sees — the
segmenter loop's pattern.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from synthlib.datasets import Dataset
from synthlib.diffusion.conditioning import check_pair, encode

if TYPE_CHECKING:
    from synthlib.diffusion.train import DiffusionSettings


class Examples(torch.utils.data.Dataset):
    """Training examples: images at the model's resolution, a prompt index, and (stage 2) conditioning.

    ``parts``: (dataset, prompt index) pairs, concatenated. With ``conditioning``
    (a dict of ``size``, ``erosion`` and ``depth``: None, or "dataset" for the
    samples' own depth, or an array NxHxW per part) each example carries the
    encoded label map. Randomness (flip, jitter) is keyed by stream position.
    """

    def __init__(
        self,
        parts: Sequence[tuple[Dataset, int]],
        resolution: Sequence[int],
        settings: DiffusionSettings,
        conditioning: dict[str, Any] | None = None,
        stream: int = 0,
    ) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(d) for d, _ in self.parts])
        self.resolution, self.settings, self.conditioning, self.stream = tuple(resolution), settings, conditioning, stream
        if self.offsets[-1] == 0:
            raise ValueError("diffusion training set is empty")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        part = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return part, index - int(self.offsets[part])

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        position, index = key
        rng = np.random.default_rng([self.settings.seed, self.stream, position])
        part, local = self.locate(index)
        dataset, prompt = self.parts[part]
        sample = dataset[local]
        flip = bool(self.settings.flip and rng.random() < 0.5)
        image = _resize_uint8(sample.image, self.resolution)
        if self.settings.jitter > 0:
            image = colour_jitter(image, self.settings.jitter, rng)
        item = {"image": torch.from_numpy(np.array(image)).permute(2, 0, 1), "prompt": torch.tensor(prompt)}
        if self.conditioning is not None:
            depth = self._depth(part, local, sample)
            check_pair(sample.image, sample.label, depth, f"{getattr(dataset, 'name', 'dataset')} sample {sample.id!r}")
            cond = encode(sample.label, self.conditioning["size"], self.settings.erosion, None if depth is None else depth[None])[0]
            item["condition"] = cond
        if flip:
            item = {k: v.flip(-1) if v.ndim == 3 else v for k, v in item.items()}
        return item

    def _depth(self, part: int, local: int, sample) -> np.ndarray | None:
        source = self.conditioning.get("depth")
        if source is None:
            return None
        if isinstance(source, str):
            if sample.depth is None:
                raise ValueError(
                    f"sample {sample.id!r} has no depth, but the conditioning uses depth: set diff_depth_model to a "
                    f"monocular depth model (folder or hub id), or diff_depth=False"
                )
            return sample.depth
        return source[part][local]


def colour_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """A random palette change: hue rotation, saturation, per-channel gain, brightness and contrast.

    ``strength`` 0 is the identity; 1 rotates hue by up to 180 degrees and scales
    the rest by up to about 2x. Used to make the pretraining corpus broad.
    """
    x = image.astype(np.float32) / 255.0
    angle = rng.uniform(-np.pi, np.pi) * strength
    # Rotation about the grey axis (a hue shift), then saturation about the per-pixel grey.
    axis = np.ones(3) / np.sqrt(3)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    x = x @ rot.T
    grey = x.mean(-1, keepdims=True)
    x = grey + (x - grey) * np.exp(rng.uniform(-0.7, 0.7) * strength)
    x = x * np.exp(rng.uniform(-0.3, 0.3, 3) * strength)
    mean = x.mean()
    x = mean + (x - mean) * np.exp(rng.uniform(-0.5, 0.5) * strength) + rng.uniform(-0.2, 0.2) * strength
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def _resize_uint8(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = image.shape[0] >= h and image.shape[1] >= w
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BOX if shrink else Image.BICUBIC))


class _Stream(torch.utils.data.Sampler):
    """``total`` (position, index) pairs drawn uniformly with replacement from a seeded generator."""

    def __init__(self, n: int, total: int, seed: int) -> None:
        self.n, self.total, self.seed = n, total, seed

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        return iter(enumerate(torch.randint(0, self.n, (self.total,), generator=g).tolist()))


def loader(examples: Examples, settings: DiffusionSettings, total: int, workers: int = 0):
    """Batches of ``total`` examples in the seeded stream order; ``workers`` processes prepare them (0: this one).

    Which example lands where is decided by the sampler in this process, and an
    example's randomness by its stream position, so any number of workers gives
    the same batches. Workers get pinned memory and persist between epochs.
    """
    sampler = _Stream(len(examples), total, settings.seed * 2 + examples.stream)
    generator = torch.Generator().manual_seed(settings.seed)
    parallel = {}
    if workers > 0:
        parallel = dict(num_workers=workers, pin_memory=torch.cuda.is_available(), persistent_workers=True, worker_init_fn=_seed_worker)
    return torch.utils.data.DataLoader(examples, batch_size=settings.batch_size, sampler=sampler, generator=generator, **parallel)


def _seed_worker(worker_id: int) -> None:
    """Seed a worker's global numpy and random generators from its torch seed (set by the loader's generator).

    Examples draw their own randomness from their stream position; this keeps
    any dataset code that uses the global generators reproducible too.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)

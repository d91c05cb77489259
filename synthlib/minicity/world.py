"""minicity samples and datasets: ``generate`` one scene, ``MiniCity`` a split of them.

A sample is determined by (seed, style, split, index, condition). The layout
(what stands where, and every instance's colour) depends only on (seed, the
style's scene statistics, split, index), so the fog, night, rain and snow
variants of a target scene share the clear scene's label map exactly.
``look`` renders a style's scenes with another style's appearance (a flat scene
as it would look in ``real``: real's palette, materials, lighting and sensor on
flat's layout and camera): the perfect translation of a source map into the
target's look, a ceiling for every generation or translation method.
The corpus style ``mix`` (``CORPUS_STYLES``) draws a new look per image, see corpus.py.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict

import numpy as np
import pandas as pd
from scipy import ndimage

from synthlib.datasets.base import Dataset, DatasetError, Sample
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES

from .appearance import shade
from .corpus import MIX_CODE, mix_style
from .layout import sample_scene
from .render import rasterise
from .styles import STYLE_TABLE, Style

STYLES: tuple[str, ...] = ("flat", "game", "real")
"""flat and game are source styles (pixel-perfect labels); real is the target."""
CONDITIONS: tuple[str, ...] = ("clear", "fog", "night", "rain", "snow")
"""Conditions other than clear exist for the target style (like ACDC for Cityscapes) and the mix corpus
(a pretraining set sees every weather, as LAION does), never for the sources."""
CORPUS_STYLES: tuple[str, ...] = ("mix",)
"""Domain-randomised pretraining corpus: a random look per image, never the target's (corpus.py)."""
SPLITS: tuple[str, ...] = ("train", "val")
MIN_HEIGHT = 32

_SPLIT_CODE = {"train": 1, "val": 2}
_STREAM_LAYOUT, _STREAM_LABELS, _STREAM_PIXELS, _STREAM_LOOK = 0, 1, 2, 3


def generate(seed: int, style: str, index: int, height: int, width: int, condition: str = "clear",
             split: str = "train", look: str | None = None) -> Sample:
    """One minicity scene as a ``Sample`` (image, trainId label, depth in metres, instances).

    ``look`` (a style; default ``style``) shades the scene with that style's appearance:
    the layout, label map, depth and instances stay the ones of ``style``.
    Raises DatasetError for an unknown style or look, condition, split, a size that is not
    1:2 or smaller than 32x64, or a seed or index that is not a non-negative integer.
    """
    look = style if look is None else look
    check_options(style=style, condition=condition, split=split, height=height, width=width, seed=seed)
    if look != style and look not in STYLES:
        raise DatasetError(f"look={look!r} is not a minicity style; choose one of {', '.join(STYLES)}")
    if not _is_int(index) or index < 0:
        raise DatasetError(f"index={index!r}: expected a non-negative integer")
    st = scene_style(seed, style, split, index)
    appearance = st if look == style else STYLE_TABLE[look]
    scene = sample_scene(with_look(st, appearance), _rng(seed, st.code, split, index, _STREAM_LAYOUT))
    cv = rasterise(scene, height, width)
    pixel_rng = _rng(seed, st.code, split, index, _STREAM_PIXELS, CONDITIONS.index(condition))
    image = shade(cv, scene, appearance, condition, pixel_rng)
    label = cv.label
    if st.render.coarse_labels:
        label = coarsen_labels(label, cv.inst, _rng(seed, st.code, split, index, _STREAM_LABELS))
    return Sample(
        image=image,
        label=label,
        depth=cv.depth,
        instances=cv.inst,
        id=f"minicity_{style}{'' if look == style else '_as_' + look}_{condition}_{split}_{int(index):05d}",
        meta={"seed": int(seed), "style": style, "look": look, "condition": condition, "split": split, "index": int(index),
              "camera_height_m": round(scene.cam_height, 3),
              "hfov_deg": round(float(np.degrees(2 * np.arctan(0.5 / scene.focal))), 2)},
    )


def scene_style(seed: int, style: str, split: str, index: int) -> Style:
    """The Style a scene is drawn from: a fixed one, or for ``mix`` a look drawn for this image."""
    if style == "mix":
        return mix_style(_rng(seed, MIX_CODE, split, index, _STREAM_LOOK))
    return STYLE_TABLE[style]


def with_look(scene_style: Style, look: Style) -> Style:
    """``scene_style``'s camera and layout with ``look``'s colours and sun.

    The layout consumes the same random draws whatever the palette, so the scene keeps
    its geometry, labels and instances and only takes on the other style's colours.
    """
    if look is scene_style:
        return scene_style
    return dataclasses.replace(scene_style, palette=look.palette,
                               render=dataclasses.replace(scene_style.render, sun=look.render.sun))


class MiniCity(Dataset):
    """A split of minicity scenes, generated lazily by index (recent samples are cached)."""

    name = "minicity"

    def __init__(self, style: str = "real", split: str = "train", n: int = 500, height: int = 64, width: int = 128,
                 seed: int = 0, condition: str = "clear", cache: int = 64, look: str | None = None) -> None:
        check_options(style=style, condition=condition, split=split, height=height, width=width, seed=seed)
        if not _is_int(n) or n <= 0:
            raise DatasetError(f"n={n!r}: the number of samples must be a positive integer")
        if look is not None and look != style and look not in STYLES:
            raise DatasetError(f"look={look!r} is not a minicity style; choose one of {', '.join(STYLES)}")
        self.style, self.split, self.n, self.look = style, split, int(n), look or style
        self.height, self.width, self.seed, self.condition = int(height), int(width), int(seed), condition
        self.name = f"minicity_{style}{'' if self.look == style else '_as_' + self.look}_{condition}_{split}"
        self._cache: OrderedDict[int, Sample] = OrderedDict()
        self._cache_size = cache

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        index = self._check_index(index)
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        sample = generate(self.seed, self.style, index, self.height, self.width, self.condition, self.split, self.look)
        if self._cache_size > 0:
            self._cache[index] = sample
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return sample

    def arrays(self, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """All images (N,H,W,3 uint8) and labels (N,H,W uint8) of the split, for training loops."""
        images = np.empty((self.n, self.height, self.width, 3), np.uint8)
        labels = np.empty((self.n, self.height, self.width), np.uint8)
        samples = generate_many(self.seed, self.style, range(self.n), self.height, self.width, self.condition,
                                self.split, workers=workers, look=self.look)
        for i, s in enumerate(samples):
            images[i], labels[i] = s.image, s.label
        return images, labels


def generate_many(seed: int, style: str, indices, height: int, width: int, condition: str = "clear",
                  split: str = "train", workers: int = 1, look: str | None = None) -> list[Sample]:
    """``generate`` for many indices, optionally over ``workers`` processes (same samples, same order)."""
    check_options(style=style, condition=condition, split=split, height=height, width=width, seed=seed)
    indices = list(indices)
    if workers <= 1 or len(indices) < 2 * workers:
        return [generate(seed, style, i, height, width, condition, split, look) for i in indices]
    from concurrent.futures import ProcessPoolExecutor

    job = functools.partial(generate, seed, style, height=height, width=width, condition=condition, split=split, look=look)
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(job, indices, chunksize=max(1, len(indices) // (4 * workers))))


def check_options(style: str, condition: str, split: str, height: int, width: int, seed: int) -> None:
    """Raise DatasetError naming the bad parameter and what is allowed."""
    if style not in STYLES + CORPUS_STYLES:
        raise DatasetError(f"style={style!r} is not a minicity style; choose one of {', '.join(STYLES + CORPUS_STYLES)}")
    if condition not in CONDITIONS:
        raise DatasetError(f"condition={condition!r} is not a minicity condition; choose one of {', '.join(CONDITIONS)}")
    if condition != "clear" and style not in ("real", *CORPUS_STYLES):
        raise DatasetError(f"condition={condition!r} exists only for the target style 'real' and the corpus "
                           f"({', '.join(CORPUS_STYLES)}); source styles ({', '.join(s for s in STYLES if s != 'real')}) "
                           f"allow condition='clear'")
    if split not in SPLITS:
        raise DatasetError(f"split={split!r} is not a minicity split; choose one of {', '.join(SPLITS)}")
    if not (_is_int(height) and _is_int(width)):
        raise DatasetError(f"height={height!r}, width={width!r}: image size must be integers")
    if width != 2 * height or height < MIN_HEIGHT:
        raise DatasetError(f"height={height}, width={width}: minicity images are 1:2 (width = 2 * height) "
                           f"with height >= {MIN_HEIGHT}, e.g. 64x128 or 128x256")
    if not _is_int(seed) or seed < 0:
        raise DatasetError(f"seed={seed!r}: expected a non-negative integer")


def coarsen_labels(label: np.ndarray, instances: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cityscapes-like annotation: void (255) along some class borders and on some small objects.

    Human polygon annotation leaves thin unlabelled seams where it is unsure: here about 30 %
    of the classes and of the instances get their border pixels voided, and small
    instances are often left unlabelled.
    """
    h, w = label.shape
    out = label.copy()
    border = np.zeros(label.shape, bool)
    dh = label[:, 1:] != label[:, :-1]
    dv = label[1:, :] != label[:-1, :]
    border[:, 1:] |= dh
    border[:, :-1] |= dh
    border[1:, :] |= dv
    border[:-1, :] |= dv
    radius = max(1, round(w / 256))
    if radius > 1:
        border = ndimage.binary_dilation(border, iterations=radius - 1)
    class_pick = np.zeros(256, bool)
    class_pick[:NUM_CLASSES] = rng.random(NUM_CLASSES) < 0.3
    n_inst = int(instances.max()) + 1
    inst_pick = rng.random(n_inst) < 0.3
    inst_pick[0] = False
    loose = class_pick[label] & (instances == 0) | inst_pick[instances]
    out[border & loose] = IGNORE
    area = np.bincount(instances.ravel(), minlength=n_inst)
    small = (area < 0.0015 * h * w) & (rng.random(n_inst) < 0.5)
    small[0] = False
    out[small[instances]] = IGNORE
    return out


def class_presence(dataset: Dataset) -> pd.Series:
    """Fraction of images that contain each of the 19 classes."""
    counts = np.zeros(NUM_CLASSES)
    for sample in dataset:
        present = np.bincount(sample.label.ravel(), minlength=256)[:NUM_CLASSES] > 0
        counts += present
    return pd.Series(counts / len(dataset), index=pd.Index(CLASS_NAMES, name="class"), name=dataset.name)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _rng(seed: int, style_code: int, split: str, index: int, stream: int, extra: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), style_code, _SPLIT_CODE[split], int(index), stream, extra]))

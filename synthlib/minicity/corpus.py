"""``mix``: a domain-randomised corpus, the stand-in for a generic pretraining set.

Every image draws its own look from broad plausible ranges: a palette mixed from
the source styles' colours with random shifts, per-class materials, lighting,
render and sensor settings, and the camera and layout statistics of a random
source style. It is the data a pretrained encoder and a generative prior (the
"ImageNet" / "Stable Diffusion" of the miniature world) are trained on, so it
must never contain the target: no colour option of ``real``'s palette is used
as such, and no class ever gets ``real``'s material kind for that class.
Labels are pixel-perfect, as in the sources.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from .materials import FIELDS, KINDS, REAL_MATERIALS, Material, Materials
from .styles import FLAT, GAME, Palette, Render, Style

MIX_CODE = zlib.crc32(b"mix")

# kinds that fit each class's surface; the target's kind is removed per class below
_SURFACE_KINDS = {
    "road": ("plain", "grain", "cobble", "slabs", "speckle", "brushed"),
    "sidewalk": ("plain", "tiles", "slabs", "cobble", "brick", "speckle", "grain"),
    "building": ("plain", "brick", "plaster", "panels", "stripes", "slabs", "speckle"),
    "wall": ("plain", "plaster", "brick", "slabs", "stripes", "speckle"),
    "vegetation": ("plain", "leaves", "blobs", "speckle", "grain"),
    "terrain": ("plain", "speckle", "blobs", "grain", "leaves"),
}
_DEFAULT_KINDS = ("plain", "grain", "brushed", "speckle", "panels", "stripes")
_SCALE = {"grain": (0.02, 0.1), "speckle": (0.02, 0.1), "brushed": (0.02, 0.1), "leaves": (0.04, 0.2),
          "cobble": (0.15, 0.5), "tiles": (0.2, 0.6), "slabs": (0.5, 1.5), "brick": (0.2, 0.4),
          "plaster": (0.5, 2.0), "panels": (0.6, 2.0), "blobs": (0.3, 1.2), "stripes": (0.15, 0.6), "plain": (0.1, 0.1)}


def mix_style(rng: np.random.Generator) -> Style:
    """One randomly drawn look (and a source's layout statistics), fully determined by ``rng``."""
    base = (FLAT, GAME)[int(rng.integers(2))]
    return Style(name="mix", camera=base.camera, layout=base.layout, palette=_palette(rng),
                 render=_render(rng), materials=_materials(rng), code=MIX_CODE)


def _palette(rng: np.random.Generator) -> Palette:
    """Per field: the union of flat's and game's options, each shifted by one random per-image colour cast."""
    fields = {}
    for f in dataclasses.fields(Palette):
        if f.name == "jitter":
            continue
        options = tuple(dict.fromkeys(getattr(FLAT.palette, f.name) + getattr(GAME.palette, f.name)))
        if f.name in ("skin", "clothes"):  # people look like people everywhere
            fields[f.name] = options
            continue
        cast = rng.uniform(0.85, 1.15, 3) * rng.uniform(0.85, 1.15)
        fields[f.name] = tuple(tuple(int(np.clip(c * k, 0, 255)) for c, k in zip(o, cast, strict=True)) for o in options)
    return Palette(**fields, jitter=float(rng.uniform(0.06, 0.16)))


def _render(rng: np.random.Generator) -> Render:
    u = rng.uniform
    tint = tuple(int(v) for v in rng.integers(92, 110, 3))
    noise, blur, vig = u(0.0, 0.012), u(0.0, 0.7), u(0.0, 0.25)
    sat = u(0.8, 1.3)
    return Render(
        shading=u(0.3, 1.0), ambient_occlusion=u(0.0, 1.0), texture=u(0.5, 1.2), shadows=bool(rng.random() < 0.6),
        noise=(0.0, noise), blur=(0.0, blur), vignette=(0.0, vig), saturation=(sat, sat * 1.05),
        exposure=(0.9, 1.15), tints=(tint,), hood=False, coarse_labels=False, clouds=u(0.0, 0.6),
        sun=(u(0.0, 0.4), 0.4, 1.0),
    )


def _materials(rng: np.random.Generator) -> Materials:
    """A material per class: never the kind the target style uses for that class."""
    out = {}
    for name in FIELDS:
        if name == "sky":
            continue
        target = REAL_MATERIALS.for_class(FIELDS.index(name)).kind
        pool = [k for k in _SURFACE_KINDS.get(name, _DEFAULT_KINDS) if k != target and k in KINDS]
        kind = pool[int(rng.integers(len(pool)))]
        lo, hi = _SCALE[kind]
        tint = tuple(float(v) for v in np.round(rng.uniform(0.88, 1.12, 3), 3))
        out[name] = Material(kind, float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), float(rng.uniform(0.1, 0.55)),
                             tint, hue=float(rng.uniform(0.0, 0.6)), gloss=float(rng.uniform(0.0, 0.8) ** 1.5))
    return Materials(**out)

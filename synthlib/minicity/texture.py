"""Surface patterns of the per-class materials, and applying them to a rasterised scene.

Patterns are sampled in world coordinates (metres on the surface), so they
shrink with distance; each fades to its mean once finer than a pixel (a box
filter in closed form), so distant surfaces go flat instead of aliasing.
Everything here works class by class on ``cv.label``: a class's material
changes that class's pixels and no others.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from . import render as R
from .materials import FIELDS, Materials

# render materials that never carry the class pattern: lamps, markings, rails, skin and tyres stay
# what they are in every style (a road marking is paint on the road, not cobblestone)
_NO_PATTERN = np.zeros(256, bool)
_NO_PATTERN[[R.SKY, R.LIGHT, R.MARKING, R.RAIL, R.SKIN, R.RUBBER, R.GLASS, R.SIGN]] = True
_SHINY = np.zeros(256, bool)
_SHINY[[R.PAINT, R.GLASS, R.METAL]] = True


# ----------------------------------------------------------------------------- noise tables


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three tileable 256x256 tables shared by all scenes: fine and coarse unit noise, uniform cells in [-1, 1]."""
    rng = np.random.default_rng(20250102)
    out = []
    for sigma in (0.8, 2.5):
        n = ndimage.gaussian_filter(rng.normal(size=(256, 256)), sigma, mode="wrap")
        out.append(((n - n.mean()) / n.std()).astype(np.float32))
    out.append(rng.uniform(-1.0, 1.0, (256, 256)).astype(np.float32))
    return out[0], out[1], out[2]


def _lookup(table: np.ndarray, i: np.ndarray, j: np.ndarray, offset: int) -> np.ndarray:
    return table[(i.astype(np.int64) + offset) & 255, (j.astype(np.int64) + 3 * offset) & 255]


def _fade(texel, footprint) -> np.ndarray:
    """Surviving amplitude of a pattern with this texel size seen through pixels of this footprint."""
    return np.clip(texel / (2.0 * np.maximum(footprint, 1e-6)), 0.0, 1.0)


# ----------------------------------------------------------------------------- patterns


def _noise(u, v, fu, fv, texel_u: float, texel_v: float, table: np.ndarray, off: int) -> np.ndarray:
    val = _lookup(table, np.floor(v / texel_v), np.floor(u / texel_u), off)
    return val * _fade(texel_u, fu) * _fade(texel_v, fv)


def _cells(u, v, fu, fv, cw: float, ch: float, stagger: float, joint: float, joint_value: float, var: float,
           off: int) -> np.ndarray:
    """Cells of cw x ch metres (rows offset by ``stagger`` of a cell) with per-cell brightness and joints.

    Joints narrower than a pixel are widened to half a pixel and weakened so that their
    area-weighted mean stays right: unresolved mortar greys a wall, it does not vanish.
    """
    _, _, cells = _tables()
    row = np.floor(v / ch)
    uu = u + stagger * cw * (row % 2)
    col = np.floor(uu / cw)
    out = var * _lookup(cells, row, col, off) * _fade(cw, fu) * _fade(ch, fv)
    for pos, size, fp in (((uu / cw) % 1.0, cw, fu), ((v / ch) % 1.0, ch, fv)):
        width = np.maximum(joint, 0.5 * fp / size)  # joint width as a fraction of the cell
        out = out + np.where(pos < np.minimum(width, 1.0), joint_value * joint / np.minimum(width, 1.0), 0.0)
    return out


def pattern(kind: str, u, v, fu, fv, scale: float, off: int) -> np.ndarray:
    """Brightness modulation (about -1..1) of ``kind`` at surface coordinates u, v (m), footprints fu, fv (m/px)."""
    fine, coarse, _ = _tables()
    s = scale
    if kind == "plain":
        return np.zeros(np.shape(u), np.float32)
    if kind == "grain":  # asphalt: fine aggregate over slow wear patches
        return 0.6 * _noise(u, v, fu, fv, s, s, fine, off) + 0.5 * _noise(u, v, fu, fv, 20 * s, 20 * s, coarse, off + 5)
    if kind == "cobble":
        return _cells(u, v, fu, fv, s, 0.8 * s, 0.5, 0.14, -1.2, 0.7, off)
    if kind == "tiles":
        return _cells(u, v, fu, fv, s, s, 0.0, 0.07, -0.8, 0.25, off)
    if kind == "slabs":
        return _cells(u, v, fu, fv, 2 * s, s, 0.0, 0.03, -1.0, 0.35, off) + 0.3 * _noise(u, v, fu, fv, s / 8, s / 8, fine, off)
    if kind == "brick":
        return _cells(u, v, fu, fv, s, 0.3 * s, 0.5, 0.12, 0.9, 0.5, off)
    if kind == "plaster":
        return 0.8 * _noise(u, v, fu, fv, s, s, coarse, off) + 0.25 * _noise(u, v, fu, fv, s / 15, s / 15, fine, off)
    if kind == "panels":
        return _cells(u, v, fu, fv, 1.5 * s, s, 0.0, 0.05, -1.5, 0.45, off)
    if kind == "leaves":  # dense fine leaves, clumped
        return 0.9 * _noise(u, v, fu, fv, s, s, fine, off) + 0.5 * _noise(u, v, fu, fv, 6 * s, 6 * s, coarse, off + 9)
    if kind == "blobs":  # a game's foliage: big smooth two-tone clumps
        c = _noise(u, v, fu, fv, s, s, coarse, off)
        return np.tanh(3.0 * c) * 0.9
    if kind == "stripes":  # boards or siding: horizontal bands
        band = np.floor(v / s)
        return (0.6 * _lookup(_tables()[2], band, np.zeros_like(band), off) + np.where((v / s) % 1.0 < 0.12, -0.8, 0.0)) * _fade(s, fv)
    if kind == "speckle":
        return _noise(u, v, fu, fv, s, s, _tables()[2], off) * 1.2
    if kind == "brushed":  # streaks along the surface
        return _noise(u, v, fu, fv, 12 * s, s, fine, off)
    raise ValueError(kind)


# ----------------------------------------------------------------------------- applying them


def footprints(cv: R.Canvas) -> tuple[np.ndarray, np.ndarray]:
    """Metres per pixel along u and v: ground is foreshortened along the depth axis."""
    fu = cv.depth / cv.f
    ground = cv.normal == R.UP
    fv = np.where(ground, cv.depth * cv.depth / (cv.f * max(cv.hc, 0.1)), fu)
    return fu.astype(np.float32), fv.astype(np.float32)


def apply_materials(cv: R.Canvas, img: np.ndarray, materials: Materials, strength: float, seed: int) -> None:
    """Colour cast, then pattern and hue variation scaled by ``strength``, of every class's material, in place.

    The colour cast is the material's own colour and applies even to untextured styles.
    """
    fu, fv = footprints(cv)
    present = np.flatnonzero(np.bincount(cv.label.ravel(), minlength=256)[: len(FIELDS)])
    for c in present:
        m = materials.for_class(int(c))
        if m.kind == "plain" and m.tint == (1.0, 1.0, 1.0):
            continue
        sel = cv.label == c
        if m.tint != (1.0, 1.0, 1.0):
            img[sel] *= np.float32(m.tint)
        if m.kind == "plain" or m.contrast <= 0 or strength <= 0:
            continue
        sel &= ~_NO_PATTERN[cv.mat]
        t = pattern(m.kind, cv.tu[sel], cv.tv[sel], fu[sel], fv[sel], m.scale, seed + 31 * int(c)).astype(np.float32)
        img[sel] *= (1.0 + strength * m.contrast * t)[:, None]
        if m.hue:
            img[sel] += (strength * m.hue * t)[:, None] * np.float32([0.06, 0.04, -0.05])


def apply_gloss(cv: R.Canvas, img: np.ndarray, materials: Materials, sky: np.ndarray) -> None:
    """Specular highlights: a bright shoulder line, sky reflected on upper surfaces, glints on glass.

    Heights are metres above the ground on the object's surface (render's ``tv``), so the
    shoulder line of every vehicle sits where a car's would; sky is the reflected colour.
    """
    present = np.flatnonzero(np.bincount(cv.label.ravel(), minlength=256)[: len(FIELDS)])
    for c in present:
        g = materials.for_class(int(c)).gloss
        if g <= 0:
            continue
        sel = (cv.label == c) & _SHINY[cv.mat] & (cv.normal != R.UP)
        if not sel.any():
            continue
        u, v = cv.tu[sel], cv.tv[sel]
        glass = cv.mat[sel] == R.GLASS
        band = np.exp(-(((v - 0.95) / 0.08) ** 2))  # the shoulder line catches the sky
        streak = (((u + 0.6 * v) / 0.9) % 1.0 < 0.22) & glass  # diagonal reflections in windows
        upper = np.clip((v - 0.3) / 1.5, 0.0, 1.0)
        s = np.clip(g * (0.7 * band + 0.6 * streak + 0.35 * upper), 0.0, 0.9)[:, None]
        img[sel] = img[sel] * (1.0 - s) + sky * s

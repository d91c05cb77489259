"""Draw the street frontage: facade planes along the street and the frontal blocks at its end."""

from __future__ import annotations

import numpy as np

from .canvas import BRICK, CONCRETE, FACING_LEFT, FACING_RIGHT, FOLIAGE, FRONT, GLASS, METAL, PLASTER, Canvas, Parts
from .scene import Block, Segment, T


def draw_segment(cv: Canvas, seg: Segment) -> None:
    """A frontage plane: building facade, hedge / tree row, wall or fence."""
    if seg.kind == "open" or seg.height <= 0:
        return
    top = seg.height * 1.2 if seg.kind == "vegetation" else seg.height
    win = cv.lateral(cv.x0 + seg.side * seg.offset, seg.z0, seg.z1, top)
    if win is None:
        return
    r0, c0, s, Y, Z, mpp = win
    normal = FACING_RIGHT if seg.side < 0 else FACING_LEFT
    parts, lut = _frontage(seg.kind, s, Y, mpp, seg.height, seg.colour, seg.colour2, seg.params)
    cv.paint(r0, c0, parts, Z, lut, s, Y, normal)


def draw_block(cv: Canvas, block: Block, z: float) -> None:
    """A frontal block of the street end or the skyline."""
    x0 = cv.street_x(block.x0, z)
    top = block.height * 1.2 if block.kind == "vegetation" else block.height
    win = cv.frontal(x0, x0 + block.x1 - block.x0, 0.0, top, z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    s, Y = np.broadcast_arrays(s, Y)
    parts, lut = _frontage(block.kind, s, Y, mpp, block.height, block.colour, block.colour2, block.params)
    parts = np.where(s <= block.x1 - block.x0, parts, 0).astype(np.int8)
    cv.paint(r0, c0, parts, z, lut, s, Y, FRONT)


def _frontage(kind: str, s, Y, mpp, height: float, colour, colour2, p: dict):
    """Part map of a frontage surface in plane coordinates (s along, Y up)."""
    s, Y = np.broadcast_arrays(s, Y)
    parts = np.zeros(s.shape, np.int8)
    inside = (Y >= 0) & (Y < height)
    if kind == "building":
        lab = T["building"]
        wall_mat = BRICK if p.get("brick") else PLASTER
        trim = colour * 0.75
        lut = Parts.of((lab, 0, colour, wall_mat), (lab, 0, colour2, GLASS), (lab, 0, trim, CONCRETE),
                       (lab, 0, colour2 * 0.8, GLASS))
        parts[inside] = 1
        floor = p["floor"]
        fy = ((Y - floor) / floor) % 1.0
        fx = ((s + p["phase"]) / p["win_spacing"]) % 1.0
        window = inside & (Y > floor) & (Y < height - 0.9) & (fy > 0.25) & (fy < 0.25 + p["win_h"])
        window &= np.abs(fx - 0.5) < p["win_w"] / 2
        parts[window] = 2
        parts[inside & (Y > height - 0.45)] = 3  # cornice
        parts[inside & (np.abs(Y - floor) < np.maximum(0.12, 0.5 * mpp))] = 3  # ground-floor band
        if p.get("shop"):
            shop = inside & (Y > 0.4) & (Y < floor * 0.78) & ((((s + p["phase"]) / 5.0) % 1.0) < 0.7)
            parts[shop] = 4
        return parts, lut
    if kind == "vegetation":
        lab = T["vegetation"]
        lut = Parts.of((lab, 0, colour, FOLIAGE), (lab, 0, colour2 * 0.8, FOLIAGE))
        ph = p.get("phase", 0.0)
        bumpy = height * (1 + 0.09 * np.sin(s * 0.9 + ph) + 0.05 * np.sin(s * 2.7 + 2 * ph))
        parts[(Y >= 0) & (Y < bumpy)] = 1
        parts[(Y >= 0) & (Y < bumpy) & (np.sin(s * 1.7 + ph) * np.sin(Y * 2.1) > 0.6)] = 2
        return parts, lut
    if kind == "wall":
        lab = T["wall"]
        lut = Parts.of((lab, 0, colour, CONCRETE), (lab, 0, colour * 0.8, CONCRETE))
        parts[inside] = 1
        parts[inside & (Y > height - np.maximum(0.15, 0.6 * mpp))] = 2
        return parts, lut
    if kind == "fence":
        lab = T["fence"]
        lut = Parts.of((lab, 0, colour2, METAL), (lab, 0, colour, METAL, 0.45))
        post = (s % 2.5) < np.maximum(0.1, 0.9 * mpp)
        rail = (np.abs(Y - height + 0.08) < np.maximum(0.06, 0.5 * mpp)) | (np.abs(Y - 0.25) < np.maximum(0.05, 0.5 * mpp))
        parts[inside] = 2
        parts[inside & (post | rail)] = 1
        if not p.get("mesh"):  # picket fence: boards with gaps
            board = ((s % 0.25) < 0.12) | (mpp > 0.1)
            parts[inside & ~(post | rail) & board] = 1
        return parts, lut
    raise ValueError(kind)

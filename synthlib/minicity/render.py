"""Rasterise a layout into geometry buffers: labels, instances, depth and materials.

Everything is a planar patch in the camera frame, projected with a pinhole
camera and z-tested against a depth buffer, so objects scale with depth and
occlude in depth order. Things are drawn far to near (painter's order) so that
semi-transparent parts (fence meshes) blend over what stands behind them.

Work is vectorised over pixels: the ground is classified row by row (its depth
is constant along a row), frontage planes column by column (their depth is
constant along a column), and every object over its bounding box only.

The output is appearance-free: a base colour, a material code, texture
coordinates in metres and a surface orientation per pixel. ``appearance.py``
turns these into an image in the style's look.
"""

from __future__ import annotations

import numpy as np

from .canvas import (  # re-exported: appearance.py and texture.py read these as render.X
    ASPHALT,
    BARK,
    BRICK,
    CLOTH,
    CONCRETE,
    FACING_LEFT,
    FACING_RIGHT,
    FOLIAGE,
    FRONT,
    GLASS,
    GRASS,
    GROUND_MATERIALS,
    KERB,
    LIGHT,
    MARKING,
    MATERIAL_NAMES,
    METAL,
    NORMAL_SKY,
    PAINT,
    PAVING,
    PLASTER,
    RAIL,
    RUBBER,
    SIGN,
    SKIN,
    SKY,
    SKY_DEPTH,
    UP,
    Canvas,
    Parts,
)
from .draw_frontage import draw_block, draw_segment
from .draw_furniture import draw_bush, draw_lamp, draw_sign, draw_traffic_light, draw_tree
from .draw_people import draw_person, draw_rider, draw_two_wheeler
from .draw_vehicles import draw_vehicle
from .scene import Scene, T

__all__ = [
    "ASPHALT", "BARK", "BRICK", "CLOTH", "CONCRETE", "DRAW", "FACING_LEFT", "FACING_RIGHT", "FOLIAGE", "FRONT",
    "GLASS", "GRASS", "GROUND_MATERIALS", "KERB", "LIGHT", "MARKING", "MATERIAL_NAMES", "METAL", "NORMAL_SKY",
    "PAINT", "PAVING", "PLASTER", "RAIL", "RUBBER", "SIGN", "SKIN", "SKY", "SKY_DEPTH", "UP", "Canvas", "Parts",
    "rasterise",
]


def rasterise(scene: Scene, height: int, width: int) -> Canvas:
    """Draw the whole scene: ground, frontage, street end, then things far to near."""
    cv = Canvas(scene, height, width)
    _ground(cv, scene)
    for side in scene.sides.values():
        for seg in side.segments:
            if seg.behind is not None:
                draw_segment(cv, seg.behind)
            draw_segment(cv, seg)
    for block in scene.end_blocks:
        draw_block(cv, block, scene.end_z)
    for thing in sorted(scene.things, key=lambda t: -t.z):
        DRAW[thing.kind](cv, thing)
    if scene.hood is not None:
        _hood(cv, scene.hood)
    return cv


def _hood(cv: Canvas, hood: dict) -> None:
    """The ego vehicle's bonnet across the bottom of the view: void (255), as in Cityscapes."""
    r = (cv.xc - cv.cx) / (cv.w * hood["width"] / 2)
    top = cv.h * (hood["top"] + hood["bulge"] * r * r)  # (w,) bonnet edge, curving down at the sides
    m = cv.yc[:, None] > top[None, :]
    cv.depth[m] = 1.8
    cv.label[m] = 255
    cv.inst[m] = 0
    cv.mat[m] = PAINT
    cv.colour[m] = hood["colour"]
    cv.normal[m] = UP
    cv.tu[m] = np.broadcast_to(r[None, :], m.shape)[m]
    cv.tv[m] = np.broadcast_to((cv.yc[:, None] / cv.h), m.shape)[m]


# ----------------------------------------------------------------------------- ground


def _ground(cv: Canvas, sc: Scene) -> None:
    """Road, markings, kerbs, sidewalks and terrain: every pixel below the horizon."""
    r0 = int(np.clip(np.ceil(cv.yh - 0.5), 0, cv.h))
    if r0 >= cv.h:
        return
    dy = cv.yc[r0:] - cv.yh
    Z = np.minimum(cv.f * cv.hc / np.maximum(dy, 1e-3), SKY_DEPTH - 1).astype(np.float32)  # (rows,)
    Zc = Z[:, None]
    u = (cv.xc[None, :] - cv.cx) * Zc / cv.f - sc.x0 - sc.yaw * Zc  # street coordinate of every pixel
    mpp = Zc / cv.f
    shape = u.shape

    label = np.full(shape, T["road"], np.uint8)
    mat = np.full(shape, ASPHALT, np.uint8)
    colour = np.broadcast_to(sc.road_colour, (*shape, 3)).copy()

    def put(m, lab, material, col):
        label[m] = lab
        mat[m] = material
        colour[m] = col

    # rails and lane markings (both still road)
    for r in sc.rails:
        put(np.abs(u - r) < np.maximum(0.05, 0.4 * mpp), T["road"], RAIL, np.float32([0.45, 0.43, 0.42]))
    dash = (Zc % 9.0) < 3.0
    for pos, kind, col in sc.markings:
        m = np.abs(u - pos) < np.maximum(sc.marking_width / 2, 0.45 * mpp)
        if kind == "dashed":
            m &= dash
        put(m, T["road"], MARKING, col)
    white = np.float32([0.92, 0.92, 0.9]) * float(sc.road_colour.mean() / 0.4) ** 0.2
    if sc.cross is not None:  # zebra crossing before the cross street
        zebra = (Zc > sc.cross[0] - 4.0) & (Zc < sc.cross[0] - 1.0) & ((u % 1.0) < 0.5)
        edge = min(s.edge for s in sc.sides.values())
        put(zebra & (np.abs(u) < edge), T["road"], MARKING, white)

    # sides: bands outwards from the kerb, then the yard of the frontage segment at that depth
    in_cross = np.zeros_like(Zc, bool) if sc.cross is None else (Zc >= sc.cross[0]) & (Zc < sc.cross[1])
    for s, side in sc.sides.items():
        d = s * u  # distance from the street centre line towards this side
        inner = side.edge
        colours = sc.colours
        for outer, lab, material in side.bands:
            m = (d >= inner) & (d < outer)
            put(m, lab, {"kerb": KERB, "paving": PAVING, "grass": GRASS}[material],
                colours.get(f"{material}{s}", colours.get(material)))
            inner = outer
        # yard up to the frontage (per row: the segment at that depth)
        z0s = np.array([seg.z0 for seg in side.segments], np.float32)
        idx = np.clip(np.searchsorted(z0s, Z, side="right") - 1, 0, len(side.segments) - 1)
        yard = np.array([seg.yard for seg in side.segments], np.uint8)[idx][:, None]
        m = d >= inner
        put(m & (yard == T["terrain"]), T["terrain"], GRASS, colours["grass"])
        put(m & (yard == T["sidewalk"]), T["sidewalk"], PAVING, colours[f"paving{s}"])
        if sc.cross is not None:  # the cross street, with corner sidewalks along it
            corner = (Zc < sc.cross[0] + 2.5) | (Zc >= sc.cross[1] - 2.5)
            mc = in_cross & (d >= side.edge)
            put(mc, T["road"], ASPHALT, sc.road_colour)
            put(mc & corner & (d >= side.edge + 1.5), T["sidewalk"], PAVING, colours[f"paving{s}"])

    sl = slice(r0, cv.h)
    cv.depth[sl] = np.broadcast_to(Zc, shape)
    cv.label[sl] = label
    cv.mat[sl] = mat
    cv.colour[sl] = colour
    cv.tu[sl] = u
    cv.tv[sl] = np.broadcast_to(Zc, shape)
    cv.normal[sl] = UP


DRAW = {
    "car": draw_vehicle,
    "truck": draw_vehicle,
    "bus": draw_vehicle,
    "train": draw_vehicle,
    "person": draw_person,
    "rider_bicycle": draw_rider,
    "rider_motorcycle": draw_rider,
    "bicycle": draw_two_wheeler,
    "motorcycle": draw_two_wheeler,
    "tree": draw_tree,
    "bush": draw_bush,
    "lamp": draw_lamp,
    "sign": draw_sign,
    "traffic_light": draw_traffic_light,
}

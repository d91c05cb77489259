"""Sample the street frontage: ground bands and facade segments per side, and the blocks at the street end."""

from __future__ import annotations

import numpy as np

from .scene import Block, Segment, Side, T, pick
from .styles import Style


def sample_side(style: Style, rng: np.random.Generator, side: int, edge: float, street_len: float, cross) -> Side:
    """Ground bands and facade segments of one side of the street."""
    lay = style.layout
    u = rng.uniform
    bands: list[tuple[float, int, str]] = []
    pos = edge
    if rng.random() < lay.p_no_sidewalk:
        pos += u(*lay.sidewalk)
        bands.append((pos, T["terrain"], "grass"))
    else:
        if rng.random() < lay.p_verge:
            pos += u(*lay.verge)
            bands.append((pos, T["terrain"], "grass"))
        else:
            pos += 0.25
            bands.append((pos, T["sidewalk"], "kerb"))
        pos += u(*lay.sidewalk)
        bands.append((pos, T["sidewalk"], "paving"))
    facade = pos

    kinds = list(lay.segment_kinds)
    weights = np.array([lay.segment_kinds[k] for k in kinds])
    weights = weights / weights.sum()
    segments = []
    z = 0.3
    z_end = street_len + 2.0
    while z < z_end:
        length = u(*lay.segment_length)
        z1 = min(z + length, z_end)
        if cross is not None and z < cross[1] and z1 > cross[0]:
            if z < cross[0]:  # cut the segment at the cross street
                z1 = cross[0]
            else:  # the cross street itself: buildings far down it
                segments.append(_segment(style, rng, side, cross[0], cross[1], "building", facade + u(25.0, 45.0)))
                z = cross[1]
                continue
        kind = str(rng.choice(kinds, p=weights))
        offset = facade + u(*lay.setback)
        segments.append(_segment(style, rng, side, z, z1, kind, offset))
        z = z1
    return Side(edge=edge, bands=bands, facade=facade, segments=segments)


def _segment(style: Style, rng: np.random.Generator, side: int, z0: float, z1: float, kind: str, offset: float) -> Segment:
    lay, pal = style.layout, style.palette
    u = rng.uniform
    yard = T["sidewalk"] if rng.random() < 0.6 else T["terrain"]
    params = {
        "floor": u(3.0, 3.6),
        "win_spacing": u(2.2, 3.6),
        "win_w": u(0.35, 0.6),
        "win_h": u(0.4, 0.65),
        "brick": bool(rng.random() < 0.3),
        "shop": bool(rng.random() < 0.5),
        "phase": u(0, 10),
    }
    if kind == "building":
        return Segment(side, z0, z1, kind, offset, u(*lay.building_height), pick(rng, pal.building, pal.jitter),
                       pick(rng, pal.window, pal.jitter), yard, params)
    if kind == "vegetation":  # a hedge or a row of dense trees
        height = u(1.2, 2.5) if rng.random() < 0.5 else u(5.0, 14.0)
        behind = None
        if height < 3.0:
            behind = _segment(style, rng, side, z0, z1, "building", offset + u(2.0, 8.0))
        return Segment(side, z0, z1, kind, offset, height, pick(rng, pal.vegetation, pal.jitter),
                       pick(rng, pal.vegetation, pal.jitter), T["terrain"], params, behind)
    if kind in ("wall", "fence"):
        height = u(1.0, 2.8) if kind == "wall" else u(1.0, 2.2)
        colours = pal.wall if kind == "wall" else pal.fence
        back_kind = "building" if rng.random() < 0.6 else "vegetation"
        behind = _segment(style, rng, side, z0, z1, back_kind, offset + u(3.0, 15.0))
        params["mesh"] = bool(rng.random() < 0.5)
        return Segment(side, z0, z1, kind, offset, height, pick(rng, colours, pal.jitter),
                       pick(rng, colours, pal.jitter), yard, params, behind)
    # open: a park or lot, terrain up to trees or buildings far back
    back_kind = "vegetation" if rng.random() < 0.6 else "building"
    behind = _segment(style, rng, side, z0, z1, back_kind, offset + u(15.0, 40.0))
    return Segment(side, z0, z1, "open", offset, 0.0, pick(rng, pal.terrain, pal.jitter),
                   pick(rng, pal.terrain, pal.jitter), T["terrain"], params, behind)


def sample_blocks(style: Style, rng: np.random.Generator, z: float, skyline: bool) -> list[Block]:
    """Frontal blocks across the view at depth z: a street-end facade or a far skyline."""
    pal, lay = style.palette, style.layout
    u = rng.uniform
    half = 2.0 * z  # wide enough for a 120 degree view
    x = -half
    blocks = []
    while x < half:
        width = u(6.0, 25.0) if not skyline else u(10.0, 60.0)
        veg = rng.random() < (0.5 if skyline else 0.25)
        if veg:
            height = u(4.0, 12.0) if skyline else u(5.0, 12.0)
            blocks.append(Block(x, x + width, height, "vegetation", pick(rng, pal.vegetation, pal.jitter),
                                pick(rng, pal.vegetation, pal.jitter), {"phase": u(0, 10)}))
        else:
            height = u(*lay.building_height) * (u(0.3, 1.2) if skyline else 1.0)
            blocks.append(Block(x, x + width, height, "building", pick(rng, pal.building, pal.jitter),
                                pick(rng, pal.window, pal.jitter),
                                {"floor": u(3.0, 3.6), "win_spacing": u(2.2, 3.6), "win_w": u(0.35, 0.6),
                                 "win_h": u(0.4, 0.65), "brick": bool(rng.random() < 0.3), "shop": bool(rng.random() < 0.5),
                                 "phase": u(0, 10)}))
        x += width
    return blocks

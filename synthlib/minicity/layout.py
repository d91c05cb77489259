"""Scene layouts: what stands where, sampled from a style's statistics.

A layout is resolution-free: positions and sizes are in metres in a camera
frame (X right, Y up, Z forward, camera at X=0, Y=height, Z=0), so the same
(seed, style, split, index) gives the same scene at every image size. The
layout also fixes every instance's colours, so condition variants (fog, night,
...) re-render exactly the same scene.

The street runs along the line X = x0 + yaw * Z. Lateral positions relative to
that line are called ``u`` (metres, positive to the right).

This module samples the camera, road, light and sky; the frontage comes from
``layout_frontage``, the objects from ``layout_things``, the dataclasses from ``scene``.
Every helper consumes the one RNG stream in a fixed order: reordering draws changes every scene.
"""

from __future__ import annotations

import numpy as np

from .layout_frontage import sample_blocks, sample_side
from .layout_things import sample_things
from .scene import VEHICLE_SIZE, Block, Scene, Segment, Side, T, Thing, pick
from .styles import Style

__all__ = ["VEHICLE_SIZE", "Block", "Scene", "Segment", "Side", "T", "Thing", "sample_scene"]


def sample_scene(style: Style, rng: np.random.Generator) -> Scene:
    """Draw one street scene from ``style``'s statistics (layout and per-instance colours)."""
    lay, pal = style.layout, style.palette
    u = rng.uniform

    focal, cam_height, horizon, yaw = _sample_camera(style, rng)
    lanes, parking, road_w, left, lane_w, x0 = _sample_lanes(style, rng)
    markings = _sample_markings(style, rng, lanes, parking, left, lane_w)

    street_len = u(*lay.street_length)
    cross = None
    if rng.random() < lay.p_cross:
        zc = u(14.0, min(45.0, street_len - 15.0))
        cross = (zc, zc + u(9.0, 16.0))

    sides = {s: sample_side(style, rng, s, road_w / 2, street_len, cross) for s in (-1, 1)}

    end_is_skyline = rng.random() >= lay.p_end_wall
    end_z = street_len + (u(40.0, 120.0) if end_is_skyline else 0.0)
    end_blocks = sample_blocks(style, rng, end_z, skyline=end_is_skyline)

    # the same two draws in every style, so a scene keeps its layout when shaded with another look's sun
    p_overcast, sun_lo, sun_hi = style.render.sun
    overcast, level = rng.random(), rng.random()
    sun = 0.0 if overcast < p_overcast else sun_lo + (sun_hi - sun_lo) * level
    scene = Scene(  # keyword arguments are evaluated in this order: it is the order of the draws
        style=style.name,
        cam_height=cam_height,
        focal=focal,
        horizon=horizon,
        cx=0.5 + u(-0.02, 0.02),
        x0=x0,
        yaw=yaw,
        lanes=lanes,
        markings=markings,
        rails=[],
        road_colour=pick(rng, pal.road, pal.jitter * 0.5),
        marking_width=u(0.12, 0.2),
        sides=sides,
        cross=cross,
        end_z=end_z,
        end_blocks=end_blocks,
        end_is_skyline=end_is_skyline,
        things=[],
        sky_top=pick(rng, pal.sky_top, 0.04),
        sky_horizon=pick(rng, pal.sky_horizon, 0.03),
        sun_side=int(rng.choice([-1, 1])),
        sun=sun,
        shadow_k=u(0.4, 1.4),
        texture_seed=int(rng.integers(1 << 16)),
    )
    scene.colours = {
        "kerb": pick(rng, pal.kerb, pal.jitter * 0.5),
        "grass": pick(rng, pal.terrain, pal.jitter),
        "paving-1": pick(rng, pal.sidewalk, pal.jitter * 0.6),
        "paving1": pick(rng, pal.sidewalk, pal.jitter * 0.6),
    }
    if style.render.hood:
        scene.hood = {"top": u(0.87, 0.91), "bulge": u(0.03, 0.06), "width": u(0.75, 0.95),
                      "colour": pick(rng, ((25, 25, 28), (60, 62, 70), (150, 150, 155)), 0.05)}
    scene.things = sample_things(style, rng, scene, parking, street_len)
    return scene


def _sample_camera(style: Style, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Focal length (fraction of the width), camera height, horizon row (fraction of the height), yaw."""
    cam = style.camera
    u = rng.uniform
    hfov = np.radians(u(*cam.hfov))
    focal = 0.5 / np.tan(hfov / 2)
    cam_height = u(*cam.height)
    horizon = u(*cam.horizon)
    yaw = u(*cam.yaw)
    return focal, cam_height, horizon, yaw


def _sample_lanes(style: Style, rng: np.random.Generator):
    """Lanes (left half oncoming, right half with us: right-hand traffic), parking sides, road width, x0.

    Returns (lanes, parking, road_w, left, lane_w, x0) with ``left`` the u of the leftmost lane's
    left edge; the camera drives in one of its own lanes.
    """
    lay = style.layout
    u = rng.uniform
    n_lanes = int(rng.choice(lay.lanes))
    lane_w = u(*lay.lane_width)
    parking = {s: rng.random() < lay.parked_side for s in (-1, 1)}
    park_w = 2.2
    road_w = n_lanes * lane_w + park_w * (parking[-1] + parking[1])
    left = -road_w / 2 + park_w * parking[-1]
    n_oncoming = n_lanes // 2
    lanes = []
    for i in range(n_lanes):
        lanes.append((left + i * lane_w, left + (i + 1) * lane_w, -1 if i < n_oncoming else 1))
    own = [ln for ln in lanes if ln[2] == 1]
    cam_lane = own[int(rng.integers(len(own)))]
    u_cam = (cam_lane[0] + cam_lane[1]) / 2 + u(-0.3, 0.3)
    return lanes, parking, road_w, left, lane_w, -u_cam


def _sample_markings(style: Style, rng: np.random.Generator, lanes: list, parking: dict, left: float,
                     lane_w: float) -> list:
    """Lane lines (a solid or dashed centre line, dashed lines between same-way lanes), parking edge lines."""
    pal = style.palette
    n_lanes = len(lanes)
    n_oncoming = n_lanes // 2
    # positions from left and lane_w, as in _sample_lanes (not from the lane tuples: bit-identical floats)
    markings = []
    centre_colour = pick(rng, pal.marking[-1:], 0.03)  # a yellow centre line where the palette has one
    white = pick(rng, pal.marking[:1], 0.03)
    for i in range(1, n_lanes):
        pos = left + i * lane_w
        if i == n_oncoming:
            markings.append((pos, "solid" if rng.random() < 0.5 else "dashed", centre_colour))
        else:
            markings.append((pos, "dashed", white))
    for s in (-1, 1):
        if parking[s] and rng.random() < 0.5:  # parking-lane edge line
            markings.append((left if s < 0 else left + n_lanes * lane_w, "dashed", white))
    return markings

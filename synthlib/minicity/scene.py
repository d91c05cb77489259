"""What a layout is made of: the scene dataclasses, class ids, vehicle sizes and the colour picker.

Shared by the samplers (``layout``, ``layout_frontage``, ``layout_things``) and the renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthlib.labels import CLASS_NAMES

T = {name: i for i, name in enumerate(CLASS_NAMES)}  # class name -> trainId

VEHICLE_SIZE = {  # width, height, length ranges (m)
    "car": ((1.65, 1.95), (1.35, 1.65), (3.8, 4.9)),
    "truck": ((2.3, 2.55), (2.8, 3.8), (6.0, 10.0)),
    "bus": ((2.45, 2.55), (2.9, 3.2), (11.0, 13.0)),
    "train": ((2.3, 2.5), (3.2, 3.5), (24.0, 32.0)),
}


@dataclass
class Segment:
    """A stretch of street frontage on one side: a vertical plane parallel to the street."""

    side: int  # -1 left, +1 right
    z0: float
    z1: float
    kind: str  # building, vegetation, wall, fence, open
    offset: float  # |u| of the plane
    height: float
    colour: np.ndarray
    colour2: np.ndarray  # windows / fence rails / foliage accent
    yard: int  # trainId of the ground between the sidewalk and the plane
    params: dict = field(default_factory=dict)
    behind: Segment | None = None  # what stands behind a wall, fence or hedge


@dataclass
class Block:
    """A frontal block of the street end or the far skyline (plane Z = const)."""

    x0: float
    x1: float
    height: float
    kind: str  # building or vegetation
    colour: np.ndarray
    colour2: np.ndarray
    params: dict = field(default_factory=dict)


@dataclass
class Thing:
    """A discrete object: vehicle, person, rider, pole, light, sign, tree, bush."""

    kind: str
    x: float  # lateral centre in camera X at depth z (m)
    z: float  # depth of its nearest face (m)
    w: float
    h: float
    length: float = 0.0  # length along the street (boxes) or across the view (side views)
    view: str = "front"  # rear | front | side (for vehicles and riders)
    colours: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


@dataclass
class Side:
    """Ground bands of one street side, from the road edge outwards: (outer |u|, trainId, material)."""

    edge: float  # |u| of the road edge (kerb)
    bands: list[tuple[float, int, str]]
    facade: float  # |u| where the frontage begins (before setbacks)
    segments: list[Segment]


@dataclass
class Scene:
    style: str
    # camera
    cam_height: float
    focal: float  # focal length as a fraction of the image width
    horizon: float  # horizon row as a fraction of the image height
    cx: float  # principal point as a fraction of the width
    # street
    x0: float
    yaw: float
    lanes: list[tuple[float, float, int]]  # (u0, u1, direction +1 away / -1 oncoming)
    markings: list[tuple[float, str, np.ndarray]]  # (u, 'dashed'|'solid', colour)
    rails: list[float]  # u of tram rails
    road_colour: np.ndarray
    marking_width: float
    sides: dict[int, Side]
    cross: tuple[float, float] | None  # z range of a cross street
    end_z: float  # depth of the street end (a frontal plane of blocks)
    end_blocks: list[Block]
    end_is_skyline: bool
    things: list[Thing]
    # light and sky
    sky_top: np.ndarray
    sky_horizon: np.ndarray
    sun_side: int  # facades facing this side are lit; the other side casts shadows onto the street
    sun: float  # 0 overcast .. 1 low hard sun
    shadow_k: float  # shadow length per metre of height
    texture_seed: int
    colours: dict[str, np.ndarray] = field(default_factory=dict)  # ground surfaces: kerb, grass, paving-1, paving1
    hood: dict | None = None  # ego-vehicle bonnet: top (fraction of height), bulge, colour


def pick(rng: np.random.Generator, options, jitter: float) -> np.ndarray:
    """One palette colour with per-instance brightness and channel jitter, as float32 RGB in [0, 1]."""
    base = np.asarray(options[int(rng.integers(len(options)))], np.float32) / 255.0
    colour = base * rng.uniform(1 - jitter, 1 + jitter) + rng.normal(0, jitter * 0.25, 3)
    return np.clip(colour, 0.0, 1.0).astype(np.float32)

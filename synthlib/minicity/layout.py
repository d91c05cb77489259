"""Scene layouts: what stands where, sampled from a style's statistics.

A layout is resolution-free: positions and sizes are in metres in a camera
frame (X right, Y up, Z forward, camera at X=0, Y=height, Z=0), so the same
(seed, style, split, index) gives the same scene at every image size. The
layout also fixes every instance's colours, so condition variants (fog, night,
...) re-render exactly the same scene.

The street runs along the line X = x0 + yaw * Z. Lateral positions relative to
that line are called ``u`` (metres, positive to the right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthlib.labels import CLASS_NAMES

from .styles import Palette, Style

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


def sample_scene(style: Style, rng: np.random.Generator) -> Scene:
    """Draw one street scene from ``style``'s statistics (layout and per-instance colours)."""
    cam, lay, pal = style.camera, style.layout, style.palette
    u = rng.uniform

    hfov = np.radians(u(*cam.hfov))
    focal = 0.5 / np.tan(hfov / 2)
    cam_height = u(*cam.height)
    horizon = u(*cam.horizon)
    yaw = u(*cam.yaw)

    # --- lanes: left half oncoming, right half with us (right-hand traffic)
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
    x0 = -u_cam

    markings = []
    centre_colour = _pick(rng, pal.marking[-1:], 0.03)  # a yellow centre line where the palette has one
    white = _pick(rng, pal.marking[:1], 0.03)
    for i in range(1, n_lanes):
        pos = left + i * lane_w
        if i == n_oncoming:
            markings.append((pos, "solid" if rng.random() < 0.5 else "dashed", centre_colour))
        else:
            markings.append((pos, "dashed", white))
    for s in (-1, 1):
        if parking[s] and rng.random() < 0.5:  # parking-lane edge line
            markings.append((left if s < 0 else left + n_lanes * lane_w, "dashed", white))

    street_len = u(*lay.street_length)
    cross = None
    if rng.random() < lay.p_cross:
        zc = u(14.0, min(45.0, street_len - 15.0))
        cross = (zc, zc + u(9.0, 16.0))

    sides = {s: _sample_side(style, rng, s, road_w / 2, street_len, cross) for s in (-1, 1)}

    end_is_skyline = rng.random() >= lay.p_end_wall
    end_z = street_len + (u(40.0, 120.0) if end_is_skyline else 0.0)
    end_blocks = _sample_blocks(style, rng, end_z, skyline=end_is_skyline)

    # the same two draws in every style, so a scene keeps its layout when shaded with another look's sun
    p_overcast, sun_lo, sun_hi = style.render.sun
    overcast, level = rng.random(), rng.random()
    sun = 0.0 if overcast < p_overcast else sun_lo + (sun_hi - sun_lo) * level
    scene = Scene(
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
        road_colour=_pick(rng, pal.road, pal.jitter * 0.5),
        marking_width=u(0.12, 0.2),
        sides=sides,
        cross=cross,
        end_z=end_z,
        end_blocks=end_blocks,
        end_is_skyline=end_is_skyline,
        things=[],
        sky_top=_pick(rng, pal.sky_top, 0.04),
        sky_horizon=_pick(rng, pal.sky_horizon, 0.03),
        sun_side=int(rng.choice([-1, 1])),
        sun=sun,
        shadow_k=u(0.4, 1.4),
        texture_seed=int(rng.integers(1 << 16)),
    )
    scene.colours = {
        "kerb": _pick(rng, pal.kerb, pal.jitter * 0.5),
        "grass": _pick(rng, pal.terrain, pal.jitter),
        "paving-1": _pick(rng, pal.sidewalk, pal.jitter * 0.6),
        "paving1": _pick(rng, pal.sidewalk, pal.jitter * 0.6),
    }
    if style.render.hood:
        scene.hood = {"top": u(0.87, 0.91), "bulge": u(0.03, 0.06), "width": u(0.75, 0.95),
                      "colour": _pick(rng, ((25, 25, 28), (60, 62, 70), (150, 150, 155)), 0.05)}
    scene.things = _sample_things(style, rng, scene, parking, street_len)
    return scene


# ----------------------------------------------------------------------------- frontage


def _sample_side(style: Style, rng: np.random.Generator, side: int, edge: float, street_len: float, cross) -> Side:
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
        return Segment(side, z0, z1, kind, offset, u(*lay.building_height), _pick(rng, pal.building, pal.jitter),
                       _pick(rng, pal.window, pal.jitter), yard, params)
    if kind == "vegetation":  # a hedge or a row of dense trees
        height = u(1.2, 2.5) if rng.random() < 0.5 else u(5.0, 14.0)
        behind = None
        if height < 3.0:
            behind = _segment(style, rng, side, z0, z1, "building", offset + u(2.0, 8.0))
        return Segment(side, z0, z1, kind, offset, height, _pick(rng, pal.vegetation, pal.jitter),
                       _pick(rng, pal.vegetation, pal.jitter), T["terrain"], params, behind)
    if kind in ("wall", "fence"):
        height = u(1.0, 2.8) if kind == "wall" else u(1.0, 2.2)
        colours = pal.wall if kind == "wall" else pal.fence
        back_kind = "building" if rng.random() < 0.6 else "vegetation"
        behind = _segment(style, rng, side, z0, z1, back_kind, offset + u(3.0, 15.0))
        params["mesh"] = bool(rng.random() < 0.5)
        return Segment(side, z0, z1, kind, offset, height, _pick(rng, colours, pal.jitter),
                       _pick(rng, colours, pal.jitter), yard, params, behind)
    # open: a park or lot, terrain up to trees or buildings far back
    back_kind = "vegetation" if rng.random() < 0.6 else "building"
    behind = _segment(style, rng, side, z0, z1, back_kind, offset + u(15.0, 40.0))
    return Segment(side, z0, z1, "open", offset, 0.0, _pick(rng, pal.terrain, pal.jitter),
                   _pick(rng, pal.terrain, pal.jitter), T["terrain"], params, behind)


def _sample_blocks(style: Style, rng: np.random.Generator, z: float, skyline: bool) -> list[Block]:
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
            blocks.append(Block(x, x + width, height, "vegetation", _pick(rng, pal.vegetation, pal.jitter),
                                _pick(rng, pal.vegetation, pal.jitter), {"phase": u(0, 10)}))
        else:
            height = u(*lay.building_height) * (u(0.3, 1.2) if skyline else 1.0)
            blocks.append(Block(x, x + width, height, "building", _pick(rng, pal.building, pal.jitter),
                                _pick(rng, pal.window, pal.jitter),
                                {"floor": u(3.0, 3.6), "win_spacing": u(2.2, 3.6), "win_w": u(0.35, 0.6),
                                 "win_h": u(0.4, 0.65), "brick": bool(rng.random() < 0.3), "shop": bool(rng.random() < 0.5),
                                 "phase": u(0, 10)}))
        x += width
    return blocks


# ----------------------------------------------------------------------------- objects


def _sample_things(style: Style, rng: np.random.Generator, sc: Scene, parking: dict, street_len: float) -> list[Thing]:
    lay, pal = style.layout, style.palette
    u = rng.uniform
    things: list[Thing] = []
    z_max = min(street_len, 90.0)

    def at(u_pos: float, z: float) -> float:  # lateral street coordinate -> camera X
        return sc.x0 + sc.yaw * z + u_pos

    def vehicle(kind: str, u_pos: float, z: float, view: str) -> Thing:
        (w0, w1), (h0, h1), (l0, l1) = VEHICLE_SIZE[kind]
        colours = {
            "car": pal.car, "truck": pal.truck, "bus": pal.bus, "train": pal.tram,
        }[kind]
        body = _pick(rng, colours, pal.jitter)
        t = Thing(kind, at(u_pos, z), z, u(w0, w1), u(h0, h1), u(l0, l1), view,
                  {"body": body, "second": _pick(rng, colours, pal.jitter),
                   "glass": _pick(rng, pal.window, pal.jitter * 0.5)},
                  {"cabin": u(0.55, 0.65), "dir": int(rng.choice([-1, 1]))})
        return t

    # --- moving traffic, lane by lane
    tram_lane = None
    if rng.random() < lay.p_tram:
        where = "cross" if (sc.cross is not None and rng.random() < 0.4) else "street"
        if where == "street":
            lane = sc.lanes[len(sc.lanes) // 2 - (1 if rng.random() < 0.5 and len(sc.lanes) > 1 else 0)]
            tram_lane = lane
            uc = (lane[0] + lane[1]) / 2
            sc.rails = [uc - 0.72, uc + 0.72]
            z = u(8.0, 45.0)
            things.append(vehicle("train", uc, z, "rear" if lane[2] == 1 else "front"))
        else:
            zc = (sc.cross[0] + sc.cross[1]) / 2
            t = vehicle("train", 0.0, zc, "side")
            t.x = at(u(-12.0, 12.0), zc)
            things.append(t)
    for lane in sc.lanes:
        if lane is tram_lane:
            continue
        uc = (lane[0] + lane[1]) / 2
        n = rng.poisson(lay.moving_per_lane)
        zs = np.sort(u(7.0, z_max, size=n))
        last = -1e9
        for z in zs:
            if z - last < 9.0:
                continue
            r = rng.random()
            kind = "truck" if r < lay.p_truck else "bus" if r < lay.p_truck + lay.p_bus else "car"
            view = "rear" if lane[2] == 1 else "front"
            things.append(vehicle(kind, uc + u(-0.25, 0.25), float(z), view))
            last = z + VEHICLE_SIZE[kind][2][1]
    # crossing traffic in the cross street
    if sc.cross is not None and rng.random() < 0.6:
        zc = sc.cross[0] + (sc.cross[1] - sc.cross[0]) * u(0.3, 0.7)
        kind = "truck" if rng.random() < lay.p_truck * 2 else "bus" if rng.random() < lay.p_bus * 2 else "car"
        things.append(vehicle(kind, u(-15.0, 15.0), zc, "side"))

    # --- parked vehicles along the kerbs
    for s in (-1, 1):
        if not parking[s]:
            continue
        edge = sc.sides[s].edge
        z = u(1.0, 8.0)
        while z < z_max:
            kind = "truck" if rng.random() < lay.p_truck * 0.5 else "car"
            t = vehicle(kind, s * (edge - 1.1), z, "rear" if rng.random() < 0.8 else "front")
            t.params["parked"] = True
            if sc.cross is None or not (sc.cross[0] - 3 < z < sc.cross[1] + 1):
                things.append(t)
            z += t.length + u(*lay.parked_gap)

    # --- riders: cyclists near the kerb, motorcyclists in lanes, some crossing
    if rng.random() < lay.p_rider:
        for _ in range(max(1, rng.poisson(lay.riders))):
            moto = rng.random() < lay.p_moto_rider
            z = u(4.0, 30.0)
            if sc.cross is not None and rng.random() < 0.3:
                z = sc.cross[0] + (sc.cross[1] - sc.cross[0]) * u(0.2, 0.8)
                x = at(u(-8.0, 8.0), z)
                view = "side"
            elif moto:
                lane = sc.lanes[int(rng.integers(len(sc.lanes)))]
                x = at((lane[0] + lane[1]) / 2 + u(-0.6, 0.6), z)
                view = "rear" if lane[2] == 1 else "front"
            else:
                right = sc.lanes[-1][1]
                x = at(right - u(0.6, 1.2), z)
                view = "rear"
            things.append(_rider(rng, pal, "motorcycle" if moto else "bicycle", x, z, view))

    # --- persons on the sidewalks, a few crossing
    for _ in range(rng.poisson(lay.persons)):
        s = int(rng.choice([-1, 1]))
        side = sc.sides[s]
        z = u(3.0, 32.0)
        if rng.random() < 0.15:  # crossing the street, seen from the side
            zc = sc.cross[0] - 2.0 if sc.cross is not None else z
            things.append(_person(rng, pal, at(u(-side.edge, side.edge), zc), zc, walking=True))
        else:
            upos = s * u(side.edge + 0.5, side.facade - 0.3)
            things.append(_person(rng, pal, at(upos, z), z, walking=rng.random() < 0.5))
    # groups make crowds as in real streets
    if rng.random() < 0.2:
        s = int(rng.choice([-1, 1]))
        z = u(5.0, 22.0)
        for _ in range(int(rng.integers(2, 6))):
            zz = z + u(-1.5, 1.5)
            things.append(_person(rng, pal, at(s * u(sc.sides[s].edge + 0.5, sc.sides[s].facade), zz), zz, walking=False))

    # --- parked bicycles and motorcycles (no riders)
    for kind, rate in (("bicycle", lay.parked_bikes), ("motorcycle", lay.parked_motos)):
        for _ in range(rng.poisson(rate)):
            s = int(rng.choice([-1, 1]))
            z = u(3.0, 24.0)
            upos = s * (sc.sides[s].edge + u(0.3, 1.2)) if kind == "bicycle" else s * (sc.sides[s].edge - u(0.5, 1.0))
            things.append(_two_wheeler(rng, pal, kind, at(upos, z), z))

    # --- trees, lamps, signs, traffic lights along the kerbs
    for s in (-1, 1):
        side = sc.sides[s]
        if rng.random() < lay.tree_side:
            upos = s * (side.edge + (side.facade - side.edge) * u(0.3, 0.8))
            z = u(2.0, 8.0)
            while z < z_max:
                if rng.random() < 0.85:
                    things.append(_tree(rng, pal, at(upos + u(-0.3, 0.3), z), z))
                z += u(*lay.tree_spacing)
        if rng.random() < 0.75:
            z = u(3.0, 15.0)
            while z < z_max:
                things.append(_lamp(rng, pal, at(s * (side.edge + 0.4), z), z, s))
                z += u(*lay.lamp_spacing)
        for _ in range(rng.poisson(0.5)):  # bushes
            z = u(3.0, 40.0)
            things.append(_bush(rng, pal, at(s * u(side.edge + 0.5, side.facade + 1.0), z), z))
    for _ in range(rng.poisson(lay.signs)):
        s = int(rng.choice([-1, 1]))
        z = u(4.0, 32.0)
        things.append(_sign(rng, pal, at(s * (sc.sides[s].edge + 0.35), z), z))
    if rng.random() < lay.p_traffic_light:
        z = sc.cross[0] - 1.0 if sc.cross is not None else u(10.0, 30.0)
        for s in (-1, 1):
            if rng.random() < 0.8:
                things.append(_traffic_light(rng, pal, at(s * (sc.sides[s].edge + 0.5), z), z, s, mast=rng.random() < 0.4,
                                             span=sc.sides[s].edge))
        if sc.cross is not None and rng.random() < 0.6:  # the far corner, seen from behind
            z2 = sc.cross[1] + 1.0
            s = int(rng.choice([-1, 1]))
            t = _traffic_light(rng, pal, at(s * (sc.sides[s].edge + 0.5), z2), z2, s, mast=False, span=0.0)
            t.params["back"] = True
            things.append(t)
    return things


def _person(rng: np.random.Generator, pal: Palette, x: float, z: float, walking: bool) -> Thing:
    h = rng.uniform(1.55, 1.95)
    return Thing("person", x, z, 0.32 * h, h, 0.0, "side" if walking else "front",
                 {"skin": _pick(rng, pal.skin, 0.05), "top": _pick(rng, pal.clothes, pal.jitter),
                  "bottom": _pick(rng, pal.clothes, pal.jitter), "hair": _pick(rng, ((40, 30, 20), (90, 60, 30), (20, 20, 20), (150, 120, 80)), 0.05)},
                 {"phase": rng.uniform(-1, 1), "bag": bool(rng.random() < 0.3), "dir": int(rng.choice([-1, 1]))})


def _rider(rng: np.random.Generator, pal: Palette, vehicle: str, x: float, z: float, view: str) -> Thing:
    side_len = 1.75 if vehicle == "bicycle" else 2.1
    width = side_len if view == "side" else (0.6 if vehicle == "bicycle" else 0.8)
    h = rng.uniform(1.65, 1.85) if vehicle == "bicycle" else rng.uniform(1.5, 1.65)
    colours = {"skin": _pick(rng, pal.skin, 0.05), "top": _pick(rng, pal.clothes, pal.jitter),
               "bottom": _pick(rng, pal.clothes, pal.jitter),
               "helmet": _pick(rng, pal.bike, pal.jitter), "frame": _pick(rng, pal.bike, pal.jitter),
               "body": _pick(rng, pal.car, pal.jitter)}
    return Thing("rider_" + vehicle, x, z, width, h, side_len, view, colours, {"dir": int(rng.choice([-1, 1]))})


def _two_wheeler(rng: np.random.Generator, pal: Palette, kind: str, x: float, z: float) -> Thing:
    length = 1.75 if kind == "bicycle" else 2.1
    h = 1.05 if kind == "bicycle" else 1.15
    return Thing(kind, x, z, length, h, length, "side",
                 {"frame": _pick(rng, pal.bike, pal.jitter), "body": _pick(rng, pal.car, pal.jitter)},
                 {"dir": int(rng.choice([-1, 1]))})


def _tree(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    h = rng.uniform(5.0, 12.0)
    crown_w = rng.uniform(2.5, 5.5)
    return Thing("tree", x, z, crown_w, h, 0.0, "front",
                 {"leaf": _pick(rng, pal.vegetation, pal.jitter), "trunk": _pick(rng, pal.trunk, pal.jitter)},
                 {"trunk_h": rng.uniform(0.3, 0.5) * h, "trunk_w": rng.uniform(0.2, 0.4),
                  "phases": rng.uniform(0, 2 * np.pi, 4), "amps": rng.uniform(0.04, 0.14, 4)})


def _bush(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    w = rng.uniform(0.8, 2.5)
    return Thing("bush", x, z, w, rng.uniform(0.6, 1.4), 0.0, "front",
                 {"leaf": _pick(rng, pal.vegetation, pal.jitter)},
                 {"phases": rng.uniform(0, 2 * np.pi, 4), "amps": rng.uniform(0.05, 0.15, 4)})


def _lamp(rng: np.random.Generator, pal: Palette, x: float, z: float, side: int) -> Thing:
    h = rng.uniform(5.5, 9.0)
    return Thing("lamp", x, z, rng.uniform(0.24, 0.36), h, 0.0, "front",
                 {"pole": _pick(rng, pal.pole, pal.jitter)},
                 {"arm": rng.uniform(0.8, 2.0) if rng.random() < 0.7 else 0.0, "side": side})


def _sign(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    shape = str(rng.choice(["circle", "triangle", "square", "diamond", "rect"]))
    scheme = int(rng.integers(4))
    return Thing("sign", x, z, rng.uniform(0.8, 1.15), rng.uniform(2.4, 3.2), 0.0, "front",
                 {"pole": _pick(rng, pal.pole, pal.jitter)},
                 {"shape": shape, "scheme": scheme, "back": bool(rng.random() < 0.2), "two": bool(rng.random() < 0.25)})


def _traffic_light(rng: np.random.Generator, pal: Palette, x: float, z: float, side: int, mast: bool, span: float) -> Thing:
    return Thing("traffic_light", x, z, rng.uniform(0.45, 0.6), rng.uniform(3.0, 4.0), 0.0, "front",
                 {"pole": _pick(rng, pal.pole, pal.jitter), "box": _pick(rng, ((30, 30, 30), (50, 55, 50), (200, 170, 30)), 0.05)},
                 {"lamp": int(rng.integers(3)), "mast": mast, "side": side, "span": span * rng.uniform(0.5, 0.9),
                  "back": False})


def _pick(rng: np.random.Generator, options, jitter: float) -> np.ndarray:
    """One palette colour with per-instance brightness and channel jitter, as float32 RGB in [0, 1]."""
    base = np.asarray(options[int(rng.integers(len(options)))], np.float32) / 255.0
    colour = base * rng.uniform(1 - jitter, 1 + jitter) + rng.normal(0, jitter * 0.25, 3)
    return np.clip(colour, 0.0, 1.0).astype(np.float32)

"""Sample the discrete objects of a scene: traffic, parked vehicles, riders, people and street furniture.

Every helper draws from the scene's one RNG stream; ``sample_things`` calls them in a
fixed order, and that order is part of each scene's identity (changing it changes every scene).
"""

from __future__ import annotations

import numpy as np

from .scene import VEHICLE_SIZE, Scene, Thing, pick
from .styles import Palette, Style


def sample_things(style: Style, rng: np.random.Generator, sc: Scene, parking: dict, street_len: float) -> list[Thing]:
    """All things of ``sc``, in drawing order of the RNG (sets ``sc.rails`` when a tram runs along the street)."""
    lay, pal = style.layout, style.palette
    things: list[Thing] = []
    z_max = min(street_len, 90.0)
    _moving_traffic(lay, pal, rng, sc, z_max, things)
    _parked_vehicles(lay, pal, rng, sc, parking, z_max, things)
    _riders(lay, pal, rng, sc, things)
    _persons(lay, pal, rng, sc, things)
    _parked_two_wheelers(lay, pal, rng, sc, things)
    _kerbside(lay, pal, rng, sc, z_max, things)
    _signs_and_lights(lay, pal, rng, sc, things)
    return things


def _at(sc: Scene, u_pos: float, z: float) -> float:
    """Lateral street coordinate -> camera X."""
    return sc.x0 + sc.yaw * z + u_pos


def _vehicle(rng: np.random.Generator, pal: Palette, sc: Scene, kind: str, u_pos: float, z: float, view: str) -> Thing:
    u = rng.uniform
    (w0, w1), (h0, h1), (l0, l1) = VEHICLE_SIZE[kind]
    colours = {
        "car": pal.car, "truck": pal.truck, "bus": pal.bus, "train": pal.tram,
    }[kind]
    body = pick(rng, colours, pal.jitter)
    t = Thing(kind, _at(sc, u_pos, z), z, u(w0, w1), u(h0, h1), u(l0, l1), view,
              {"body": body, "second": pick(rng, colours, pal.jitter),
               "glass": pick(rng, pal.window, pal.jitter * 0.5)},
              {"cabin": u(0.55, 0.65), "dir": int(rng.choice([-1, 1]))})
    return t


def _moving_traffic(lay, pal: Palette, rng: np.random.Generator, sc: Scene, z_max: float, things: list) -> None:
    """A tram (along the street or in the cross street), traffic lane by lane, crossing traffic."""
    u = rng.uniform
    tram_lane = None
    if rng.random() < lay.p_tram:
        where = "cross" if (sc.cross is not None and rng.random() < 0.4) else "street"
        if where == "street":
            lane = sc.lanes[len(sc.lanes) // 2 - (1 if rng.random() < 0.5 and len(sc.lanes) > 1 else 0)]
            tram_lane = lane
            uc = (lane[0] + lane[1]) / 2
            sc.rails = [uc - 0.72, uc + 0.72]
            z = u(8.0, 45.0)
            things.append(_vehicle(rng, pal, sc, "train", uc, z, "rear" if lane[2] == 1 else "front"))
        else:
            zc = (sc.cross[0] + sc.cross[1]) / 2
            t = _vehicle(rng, pal, sc, "train", 0.0, zc, "side")
            t.x = _at(sc, u(-12.0, 12.0), zc)
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
            things.append(_vehicle(rng, pal, sc, kind, uc + u(-0.25, 0.25), float(z), view))
            last = z + VEHICLE_SIZE[kind][2][1]
    # crossing traffic in the cross street
    if sc.cross is not None and rng.random() < 0.6:
        zc = sc.cross[0] + (sc.cross[1] - sc.cross[0]) * u(0.3, 0.7)
        kind = "truck" if rng.random() < lay.p_truck * 2 else "bus" if rng.random() < lay.p_bus * 2 else "car"
        things.append(_vehicle(rng, pal, sc, kind, u(-15.0, 15.0), zc, "side"))


def _parked_vehicles(lay, pal: Palette, rng: np.random.Generator, sc: Scene, parking: dict, z_max: float,
                     things: list) -> None:
    """Parked cars and trucks along the kerbs with parking lanes (none in front of the cross street)."""
    u = rng.uniform
    for s in (-1, 1):
        if not parking[s]:
            continue
        edge = sc.sides[s].edge
        z = u(1.0, 8.0)
        while z < z_max:
            kind = "truck" if rng.random() < lay.p_truck * 0.5 else "car"
            t = _vehicle(rng, pal, sc, kind, s * (edge - 1.1), z, "rear" if rng.random() < 0.8 else "front")
            t.params["parked"] = True
            if sc.cross is None or not (sc.cross[0] - 3 < z < sc.cross[1] + 1):
                things.append(t)
            z += t.length + u(*lay.parked_gap)


def _riders(lay, pal: Palette, rng: np.random.Generator, sc: Scene, things: list) -> None:
    """Cyclists near the kerb, motorcyclists in lanes, some crossing."""
    u = rng.uniform
    if rng.random() < lay.p_rider:
        for _ in range(max(1, rng.poisson(lay.riders))):
            moto = rng.random() < lay.p_moto_rider
            z = u(4.0, 30.0)
            if sc.cross is not None and rng.random() < 0.3:
                z = sc.cross[0] + (sc.cross[1] - sc.cross[0]) * u(0.2, 0.8)
                x = _at(sc, u(-8.0, 8.0), z)
                view = "side"
            elif moto:
                lane = sc.lanes[int(rng.integers(len(sc.lanes)))]
                x = _at(sc, (lane[0] + lane[1]) / 2 + u(-0.6, 0.6), z)
                view = "rear" if lane[2] == 1 else "front"
            else:
                right = sc.lanes[-1][1]
                x = _at(sc, right - u(0.6, 1.2), z)
                view = "rear"
            things.append(_rider(rng, pal, "motorcycle" if moto else "bicycle", x, z, view))


def _persons(lay, pal: Palette, rng: np.random.Generator, sc: Scene, things: list) -> None:
    """Persons on the sidewalks, a few crossing, sometimes a group."""
    u = rng.uniform
    for _ in range(rng.poisson(lay.persons)):
        s = int(rng.choice([-1, 1]))
        side = sc.sides[s]
        z = u(3.0, 32.0)
        if rng.random() < 0.15:  # crossing the street, seen from the side
            zc = sc.cross[0] - 2.0 if sc.cross is not None else z
            things.append(_person(rng, pal, _at(sc, u(-side.edge, side.edge), zc), zc, walking=True))
        else:
            upos = s * u(side.edge + 0.5, side.facade - 0.3)
            things.append(_person(rng, pal, _at(sc, upos, z), z, walking=rng.random() < 0.5))
    # groups make crowds as in real streets
    if rng.random() < 0.2:
        s = int(rng.choice([-1, 1]))
        z = u(5.0, 22.0)
        for _ in range(int(rng.integers(2, 6))):
            zz = z + u(-1.5, 1.5)
            x = _at(sc, s * u(sc.sides[s].edge + 0.5, sc.sides[s].facade), zz)
            things.append(_person(rng, pal, x, zz, walking=False))


def _parked_two_wheelers(lay, pal: Palette, rng: np.random.Generator, sc: Scene, things: list) -> None:
    """Parked bicycles (on the sidewalk) and motorcycles (on the road), no riders."""
    u = rng.uniform
    for kind, rate in (("bicycle", lay.parked_bikes), ("motorcycle", lay.parked_motos)):
        for _ in range(rng.poisson(rate)):
            s = int(rng.choice([-1, 1]))
            z = u(3.0, 24.0)
            upos = s * (sc.sides[s].edge + u(0.3, 1.2)) if kind == "bicycle" else s * (sc.sides[s].edge - u(0.5, 1.0))
            things.append(_two_wheeler(rng, pal, kind, _at(sc, upos, z), z))


def _kerbside(lay, pal: Palette, rng: np.random.Generator, sc: Scene, z_max: float, things: list) -> None:
    """Rows of trees and lamps along each kerb, and a few bushes."""
    u = rng.uniform
    for s in (-1, 1):
        side = sc.sides[s]
        if rng.random() < lay.tree_side:
            upos = s * (side.edge + (side.facade - side.edge) * u(0.3, 0.8))
            z = u(2.0, 8.0)
            while z < z_max:
                if rng.random() < 0.85:
                    things.append(_tree(rng, pal, _at(sc, upos + u(-0.3, 0.3), z), z))
                z += u(*lay.tree_spacing)
        if rng.random() < 0.75:
            z = u(3.0, 15.0)
            while z < z_max:
                things.append(_lamp(rng, pal, _at(sc, s * (side.edge + 0.4), z), z, s))
                z += u(*lay.lamp_spacing)
        for _ in range(rng.poisson(0.5)):  # bushes
            z = u(3.0, 40.0)
            things.append(_bush(rng, pal, _at(sc, s * u(side.edge + 0.5, side.facade + 1.0), z), z))


def _signs_and_lights(lay, pal: Palette, rng: np.random.Generator, sc: Scene, things: list) -> None:
    """Traffic signs at the kerbs; traffic lights before the cross street (or anywhere) and at its far corner."""
    u = rng.uniform
    for _ in range(rng.poisson(lay.signs)):
        s = int(rng.choice([-1, 1]))
        z = u(4.0, 32.0)
        things.append(_sign(rng, pal, _at(sc, s * (sc.sides[s].edge + 0.35), z), z))
    if rng.random() < lay.p_traffic_light:
        z = sc.cross[0] - 1.0 if sc.cross is not None else u(10.0, 30.0)
        for s in (-1, 1):
            if rng.random() < 0.8:
                # mast is drawn before the light's own draws: the arguments are evaluated first
                things.append(_traffic_light(rng, pal, _at(sc, s * (sc.sides[s].edge + 0.5), z), z, s,
                                             mast=rng.random() < 0.4, span=sc.sides[s].edge))
        if sc.cross is not None and rng.random() < 0.6:  # the far corner, seen from behind
            z2 = sc.cross[1] + 1.0
            s = int(rng.choice([-1, 1]))
            t = _traffic_light(rng, pal, _at(sc, s * (sc.sides[s].edge + 0.5), z2), z2, s, mast=False, span=0.0)
            t.params["back"] = True
            things.append(t)


# ----------------------------------------------------------------------------- one object each


def _person(rng: np.random.Generator, pal: Palette, x: float, z: float, walking: bool) -> Thing:
    h = rng.uniform(1.55, 1.95)
    return Thing("person", x, z, 0.32 * h, h, 0.0, "side" if walking else "front",
                 {"skin": pick(rng, pal.skin, 0.05), "top": pick(rng, pal.clothes, pal.jitter),
                  "bottom": pick(rng, pal.clothes, pal.jitter), "hair": pick(rng, ((40, 30, 20), (90, 60, 30), (20, 20, 20), (150, 120, 80)), 0.05)},
                 {"phase": rng.uniform(-1, 1), "bag": bool(rng.random() < 0.3), "dir": int(rng.choice([-1, 1]))})


def _rider(rng: np.random.Generator, pal: Palette, vehicle: str, x: float, z: float, view: str) -> Thing:
    side_len = 1.75 if vehicle == "bicycle" else 2.1
    width = side_len if view == "side" else (0.6 if vehicle == "bicycle" else 0.8)
    h = rng.uniform(1.65, 1.85) if vehicle == "bicycle" else rng.uniform(1.5, 1.65)
    colours = {"skin": pick(rng, pal.skin, 0.05), "top": pick(rng, pal.clothes, pal.jitter),
               "bottom": pick(rng, pal.clothes, pal.jitter),
               "helmet": pick(rng, pal.bike, pal.jitter), "frame": pick(rng, pal.bike, pal.jitter),
               "body": pick(rng, pal.car, pal.jitter)}
    return Thing("rider_" + vehicle, x, z, width, h, side_len, view, colours, {"dir": int(rng.choice([-1, 1]))})


def _two_wheeler(rng: np.random.Generator, pal: Palette, kind: str, x: float, z: float) -> Thing:
    length = 1.75 if kind == "bicycle" else 2.1
    h = 1.05 if kind == "bicycle" else 1.15
    return Thing(kind, x, z, length, h, length, "side",
                 {"frame": pick(rng, pal.bike, pal.jitter), "body": pick(rng, pal.car, pal.jitter)},
                 {"dir": int(rng.choice([-1, 1]))})


def _tree(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    h = rng.uniform(5.0, 12.0)
    crown_w = rng.uniform(2.5, 5.5)
    return Thing("tree", x, z, crown_w, h, 0.0, "front",
                 {"leaf": pick(rng, pal.vegetation, pal.jitter), "trunk": pick(rng, pal.trunk, pal.jitter)},
                 {"trunk_h": rng.uniform(0.3, 0.5) * h, "trunk_w": rng.uniform(0.2, 0.4),
                  "phases": rng.uniform(0, 2 * np.pi, 4), "amps": rng.uniform(0.04, 0.14, 4)})


def _bush(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    w = rng.uniform(0.8, 2.5)
    return Thing("bush", x, z, w, rng.uniform(0.6, 1.4), 0.0, "front",
                 {"leaf": pick(rng, pal.vegetation, pal.jitter)},
                 {"phases": rng.uniform(0, 2 * np.pi, 4), "amps": rng.uniform(0.05, 0.15, 4)})


def _lamp(rng: np.random.Generator, pal: Palette, x: float, z: float, side: int) -> Thing:
    h = rng.uniform(5.5, 9.0)
    return Thing("lamp", x, z, rng.uniform(0.24, 0.36), h, 0.0, "front",
                 {"pole": pick(rng, pal.pole, pal.jitter)},
                 {"arm": rng.uniform(0.8, 2.0) if rng.random() < 0.7 else 0.0, "side": side})


def _sign(rng: np.random.Generator, pal: Palette, x: float, z: float) -> Thing:
    shape = str(rng.choice(["circle", "triangle", "square", "diamond", "rect"]))
    scheme = int(rng.integers(4))
    return Thing("sign", x, z, rng.uniform(0.8, 1.15), rng.uniform(2.4, 3.2), 0.0, "front",
                 {"pole": pick(rng, pal.pole, pal.jitter)},
                 {"shape": shape, "scheme": scheme, "back": bool(rng.random() < 0.2), "two": bool(rng.random() < 0.25)})


def _traffic_light(rng: np.random.Generator, pal: Palette, x: float, z: float, side: int, mast: bool, span: float) -> Thing:
    return Thing("traffic_light", x, z, rng.uniform(0.45, 0.6), rng.uniform(3.0, 4.0), 0.0, "front",
                 {"pole": pick(rng, pal.pole, pal.jitter), "box": pick(rng, ((30, 30, 30), (50, 55, 50), (200, 170, 30)), 0.05)},
                 {"lamp": int(rng.integers(3)), "mast": mast, "side": side, "span": span * rng.uniform(0.5, 0.9),
                  "back": False})

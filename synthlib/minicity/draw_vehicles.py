"""Draw vehicles (car, truck, bus, tram): rear or front face and long side, or a side profile when crossing."""

from __future__ import annotations

import numpy as np

from .canvas import FACING_LEFT, FACING_RIGHT, FRONT, GLASS, LIGHT, METAL, PAINT, RUBBER, Canvas, Parts
from .scene import T, Thing
from .shapes import disc


def _vehicle_parts(t: Thing, label: int, inst: int) -> Parts:
    c = t.colours
    rear = t.view == "rear"
    light = np.float32([0.85, 0.1, 0.08]) if rear else np.float32([0.95, 0.93, 0.85])
    return Parts.of(
        (label, inst, c["body"], PAINT),  # 1 body
        (label, inst, c["glass"], GLASS),  # 2 glass
        (label, inst, np.float32([0.08, 0.08, 0.09]), RUBBER),  # 3 tyres, grille
        (label, inst, light, LIGHT),  # 4 lights
        (label, inst, c["second"], PAINT),  # 5 second colour (cargo box, livery band)
        (label, inst, np.float32([0.2, 0.2, 0.21]), RUBBER),  # 6 bumper, chassis
        (label, inst, np.float32([0.9, 0.9, 0.88]), PAINT),  # 7 number plate
        (label, inst, np.float32([0.6, 0.6, 0.62]), METAL),  # 8 hubs, pantograph
    )


def _vehicle_end(kind: str, c, yn, W: float, H: float, front: bool, p: dict, mpp) -> np.ndarray:
    """Rear or front face; c is centred across the width (m), yn the height fraction."""
    parts = np.zeros(np.broadcast_shapes(c.shape, yn.shape), np.int8)
    ac = np.abs(c)
    half = W / 2
    if kind == "car":
        yb = p["cabin"]
        body = (yn >= 0.12) & (yn < yb) & (ac < half)
        cab_half = half * (0.94 - 0.24 * (yn - yb) / (1 - yb))
        cabin = (yn >= yb) & (yn < 1.0) & (ac < cab_half)
        parts[body | cabin] = 1
        parts[cabin & (yn > yb + 0.05) & (yn < 0.93) & (ac < cab_half - 0.06 * W)] = 2
        parts[(yn >= 0.12) & (yn < 0.25) & (ac < half)] = 6
        parts[(yn < 0.25) & (ac > 0.27 * W) & (ac < 0.47 * W)] = 3
        if front:
            parts[(ac < 0.22 * W) & (yn > 0.3) & (yn < yb - 0.1)] = 3
            parts[(ac > 0.28 * W) & (ac < 0.46 * W) & (yn > yb - 0.2) & (yn < yb - 0.1)] = 4
        else:
            parts[(ac > 0.3 * W) & (ac < 0.48 * W) & (yn > yb - 0.17) & (yn < yb - 0.07)] = 4
        parts[(ac < 0.11 * W) & (yn > 0.27) & (yn < 0.36)] = 7
        return parts
    if kind == "truck":
        if front:
            cab = (yn >= 0.14) & (yn < 0.8) & (ac < half * 0.97)
            parts[cab] = 1
            parts[(yn >= 0.8) & (ac < half)] = 5
            parts[cab & (yn > 0.5) & (yn < 0.77) & (ac < 0.42 * W)] = 2
            parts[(ac < 0.3 * W) & (yn > 0.25) & (yn < 0.42)] = 3
            parts[(ac > 0.33 * W) & (ac < 0.46 * W) & (yn > 0.27) & (yn < 0.34)] = 4
        else:
            parts[(yn >= 0.25) & (ac < half)] = 5
            parts[(yn >= 0.25) & (ac < np.maximum(0.01 * W, 0.5 * mpp))] = 6  # door seam
            parts[(yn >= 0.14) & (yn < 0.25) & (ac < half)] = 6
            parts[(ac > 0.34 * W) & (ac < 0.47 * W) & (yn > 0.19) & (yn < 0.25)] = 4
        parts[(yn < 0.2) & (ac > 0.18 * W) & (ac < 0.48 * W)] = 3
        return parts
    if kind == "bus":
        parts[(yn >= 0.08) & (ac < half)] = 1
        parts[(yn >= 0.3) & (yn < 0.38) & (ac < half)] = 5
        if front:
            parts[(yn > 0.38) & (yn < 0.85) & (ac < 0.45 * W)] = 2
            parts[(yn >= 0.86) & (yn < 0.94) & (ac < 0.35 * W)] = 4
            parts[(ac > 0.32 * W) & (ac < 0.45 * W) & (yn > 0.14) & (yn < 0.2)] = 4
        else:
            parts[(yn > 0.7) & (yn < 0.92) & (ac < 0.4 * W)] = 2
            parts[(ac > 0.36 * W) & (ac < 0.47 * W) & (yn > 0.16) & (yn < 0.3)] = 4
        parts[(yn < 0.12) & (ac > 0.22 * W) & (ac < 0.46 * W)] = 3
        return parts
    # train (tram): rounded roof, big windscreen, pantograph on top
    roof = half * (1 - 0.2 * np.clip((yn - 0.88) / 0.12, 0, 1))
    parts[(yn >= 0.05) & (yn < 1.0) & (ac < roof)] = 1
    parts[(yn >= 0.05) & (yn < 0.28) & (ac < half)] = 5
    parts[(yn > 0.45) & (yn < 0.86) & (ac < 0.42 * W)] = 2
    parts[(ac > 0.3 * W) & (ac < 0.44 * W) & (yn > 0.3) & (yn < 0.36)] = 4
    pant = (yn >= 1.0) & (yn < 1.22) & ((np.abs(ac - 0.25 * W * (1.22 - yn) / 0.22) < np.maximum(0.03, 0.5 * mpp))
                                        | (np.abs(yn - 1.21) * H < np.maximum(0.03, 0.5 * mpp)) & (ac < 0.35 * W))
    parts[pant] = 8
    parts[(yn < 0.05) & (ac > 0.15 * W) & (ac < 0.45 * W)] = 3
    return parts


def _vehicle_side(kind: str, s, Y, L: float, H: float, p: dict, mpp) -> np.ndarray:
    """Side profile; s in metres from the rear end (front at s = L)."""
    x = s / L
    yn = Y / H
    parts = np.zeros(np.broadcast_shapes(np.shape(s), np.shape(Y)), np.int8)
    inside = (x >= 0) & (x <= 1) & (yn >= 0)
    if kind == "car":
        yb = p["cabin"]
        r = 0.21 * H
        body = inside & (yn >= 0.15) & (yn < yb - 0.12 * np.clip((x - 0.88) / 0.12, 0, 1))
        q = (yn - yb) / (1 - yb)
        cabin = inside & (yn >= yb) & (yn < 1.0) & (x > 0.06 + 0.2 * q) & (x < 0.8 - 0.2 * q)
        parts[body | cabin] = 1
        glass = cabin & (yn > yb + 0.05) & (yn < 0.93) & (x > 0.1 + 0.2 * q) & (x < 0.76 - 0.2 * q)
        glass &= np.abs(x - 0.45) > np.maximum(0.015, 0.5 * mpp / L)
        parts[glass] = 2
        for xc in (0.18, 0.8):
            wheel = disc(s, Y, xc * L, r, r, mpp)
            parts[wheel] = 3
            parts[disc(s, Y, xc * L, r, 0.45 * r)] = 8
        parts[inside & (x > 0.965) & (yn > yb - 0.25) & (yn < yb - 0.15)] = 4
        return parts
    if kind == "truck":
        cab = inside & (x > 0.8) & (yn >= 0.18) & (yn < 0.82)
        parts[cab] = 1
        parts[cab & (x > 0.86) & (x < 0.97) & (yn > 0.52) & (yn < 0.78)] = 2
        parts[inside & (x < 0.78) & (yn >= 0.26)] = 5
        parts[inside & (yn >= 0.14) & (yn < 0.26) & (x < 0.82)] = 6
        r = 0.15 * H
        for xc in (0.1, 0.22, 0.88):
            parts[disc(s, Y, xc * L, r, r, mpp)] = 3
        return parts
    if kind == "bus":
        parts[inside & (yn >= 0.08) & (yn < 1.0)] = 1
        parts[inside & (yn >= 0.25) & (yn < 0.33)] = 5
        band = inside & (yn > 0.45) & (yn < 0.88) & ((s % 1.4) > np.maximum(0.14, mpp))
        parts[band] = 2
        door = inside & (yn > 0.1) & (yn < 0.88) & (((x > 0.86) & (x < 0.93)) | ((x > 0.45) & (x < 0.52)))
        parts[door] = 2
        r = 0.16 * H
        for xc in (0.18, 0.8):
            parts[disc(s, Y, xc * L, r, r, mpp)] = 3
        return parts
    # train
    roof = 1.0 - 0.12 * np.clip((np.abs(x - 0.5) - 0.48) / 0.02, 0, 1)
    parts[inside & (yn >= 0.06) & (yn < roof)] = 1
    parts[inside & (yn >= 0.06) & (yn < 0.28)] = 5
    parts[inside & (yn > 0.42) & (yn < 0.8) & ((s % 1.8) > np.maximum(0.2, mpp))] = 2
    parts[inside & (yn > 0.1) & (yn < 0.82) & ((s % 7.5) < 1.3) & (x > 0.08) & (x < 0.92)] = 2
    parts[inside & (yn < 0.06) & ((s % 9.0) < 2.5)] = 3
    pant = (yn >= 1.0) & (yn < 1.22) & (np.abs(s - 0.5 * L - 1.2 * (yn - 1.0) * H * 4) < np.maximum(0.04, 0.5 * mpp))
    parts[pant] = 8
    return parts


def draw_vehicle(cv: Canvas, t: Thing) -> None:
    label = {"car": T["car"], "truck": T["truck"], "bus": T["bus"], "train": T["train"]}[t.kind]
    inst = cv.new_instance()
    lut = _vehicle_parts(t, label, inst)
    top = t.h * (1.22 if t.kind == "train" else 1.0)
    if t.view == "side":  # crossing the view: the side profile as a frontal plane
        win = cv.frontal(t.x - t.length / 2, t.x + t.length / 2, 0.0, top, t.z)
        if win is None:
            return
        r0, c0, s, Y, mpp = win
        if t.params.get("dir", 1) < 0:  # driving left instead of right
            s = t.length - s
        parts = _vehicle_side(t.kind, s, Y, t.length, t.h, t.params, mpp)
        cv.paint(r0, c0, parts, t.z, lut, s, Y, FRONT)
        return
    x0, x1 = t.x - t.w / 2, t.x + t.w / 2
    z0, z1 = t.z, t.z + t.length
    front = t.view == "front"
    # the long side facing the camera
    for a, visible, normal in ((x0 - cv.yaw * z0, x0 - cv.yaw * z0 > 0, FACING_LEFT),
                               (x1 - cv.yaw * z0, x1 - cv.yaw * z0 < 0, FACING_RIGHT)):
        if not visible:
            continue
        win = cv.lateral(a, z0, z1, top)
        if win is None:
            continue
        r0, c0, s, Y, Z, mpp = win
        s_rear = (t.length - s) if front else s  # the front of the vehicle faces away unless oncoming
        parts = _vehicle_side(t.kind, s_rear, Y, t.length, t.h, t.params, mpp)
        cv.paint(r0, c0, parts, Z, lut, s, Y, normal)
    win = cv.frontal(x0, x1, 0.0, top, z0)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    parts = _vehicle_end(t.kind, s - t.w / 2, Y / t.h, t.w, t.h, front, t.params, mpp)
    cv.paint(r0, c0, parts, z0, lut, s, Y, FRONT)

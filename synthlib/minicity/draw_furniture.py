"""Draw street furniture and vegetation: trees, bushes, lamps, traffic signs and traffic lights."""

from __future__ import annotations

import numpy as np

from .canvas import BARK, FOLIAGE, FRONT, GLASS, LIGHT, METAL, SIGN, Canvas, Parts
from .scene import T, Thing
from .shapes import blob, disc, rect


def draw_tree(cv: Canvas, t: Thing) -> None:
    p = t.params
    win = cv.frontal(t.x - 0.65 * t.w, t.x + 0.65 * t.w, 0.0, t.h * 1.15, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    lab = T["vegetation"]
    lut = Parts.of((lab, 0, t.colours["trunk"], BARK), (lab, 0, t.colours["leaf"], FOLIAGE))
    c = s - 0.65 * t.w
    s2, Y2 = np.broadcast_arrays(c, Y)
    parts = np.zeros(s2.shape, np.int8)
    crown_bottom = p["trunk_h"]
    parts[rect(c, Y, -p["trunk_w"] / 2, p["trunk_w"] / 2, 0.0, crown_bottom + 0.5, mpp)] = 1
    ry = (t.h - crown_bottom) / 2
    parts[blob(s2, Y2, 0.0, crown_bottom + ry, t.w / 2, ry, p["phases"], p["amps"])] = 2
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)


def draw_bush(cv: Canvas, t: Thing) -> None:
    win = cv.frontal(t.x - 0.6 * t.w, t.x + 0.6 * t.w, 0.0, t.h * 1.2, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    lab = T["vegetation"]
    lut = Parts.of((lab, 0, t.colours["leaf"], FOLIAGE))
    s2, Y2 = np.broadcast_arrays(s - 0.6 * t.w, Y)
    parts = (blob(s2, Y2, 0.0, t.h * 0.45, t.w / 2, t.h * 0.55, t.params["phases"], t.params["amps"]) & (Y2 >= 0))
    cv.paint(r0, c0, parts.astype(np.int8), t.z, lut, s2, Y2, FRONT)


def draw_lamp(cv: Canvas, t: Thing) -> None:
    arm = t.params["arm"]
    toward = -t.params["side"]  # the arm reaches over the street
    xa, xb = sorted((t.x - t.w, t.x + toward * (arm + 0.4)))
    win = cv.frontal(min(xa, t.x - t.w), max(xb, t.x + t.w), 0.0, t.h + 0.2, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    lab = T["pole"]
    lut = Parts.of((lab, 0, t.colours["pole"], METAL), (lab, 0, np.float32([0.95, 0.92, 0.8]), LIGHT))
    X = s + min(xa, t.x - t.w)
    s2, Y2 = np.broadcast_arrays(X - t.x, Y)
    parts = np.zeros(s2.shape, np.int8)
    parts[rect(s2, Y2, -t.w / 2, t.w / 2, 0.0, t.h, mpp)] = 1
    if arm > 0:
        end = toward * arm
        parts[rect(s2, Y2, min(0.0, end), max(0.0, end), t.h - 0.08, t.h, mpp)] = 1
        parts[rect(s2, Y2, end - 0.25, end + 0.25, t.h - 0.22, t.h - 0.04, mpp)] = 1
        parts[rect(s2, Y2, end - 0.2, end + 0.2, t.h - 0.24, t.h - 0.18)] = 2
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)


_SIGN_SCHEMES = (  # face, border, symbol: real traffic-sign colours in every style
    ((0.95, 0.95, 0.95), (0.8, 0.1, 0.1), (0.1, 0.1, 0.1)),
    ((0.1, 0.3, 0.75), (0.95, 0.95, 0.95), (0.95, 0.95, 0.95)),
    ((0.95, 0.8, 0.1), (0.95, 0.95, 0.95), (0.1, 0.1, 0.1)),
    ((0.1, 0.45, 0.3), (0.95, 0.95, 0.95), (0.95, 0.95, 0.95)),
)


def _sign_plate(c, yc, size: float, shape: str, mpp):
    """Outer and inner (face) masks of a sign plate centred at (0, 0)."""
    r = size / 2
    if shape == "circle":
        d = np.sqrt(c * c + yc * yc)
        return d <= max(r, 0.6 * mpp), d <= 0.75 * r
    if shape == "triangle":  # point up: apex (0, r), base at -r/2

        def tri(k):
            return (yc >= -0.5 * k * r) & (np.abs(c) <= 0.577 * (k * r - yc))

        return tri(1.0) | (np.abs(c) + np.abs(yc) <= 0.6 * mpp), tri(0.65)
    if shape == "diamond":
        d = np.abs(c) + np.abs(yc)
        return d <= max(r, 0.6 * mpp), d <= 0.72 * r
    hw = r * (1.4 if shape == "rect" else 1.0)
    outer = (np.abs(c) <= max(hw, 0.5 * mpp)) & (np.abs(yc) <= max(r * (0.7 if shape == "rect" else 1.0), 0.5 * mpp))
    inner = (np.abs(c) <= 0.85 * hw) & (np.abs(yc) <= 0.85 * r * (0.7 if shape == "rect" else 1.0))
    return outer, inner


def draw_sign(cv: Canvas, t: Thing) -> None:
    p = t.params
    size = t.w
    hw = size * 0.75
    win = cv.frontal(t.x - hw, t.x + hw, 0.0, t.h + 0.05, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    face, border, symbol = (np.float32(v) for v in _SIGN_SCHEMES[p["scheme"]])
    if p["back"]:
        face = border = symbol = np.float32([0.55, 0.56, 0.58])
    lab = T["traffic sign"]
    lut = Parts.of((T["pole"], 0, t.colours["pole"], METAL), (lab, 0, border, SIGN), (lab, 0, face, SIGN),
                   (lab, 0, symbol, SIGN))
    c = s - hw
    s2, Y2 = np.broadcast_arrays(c, Y)
    parts = np.zeros(s2.shape, np.int8)
    parts[rect(s2, Y2, -0.06, 0.06, 0.0, t.h - size / 2, mpp)] = 1
    centres = [t.h - size / 2] + ([t.h - size * 1.45] if p["two"] else [])
    for i, yc in enumerate(centres):
        outer, inner = _sign_plate(s2, Y2 - yc, size if i == 0 else size * 0.8, p["shape"] if i == 0 else "rect", mpp)
        parts[outer] = 2
        parts[inner] = 3
        parts[inner & (np.abs(s2) < size * 0.08) & (np.abs(Y2 - yc) < size * 0.22)] = 4
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)


def _light_box(c, Y, top: float, w: float, lamp: int, back: bool, mpp, parts: np.ndarray) -> None:
    """A three-lamp traffic light box hanging from ``top``; parts 2 box, 3 dark lamp, 4 lit lamp.

    The box is 2.4 widths tall, so a larger box (for 64x128 images) keeps its proportions.
    """
    k = w / 0.4
    parts[rect(c, Y, -w / 2, w / 2, top - 0.95 * k, top, mpp)] = 2
    if back:
        return
    for i in range(3):
        yc = top - (0.17 + 0.3 * i) * k
        parts[disc(c, Y, 0.0, yc, 0.1 * k) & (parts == 2)] = 4 if i == lamp else 3


def draw_traffic_light(cv: Canvas, t: Thing) -> None:
    p = t.params
    toward = -p["side"]
    reach = p["span"] if p["mast"] else 0.0
    xa, xb = sorted((t.x - 0.5, t.x + toward * (reach + 0.5)))
    xa, xb = min(xa, t.x - 0.5), max(xb, t.x + 0.5)
    win = cv.frontal(xa, xb, 0.0, t.h + 0.6, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    lit = [np.float32([0.9, 0.1, 0.05]), np.float32([0.95, 0.65, 0.05]), np.float32([0.1, 0.85, 0.35])][p["lamp"]]
    lab = T["traffic light"]
    lut = Parts.of((T["pole"], 0, t.colours["pole"], METAL), (lab, 0, t.colours["box"], METAL),
                   (lab, 0, np.float32([0.12, 0.12, 0.1]), GLASS), (lab, 0, lit, LIGHT))
    s2, Y2 = np.broadcast_arrays(s + xa - t.x, Y)
    parts = np.zeros(s2.shape, np.int8)
    parts[rect(s2, Y2, -0.1, 0.1, 0.0, t.h + (0.5 if reach else 0.0), mpp)] = 1
    _light_box(s2, Y2, t.h, t.w, p["lamp"], p["back"], mpp, parts)
    if reach:
        end = toward * reach
        parts[rect(s2, Y2, min(0.0, end), max(0.0, end), t.h + 0.4, t.h + 0.5, mpp)] = 1
        _light_box(s2 - end, Y2, t.h + 0.4, t.w, p["lamp"], False, mpp, parts)
        _light_box(s2 - end * 0.55, Y2, t.h + 0.4, t.w, p["lamp"], False, mpp, parts)
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)

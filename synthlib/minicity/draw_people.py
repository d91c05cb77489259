"""Draw people, riders with their bicycles or motorcycles, and parked two-wheelers."""

from __future__ import annotations

import numpy as np

from .canvas import CLOTH, FRONT, LIGHT, METAL, PAINT, RUBBER, SKIN, Canvas, Parts
from .scene import T, Thing
from .shapes import disc, line, rect, ring


def _human_parts(t: Thing, label: int, inst: int) -> list[tuple]:
    c = t.colours
    return [(label, inst, c["skin"], SKIN), (label, inst, c["top"], CLOTH), (label, inst, c["bottom"], CLOTH),
            (label, inst, c.get("hair", c.get("helmet")), CLOTH), (label, inst, np.float32([0.1, 0.1, 0.1]), CLOTH)]


def _person_shape(s, Y, w: float, h: float, p: dict, mpp, side: bool) -> np.ndarray:
    """Head, torso, arms, legs. Frontal or walking side view."""
    c = s - w / 2
    parts = np.zeros(np.broadcast_shapes(np.shape(s), np.shape(Y)), np.int8)
    hip, shoulder = 0.5 * h, 0.82 * h
    leg = 0.055 * h
    if side:
        swing = 0.16 * h * p["phase"]
        for sgn in (-1, 1):
            parts[line(c, Y, (0.0, hip), (sgn * swing, 0.03 * h), leg, mpp)] = 3
            parts[line(c, Y, (0.0, shoulder), (-sgn * swing * 0.6, 0.52 * h), 0.035 * h, mpp)] = 2
        torso = (Y >= hip - 0.02 * h) & (Y < shoulder + 0.02 * h) & (np.abs(c) < np.maximum(0.08 * h, 0.5 * mpp))
    else:
        spread = 0.05 * h
        for sgn in (-1, 1):
            parts[line(c, Y, (sgn * spread, hip), (sgn * spread * 1.3, 0.03 * h), leg, mpp)] = 3
            parts[line(c, Y, (sgn * 0.15 * h, shoulder - 0.02 * h), (sgn * 0.17 * h, 0.5 * h), 0.033 * h, mpp)] = 2
        taper = 0.11 * h + 0.035 * h * np.clip((Y - hip) / (shoulder - hip), 0, 1)
        torso = (Y >= hip - 0.02 * h) & (Y < shoulder + 0.02 * h) & (np.abs(c) < np.maximum(taper, 0.5 * mpp))
    parts[torso] = 2
    parts[rect(c, Y, -0.045 * h, 0.045 * h, shoulder, 0.87 * h, mpp)] = 1  # neck
    parts[disc(c, Y, 0.0, 0.925 * h, 0.068 * h, mpp)] = 1
    parts[disc(c, Y, 0.0, 0.945 * h, 0.06 * h) & (Y > 0.93 * h)] = 4  # hair
    parts[(Y < 0.03 * h) & (parts == 3)] = 5  # shoes
    if p.get("bag"):
        parts[rect(c, Y, 0.1 * h, 0.2 * h, 0.5 * h, 0.68 * h, mpp)] = 5
    return parts


def draw_person(cv: Canvas, t: Thing) -> None:
    win = cv.frontal(t.x - t.w / 2, t.x + t.w / 2, 0.0, t.h, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    inst = cv.new_instance()
    lut = Parts.of(*_human_parts(t, T["person"], inst))
    parts = _person_shape(s, Y, t.w, t.h, t.params, mpp, side=t.view == "side")
    cv.paint(r0, c0, parts, t.z, lut, s, Y, FRONT)


def _two_wheeler_side(kind: str, s, Y, mpp, parts: np.ndarray, base: int) -> None:
    """Bicycle or motorcycle in side view, front wheel at larger s; parts base+0 tyre, +1 frame, +2 body, +3 light."""
    if kind == "bicycle":
        r = 0.34
        for xc in (0.35, 1.4):
            parts[ring(s, Y, xc, r, r - 0.03, 0.03, mpp)] = base
        for p0, p1 in (((0.35, r), (0.75, 0.33)), ((0.35, r), (0.62, 0.85)), ((0.75, 0.33), (0.62, 0.85)),
                       ((0.75, 0.33), (1.2, 0.82)), ((0.62, 0.85), (1.2, 0.82)), ((1.2, 0.82), (1.4, r)),
                       ((1.2, 0.82), (1.15, 1.0)), ((0.55, 0.9), (0.7, 0.9))):
            parts[line(s, Y, p0, p1, 0.025, mpp)] = base + 1
        return
    r = 0.31
    for xc in (0.35, 1.75):
        parts[disc(s, Y, xc, r, r, mpp)] = base
    body = ((s - 1.05) / 0.55) ** 2 + ((Y - 0.62) / 0.22) ** 2 <= 1
    parts[body] = base + 2
    parts[((s - 0.85) / 0.45) ** 2 + ((Y - 0.84) / 0.09) ** 2 <= 1] = base + 1  # seat
    parts[line(s, Y, (1.75, r), (1.55, 1.05), 0.04, mpp)] = base + 1  # fork
    parts[disc(s, Y, 1.68, 0.85, 0.07, mpp)] = base + 3  # headlight


def _two_wheeler_rear(kind: str, c, Y, mpp, parts: np.ndarray, base: int) -> None:
    """Bicycle or motorcycle from behind or in front: a wheel, handlebar and (motorcycle) body."""
    if kind == "bicycle":
        parts[rect(c, Y, -0.02, 0.02, 0.0, 0.7, mpp)] = base
        parts[rect(c, Y, -0.3, 0.3, 0.98, 1.02, mpp)] = base + 1
        parts[rect(c, Y, -0.02, 0.02, 0.7, 1.0, mpp)] = base + 1
        return
    parts[rect(c, Y, -0.07, 0.07, 0.0, 0.6, mpp)] = base
    parts[rect(c, Y, -0.22, 0.22, 0.4, 0.85, mpp)] = base + 2
    parts[rect(c, Y, -0.36, 0.36, 1.0, 1.05, mpp)] = base + 1
    parts[rect(c, Y, -0.06, 0.06, 0.72, 0.8, mpp)] = base + 3


def _rider_shape_side(kind: str, s, Y, mpp, parts: np.ndarray, h: float) -> None:
    """Seated rider, leaning forward, facing +s."""
    moto = kind == "motorcycle"
    hip = (0.8, 1.0) if moto else (0.6, 0.95)
    shoulder = (1.1, 0.95 + 0.32 * h) if moto else (0.85, 0.93 + 0.33 * h)
    head = (shoulder[0] + 0.08, shoulder[1] + 0.16)
    hand = (1.5, 1.05) if moto else (1.15, 1.0)
    knee = (1.15, 0.8) if moto else (0.85, 0.65)
    foot = (0.95, 0.45) if moto else (0.72, 0.33)
    parts[line(s, Y, hip, knee, 0.07, mpp) | line(s, Y, knee, foot, 0.06, mpp)] = 3
    parts[line(s, Y, hip, shoulder, 0.13, mpp)] = 2
    parts[line(s, Y, shoulder, hand, 0.045, mpp)] = 2
    parts[disc(s, Y, *head, 0.12 if moto else 0.11, mpp)] = 4 if moto else 1


def _rider_shape_rear(kind: str, c, Y, mpp, parts: np.ndarray, h: float) -> None:
    moto = kind == "motorcycle"
    seat = 0.9 if moto else 0.95
    top = seat + 0.45 * h * 0.62
    for sgn in (-1, 1):
        parts[line(c, Y, (sgn * 0.1, seat), (sgn * (0.2 if moto else 0.08), 0.35), 0.065, mpp)] = 3
        parts[line(c, Y, (sgn * 0.17, top - 0.05), (sgn * (0.36 if moto else 0.28), 1.02), 0.04, mpp)] = 2
    torso = (Y >= seat) & (Y < top) & (np.abs(c) < 0.18)
    parts[torso] = 2
    parts[disc(c, Y, 0.0, top + 0.14, 0.13 if moto else 0.11, mpp)] = 4 if moto else 1


def draw_rider(cv: Canvas, t: Thing) -> None:
    kind = t.kind.split("_", 1)[1]
    top = 0.95 + 0.33 * t.h + 0.3
    width = t.length if t.view == "side" else t.w
    win = cv.frontal(t.x - width / 2, t.x + width / 2, 0.0, top, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    rider, vehicle = cv.new_instance(), cv.new_instance()
    vlabel = T[kind]
    c = t.colours
    lut = Parts.of(*_human_parts(t, T["rider"], rider),
                   (vlabel, vehicle, np.float32([0.07, 0.07, 0.08]), RUBBER), (vlabel, vehicle, c["frame"], METAL),
                   (vlabel, vehicle, c["body"], PAINT), (vlabel, vehicle, np.float32([0.95, 0.9, 0.8]), LIGHT))
    s, Y = np.broadcast_arrays(s, Y)
    parts = np.zeros(s.shape, np.int8)
    if t.view == "side":
        ss = s if t.params.get("dir", 1) > 0 else t.length - s
        _two_wheeler_side(kind, ss, Y, mpp, parts, 6)
        _rider_shape_side(kind, ss, Y, mpp, parts, t.h)
    else:
        cc = s - width / 2
        _two_wheeler_rear(kind, cc, Y, mpp, parts, 6)
        _rider_shape_rear(kind, cc, Y, mpp, parts, t.h)
    cv.paint(r0, c0, parts, t.z, lut, s, Y, FRONT)


def draw_two_wheeler(cv: Canvas, t: Thing) -> None:
    win = cv.frontal(t.x - t.length / 2, t.x + t.length / 2, 0.0, 1.2, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    inst = cv.new_instance()
    lab = T[t.kind]
    c = t.colours
    lut = Parts.of((lab, inst, np.float32([0.07, 0.07, 0.08]), RUBBER), (lab, inst, c["frame"], METAL),
                   (lab, inst, c["body"], PAINT), (lab, inst, np.float32([0.9, 0.88, 0.8]), LIGHT))
    s, Y = np.broadcast_arrays(s, Y)
    parts = np.zeros(s.shape, np.int8)
    ss = s if t.params.get("dir", 1) > 0 else t.length - s
    _two_wheeler_side(t.kind, ss, Y, mpp, parts, 1)
    cv.paint(r0, c0, parts, t.z, lut, s, Y, FRONT)

"""Maps composed from shapes: a street to paint on, and edge cases no dataset holds.

A ``Shape`` is a filled rect, ellipse or polygon of one class in (x, y) fractions
of the image; ``compose`` paints shapes in order onto a base scene (``street()``
by default) into a ``Sample`` with a label map, instances for thing classes and a
flat-ground depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synthlib.datasets import Sample
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, THING_TRAIN_IDS, colorize

#: Depth (metres) of the sky and the horizon in composed maps: the farthest a depth PNG stores.
FAR = 255.0
_FLAT = tuple(CLASS_NAMES.index(c) for c in ("road", "sidewalk", "terrain"))
_SKY = CLASS_NAMES.index("sky")


class GenerationError(ValueError):
    """Bad maps or shapes, an empty set, or bad generation settings."""


@dataclass(frozen=True)
class Shape:
    """A filled shape of one class; coordinates are (x, y) fractions of the width and height (0-1).

    ``kind`` "rect" and "ellipse" take two corners of the bounding box, "polygon"
    its vertices. ``depth`` (metres) None: flat classes lie on the ground plane,
    the sky is far, and everything else stands on the ground at its lowest row.
    """

    cls: int
    kind: str
    points: tuple[tuple[float, float], ...]
    depth: float | None = None


def rect(cls: int | str, x0: float, y0: float, x1: float, y1: float, depth: float | None = None) -> Shape:
    """A rectangle of class ``cls`` (trainId or name) from (x0, y0) to (x1, y1), in fractions of the image."""
    return Shape(_class_id(cls), "rect", ((x0, y0), (x1, y1)), depth)


def ellipse(cls: int | str, x0: float, y0: float, x1: float, y1: float, depth: float | None = None) -> Shape:
    """An ellipse of class ``cls`` inside the box (x0, y0)-(x1, y1), in fractions of the image."""
    return Shape(_class_id(cls), "ellipse", ((x0, y0), (x1, y1)), depth)


def polygon(cls: int | str, points: Sequence[tuple[float, float]], depth: float | None = None) -> Shape:
    """A polygon of class ``cls`` with vertices ``points`` ((x, y) fractions of the image)."""
    if len(points) < 3:
        raise GenerationError(f"a polygon needs at least 3 vertices, got {len(points)}")
    return Shape(_class_id(cls), "polygon", tuple((float(x), float(y)) for x, y in points), depth)


def street(horizon: float = 0.45) -> list[Shape]:
    """A plain street scene to paint on: sky, buildings, trees, sidewalks and the road, horizon at ``horizon``."""
    h = horizon
    return [
        rect("sky", 0, 0, 1, h + 0.01),
        polygon("sidewalk", [(0, h), (1, h), (1, 1), (0, 1)]),
        rect("building", 0, 0.08, 0.3, h + 0.06),
        rect("building", 0.72, 0.04, 1, h + 0.06),
        ellipse("vegetation", 0.26, h - 0.2, 0.42, h + 0.04),
        polygon("road", [(0.38, h), (0.62, h), (1.0, 0.76), (1.0, 1), (0, 1), (0, 0.76)]),
        rect("pole", 0.2, h - 0.15, 0.215, h + 0.15),
        rect("traffic sign", 0.19, h - 0.2, 0.225, h - 0.13),
    ]


def edge_case_shapes() -> dict[str, list[Shape]]:
    """Scenes that sources rarely or never show, as shapes to draw over ``street()``."""
    return {
        "pedestrian crossing in front of the car": [
            rect("car", 0.36, 0.5, 0.64, 0.74),
            polygon("person", [(0.485, 0.5), (0.515, 0.5), (0.535, 0.6), (0.53, 0.86), (0.505, 0.86), (0.5, 0.72), (0.495, 0.86), (0.47, 0.86), (0.465, 0.6)]),
        ],
        "tram across the road": [rect("train", 0.04, 0.3, 0.96, 0.64)],
        "cyclist beside a bus": [
            rect("bus", 0.55, 0.24, 0.92, 0.7),
            ellipse("bicycle", 0.3, 0.66, 0.44, 0.84),
            rect("rider", 0.34, 0.48, 0.4, 0.72),
        ],
        "motorcycle and truck at a traffic light": [
            rect("truck", 0.08, 0.3, 0.4, 0.66),
            ellipse("motorcycle", 0.52, 0.62, 0.62, 0.8),
            rect("rider", 0.545, 0.48, 0.6, 0.68),
            rect("pole", 0.78, 0.15, 0.795, 0.6),
            rect("traffic light", 0.77, 0.12, 0.805, 0.24),
        ],
    }


def compose(shapes: Sequence[Shape], height: int, width: int, base: Sequence[Shape] | None = None, name: str = "composed") -> Sample:
    """A map drawn from ``shapes`` over ``base`` (default ``street()``; pass [] for none), later shapes on top.

    Returns a ``Sample``: label (trainIds, undrawn pixels ignore), instances (one
    per shape of a thing class), a plausible depth (ground plane, objects standing
    on it), and the coloured map as a placeholder image.
    """
    if height < 1 or width < 1:
        raise GenerationError(f"map size must be positive, got {height}x{width}")
    everything = list(street() if base is None else base) + list(shapes)
    label = np.full((height, width), IGNORE, np.uint8)
    instances = np.zeros((height, width), np.int32)
    horizon = _horizon(everything)
    ground = _ground_depth(height, horizon)
    depth = np.full((height, width), FAR, np.float32)
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    for n, shape in enumerate(everything, start=1):
        mask = _mask(shape, xs, ys)
        if not mask.any():
            continue
        label[mask] = shape.cls
        instances[mask] = n if shape.cls in THING_TRAIN_IDS else 0
        if shape.depth is not None:
            depth[mask] = shape.depth
        elif shape.cls in _FLAT:
            depth[mask] = np.broadcast_to(ground[:, None], mask.shape)[mask]
        elif shape.cls == _SKY:
            depth[mask] = FAR
        else:
            depth[mask] = ground[np.flatnonzero(mask.any(1)).max()]
    return Sample(colorize(label), label, depth, instances, name, {"composed": True})


def edge_cases(height: int, width: int) -> dict[str, Sample]:
    """Every scene of ``edge_case_shapes`` composed at ``height`` x ``width``."""
    return {name: compose(shapes, height, width, name=f"edge_{i}") for i, (name, shapes) in enumerate(edge_case_shapes().items())}


def _class_id(cls: int | str) -> int:
    if isinstance(cls, str):
        if cls not in CLASS_NAMES:
            raise GenerationError(f"class {cls!r} unknown; valid: {', '.join(CLASS_NAMES)}")
        return CLASS_NAMES.index(cls)
    if isinstance(cls, bool) or not isinstance(cls, (int, np.integer)) or not 0 <= cls < NUM_CLASSES:
        raise GenerationError(f"class {cls!r} is not a trainId (0-{NUM_CLASSES - 1}) or a class name")
    return int(cls)


def _mask(shape: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    if shape.kind in ("rect", "ellipse"):
        (x0, y0), (x1, y1) = shape.points
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if shape.kind == "rect":
            return ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 1e-9), max((y1 - y0) / 2, 1e-9)
        return ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1
    if shape.kind == "polygon":
        from matplotlib.path import Path as Outline

        points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
        return Outline(shape.points).contains_points(points, radius=1e-9).reshape(len(ys), len(xs))
    raise GenerationError(f"shape kind {shape.kind!r} unknown; valid: rect, ellipse, polygon")


def _horizon(shapes: Sequence[Shape]) -> float:
    """The horizon of a composed scene: the top of its flat ground (0.45 when it has none)."""
    tops = [min(y for _, y in s.points) for s in shapes if s.cls in _FLAT]
    return min(tops) if tops else 0.45


def _ground_depth(height: int, horizon: float, camera_height: float = 1.5, focal: float = 1.6) -> np.ndarray:
    """Depth (metres) of a flat ground per row, for a camera ``camera_height`` up with focal length ``focal`` (image heights)."""
    ys = (np.arange(height) + 0.5) / height
    below = ys - horizon
    return np.where(below > 0, np.minimum(camera_height * focal / np.maximum(below, 1e-6), FAR), FAR).astype(np.float32)

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

from dataclasses import dataclass

import numpy as np

from .layout import Block, Scene, Segment, T, Thing

SKY_DEPTH = 1000.0
"""Depth (m) written for sky pixels: far beyond everything else, finite for arithmetic."""

# materials (drive textures and lighting in appearance.py)
SKY, ASPHALT, PAVING, KERB, GRASS, PLASTER, BRICK, GLASS, FOLIAGE, BARK = range(10)
PAINT, RUBBER, CLOTH, SKIN, LIGHT, MARKING, CONCRETE, METAL, SIGN, RAIL = range(10, 20)
GROUND_MATERIALS = (ASPHALT, PAVING, KERB, GRASS, MARKING, RAIL)
MATERIAL_NAMES = ("sky asphalt paving kerb grass plaster brick glass foliage bark paint rubber cloth skin "
                  "light marking concrete metal sign rail").split()

# surface orientation (lighting)
UP, FRONT, FACING_RIGHT, FACING_LEFT, NORMAL_SKY = range(5)


@dataclass
class Parts:
    """Per-part properties of one drawn object; index 0 is 'empty'."""

    label: np.ndarray  # uint8
    inst: np.ndarray  # int32
    colour: np.ndarray  # float32 (P, 3)
    mat: np.ndarray  # uint8
    alpha: np.ndarray  # float32, 1 = opaque

    @staticmethod
    def of(*rows: tuple) -> Parts:
        """rows: (label, instance, colour, material[, alpha]) for parts 1..P."""
        rows = ((255, 0, np.zeros(3, np.float32), SKY, 1.0),) + tuple(r if len(r) == 5 else (*r, 1.0) for r in rows)
        return Parts(
            np.array([r[0] for r in rows], np.uint8),
            np.array([r[1] for r in rows], np.int32),
            np.array([r[2] for r in rows], np.float32).reshape(-1, 3),
            np.array([r[3] for r in rows], np.uint8),
            np.array([r[4] for r in rows], np.float32),
        )


class Canvas:
    """Geometry buffers of one image and the camera that projects into them."""

    def __init__(self, scene: Scene, height: int, width: int) -> None:
        self.h, self.w = height, width
        self.f = scene.focal * width
        self.cx = scene.cx * width
        self.yh = scene.horizon * height
        self.hc = scene.cam_height
        self.yaw = scene.yaw
        self.x0 = scene.x0
        self.xc = np.arange(width, dtype=np.float32) + 0.5
        self.yc = np.arange(height, dtype=np.float32) + 0.5
        self.kcol = (self.xc - self.cx) / self.f - scene.yaw  # a lateral plane u = a has depth (x0 + a) / kcol
        self.depth = np.full((height, width), SKY_DEPTH, np.float32)
        self.label = np.full((height, width), T["sky"], np.uint8)
        self.inst = np.zeros((height, width), np.int32)
        self.colour = np.zeros((height, width, 3), np.float32)
        self.mat = np.full((height, width), SKY, np.uint8)
        self.tu = np.zeros((height, width), np.float32)  # texture coordinates (m)
        self.tv = np.zeros((height, width), np.float32)
        self.normal = np.full((height, width), NORMAL_SKY, np.uint8)
        self._next_inst = 1

    def new_instance(self) -> int:
        i = self._next_inst
        self._next_inst += 1
        return i

    # --- projection helpers
    def px(self, x: float, z: float) -> float:
        return self.cx + self.f * x / z

    def py(self, y: float, z: float) -> float:
        return self.yh + self.f * (self.hc - y) / z

    def street_x(self, u: float, z: float) -> float:
        """Camera X of street coordinate u at depth z."""
        return self.x0 + self.yaw * z + u

    # --- painting
    def paint(self, r0: int, c0: int, parts: np.ndarray, z, lut: Parts, tu, tv, normal) -> None:
        """Z-tested write of a part map whose top-left pixel is (r0, c0)."""
        h, w = parts.shape
        sl = (slice(r0, r0 + h), slice(c0, c0 + w))
        z = np.broadcast_to(np.asarray(z, np.float32), parts.shape)
        m = (parts > 0) & (z < self.depth[sl])
        if not m.any():
            return
        p = parts[m]
        self.depth[sl][m] = z[m]
        self.label[sl][m] = lut.label[p]
        self.inst[sl][m] = lut.inst[p]
        self.mat[sl][m] = lut.mat[p]
        alpha = lut.alpha[p]
        colour = lut.colour[p]
        if (alpha < 1).any():
            a = alpha[:, None]
            colour = a * colour + (1 - a) * self.colour[sl][m]
        self.colour[sl][m] = colour
        self.tu[sl][m] = np.broadcast_to(np.asarray(tu, np.float32), parts.shape)[m]
        self.tv[sl][m] = np.broadcast_to(np.asarray(tv, np.float32), parts.shape)[m]
        self.normal[sl][m] = np.broadcast_to(np.asarray(normal, np.uint8), parts.shape)[m]

    def frontal(self, x0: float, x1: float, y0: float, y1: float, z: float):
        """Pixel window and local coordinates of the frontal rectangle [x0,x1]x[y0,y1] at depth z.

        Returns (r0, c0, s, Y, mpp) with s (1, w) metres from x0, Y (h, 1) metres above the
        ground and mpp the metres per pixel, or None when nothing is visible.
        """
        if z < 0.3:
            return None
        c0 = max(int(np.floor(self.px(x0, z) - 0.5)), 0)
        c1 = min(int(np.ceil(self.px(x1, z) + 0.5)), self.w)
        r0 = max(int(np.floor(self.py(y1, z) - 0.5)), 0)
        r1 = min(int(np.ceil(self.py(y0, z) + 0.5)), self.h)
        if c1 <= c0 or r1 <= r0:
            return None
        mpp = z / self.f
        s = ((self.xc[c0:c1] - self.cx) * mpp - x0)[None, :]
        Y = (self.hc - (self.yc[r0:r1] - self.yh) * mpp)[:, None]
        return r0, c0, s, Y, mpp

    def lateral(self, a: float, z0: float, z1: float, top: float):
        """Pixel window of the plane X = a + yaw*Z for Z in [z0, z1), Y in [0, top].

        Returns (r0, c0, s, Y, Z, mpp) with s = Z - z0 (1, w), Y (h, w), Z and mpp (1, w),
        or None when nothing is visible.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            zc = a / self.kcol
        ok = (zc >= z0) & (zc < z1) & np.isfinite(zc)
        if not ok.any():
            return None
        cols = np.flatnonzero(ok)
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        Z = zc[c0:c1]
        valid = ok[c0:c1]
        Z = np.where(valid, Z, np.float32(z1)).astype(np.float32)[None, :]
        r0 = max(int(np.floor((self.yh + self.f * (self.hc - top) / Z).min())), 0)
        r1 = min(int(np.ceil((self.yh + self.f * self.hc / Z).max())) + 1, self.h)
        if r1 <= r0:
            return None
        mpp = Z / self.f
        Y = self.hc - (self.yc[r0:r1, None] - self.yh) * mpp
        Y = np.where(valid[None, :], Y, -1.0)  # columns outside the segment: below ground = empty
        return r0, c0, Z - z0, Y, Z, mpp


def rasterise(scene: Scene, height: int, width: int) -> Canvas:
    """Draw the whole scene: ground, frontage, street end, then things far to near."""
    cv = Canvas(scene, height, width)
    _ground(cv, scene)
    for side in scene.sides.values():
        for seg in side.segments:
            if seg.behind is not None:
                _segment(cv, seg.behind)
            _segment(cv, seg)
    for block in scene.end_blocks:
        _block(cv, block, scene.end_z)
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


# ----------------------------------------------------------------------------- frontage


def _segment(cv: Canvas, seg: Segment) -> None:
    """A frontage plane: building facade, hedge / tree row, wall or fence."""
    if seg.kind == "open" or seg.height <= 0:
        return
    top = seg.height * 1.2 if seg.kind == "vegetation" else seg.height
    win = cv.lateral(cv.x0 + seg.side * seg.offset, seg.z0, seg.z1, top)
    if win is None:
        return
    r0, c0, s, Y, Z, mpp = win
    normal = FACING_RIGHT if seg.side < 0 else FACING_LEFT
    parts, lut = _frontage(seg.kind, s, Y, mpp, seg.height, seg.colour, seg.colour2, seg.params)
    cv.paint(r0, c0, parts, Z, lut, s, Y, normal)


def _block(cv: Canvas, block: Block, z: float) -> None:
    """A frontal block of the street end or the skyline."""
    x0 = cv.street_x(block.x0, z)
    top = block.height * 1.2 if block.kind == "vegetation" else block.height
    win = cv.frontal(x0, x0 + block.x1 - block.x0, 0.0, top, z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    s, Y = np.broadcast_arrays(s, Y)
    parts, lut = _frontage(block.kind, s, Y, mpp, block.height, block.colour, block.colour2, block.params)
    parts = np.where(s <= block.x1 - block.x0, parts, 0).astype(np.int8)
    cv.paint(r0, c0, parts, z, lut, s, Y, FRONT)


def _frontage(kind: str, s, Y, mpp, height: float, colour, colour2, p: dict):
    """Part map of a frontage surface in plane coordinates (s along, Y up)."""
    s, Y = np.broadcast_arrays(s, Y)
    parts = np.zeros(s.shape, np.int8)
    inside = (Y >= 0) & (Y < height)
    if kind == "building":
        lab = T["building"]
        wall_mat = BRICK if p.get("brick") else PLASTER
        trim = colour * 0.75
        lut = Parts.of((lab, 0, colour, wall_mat), (lab, 0, colour2, GLASS), (lab, 0, trim, CONCRETE),
                       (lab, 0, colour2 * 0.8, GLASS))
        parts[inside] = 1
        floor = p["floor"]
        fy = ((Y - floor) / floor) % 1.0
        fx = ((s + p["phase"]) / p["win_spacing"]) % 1.0
        window = inside & (Y > floor) & (Y < height - 0.9) & (fy > 0.25) & (fy < 0.25 + p["win_h"])
        window &= np.abs(fx - 0.5) < p["win_w"] / 2
        parts[window] = 2
        parts[inside & (Y > height - 0.45)] = 3  # cornice
        parts[inside & (np.abs(Y - floor) < np.maximum(0.12, 0.5 * mpp))] = 3  # ground-floor band
        if p.get("shop"):
            shop = inside & (Y > 0.4) & (Y < floor * 0.78) & ((((s + p["phase"]) / 5.0) % 1.0) < 0.7)
            parts[shop] = 4
        return parts, lut
    if kind == "vegetation":
        lab = T["vegetation"]
        lut = Parts.of((lab, 0, colour, FOLIAGE), (lab, 0, colour2 * 0.8, FOLIAGE))
        ph = p.get("phase", 0.0)
        bumpy = height * (1 + 0.09 * np.sin(s * 0.9 + ph) + 0.05 * np.sin(s * 2.7 + 2 * ph))
        parts[(Y >= 0) & (Y < bumpy)] = 1
        parts[(Y >= 0) & (Y < bumpy) & (np.sin(s * 1.7 + ph) * np.sin(Y * 2.1) > 0.6)] = 2
        return parts, lut
    if kind == "wall":
        lab = T["wall"]
        lut = Parts.of((lab, 0, colour, CONCRETE), (lab, 0, colour * 0.8, CONCRETE))
        parts[inside] = 1
        parts[inside & (Y > height - np.maximum(0.15, 0.6 * mpp))] = 2
        return parts, lut
    if kind == "fence":
        lab = T["fence"]
        lut = Parts.of((lab, 0, colour2, METAL), (lab, 0, colour, METAL, 0.45))
        post = (s % 2.5) < np.maximum(0.1, 0.9 * mpp)
        rail = (np.abs(Y - height + 0.08) < np.maximum(0.06, 0.5 * mpp)) | (np.abs(Y - 0.25) < np.maximum(0.05, 0.5 * mpp))
        parts[inside] = 2
        parts[inside & (post | rail)] = 1
        if not p.get("mesh"):  # picket fence: boards with gaps
            board = ((s % 0.25) < 0.12) | (mpp > 0.1)
            parts[inside & ~(post | rail) & board] = 1
        return parts, lut
    raise ValueError(kind)


# ----------------------------------------------------------------------------- shape primitives (plane coordinates, metres)


def _rect(s, Y, s0, s1, y0, y1, mpp=0.0):
    """Rectangle, widened to at least one pixel so thin parts never vanish."""
    half_s, half_y = np.maximum((s1 - s0) / 2, 0.5 * mpp), np.maximum((y1 - y0) / 2, 0.5 * mpp)
    return (np.abs(s - (s0 + s1) / 2) <= half_s) & (np.abs(Y - (y0 + y1) / 2) <= half_y)


def _disc(s, Y, cs, cy, r, mpp=0.0):
    r = np.maximum(r, 0.55 * mpp)
    return (s - cs) ** 2 + (Y - cy) ** 2 <= r * r


def _ring(s, Y, cs, cy, r, thick, mpp=0.0):
    d = np.sqrt((s - cs) ** 2 + (Y - cy) ** 2)
    return np.abs(d - r) <= np.maximum(thick, 0.5 * mpp)


def _line(s, Y, p0, p1, half, mpp=0.0):
    """Thick segment from p0 to p1 (each (s, Y))."""
    (a0, b0), (a1, b1) = p0, p1
    da, db = a1 - a0, b1 - b0
    t = np.clip(((s - a0) * da + (Y - b0) * db) / (da * da + db * db + 1e-9), 0, 1)
    d2 = (s - a0 - t * da) ** 2 + (Y - b0 - t * db) ** 2
    half = np.maximum(half, 0.5 * mpp)
    return d2 <= half * half


def _blob(s, Y, cs, cy, rx, ry, phases, amps):
    """A leafy outline: an ellipse whose radius wobbles with the angle."""
    dx, dy = (s - cs) / rx, (Y - cy) / ry
    ang = np.arctan2(dy, dx)
    r = 1.0 + sum(a * np.sin(k * ang + ph) for k, a, ph in zip((2, 3, 5, 7), amps, phases, strict=False))
    return dx * dx + dy * dy <= r * r


# ----------------------------------------------------------------------------- vehicles


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
            wheel = _disc(s, Y, xc * L, r, r, mpp)
            parts[wheel] = 3
            parts[_disc(s, Y, xc * L, r, 0.45 * r)] = 8
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
            parts[_disc(s, Y, xc * L, r, r, mpp)] = 3
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
            parts[_disc(s, Y, xc * L, r, r, mpp)] = 3
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


def _draw_vehicle(cv: Canvas, t: Thing) -> None:
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


# ----------------------------------------------------------------------------- people and two-wheelers


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
            parts[_line(c, Y, (0.0, hip), (sgn * swing, 0.03 * h), leg, mpp)] = 3
            parts[_line(c, Y, (0.0, shoulder), (-sgn * swing * 0.6, 0.52 * h), 0.035 * h, mpp)] = 2
        torso = (Y >= hip - 0.02 * h) & (Y < shoulder + 0.02 * h) & (np.abs(c) < np.maximum(0.08 * h, 0.5 * mpp))
    else:
        spread = 0.05 * h
        for sgn in (-1, 1):
            parts[_line(c, Y, (sgn * spread, hip), (sgn * spread * 1.3, 0.03 * h), leg, mpp)] = 3
            parts[_line(c, Y, (sgn * 0.15 * h, shoulder - 0.02 * h), (sgn * 0.17 * h, 0.5 * h), 0.033 * h, mpp)] = 2
        taper = 0.11 * h + 0.035 * h * np.clip((Y - hip) / (shoulder - hip), 0, 1)
        torso = (Y >= hip - 0.02 * h) & (Y < shoulder + 0.02 * h) & (np.abs(c) < np.maximum(taper, 0.5 * mpp))
    parts[torso] = 2
    parts[_rect(c, Y, -0.045 * h, 0.045 * h, shoulder, 0.87 * h, mpp)] = 1  # neck
    parts[_disc(c, Y, 0.0, 0.925 * h, 0.068 * h, mpp)] = 1
    parts[_disc(c, Y, 0.0, 0.945 * h, 0.06 * h) & (Y > 0.93 * h)] = 4  # hair
    parts[(Y < 0.03 * h) & (parts == 3)] = 5  # shoes
    if p.get("bag"):
        parts[_rect(c, Y, 0.1 * h, 0.2 * h, 0.5 * h, 0.68 * h, mpp)] = 5
    return parts


def _draw_person(cv: Canvas, t: Thing) -> None:
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
            parts[_ring(s, Y, xc, r, r - 0.03, 0.03, mpp)] = base
        for p0, p1 in (((0.35, r), (0.75, 0.33)), ((0.35, r), (0.62, 0.85)), ((0.75, 0.33), (0.62, 0.85)),
                       ((0.75, 0.33), (1.2, 0.82)), ((0.62, 0.85), (1.2, 0.82)), ((1.2, 0.82), (1.4, r)),
                       ((1.2, 0.82), (1.15, 1.0)), ((0.55, 0.9), (0.7, 0.9))):
            parts[_line(s, Y, p0, p1, 0.025, mpp)] = base + 1
        return
    r = 0.31
    for xc in (0.35, 1.75):
        parts[_disc(s, Y, xc, r, r, mpp)] = base
    body = ((s - 1.05) / 0.55) ** 2 + ((Y - 0.62) / 0.22) ** 2 <= 1
    parts[body] = base + 2
    parts[((s - 0.85) / 0.45) ** 2 + ((Y - 0.84) / 0.09) ** 2 <= 1] = base + 1  # seat
    parts[_line(s, Y, (1.75, r), (1.55, 1.05), 0.04, mpp)] = base + 1  # fork
    parts[_disc(s, Y, 1.68, 0.85, 0.07, mpp)] = base + 3  # headlight


def _two_wheeler_rear(kind: str, c, Y, mpp, parts: np.ndarray, base: int) -> None:
    """Bicycle or motorcycle from behind or in front: a wheel, handlebar and (motorcycle) body."""
    if kind == "bicycle":
        parts[_rect(c, Y, -0.02, 0.02, 0.0, 0.7, mpp)] = base
        parts[_rect(c, Y, -0.3, 0.3, 0.98, 1.02, mpp)] = base + 1
        parts[_rect(c, Y, -0.02, 0.02, 0.7, 1.0, mpp)] = base + 1
        return
    parts[_rect(c, Y, -0.07, 0.07, 0.0, 0.6, mpp)] = base
    parts[_rect(c, Y, -0.22, 0.22, 0.4, 0.85, mpp)] = base + 2
    parts[_rect(c, Y, -0.36, 0.36, 1.0, 1.05, mpp)] = base + 1
    parts[_rect(c, Y, -0.06, 0.06, 0.72, 0.8, mpp)] = base + 3


def _rider_shape_side(kind: str, s, Y, mpp, parts: np.ndarray, h: float) -> None:
    """Seated rider, leaning forward, facing +s."""
    moto = kind == "motorcycle"
    hip = (0.8, 1.0) if moto else (0.6, 0.95)
    shoulder = (1.1, 0.95 + 0.32 * h) if moto else (0.85, 0.93 + 0.33 * h)
    head = (shoulder[0] + 0.08, shoulder[1] + 0.16)
    hand = (1.5, 1.05) if moto else (1.15, 1.0)
    knee = (1.15, 0.8) if moto else (0.85, 0.65)
    foot = (0.95, 0.45) if moto else (0.72, 0.33)
    parts[_line(s, Y, hip, knee, 0.07, mpp) | _line(s, Y, knee, foot, 0.06, mpp)] = 3
    parts[_line(s, Y, hip, shoulder, 0.13, mpp)] = 2
    parts[_line(s, Y, shoulder, hand, 0.045, mpp)] = 2
    parts[_disc(s, Y, *head, 0.12 if moto else 0.11, mpp)] = 4 if moto else 1


def _rider_shape_rear(kind: str, c, Y, mpp, parts: np.ndarray, h: float) -> None:
    moto = kind == "motorcycle"
    seat = 0.9 if moto else 0.95
    top = seat + 0.45 * h * 0.62
    for sgn in (-1, 1):
        parts[_line(c, Y, (sgn * 0.1, seat), (sgn * (0.2 if moto else 0.08), 0.35), 0.065, mpp)] = 3
        parts[_line(c, Y, (sgn * 0.17, top - 0.05), (sgn * (0.36 if moto else 0.28), 1.02), 0.04, mpp)] = 2
    torso = (Y >= seat) & (Y < top) & (np.abs(c) < 0.18)
    parts[torso] = 2
    parts[_disc(c, Y, 0.0, top + 0.14, 0.13 if moto else 0.11, mpp)] = 4 if moto else 1


def _draw_rider(cv: Canvas, t: Thing) -> None:
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


def _draw_two_wheeler(cv: Canvas, t: Thing) -> None:
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


# ----------------------------------------------------------------------------- street furniture and vegetation


def _draw_tree(cv: Canvas, t: Thing) -> None:
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
    parts[_rect(c, Y, -p["trunk_w"] / 2, p["trunk_w"] / 2, 0.0, crown_bottom + 0.5, mpp)] = 1
    ry = (t.h - crown_bottom) / 2
    parts[_blob(s2, Y2, 0.0, crown_bottom + ry, t.w / 2, ry, p["phases"], p["amps"])] = 2
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)


def _draw_bush(cv: Canvas, t: Thing) -> None:
    win = cv.frontal(t.x - 0.6 * t.w, t.x + 0.6 * t.w, 0.0, t.h * 1.2, t.z)
    if win is None:
        return
    r0, c0, s, Y, mpp = win
    lab = T["vegetation"]
    lut = Parts.of((lab, 0, t.colours["leaf"], FOLIAGE))
    s2, Y2 = np.broadcast_arrays(s - 0.6 * t.w, Y)
    parts = (_blob(s2, Y2, 0.0, t.h * 0.45, t.w / 2, t.h * 0.55, t.params["phases"], t.params["amps"]) & (Y2 >= 0))
    cv.paint(r0, c0, parts.astype(np.int8), t.z, lut, s2, Y2, FRONT)


def _draw_lamp(cv: Canvas, t: Thing) -> None:
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
    parts[_rect(s2, Y2, -t.w / 2, t.w / 2, 0.0, t.h, mpp)] = 1
    if arm > 0:
        end = toward * arm
        parts[_rect(s2, Y2, min(0.0, end), max(0.0, end), t.h - 0.08, t.h, mpp)] = 1
        parts[_rect(s2, Y2, end - 0.25, end + 0.25, t.h - 0.22, t.h - 0.04, mpp)] = 1
        parts[_rect(s2, Y2, end - 0.2, end + 0.2, t.h - 0.24, t.h - 0.18)] = 2
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


def _draw_sign(cv: Canvas, t: Thing) -> None:
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
    parts[_rect(s2, Y2, -0.06, 0.06, 0.0, t.h - size / 2, mpp)] = 1
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
    parts[_rect(c, Y, -w / 2, w / 2, top - 0.95 * k, top, mpp)] = 2
    if back:
        return
    for i in range(3):
        yc = top - (0.17 + 0.3 * i) * k
        parts[_disc(c, Y, 0.0, yc, 0.1 * k) & (parts == 2)] = 4 if i == lamp else 3


def _draw_traffic_light(cv: Canvas, t: Thing) -> None:
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
    parts[_rect(s2, Y2, -0.1, 0.1, 0.0, t.h + (0.5 if reach else 0.0), mpp)] = 1
    _light_box(s2, Y2, t.h, t.w, p["lamp"], p["back"], mpp, parts)
    if reach:
        end = toward * reach
        parts[_rect(s2, Y2, min(0.0, end), max(0.0, end), t.h + 0.4, t.h + 0.5, mpp)] = 1
        _light_box(s2 - end, Y2, t.h + 0.4, t.w, p["lamp"], False, mpp, parts)
        _light_box(s2 - end * 0.55, Y2, t.h + 0.4, t.w, p["lamp"], False, mpp, parts)
    cv.paint(r0, c0, parts, t.z, lut, s2, Y2, FRONT)


DRAW = {
    "car": _draw_vehicle,
    "truck": _draw_vehicle,
    "bus": _draw_vehicle,
    "train": _draw_vehicle,
    "person": _draw_person,
    "rider_bicycle": _draw_rider,
    "rider_motorcycle": _draw_rider,
    "bicycle": _draw_two_wheeler,
    "motorcycle": _draw_two_wheeler,
    "tree": _draw_tree,
    "bush": _draw_bush,
    "lamp": _draw_lamp,
    "sign": _draw_sign,
    "traffic_light": _draw_traffic_light,
}

"""The render core: material and orientation codes, per-part properties and the Canvas.

``Canvas`` holds the geometry buffers of one image (labels, instances, depth,
materials, texture coordinates, orientation) and the pinhole camera that
projects planar patches into them; the ``draw_*`` modules paint through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene, T

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

"""Shape primitives in plane coordinates (metres): masks of rectangles, discs, rings, lines, blobs.

Each takes ``mpp`` (metres per pixel) where thin parts must stay at least one pixel wide.
"""

from __future__ import annotations

import numpy as np


def rect(s, Y, s0, s1, y0, y1, mpp=0.0):
    """Rectangle, widened to at least one pixel so thin parts never vanish."""
    half_s, half_y = np.maximum((s1 - s0) / 2, 0.5 * mpp), np.maximum((y1 - y0) / 2, 0.5 * mpp)
    return (np.abs(s - (s0 + s1) / 2) <= half_s) & (np.abs(Y - (y0 + y1) / 2) <= half_y)


def disc(s, Y, cs, cy, r, mpp=0.0):
    r = np.maximum(r, 0.55 * mpp)
    return (s - cs) ** 2 + (Y - cy) ** 2 <= r * r


def ring(s, Y, cs, cy, r, thick, mpp=0.0):
    d = np.sqrt((s - cs) ** 2 + (Y - cy) ** 2)
    return np.abs(d - r) <= np.maximum(thick, 0.5 * mpp)


def line(s, Y, p0, p1, half, mpp=0.0):
    """Thick segment from p0 to p1 (each (s, Y))."""
    (a0, b0), (a1, b1) = p0, p1
    da, db = a1 - a0, b1 - b0
    t = np.clip(((s - a0) * da + (Y - b0) * db) / (da * da + db * db + 1e-9), 0, 1)
    d2 = (s - a0 - t * da) ** 2 + (Y - b0 - t * db) ** 2
    half = np.maximum(half, 0.5 * mpp)
    return d2 <= half * half


def blob(s, Y, cs, cy, rx, ry, phases, amps):
    """A leafy outline: an ellipse whose radius wobbles with the angle."""
    dx, dy = (s - cs) / rx, (Y - cy) / ry
    ang = np.arctan2(dy, dx)
    r = 1.0 + sum(a * np.sin(k * ang + ph) for k, a, ph in zip((2, 3, 5, 7), amps, phases, strict=False))
    return dx * dx + dy * dy <= r * r


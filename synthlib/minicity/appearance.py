"""Shade geometry buffers into an image: the style's look, the weather, the sensor.

Input: a ``Canvas`` from ``render.rasterise`` (base colours, materials, texture
coordinates, surface orientation, depth). Output: HxWx3 uint8 RGB.

The steps, each controlled by the style's ``Render`` settings:
1. sky gradient and clouds;
2. each class's material (``style.materials``, patterns in ``texture.py``):
   pattern, colour cast and, after lighting, specular gloss, sampled in world
   coordinates so they shrink with distance and fade once finer than a pixel;
3. lighting: per-face sun/shade, ambient occlusion near the ground, specular
   gradients on vehicles, cast shadows of buildings, vehicles and trees;
4. the condition (fog, night, rain, snow), target style only;
5. the sensor: exposure, white balance, saturation, vignetting, blur, noise.
Labels are never touched here: a condition changes pixels, not the scene.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from . import render as R
from .layout import Scene
from .styles import Style
from .texture import apply_gloss, apply_materials

_IS_GROUND = np.zeros(256, bool)
_IS_GROUND[list(R.GROUND_MATERIALS)] = True
_IS_VERTICAL = np.zeros(256, bool)
_IS_VERTICAL[[R.FRONT, R.FACING_LEFT, R.FACING_RIGHT]] = True


@functools.cache
def _noise() -> tuple[np.ndarray, np.ndarray]:
    """Two tileable 256x256 unit-variance noise tables (fine, coarse); fixed, shared by all scenes."""
    rng = np.random.default_rng(20250101)
    out = []
    for sigma in (0.8, 2.5):
        n = ndimage.gaussian_filter(rng.normal(size=(256, 256)), sigma, mode="wrap")
        out.append(((n - n.mean()) / n.std()).astype(np.float32))
    return out[0], out[1]


def _sample(table: np.ndarray, u: np.ndarray, v: np.ndarray, scale, offset: int = 0) -> np.ndarray:
    """Nearest-texel lookup of a tileable table at world coordinates / texel size."""
    i = (np.floor(v / scale).astype(np.int64) + offset) & 255
    j = (np.floor(u / scale).astype(np.int64) + 3 * offset) & 255
    return table[i, j]


def shade(cv: R.Canvas, scene: Scene, style: Style, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The final uint8 image of a rasterised scene."""
    rs = style.render
    img = cv.colour.copy()
    sky = cv.mat == R.SKY
    _sky(cv, scene, img, sky, rs.clouds)
    apply_materials(cv, img, style.materials, rs.texture, scene.texture_seed)
    light = _face_light(cv, scene, rs.shading)
    if rs.ambient_occlusion > 0:
        light *= _occlusion(cv, rs.ambient_occlusion)
    if rs.shadows:
        light *= 1.0 - 0.4 * scene.sun * _cast_shadows(cv, scene)
    if rs.ambient_occlusion > 0:
        light *= 1.0 - 0.45 * rs.ambient_occlusion * _contact_shadows(cv, scene)
    img *= light[..., None]
    # highlights reflect the sky, and are not darkened by the surface's own shading
    apply_gloss(cv, img, style.materials, 0.5 * (scene.sky_top + scene.sky_horizon) * (1.0 + 0.15 * scene.sun))

    noise_gain = 1.0
    if condition == "fog":
        _fog(cv, img, rng)
    elif condition == "night":
        _night(cv, scene, img, rng)
        noise_gain = 3.0
    elif condition == "rain":
        _rain(cv, img, rng)
        noise_gain = 1.3
    elif condition == "snow":
        _snow(cv, scene, img, rng)

    return _sensor(img, style, rng, noise_gain, night=condition == "night")


# ----------------------------------------------------------------------------- sky and surfaces


def _sky(cv: R.Canvas, scene: Scene, img: np.ndarray, sky: np.ndarray, clouds: float) -> None:
    t = np.clip((cv.yh - cv.yc) / max(cv.yh, 1.0), 0, 1) ** 0.7
    grad = scene.sky_horizon[None, :] * (1 - t[:, None]) + scene.sky_top[None, :] * t[:, None]
    colour = np.broadcast_to(grad[:, None, :], img.shape)
    if clouds > 0:
        _, coarse = _noise()
        ys, xs = np.nonzero(sky)
        scale = cv.w / 40.0
        n = coarse[((ys / scale).astype(np.int64) + scene.texture_seed) & 255,
                   ((xs / (2 * scale)).astype(np.int64) + 7 * scene.texture_seed) & 255]
        cover = np.clip((n - 0.6 + 0.8 * clouds * (1 - scene.sun)) * clouds, 0, 0.8)[:, None]
        img[ys, xs] = colour[ys, xs] * (1 - cover) + np.float32([0.88, 0.89, 0.9]) * cover
    else:
        img[sky] = colour[sky]


def _face_light(cv: R.Canvas, scene: Scene, strength: float) -> np.ndarray:
    """Brightness per surface orientation; overcast days light both street sides alike."""
    lit, unlit = 1.0 + 0.1 * scene.sun, 0.85 - 0.2 * scene.sun
    table = np.ones(5, np.float32)
    table[R.FRONT] = 0.9
    table[R.FACING_RIGHT] = lit if scene.sun_side > 0 else unlit
    table[R.FACING_LEFT] = lit if scene.sun_side < 0 else unlit
    table = 1.0 + strength * (table - 1.0)
    return table[cv.normal]


def _occlusion(cv: R.Canvas, strength: float) -> np.ndarray:
    """Vertical surfaces darken near the ground; car paint brightens towards the roof."""
    vertical = _IS_VERTICAL[cv.normal] & (cv.mat != R.LIGHT)
    y = np.where(vertical, np.maximum(cv.tv, 0), 10.0)
    ao = 1.0 - 0.3 * strength * np.exp(-y / 0.5)
    paint = cv.mat == R.PAINT
    ao = np.where(paint, ao * (1.0 + 0.15 * strength * np.clip(cv.tv - 0.8, -1, 1)), ao)
    return ao.astype(np.float32)


def _cast_shadows(cv: R.Canvas, scene: Scene) -> np.ndarray:
    """Ground in the shadow of the frontage on the sun side, of vehicles and of trees (0 lit .. 1 shadow)."""
    shadow = np.zeros(cv.depth.shape, np.float32)
    if scene.sun <= 0:
        return shadow
    ground = _IS_GROUND[cv.mat]
    u, z = cv.tu[ground], cv.tv[ground]
    side = scene.sides[scene.sun_side]
    segs = side.segments
    z0s = np.array([s.z0 for s in segs], np.float32)
    idx = np.clip(np.searchsorted(z0s, z, side="right") - 1, 0, len(segs) - 1)
    heights = np.array([max(s.height, s.behind.height if s.behind is not None else 0.0) for s in segs], np.float32)
    offsets = np.array([s.offset for s in segs], np.float32)
    dist = offsets[idx] - scene.sun_side * u  # distance from the frontage towards the street
    shadow[ground] = (dist < heights[idx] * scene.shadow_k).astype(np.float32)
    away = -scene.sun_side
    for t in scene.things:
        if t.kind in ("car", "truck", "bus", "train") and t.view != "side":
            _ground_patch(cv, scene, shadow, t.x - t.w / 2, t.x + t.w / 2, t.z, t.z + t.length, away * t.h * scene.shadow_k, 1.0)
        elif t.kind == "tree":
            off = away * t.params["trunk_h"] * scene.shadow_k * 1.3
            _ground_patch(cv, scene, shadow, t.x + off - t.w / 2, t.x + off + t.w / 2, t.z - t.w / 3, t.z + t.w / 3, 0.0, 0.8)
    return shadow


def _contact_shadows(cv: R.Canvas, scene: Scene) -> np.ndarray:
    """Dark ground right under vehicles and people, sun or not."""
    shadow = np.zeros(cv.depth.shape, np.float32)
    for t in scene.things:
        if t.kind in ("car", "truck", "bus", "train") and t.view != "side":
            _ground_patch(cv, scene, shadow, t.x - t.w / 2 - 0.1, t.x + t.w / 2 + 0.1, t.z - 0.2, t.z + t.length, 0.0, 1.0)
        elif t.kind in ("person", "rider_bicycle", "rider_motorcycle") or t.view == "side":
            half = (t.length if t.view == "side" else t.w) / 2
            _ground_patch(cv, scene, shadow, t.x - half, t.x + half, t.z - 0.3, t.z + 0.4, 0.0, 0.7)
    return shadow


def _ground_patch(cv: R.Canvas, scene: Scene, out: np.ndarray, x0: float, x1: float, z0: float, z1: float,
                  stretch: float, value: float) -> None:
    """Raise ``out`` to ``value`` on ground pixels inside X in [x0, x1] (+stretch sideways), Z in [z0, z1]."""
    if stretch < 0:
        x0 += stretch
    else:
        x1 += stretch
    z0 = max(z0, 0.5)
    if z1 <= z0:
        return
    r0 = int(np.clip(np.floor(cv.py(0.0, z1)), 0, cv.h))
    r1 = int(np.clip(np.ceil(cv.py(0.0, z0)) + 1, 0, cv.h))
    xs = [cv.px(x, z) for x in (x0, x1) for z in (z0, z1)]
    c0 = int(np.clip(np.floor(min(xs)), 0, cv.w))
    c1 = int(np.clip(np.ceil(max(xs)) + 1, 0, cv.w))
    if r1 <= r0 or c1 <= c0:
        return
    sl = (slice(r0, r1), slice(c0, c1))
    z = cv.tv[sl]
    x = cv.tu[sl] + scene.x0 + scene.yaw * z
    m = _IS_GROUND[cv.mat[sl]] & (z >= z0) & (z <= z1) & (x >= x0) & (x <= x1)
    out[sl][m] = np.maximum(out[sl][m], value)


# ----------------------------------------------------------------------------- conditions (target style only)


def _fog(cv: R.Canvas, img: np.ndarray, rng: np.random.Generator) -> None:
    """Koschmieder haze: colour fades to the airlight with depth."""
    visibility = rng.uniform(25.0, 80.0)
    air = np.float32([0.78, 0.8, 0.82]) * rng.uniform(0.9, 1.05)
    t = np.exp(-3.0 * cv.depth / visibility)[..., None]
    img[:] = img * t + air * (1 - t)


def _night(cv: R.Canvas, scene: Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    """Dark ambient light, dark sky, lit windows, street lamps and vehicle lights with glow."""
    ambient = rng.uniform(0.1, 0.18)
    emissive = cv.mat == R.LIGHT
    glow_src = np.where(emissive[..., None], img, 0.0)
    img *= ambient * np.float32([0.8, 0.85, 1.1])
    sky = cv.mat == R.SKY
    t = np.clip((cv.yh - cv.yc) / max(cv.yh, 1.0), 0, 1)[:, None, None]
    night_sky = np.float32([0.1, 0.08, 0.07]) * (1 - t) + np.float32([0.02, 0.03, 0.06]) * t
    img[sky] = np.broadcast_to(night_sky, img.shape)[sky]
    # lit windows: a warm glow in some window cells (coarse noise picks which)
    fine, coarse = _noise()
    glass = (cv.mat == R.GLASS) & (cv.label == 2)
    if glass.any():
        pick = _sample(coarse, cv.tu[glass], cv.tv[glass], 1.5, scene.texture_seed) > 0.5
        lit = np.zeros_like(glass)
        lit[glass] = pick
        img[lit] = np.float32([0.9, 0.75, 0.45]) * rng.uniform(0.6, 1.0)
    # light pools under street lamps and in front of vehicles
    pool = np.zeros(cv.depth.shape, np.float32)
    ground = _IS_GROUND[cv.mat]
    gz, gx = cv.tv, cv.tu + scene.x0 + scene.yaw * cv.tv
    for th in scene.things:
        if th.kind == "lamp":
            d2 = (gx - th.x) ** 2 + (gz - th.z) ** 2
            pool += np.where(ground, np.exp(-d2 / (2 * (0.5 * th.h) ** 2)), 0.0)
        elif th.kind in ("car", "bus", "truck") and th.view == "front":
            d2 = ((gx - th.x) / 1.5) ** 2 + np.where(gz < th.z, (gz - th.z + 4.0) / 5.0, 10.0) ** 2
            pool += np.where(ground, 0.8 * np.exp(-d2), 0.0)
    img += (pool[..., None] * np.float32([0.85, 0.7, 0.45]) * cv.colour * 1.6).astype(np.float32)
    img[emissive] = glow_src[emissive] * 1.2
    sigma = max(cv.w / 200.0, 0.8)
    img += ndimage.gaussian_filter(glow_src, (sigma, sigma, 0)) * 1.5


def _rain(cv: R.Canvas, img: np.ndarray, rng: np.random.Generator) -> None:
    """Overcast grey light, wet dark ground with a blurred mirror sheen, and rain streaks."""
    img *= rng.uniform(0.6, 0.75)
    grey = img.mean(-1, keepdims=True)
    img[:] = grey + 0.7 * (img - grey)
    sky = cv.mat == R.SKY
    img[sky] = img[sky] * 0.3 + np.float32([0.5, 0.52, 0.55]) * 0.7
    ground = _IS_GROUND[cv.mat]
    img[ground] *= 0.65
    # a wet road mirrors what stands above it: flip about the horizon, smear vertically
    rows = np.clip((2 * cv.yh - cv.yc).astype(np.int64), 0, cv.h - 1)
    mirror = ndimage.gaussian_filter(img[rows], (max(cv.h / 40, 1), 0.5, 0))
    wet = (ground & (cv.mat != R.GRASS)).astype(np.float32)[..., None] * 0.35
    img[:] = img * (1 - wet) + mirror * wet
    # streaks: sparse bright dots smeared along a slanted line
    n = int(cv.h * cv.w / 120)
    layer = np.zeros(cv.depth.shape, np.float32)
    layer[rng.integers(0, cv.h, n), rng.integers(0, cv.w, n)] = rng.uniform(0.3, 0.8, n)
    length = max(int(cv.h / 10), 3)
    kernel = np.zeros((length, length), np.float32)
    slant = rng.uniform(-0.3, 0.3)
    for i in range(length):
        kernel[i, int(np.clip(length / 2 + slant * (i - length / 2), 0, length - 1))] = 1.0 / length
    streaks = ndimage.convolve(layer, kernel, mode="wrap") * 2.5
    img += np.clip(streaks, 0, 0.4)[..., None] * np.float32([0.8, 0.82, 0.85])


def _snow(cv: R.Canvas, scene: Scene, img: np.ndarray, rng: np.random.Generator) -> None:
    """Snow on the ground (tyre tracks on the road stay darker), frosted foliage, grey sky, flakes."""
    fine, coarse = _noise()
    white = np.float32([0.9, 0.92, 0.95])
    cover = np.zeros(cv.depth.shape, np.float32)
    cover[_IS_GROUND[cv.mat]] = 0.9
    asphalt = (cv.mat == R.ASPHALT) | (cv.mat == R.MARKING)
    if asphalt.any():
        u = cv.tu[asphalt]
        tracks = np.zeros(u.shape, bool)
        for u0, u1, _ in scene.lanes:
            c = (u0 + u1) / 2
            tracks |= (np.abs(u - c - 0.8) < 0.35) | (np.abs(u - c + 0.8) < 0.35)
        cover[asphalt] = np.where(tracks, 0.25, 0.7)
    cover[cv.mat == R.FOLIAGE] = 0.35
    patchy = 0.15 * _sample(coarse, cv.tu, cv.tv, 0.4, scene.texture_seed)
    cover = np.clip(cover + np.where(cover > 0, patchy, 0), 0, 1)[..., None]
    img[:] = img * (1 - cover) + white * cover * rng.uniform(0.85, 1.0)
    img *= rng.uniform(0.85, 1.0)
    grey = img.mean(-1, keepdims=True)
    img[:] = grey + 0.75 * (img - grey)
    sky = cv.mat == R.SKY
    img[sky] = img[sky] * 0.2 + np.float32([0.78, 0.8, 0.82]) * 0.8
    n = int(cv.h * cv.w / 70)
    ys, xs = rng.integers(0, cv.h, n), rng.integers(0, cv.w, n)
    flakes = np.zeros(cv.depth.shape, np.float32)
    flakes[ys, xs] = rng.uniform(0.4, 1.0, n)
    flakes = np.maximum(flakes, ndimage.maximum_filter(flakes, 2) * (rng.random(cv.depth.shape) < 0.3))
    img[:] = img * (1 - flakes[..., None] * 0.8) + 0.95 * flakes[..., None] * 0.8


# ----------------------------------------------------------------------------- sensor


def _sensor(img: np.ndarray, style: Style, rng: np.random.Generator, noise_gain: float, night: bool) -> np.ndarray:
    rs = style.render
    h, w = img.shape[:2]
    img *= rng.uniform(*rs.exposure) * np.float32(rs.tints[int(rng.integers(len(rs.tints)))]) / 100.0
    sat = rng.uniform(*rs.saturation)
    if sat != 1.0:
        grey = img.mean(-1, keepdims=True)
        img = grey + sat * (img - grey)
    vig = rng.uniform(*rs.vignette)
    if vig > 0:
        yy = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
        xx = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
        r2 = (yy[:, None] ** 2 + xx[None, :] ** 2) / 0.5
        img *= (1.0 - vig * r2)[..., None]
    sigma = rng.uniform(*rs.blur) * w / 256.0  # a lens property: the same blur relative to the image
    if sigma > 0.05:
        img = ndimage.gaussian_filter(img, (sigma, sigma, 0))
    # noise sigma is specified at 128x256; a smaller image averages more sensor pixels per pixel
    noise = rng.uniform(*rs.noise) * noise_gain * min(1.0, w / 256.0)
    if noise > 0:
        # shot noise grows with brightness, read noise does not; plus a little colour noise
        lum = rng.normal(0.0, 1.0, (h, w, 1)).astype(np.float32)
        chroma = rng.normal(0.0, 0.5, (h, w, 3)).astype(np.float32)
        img = img + noise * (lum + chroma) * np.sqrt(np.clip(img, 0, 1) * 0.7 + 0.3)
    if night:
        img = np.clip(img, 0, None) ** 0.9
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


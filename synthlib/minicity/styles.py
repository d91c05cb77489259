"""The three looks of minicity and the scene statistics behind each.

A style is everything that differs between domains: the camera, the layout and
class-mix statistics, the palette (per class, always within what the class
looks like in the world: roads grey, vegetation green, sky blue to white) and
the rendering (shading, textures, sensor). Nothing here permutes class colours
between domains; the gap comes from the same sources as GTA5 -> Cityscapes.

- ``flat``: low-effort source like VEIS. Flat shading, saturated palette, a wide
  field of view from a higher camera, building-heavy streets, pixel-perfect labels.
- ``game``: high-effort source like GTA5. Shading, simple textures, a warm
  sunny palette, wide roads with more trucks and terrain, pixel-perfect labels.
- ``real``: the target, like Cityscapes. Textured, overcast-to-sunny lighting
  with shadows, sensor noise, blur and vignetting, a low narrow camera, an
  ego-vehicle hood, tree-lined streets, coarse labels with void borders.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from .materials import FLAT_MATERIALS, GAME_MATERIALS, REAL_MATERIALS, Materials

Range = tuple[float, float]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Camera:
    """Pinhole camera statistics: ranges sampled per image."""

    height: Range  # metres above the road
    hfov: Range  # horizontal field of view, degrees
    horizon: Range  # horizon row as a fraction of the image height
    yaw: Range  # slope of the road direction in the camera frame (dX/dZ); shifts the vanishing point


@dataclass(frozen=True)
class Layout:
    """Street layout and class-mix statistics."""

    lanes: tuple[int, ...]  # number of lanes, sampled uniformly from this tuple
    lane_width: Range
    sidewalk: Range  # sidewalk width (m)
    p_verge: float  # chance that a side has a grass verge (terrain) between kerb and sidewalk
    verge: Range
    p_no_sidewalk: float  # chance that a side has terrain instead of a sidewalk
    segment_length: Range  # length of one facade segment along the street (m)
    segment_kinds: dict[str, float]  # building / vegetation / wall / fence / open -> weight
    building_height: Range
    setback: Range  # facade distance behind the sidewalk (m)
    p_cross: float  # chance of a cross street
    p_end_wall: float  # chance that the street ends in a facade (T-junction)
    street_length: Range
    # object rates (expected counts per image unless noted)
    parked_side: float  # chance that a side has parked vehicles
    parked_gap: Range  # gap between parked vehicles (m)
    moving_per_lane: float
    p_truck: float  # fraction of vehicles that are trucks
    p_bus: float
    p_tram: float  # chance of a tram per image
    persons: float
    p_rider: float  # chance of each rider slot (bicycle / motorcycle riders)
    riders: float  # expected riders when present
    p_moto_rider: float  # fraction of riders on motorcycles
    parked_bikes: float
    parked_motos: float
    tree_side: float  # chance that a side is lined with trees
    tree_spacing: Range
    lamp_spacing: Range
    signs: float
    p_traffic_light: float


@dataclass(frozen=True)
class Render:
    """How pixels are shaded and what the sensor adds."""

    shading: float  # strength of per-face directional lighting (0: every face the same)
    ambient_occlusion: float  # darkening near the ground and specular gradients on vehicles
    texture: float  # amplitude multiplier of material textures
    shadows: bool  # cast shadows of buildings and objects
    noise: Range  # sensor noise sigma (0-1 intensity) at 128x256; smaller images average it down
    blur: Range  # gaussian blur sigma in pixels at 128x256 (scaled with size)
    vignette: Range
    saturation: Range  # global colour saturation multiplier
    exposure: Range
    tints: tuple[RGB, ...]  # white balance / colour grading multipliers x 100, one picked per image
    hood: bool  # ego-vehicle bonnet in view, labelled void
    coarse_labels: bool  # Cityscapes-like void borders and voided small objects
    clouds: float
    # (chance of an overcast day, weakest, strongest sun): an appearance property, drawn per scene
    sun: tuple[float, float, float] = (0.0, 0.6, 1.0)


@dataclass(frozen=True)
class Palette:
    """Base colours per surface; every instance jitters around one of them."""

    sky_top: tuple[RGB, ...]
    sky_horizon: tuple[RGB, ...]
    road: tuple[RGB, ...]
    marking: tuple[RGB, ...]  # lane markings (white; some styles use yellow centre lines)
    kerb: tuple[RGB, ...]
    sidewalk: tuple[RGB, ...]
    terrain: tuple[RGB, ...]
    building: tuple[RGB, ...]
    window: tuple[RGB, ...]
    wall: tuple[RGB, ...]
    fence: tuple[RGB, ...]
    pole: tuple[RGB, ...]
    vegetation: tuple[RGB, ...]
    trunk: tuple[RGB, ...]
    skin: tuple[RGB, ...]
    clothes: tuple[RGB, ...]
    car: tuple[RGB, ...]
    truck: tuple[RGB, ...]
    bus: tuple[RGB, ...]
    tram: tuple[RGB, ...]
    bike: tuple[RGB, ...]
    jitter: float  # per-instance brightness and per-channel jitter


@dataclass(frozen=True)
class Style:
    name: str
    camera: Camera
    layout: Layout
    palette: Palette
    render: Render
    materials: Materials = field(default_factory=Materials)  # per-class surface pattern, colour cast, gloss
    code: int = field(default=0)  # stable integer that seeds the layout of this style


def _code(name: str) -> int:
    return zlib.crc32(name.encode())


_CLOTHES: tuple[RGB, ...] = (
    (40, 40, 45), (60, 60, 70), (30, 40, 80), (120, 30, 30), (200, 200, 200), (90, 70, 50),
    (50, 80, 50), (150, 120, 90), (20, 20, 20), (170, 60, 90), (70, 90, 130), (210, 180, 60),
)
_SKIN: tuple[RGB, ...] = ((230, 190, 160), (200, 150, 120), (150, 100, 70), (100, 70, 50), (240, 205, 180))


FLAT = Style(
    name="flat",
    camera=Camera(height=(1.25, 1.5), hfov=(50.0, 58.0), horizon=(0.41, 0.48), yaw=(-0.1, 0.1)),
    layout=Layout(
        lanes=(1, 2, 2, 2, 3, 3),
        lane_width=(3.0, 3.4),
        sidewalk=(2.2, 4.2),
        p_verge=0.2,
        verge=(0.8, 2.5),
        p_no_sidewalk=0.05,
        segment_length=(10.0, 28.0),
        segment_kinds={"building": 0.62, "vegetation": 0.14, "wall": 0.09, "fence": 0.08, "open": 0.07},
        building_height=(8.0, 25.0),
        setback=(0.0, 2.5),
        p_cross=0.45,
        p_end_wall=0.4,
        street_length=(55.0, 125.0),
        parked_side=0.7,
        parked_gap=(0.5, 7.0),
        moving_per_lane=0.9,
        p_truck=0.07,
        p_bus=0.05,
        p_tram=0.05,
        persons=5.5,
        p_rider=0.16,
        riders=1.5,
        p_moto_rider=0.4,
        parked_bikes=0.6,
        parked_motos=0.2,
        tree_side=0.5,
        tree_spacing=(8.0, 14.0),
        lamp_spacing=(16.0, 26.0),
        signs=3.0,
        p_traffic_light=0.45,
    ),
    palette=Palette(
        sky_top=((70, 140, 235), (90, 160, 245), (130, 175, 235), (150, 185, 225)),
        sky_horizon=((170, 210, 250), (190, 220, 250), (215, 228, 240)),
        road=((100, 100, 105), (90, 90, 95), (115, 112, 110)),
        marking=((250, 250, 250),),
        kerb=((180, 180, 180),),
        sidewalk=((200, 190, 190), (185, 185, 195), (210, 200, 180), (165, 160, 160), (175, 170, 175)),
        terrain=((140, 200, 90), (170, 200, 100), (150, 180, 80), (120, 160, 70)),
        building=(
            (235, 180, 140), (180, 200, 235), (240, 225, 150), (210, 150, 150), (220, 220, 220),
            (170, 150, 200), (240, 200, 170), (150, 190, 170), (185, 180, 170), (160, 160, 168), (180, 140, 115),
        ),
        window=((60, 90, 150), (40, 60, 110), (90, 130, 180)),
        wall=((200, 170, 120), (170, 170, 180), (220, 200, 170)),
        fence=((200, 160, 110), (130, 130, 140), (80, 110, 80)),
        pole=((120, 120, 130), (90, 90, 100)),
        vegetation=((50, 170, 40), (70, 160, 30), (40, 140, 50), (60, 125, 45), (50, 110, 40)),
        trunk=((110, 70, 40),),
        skin=_SKIN,
        clothes=_CLOTHES + ((230, 40, 40), (40, 90, 230), (240, 200, 0)),
        car=(  # the colours of real car fleets (white, black, greys dominate) in a cleaner, brighter tone
            (240, 240, 240), (235, 235, 238), (25, 25, 30), (35, 35, 45), (70, 70, 78), (60, 62, 70),
            (160, 160, 170), (220, 30, 30), (30, 60, 200), (240, 210, 20), (30, 160, 60), (240, 120, 20),
        ),
        truck=((230, 230, 230), (220, 60, 40), (40, 90, 200), (240, 180, 20)),
        bus=((240, 200, 20), (220, 40, 40), (40, 120, 220), (240, 240, 240)),
        tram=((240, 240, 240), (230, 50, 40), (250, 200, 30), (40, 160, 80)),
        bike=((220, 30, 30), (30, 30, 30), (30, 80, 200), (230, 230, 230)),
        jitter=0.08,
    ),
    render=Render(
        shading=0.5,
        ambient_occlusion=0.0,
        texture=0.0,
        shadows=False,
        noise=(0.0, 0.0),
        blur=(0.0, 0.0),
        vignette=(0.0, 0.0),
        saturation=(1.0, 1.0),
        exposure=(1.0, 1.0),
        tints=((100, 100, 100),),
        hood=False,
        coarse_labels=False,
        clouds=0.0,
    ),
    materials=FLAT_MATERIALS,
    code=_code("flat"),
)

GAME = Style(
    name="game",
    camera=Camera(height=(1.3, 1.6), hfov=(48.0, 57.0), horizon=(0.39, 0.45), yaw=(-0.1, 0.1)),
    layout=Layout(
        lanes=(1, 2, 2, 3, 3, 4),
        lane_width=(3.1, 3.5),
        sidewalk=(2.0, 4.0),
        p_verge=0.3,
        verge=(1.0, 3.0),
        p_no_sidewalk=0.08,
        segment_length=(11.0, 30.0),
        segment_kinds={"building": 0.5, "vegetation": 0.2, "wall": 0.1, "fence": 0.08, "open": 0.12},
        building_height=(7.0, 28.0),
        setback=(0.0, 3.5),
        p_cross=0.45,
        p_end_wall=0.3,
        street_length=(55.0, 135.0),
        parked_side=0.65,
        parked_gap=(0.8, 8.0),
        moving_per_lane=0.9,
        p_truck=0.1,
        p_bus=0.05,
        p_tram=0.05,
        persons=4.5,
        p_rider=0.16,
        riders=1.4,
        p_moto_rider=0.45,
        parked_bikes=0.6,
        parked_motos=0.25,
        tree_side=0.55,
        tree_spacing=(8.0, 14.0),
        lamp_spacing=(16.0, 26.0),
        signs=2.8,
        p_traffic_light=0.45,
    ),
    palette=Palette(
        sky_top=((60, 130, 220), (80, 150, 230), (100, 160, 225)),
        sky_horizon=((215, 225, 235), (235, 225, 210)),
        road=((75, 72, 70), (85, 82, 78), (65, 65, 68)),
        marking=((240, 240, 235), (235, 200, 60)),
        kerb=((170, 165, 155),),
        sidewalk=((170, 160, 145), (160, 155, 150), (185, 175, 155)),
        terrain=((120, 140, 60), (150, 140, 80), (110, 130, 50)),
        building=(
            (200, 170, 120), (190, 110, 80), (170, 165, 155), (215, 195, 160), (140, 130, 120),
            (220, 210, 190), (160, 100, 70), (120, 130, 140),
        ),
        window=((50, 70, 90), (90, 110, 120), (40, 50, 60)),
        wall=((180, 160, 130), (150, 145, 135), (200, 180, 150)),
        fence=((150, 120, 80), (120, 120, 120), (90, 90, 95)),
        pole=((100, 100, 100), (70, 75, 70)),
        vegetation=((80, 130, 40), (100, 140, 40), (70, 110, 35)),
        trunk=((90, 65, 45),),
        skin=_SKIN,
        clothes=_CLOTHES,
        car=(
            (230, 230, 230), (20, 20, 20), (30, 30, 35), (70, 70, 75), (140, 140, 145), (200, 20, 20),
            (20, 40, 140), (230, 180, 20), (20, 120, 60), (100, 20, 20), (200, 100, 20),
        ),
        truck=((220, 220, 215), (180, 50, 30), (60, 80, 120), (200, 160, 40)),
        bus=((230, 230, 230), (200, 40, 30), (50, 80, 160)),
        tram=((230, 230, 225), (200, 50, 40), (60, 120, 70)),
        bike=((20, 20, 20), (200, 30, 30), (220, 220, 220), (30, 60, 150)),
        jitter=0.12,
    ),
    render=Render(
        shading=0.8,
        ambient_occlusion=0.6,
        texture=1.0,
        shadows=True,
        noise=(0.0, 0.004),
        blur=(0.0, 0.2),
        vignette=(0.0, 0.0),
        saturation=(1.05, 1.2),
        exposure=(1.0, 1.1),
        tints=((104, 100, 94), (110, 102, 90), (106, 101, 94)),  # warm, golden-hour, sunny
        hood=False,
        coarse_labels=False,
        clouds=0.2,
    ),
    materials=GAME_MATERIALS,
    code=_code("game"),
)

REAL = Style(
    name="real",
    camera=Camera(height=(1.15, 1.35), hfov=(46.0, 54.0), horizon=(0.40, 0.46), yaw=(-0.08, 0.08)),
    layout=Layout(
        lanes=(1, 2, 2, 2, 3),
        lane_width=(2.9, 3.3),
        sidewalk=(2.0, 4.0),
        p_verge=0.3,
        verge=(0.8, 2.5),
        p_no_sidewalk=0.05,
        segment_length=(10.0, 28.0),
        segment_kinds={"building": 0.55, "vegetation": 0.2, "wall": 0.1, "fence": 0.08, "open": 0.07},
        building_height=(8.0, 22.0),
        setback=(0.0, 3.0),
        p_cross=0.4,
        p_end_wall=0.35,
        street_length=(50.0, 120.0),
        parked_side=0.8,
        parked_gap=(0.4, 5.0),
        moving_per_lane=0.8,
        p_truck=0.06,
        p_bus=0.04,
        p_tram=0.06,
        persons=6.0,
        p_rider=0.18,
        riders=1.6,
        p_moto_rider=0.3,
        parked_bikes=0.9,
        parked_motos=0.2,
        tree_side=0.65,
        tree_spacing=(7.0, 12.0),
        lamp_spacing=(15.0, 25.0),
        signs=3.0,
        p_traffic_light=0.4,
    ),
    palette=Palette(
        sky_top=((150, 175, 205), (170, 190, 215), (120, 160, 210)),
        sky_horizon=((215, 222, 230), (230, 232, 235)),
        road=((95, 95, 98), (110, 108, 108), (80, 82, 85)),
        marking=((225, 225, 220),),
        kerb=((150, 150, 148),),
        sidewalk=((150, 145, 140), (135, 132, 135), (160, 150, 140)),
        terrain=((100, 120, 60), (115, 125, 70), (90, 105, 55)),
        building=(
            (170, 165, 155), (195, 185, 165), (150, 120, 100), (130, 130, 130), (210, 205, 195),
            (175, 150, 120), (120, 105, 95), (185, 180, 185),
        ),
        window=((45, 50, 55), (70, 80, 90), (30, 35, 40)),
        wall=((150, 145, 135), (120, 115, 110), (170, 160, 145)),
        fence=((110, 105, 100), (90, 95, 90), (140, 130, 110)),
        pole=((95, 95, 95), (70, 80, 75)),
        vegetation=((60, 90, 40), (75, 100, 45), (50, 75, 35)),
        trunk=((70, 60, 50),),
        skin=_SKIN,
        clothes=_CLOTHES,
        car=(
            (220, 220, 222), (200, 200, 205), (150, 150, 155), (180, 180, 185), (90, 95, 100), (30, 30, 32),
            (40, 40, 45), (25, 35, 70), (110, 20, 20), (50, 70, 60),
        ),
        truck=((200, 200, 200), (140, 40, 30), (60, 70, 90), (180, 180, 175)),
        bus=((220, 200, 40), (200, 50, 40), (220, 220, 220), (40, 80, 150)),
        tram=((220, 200, 40), (210, 210, 210), (180, 40, 40), (40, 110, 80)),
        bike=((30, 30, 30), (100, 100, 100), (150, 30, 30), (40, 60, 110)),
        jitter=0.1,
    ),
    render=Render(
        shading=1.0,
        ambient_occlusion=1.0,
        texture=1.0,
        shadows=True,
        noise=(0.006, 0.015),
        blur=(0.6, 0.9),
        vignette=(0.15, 0.3),
        saturation=(0.75, 0.95),
        exposure=(1.0, 1.2),
        tints=((98, 102, 104), (100, 101, 100), (96, 100, 106)),  # neutral to cool, overcast
        hood=True,
        coarse_labels=True,
        clouds=0.6,
        sun=(0.4, 0.4, 1.0),
    ),
    materials=REAL_MATERIALS,
    code=_code("real"),
)

STYLE_TABLE: dict[str, Style] = {s.name: s for s in (FLAT, GAME, REAL)}

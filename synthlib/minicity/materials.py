"""Per-class materials: the surface pattern, colour cast and gloss of each class, per style.

The appearance gap of minicity v2 lives here. Each style gives every one of the
19 classes a ``Material`` (a pattern kind, its scale in metres, its contrast, a
colour cast, gloss). Because the pattern is a function of the class, no global
colour statistic can undo it: a road of cobblestones (``game``) against one of
fine asphalt grain (``real``) differs in texture, not in mean colour.

The patterns themselves and how they are applied are in ``texture.py``;
applying them changes only the pixels of a class with that class's material,
so swapping one class's material changes no other class's pixel.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from synthlib.labels import CLASS_NAMES

KINDS: tuple[str, ...] = (
    "plain", "grain", "cobble", "tiles", "slabs", "brick", "plaster", "panels", "leaves", "blobs",
    "stripes", "speckle", "brushed",
)
"""Pattern kinds: plain (none), grain (asphalt), cobble (staggered stones, dark joints), tiles
(square, thin joints), slabs (large concrete plates), brick (light mortar), plaster (blotches),
panels (large cladding, dark seams), leaves (fine high-contrast foliage), blobs (coarse
two-tone clumps), stripes (boards / siding), speckle (per-texel grit), brushed (streaks)."""


@dataclass(frozen=True)
class Material:
    """How the surface of one class looks, independent of its base colour."""

    kind: str = "plain"  # one of KINDS
    scale: float = 0.1  # size of the pattern's texel or cell in metres
    contrast: float = 0.0  # amplitude of the brightness modulation (0 none .. ~0.6 strong)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour cast of the material (RGB multiplier)
    hue: float = 0.0  # pattern-correlated yellow (bright) / blue (dark) shift: sunlit vs shaded leaves
    gloss: float = 0.0  # specular highlights on paint, glass and metal (0 matte .. 1 mirror-like)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"material kind {self.kind!r} is not one of {', '.join(KINDS)}")


FIELDS: tuple[str, ...] = tuple(n.replace(" ", "_") for n in CLASS_NAMES)
"""Field names of ``Materials``, in trainId order (spaces become underscores)."""

_PLAIN = Material()


@dataclass(frozen=True)
class Materials:
    """One Material per class (fields named like the 19 classes, e.g. ``traffic_sign``)."""

    road: Material = _PLAIN
    sidewalk: Material = _PLAIN
    building: Material = _PLAIN
    wall: Material = _PLAIN
    fence: Material = _PLAIN
    pole: Material = _PLAIN
    traffic_light: Material = _PLAIN
    traffic_sign: Material = _PLAIN
    vegetation: Material = _PLAIN
    terrain: Material = _PLAIN
    sky: Material = _PLAIN
    person: Material = _PLAIN
    rider: Material = _PLAIN
    car: Material = _PLAIN
    truck: Material = _PLAIN
    bus: Material = _PLAIN
    train: Material = _PLAIN
    motorcycle: Material = _PLAIN
    bicycle: Material = _PLAIN

    def for_class(self, train_id: int) -> Material:
        return getattr(self, FIELDS[train_id])


assert tuple(f.name for f in dataclasses.fields(Materials)) == FIELDS


# ----------------------------------------------------------------------------- materials per style
# The surfaces differ per class and style in ways only semantics can undo: a colour statistic
# over the whole image cannot turn cobblestones into asphalt or yellow-green blobs into leaves.

M = Material

# flat (VEIS-like): flat-shaded, untextured, slightly oversaturated surfaces
FLAT_MATERIALS = Materials(
    vegetation=M(tint=(0.95, 1.1, 0.9)),
    terrain=M(tint=(1.0, 1.08, 0.9)),
    car=M(tint=(1.05, 1.05, 1.05)),
)

# game (GTA5-like): textured, but with a game's materials: cobbled roads, large pavement slabs,
# brick and panel facades, bright yellow-green blob foliage, glossy vehicles with hard highlights
GAME_MATERIALS = Materials(
    road=M("cobble", 0.32, 0.45, (1.04, 1.0, 0.94)),
    sidewalk=M("slabs", 0.9, 0.4, (1.05, 1.02, 0.95)),
    building=M("brick", 0.3, 0.45, (1.05, 0.97, 0.9)),
    wall=M("stripes", 0.35, 0.35),
    fence=M("plain", gloss=0.35),
    pole=M("plain", gloss=0.5),
    traffic_light=M("plain", gloss=0.5),
    traffic_sign=M("plain", gloss=0.3),
    vegetation=M("blobs", 0.6, 0.45, (1.12, 1.18, 0.7), hue=0.6),
    terrain=M("blobs", 0.9, 0.35, (1.12, 1.08, 0.78)),
    person=M("plain", tint=(1.05, 1.02, 0.98)),
    rider=M("plain", tint=(1.05, 1.02, 0.98)),
    car=M("plain", gloss=0.75),
    truck=M("panels", 0.8, 0.2, gloss=0.55),
    bus=M("plain", gloss=0.6),
    train=M("plain", gloss=0.6),
    motorcycle=M("plain", gloss=0.7),
    bicycle=M("plain", gloss=0.5),
)

# real (Cityscapes-like): fine asphalt grain, small paving tiles, plaster facades, concrete walls,
# dark green fine-grained leaves, speckled grass, matte dusty vehicles, cloth on people
REAL_MATERIALS = Materials(
    road=M("grain", 0.04, 0.5, (0.97, 0.98, 1.0)),
    sidewalk=M("tiles", 0.3, 0.45),
    building=M("plaster", 1.4, 0.35),
    wall=M("plaster", 0.7, 0.35, (0.97, 0.97, 0.98)),
    fence=M("brushed", 0.05, 0.3),
    pole=M("brushed", 0.05, 0.2, gloss=0.05),
    traffic_light=M("plain", gloss=0.05),
    traffic_sign=M("speckle", 0.03, 0.1),
    vegetation=M("leaves", 0.07, 0.55, (0.85, 0.95, 0.85), hue=0.4),
    terrain=M("speckle", 0.05, 0.35, (0.95, 0.95, 0.9)),
    person=M("speckle", 0.03, 0.2),
    rider=M("speckle", 0.03, 0.2),
    car=M("grain", 0.05, 0.12, gloss=0.12),
    truck=M("grain", 0.05, 0.15, gloss=0.08),
    bus=M("grain", 0.05, 0.1, gloss=0.12),
    train=M("grain", 0.05, 0.1, gloss=0.12),
    motorcycle=M("grain", 0.05, 0.1, gloss=0.15),
    bicycle=M("brushed", 0.05, 0.15, gloss=0.1),
)

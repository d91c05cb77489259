"""The one Cityscapes label table of the project, and conversions around it.

Every other module takes class names, ids, trainIds and colours from here;
nothing else in the project may copy the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IGNORE = 255
"""trainId of pixels that are excluded from training and evaluation."""


@dataclass(frozen=True)
class Label:
    """One row of the Cityscapes label table (as in cityscapesScripts)."""

    name: str
    id: int
    trainId: int
    category: str
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    Label("unlabeled",             0, 255, "void",         False, True,  (0, 0, 0)),
    Label("ego vehicle",           1, 255, "void",         False, True,  (0, 0, 0)),
    Label("rectification border",  2, 255, "void",         False, True,  (0, 0, 0)),
    Label("out of roi",            3, 255, "void",         False, True,  (0, 0, 0)),
    Label("static",                4, 255, "void",         False, True,  (0, 0, 0)),
    Label("dynamic",               5, 255, "void",         False, True,  (111, 74, 0)),
    Label("ground",                6, 255, "void",         False, True,  (81, 0, 81)),
    Label("road",                  7,   0, "flat",         False, False, (128, 64, 128)),
    Label("sidewalk",              8,   1, "flat",         False, False, (244, 35, 232)),
    Label("parking",               9, 255, "flat",         False, True,  (250, 170, 160)),
    Label("rail track",           10, 255, "flat",         False, True,  (230, 150, 140)),
    Label("building",             11,   2, "construction", False, False, (70, 70, 70)),
    Label("wall",                 12,   3, "construction", False, False, (102, 102, 156)),
    Label("fence",                13,   4, "construction", False, False, (190, 153, 153)),
    Label("guard rail",           14, 255, "construction", False, True,  (180, 165, 180)),
    Label("bridge",               15, 255, "construction", False, True,  (150, 100, 100)),
    Label("tunnel",               16, 255, "construction", False, True,  (150, 120, 90)),
    Label("pole",                 17,   5, "object",       False, False, (153, 153, 153)),
    Label("polegroup",            18, 255, "object",       False, True,  (153, 153, 153)),
    Label("traffic light",        19,   6, "object",       False, False, (250, 170, 30)),
    Label("traffic sign",         20,   7, "object",       False, False, (220, 220, 0)),
    Label("vegetation",           21,   8, "nature",       False, False, (107, 142, 35)),
    Label("terrain",              22,   9, "nature",       False, False, (152, 251, 152)),
    Label("sky",                  23,  10, "sky",          False, False, (70, 130, 180)),
    Label("person",               24,  11, "human",        True,  False, (220, 20, 60)),
    Label("rider",                25,  12, "human",        True,  False, (255, 0, 0)),
    Label("car",                  26,  13, "vehicle",      True,  False, (0, 0, 142)),
    Label("truck",                27,  14, "vehicle",      True,  False, (0, 0, 70)),
    Label("bus",                  28,  15, "vehicle",      True,  False, (0, 60, 100)),
    Label("caravan",              29, 255, "vehicle",      True,  True,  (0, 0, 90)),
    Label("trailer",              30, 255, "vehicle",      True,  True,  (0, 0, 110)),
    Label("train",                31,  16, "vehicle",      True,  False, (0, 80, 100)),
    Label("motorcycle",           32,  17, "vehicle",      True,  False, (0, 0, 230)),
    Label("bicycle",              33,  18, "vehicle",      True,  False, (119, 11, 32)),
    Label("license plate",        -1,  -1, "vehicle",      False, True,  (0, 0, 142)),
)
# fmt: on

TRAIN_LABELS: tuple[Label, ...] = tuple(sorted((lb for lb in LABELS if 0 <= lb.trainId < IGNORE), key=lambda lb: lb.trainId))
NUM_CLASSES = len(TRAIN_LABELS)  # 19
CLASS_NAMES: tuple[str, ...] = tuple(lb.name for lb in TRAIN_LABELS)
THING_TRAIN_IDS: tuple[int, ...] = tuple(lb.trainId for lb in TRAIN_LABELS if lb.hasInstances)

# SYNTHIA lacks terrain, truck and train (16 classes); the 13-class protocol also
# drops wall, fence and pole, whose SYNTHIA labels are unreliable.
SYNTHIA16: tuple[int, ...] = tuple(t for t in range(NUM_CLASSES) if CLASS_NAMES[t] not in ("terrain", "truck", "train"))
SYNTHIA13: tuple[int, ...] = tuple(t for t in SYNTHIA16 if CLASS_NAMES[t] not in ("wall", "fence", "pole"))

MAX_LABEL_ID = max(lb.id for lb in LABELS)  # 33


def _build_luts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    id_to_train = np.full(256, IGNORE, np.uint8)
    id_known = np.zeros(256, bool)
    for lb in LABELS:
        if lb.id >= 0:
            id_to_train[lb.id] = lb.trainId if lb.trainId >= 0 else IGNORE
            id_known[lb.id] = True
    train_to_id = np.zeros(256, np.uint8)  # ignore -> 0 "unlabeled"
    palette = np.zeros((256, 3), np.uint8)
    for lb in TRAIN_LABELS:
        train_to_id[lb.trainId] = lb.id
        palette[lb.trainId] = lb.color
    return id_to_train, id_known, train_to_id, palette


_ID_TO_TRAIN, _ID_KNOWN, _TRAIN_TO_ID, PALETTE = _build_luts()
"""PALETTE: 256x3 uint8 colours indexed by trainId (ignore and unused ids black)."""


class LabelError(ValueError):
    """A label map holds values the label table does not define."""


def unknown_label_ids(label_ids: np.ndarray) -> list[int]:
    """The values in a labelId map that the Cityscapes table does not define."""
    values = np.unique(label_ids)
    return [int(v) for v in values if v < 0 or v > 255 or not _ID_KNOWN[int(v)]]


def label_to_train(label_ids: np.ndarray, source: str = "label map") -> np.ndarray:
    """Map Cityscapes labelIds to trainIds (uint8, 255 = ignore).

    Raises LabelError naming ``source`` when an id is not in the table.
    """
    bad = unknown_label_ids(label_ids)
    if bad:
        raise LabelError(
            f"{source} holds label ids {bad} that the Cityscapes table does not define "
            f"(0-{MAX_LABEL_ID}). Is this a labelIds file? trainId files end in _labelTrainIds.png."
        )
    return _ID_TO_TRAIN[label_ids.astype(np.intp)]


def train_to_label(train_ids: np.ndarray, source: str = "label map") -> np.ndarray:
    """Map trainIds (255 = ignore) to Cityscapes labelIds; ignore becomes 0 (unlabeled)."""
    check_train_ids(train_ids, source)
    return _TRAIN_TO_ID[train_ids.astype(np.intp)]


def check_train_ids(train_ids: np.ndarray, source: str = "label map") -> None:
    """Raise LabelError unless every value is a trainId (0-18) or 255."""
    values = np.unique(train_ids)
    bad = [int(v) for v in values if not (0 <= v < NUM_CLASSES or v == IGNORE)]
    if bad:
        raise LabelError(f"{source} holds values {bad}; trainIds are 0-{NUM_CLASSES - 1} and {IGNORE} (ignore).")


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """HxW trainIds -> HxWx3 uint8 Cityscapes colours (ignore is black)."""
    return PALETTE[train_ids.astype(np.intp) & 255]


def color_to_train(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 Cityscapes colours -> trainIds; colours not in the palette become ignore."""
    key = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    out = np.full(rgb.shape[:2], IGNORE, np.uint8)
    for lb in TRAIN_LABELS:
        r, g, b = lb.color
        out[key == ((r << 16) | (g << 8) | b)] = lb.trainId
    return out


def save_palette_png(path: str | Path, train_ids: np.ndarray) -> None:
    """Write trainIds as a paletted PNG: the pixel values stay trainIds, viewers show colours."""
    check_train_ids(train_ids, str(path))
    img = Image.fromarray(train_ids.astype(np.uint8), mode="P")
    img.putpalette(PALETTE.reshape(-1).tolist())
    img.save(path)

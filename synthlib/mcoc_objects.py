"""MCOC's objects and scores: the maps' objects, and how far a judge's predictions agree with them.

The definition (docs/design.md §5): an *object* is an instance of a map where it has
instance ids, else an 8-connected component of one class; ignore pixels (255) never
belong to one, and objects under ``min_pixels`` are not objects. An object's consistency
is the share of its pixels where the judge predicts its class, a class's consistency the
mean over its objects, an image's MCOC the mean over the classes it has (NaN without
objects). Everything is vectorised with ``np.bincount`` over object ids.

Filtering keeps an image whose MCOC reaches a threshold; rectification relabels (or sets
to ignore) an object the judge sees as ONE other class on most of its pixels.
``synthlib.mcoc`` re-exports the public names and builds the filtering stages on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from synthlib.datasets import Sample
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, TRAIN_LABELS

_BLOCK = 64  # images labelled at a time: bounds memory, keeps arrays in cache
# 8-connectivity inside each image of an NxHxW stack, nothing across images.
_STRUCTURE = np.zeros((3, 3, 3), bool)
_STRUCTURE[1] = True
#: What happens to an object the judge sees as another class: take that class, become ignore, or nothing.
RECTIFY_MODES = ("relabel", "ignore", "off")
#: Which other classes rectification may move an object to: any class, or one of its Cityscapes category.
RECTIFY_WITHIN = ("any", "category")
# Category of each trainId (flat, construction, object, nature, sky, human, vehicle).
_CATEGORY = np.unique([lb.category for lb in TRAIN_LABELS], return_inverse=True)[1]
_NUMBERS = (int, float, np.integer, np.floating)


class MCOCError(ValueError):
    """Bad maps, predictions or parameters for scoring, filtering or rectifying."""


# --- objects and scores ------------------------------------------------------------------------


@dataclass
class Objects:
    """The objects of a stack of maps.

    ``ids`` (NxHxW int32): each pixel's object, 0 = none (ignore pixels, and
    pixels of objects under ``min_pixels``). Arrays indexed by object id (entry
    0, no object, holds class 0 and 0 pixels, never the ignore id): ``cls``
    (trainId), ``image`` (index in the stack), ``pixels``.
    """

    ids: np.ndarray
    cls: np.ndarray
    image: np.ndarray
    pixels: np.ndarray

    def __len__(self) -> int:
        return len(self.cls) - 1


@dataclass
class Scores:
    """MCOC of a stack of images.

    ``image`` (N,): each image's MCOC in [0, 1], NaN without objects.
    ``classwise`` (N x 19): class-wise object consistency, NaN where the class has no object.
    ``objects``: one row per object (image, object, class, pixels, consistency).
    """

    image: np.ndarray
    classwise: np.ndarray
    objects: pd.DataFrame

    @property
    def dataset(self) -> float:
        """The mean over images that are not NaN (NaN when every image is)."""
        return nanmean(self.image)

    def class_table(self) -> pd.Series:
        """Each class's consistency averaged over the images that have it (NaN for absent classes)."""
        cw = self.classwise
        present = ~np.isnan(cw)
        sums = np.where(present, cw, 0.0).sum(0)
        counts = present.sum(0)
        values = np.divide(sums, counts, out=np.full(NUM_CLASSES, np.nan), where=counts > 0)
        return pd.Series(values, index=list(CLASS_NAMES), name="class-wise object consistency")


def objects(labels: np.ndarray, instances: np.ndarray | None = None, min_pixels: int = 1, classes: np.ndarray | None = None) -> Objects:
    """The objects of label maps (HxW or NxHxW trainIds): instances where given, else 8-connected components.

    ``classes`` (19 booleans): only objects of these classes are objects (default: all).
    """
    labels = _batch(labels, "labels")
    _check_labels(labels)
    _check_min_pixels(min_pixels)
    classes = _check_classes(classes)
    inst = None if instances is None else _check_instances(instances, labels)
    ids, cls, image, pixels = [], [np.zeros(1, np.int64)], [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
    offset = 0
    for start in range(0, len(labels), _BLOCK):
        block = slice(start, start + _BLOCK)
        found = _block_objects(labels[block], None if inst is None else inst[block], min_pixels, classes)
        found.ids[found.ids > 0] += offset
        ids.append(found.ids)
        cls.append(found.cls[1:])
        image.append(found.image[1:] + start)
        pixels.append(found.pixels[1:])
        offset += len(found)
    ids = np.concatenate(ids) if ids else np.zeros(labels.shape, np.int32)
    return Objects(ids=ids, cls=np.concatenate(cls), image=np.concatenate(image), pixels=np.concatenate(pixels))


def score(
    labels: np.ndarray,
    predictions: np.ndarray,
    instances: np.ndarray | None = None,
    min_pixels: int = 1,
    found: Objects | None = None,
) -> Scores:
    """MCOC of images whose judge predictions are ``predictions`` against the maps ``labels`` they came from.

    ``labels``, ``predictions`` (and ``instances``): HxW or NxHxW. ``found``: the
    maps' ``objects`` when already computed (``min_pixels`` is then theirs).
    """
    labels, predictions = _batch(labels, "labels"), _batch(predictions, "predictions")
    if predictions.shape != labels.shape:
        raise MCOCError(f"predictions of shape {predictions.shape} do not match the maps' shape {labels.shape}")
    if found is not None:
        return _from_objects(found, labels, predictions)
    _check_labels(labels)
    _check_min_pixels(min_pixels)
    inst = None if instances is None else _check_instances(instances, labels)
    image_scores, classwise, tables = [np.zeros(0)], [np.zeros((0, NUM_CLASSES))], []
    for start in range(0, len(labels), _BLOCK):
        block = slice(start, start + _BLOCK)
        part = _from_objects(_block_objects(labels[block], None if inst is None else inst[block], min_pixels), labels[block], predictions[block])
        image_scores.append(part.image)
        classwise.append(part.classwise)
        tables.append(part.objects.assign(image=part.objects["image"] + start))
    table = pd.concat(tables, ignore_index=True) if tables else _object_table([], [], [], [], [])
    table["object"] = np.arange(1, len(table) + 1)
    return Scores(np.concatenate(image_scores), np.concatenate(classwise), table)


def mcoc(label: np.ndarray, prediction: np.ndarray, instances: np.ndarray | None = None, min_pixels: int = 1) -> float:
    """MCOC of one image (NaN when its map has no object)."""
    return float(score(label, prediction, instances, min_pixels).image[0])


def nanmean(values) -> float:
    """The mean of the values that are not NaN; NaN when there are none (no warning)."""
    values = np.asarray(values, np.float64)
    valid = ~np.isnan(values)
    return float(values[valid].mean()) if valid.any() else math.nan


# --- filtering and rectification -----------------------------------------------------------------


def check_threshold(threshold: float, name: str = "mcoc_threshold") -> float:
    """``threshold`` as a float after checking it lies in [0, 1]."""
    if not _in_unit(threshold):
        raise MCOCError(
            f"{name} {threshold!r} must be a number in [0, 1] (MCOC is the mean share of an object's pixels the judge "
            f"agrees with); 0 keeps every image, e.g. 0.5 drops images whose objects are less than half right on average"
        )
    return float(threshold)


def keep(image_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which images survive filtering: MCOC >= ``threshold``; images without objects (NaN) are kept."""
    threshold = check_threshold(threshold)
    values = np.asarray(image_scores, np.float64)
    return np.isnan(values) | (values >= threshold)


def check_rectify(mode: str, within: str, fraction: float, names: tuple[str, str, str], numbers: tuple[type, ...] = _NUMBERS) -> None:
    """Raise ``MCOCError`` unless ``mode`` and ``within`` are known and ``fraction`` (one of ``numbers``) lies in [0, 1].

    ``names``: what the messages call the three (arguments of ``rectify``, or profile fields).
    """
    for value, valid, name in ((mode, RECTIFY_MODES, names[0]), (within, RECTIFY_WITHIN, names[1])):
        if value not in valid:
            raise MCOCError(f"{name} {value!r} unknown; valid: {', '.join(valid)}")
    if not _in_unit(fraction, numbers):
        raise MCOCError(f"{names[2]} {fraction!r} must lie in [0, 1] (e.g. 0.5: most of the object's pixels)")


def rectify(
    labels: np.ndarray,
    predictions: np.ndarray,
    instances: np.ndarray | None = None,
    min_pixels: int = 1,
    fraction: float = 0.5,
    mode: str = "relabel",
    found: Objects | None = None,
    within: str = "any",
) -> tuple[np.ndarray, pd.DataFrame]:
    """Labels with every object the judge assigns to ONE other class on more than ``fraction`` of its pixels changed.

    ``mode`` "relabel" gives the object that class, "ignore" sets it to 255,
    "off" changes nothing. ``within`` "category" only considers other classes
    of the object's Cityscapes category (a train seen as a bus, a sidewalk as
    road), "any" every class. Returns the new labels (same shape as ``labels``)
    and one row per changed object: image, object, pixels, class, to, share.
    """
    check_rectify(mode, within, fraction, ("rectification mode", "rectification scope", "rectification fraction"))
    single = np.asarray(labels).ndim == 2
    labels, predictions = _batch(labels, "labels"), _batch(predictions, "predictions")
    if predictions.shape != labels.shape:
        raise MCOCError(f"predictions of shape {predictions.shape} do not match the maps' shape {labels.shape}")
    if found is not None:
        new, table = _rectify(found, labels, predictions, fraction, mode, within)
    else:
        _check_labels(labels)
        _check_min_pixels(min_pixels)
        inst = None if instances is None else _check_instances(instances, labels)
        parts, tables, offset = [], [], 0
        for start in range(0, len(labels), _BLOCK):
            block = slice(start, start + _BLOCK)
            part = _block_objects(labels[block], None if inst is None else inst[block], min_pixels)
            new_block, changed = _rectify(part, labels[block], predictions[block], fraction, mode, within)
            parts.append(new_block)
            tables.append(changed.assign(image=changed["image"] + start, object=changed["object"] + offset))
            offset += len(part)
        new = np.concatenate(parts) if parts else labels.copy()
        table = pd.concat(tables, ignore_index=True) if tables else _rectify(objects(labels), labels, predictions, fraction, mode, within)[1]
    return (new[0] if single else new), table


def instances_of(sample: Sample) -> np.ndarray:
    """The sample's instance ids, or zeros (objects are then its 8-connected components)."""
    return sample.instances if sample.instances is not None else np.zeros(sample.label.shape, np.int32)


# --- helpers -------------------------------------------------------------------------------------


def _batch(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise MCOCError(f"{what} must be HxW or NxHxW, got shape {array.shape}")
    return array


def _check_labels(labels: np.ndarray) -> None:
    valid = (labels >= 0) & (labels < NUM_CLASSES) | (labels == IGNORE)
    if not valid.all():
        bad = np.unique(labels[~valid])
        raise MCOCError(f"maps hold values {bad[:20].tolist()}; trainIds are 0-{NUM_CLASSES - 1} and {IGNORE} (ignore)")


def _check_instances(instances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    inst = _batch(instances, "instances")
    if inst.shape != labels.shape:
        raise MCOCError(f"instances of shape {inst.shape} do not match the maps' shape {labels.shape}")
    return inst


def _check_classes(classes) -> np.ndarray | None:
    if classes is None:
        return None
    classes = np.asarray(classes)
    if classes.dtype != bool or classes.shape != (NUM_CLASSES,):
        raise MCOCError(f"classes must be {NUM_CLASSES} booleans (one per trainId), got {classes.dtype} of shape {classes.shape}")
    return classes


def _in_unit(value, numbers: tuple[type, ...] = _NUMBERS) -> bool:
    """Whether ``value`` is a number of ``numbers`` (never a bool) in [0, 1]."""
    return not isinstance(value, bool) and isinstance(value, numbers) and 0.0 <= float(value) <= 1.0


def _check_min_pixels(min_pixels: int) -> None:
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, (int, np.integer)) or min_pixels < 1:
        raise MCOCError(f"min_pixels must be an integer >= 1 (1 counts every object), got {min_pixels!r}")


def _label_block(labels: np.ndarray, instances: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Object ids (int32, 0 = none, numbered from 1) of a block of maps, and how many there are."""
    labels = labels.astype(np.uint8)
    ids = np.zeros(labels.shape, np.int32)
    count = 0
    free = labels != IGNORE
    if instances is not None:
        inst = instances.astype(np.int64)
        has = (inst != 0) & free
        if has.any():
            where = np.flatnonzero(has)
            image = where // labels[0].size
            key = (image * (int(inst.max()) + 1) + inst.reshape(-1)[where]) * NUM_CLASSES + labels.reshape(-1)[where]
            _, inverse = np.unique(key, return_inverse=True)
            ids.reshape(-1)[where] = inverse.reshape(-1) + 1
            count = int(inverse.max()) + 1
            free &= ~has
    for c in np.flatnonzero(np.bincount(labels[free], minlength=NUM_CLASSES)[:NUM_CLASSES]):
        comp, k = ndimage.label(free & (labels == c), _STRUCTURE, output=np.int32)
        comp[comp > 0] += count
        ids += comp
        count += k
    return ids, count


def _block_objects(labels: np.ndarray, instances: np.ndarray | None, min_pixels: int, classes: np.ndarray | None = None) -> Objects:
    """``Objects`` of one block of maps (image indices within the block)."""
    ids, count = _label_block(labels, instances)
    flat = ids.reshape(-1)
    pixels = np.bincount(flat, minlength=count + 1)
    cls = np.zeros(count + 1, np.int64)
    cls[flat] = labels.reshape(-1)
    image = np.zeros(count + 1, np.int64)
    image[flat] = np.repeat(np.arange(len(labels)), labels[0].size)
    # Id 0 is no object: its pixels (ignore ones among them) give it no class, image or size, so
    # arrays indexed by ``cls`` (rectification's counts, categories) never see the ignore id.
    cls[0], image[0], pixels[0] = 0, 0, 0
    keep = pixels >= min_pixels
    if classes is not None:
        keep &= classes[cls]
    keep[0] = True
    if not keep.all():  # objects under min_pixels (or of other classes) are not objects: their pixels get id 0, the rest are renumbered
        new_id = np.cumsum(keep) - 1
        new_id[~keep] = 0
        ids = new_id[ids].astype(np.int32)
    return Objects(ids=ids, cls=cls[keep], image=image[keep], pixels=pixels[keep])


def _from_objects(found: Objects, labels: np.ndarray, predictions: np.ndarray) -> Scores:
    n_images = len(labels)
    flat = found.ids.reshape(-1)
    correct = (predictions == labels).reshape(-1)
    hits = np.bincount(flat[correct], minlength=len(found) + 1)
    consistency = hits / np.maximum(found.pixels, 1)
    real = slice(1, None)
    key = found.image[real] * NUM_CLASSES + found.cls[real]
    sums = np.bincount(key, weights=consistency[real], minlength=n_images * NUM_CLASSES).reshape(n_images, NUM_CLASSES)
    counts = np.bincount(key, minlength=n_images * NUM_CLASSES).reshape(n_images, NUM_CLASSES)
    classwise = np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
    present = counts > 0
    image = np.divide(
        np.where(present, classwise, 0.0).sum(1), present.sum(1), out=np.full(n_images, np.nan), where=present.any(1)
    )
    table = _object_table(found.image[real], np.arange(1, len(found) + 1), found.cls[real], found.pixels[real], consistency[real])
    return Scores(image, classwise, table)


def _object_table(image, obj, cls, pixels, consistency) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image": np.asarray(image, np.int64),
            "object": np.asarray(obj, np.int64),
            "class": pd.Categorical.from_codes(np.asarray(cls, np.int64), categories=list(CLASS_NAMES)),
            "pixels": np.asarray(pixels, np.int64),
            "consistency": np.asarray(consistency, np.float64),
        }
    )


def _rectify(
    found: Objects, labels: np.ndarray, predictions: np.ndarray, fraction: float, mode: str, within: str = "any"
) -> tuple[np.ndarray, pd.DataFrame]:
    n = len(found) + 1
    bins = NUM_CLASSES + 1  # the last bin: predictions that are not classes
    pred = np.where(predictions < NUM_CLASSES, predictions, NUM_CLASSES).astype(np.int64)
    counts = np.bincount((found.ids.astype(np.int64) * bins + pred).reshape(-1), minlength=n * bins).reshape(n, bins)[:, :NUM_CLASSES]
    if within == "category":
        counts[_CATEGORY[found.cls][:, None] != _CATEGORY[None, :]] = -1
    counts[np.arange(n), found.cls] = -1  # the object's own class is not "another class"
    other = counts.argmax(1)
    share = counts[np.arange(n), other] / np.maximum(found.pixels, 1)
    changed = (share > fraction) & (np.arange(n) > 0) & (mode != "off")
    target = np.where(changed, other if mode == "relabel" else IGNORE, -1)
    new = labels.copy()
    mask = changed[found.ids]
    new[mask] = target[found.ids[mask]]
    rows = np.flatnonzero(changed)
    table = pd.DataFrame(
        {
            "image": found.image[rows],
            "object": rows,
            "pixels": found.pixels[rows],
            "class": [CLASS_NAMES[c] for c in found.cls[rows]],
            "to": ["ignore" if t == IGNORE else CLASS_NAMES[t] for t in target[rows]],
            "share": share[rows],
        }
    )
    return new, table

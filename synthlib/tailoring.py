"""Dataset tailoring for stage 06's training sets: coarse labels and the target's camera.

Two profile switches, each a stage ``tailored/<set>`` (train split, Cityscapes layout)
that 06 trains on in place of ``<set>``:

- ``tailor_coarse`` (pixels, 0 = off): every class region shrinks by that many pixels and
  the band between regions becomes ignore, the way Cityscapes' coarse annotation leaves
  boundaries unlabelled. Thin objects may vanish, as they do in coarse polygons.
- ``tailor_camera``: the set is cropped and zoomed back to full size so that its horizon
  falls where the target's does (the largest such crop). The target has no labels to read a
  horizon from, so its horizon is read from what the set's own segmenter predicts on the
  target's train images; the set's horizon from its labels, measured the same way.

The third part of the recipe, rare-class sampling, is the profile's ``seg_rcs_temperature``.
``benchmarks/tailoring.py`` ablates the three, alone and together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from synthlib.datasets import Dataset, Sample, write_cityscapes
from synthlib.labels import IGNORE
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit as seg
from synthlib.segmenters import predict
from synthlib.segmenters.infer import batch_of, window_of

#: The folder of the tailored sets' stages.
FOLDER = "tailored"
#: trainIds of the ground plane (road, sidewalk, terrain).
GROUND = (0, 1, 9)
#: The horizon's stand-in is the top row at least half ground: a lower share also reads the speckle of ground that a
#: source-only segmenter predicts near the target's horizon (benchmarks/tailoring.py, table tailoring_camera).
GROUND_SHARE = 0.5
#: The crop keeps at least this share of the height: a far-off estimate must not zoom on a few rows.
MIN_CROP = 0.5
#: Images the target's horizon is read from (its train split's first ones).
HORIZON_IMAGES = 64


def enabled(cfg: Profile) -> bool:
    """Whether the profile tailors 06's training sets."""
    return cfg.tailor_coarse > 0 or cfg.tailor_camera


def coarse(label: np.ndarray, radius: int) -> np.ndarray:
    """``label`` (HxW trainIds) with each region shrunk by ``radius`` pixels and the band between regions ignored."""
    if radius <= 0:
        return label.copy()
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    disk = x * x + y * y <= radius * radius
    # A pixel keeps its class when every pixel within the radius has that class: a min and a max filter agree.
    same = ndimage.minimum_filter(label, footprint=disk, mode="nearest") == ndimage.maximum_filter(
        label, footprint=disk, mode="nearest"
    )
    return np.where(same, label, np.uint8(IGNORE)).astype(np.uint8)


def horizon(labels: np.ndarray | Sequence[np.ndarray]) -> float:
    """The median over images of the top row at least half ground, as a share of the height (0 = top, 1 = bottom).

    Raises ValueError when no image shows ground.
    """
    rows = []
    for label in labels:
        share = np.isin(label, GROUND).mean(axis=1)
        ground = np.flatnonzero(share >= GROUND_SHARE)
        if ground.size:
            rows.append(ground[0] / label.shape[0])
    if not rows:
        raise ValueError(f"no image has a row at least {GROUND_SHARE:.0%} ground (trainIds {GROUND})")
    return float(np.median(rows))


def camera_crop(set_horizon: float, target_horizon: float) -> tuple[float, float]:
    """(top, size): the crop, as shares of the height, that puts ``set_horizon`` at ``target_horizon``.

    Of the crops that do, the largest (the least zoom): the horizon h maps to
    (h - top) / size, and the crop must stay within the image.
    """
    if not (0 < set_horizon < 1 and 0 < target_horizon < 1):
        raise ValueError(f"horizons {set_horizon}, {target_horizon}: expected shares of the height within (0, 1)")
    size = min(1.0, set_horizon / target_horizon, (1 - set_horizon) / (1 - target_horizon))
    size = max(size, MIN_CROP)
    top = float(np.clip(set_horizon - target_horizon * size, 0.0, 1.0 - size))
    return top, float(size)


def crop(sample: Sample, top: float, size: float) -> Sample:
    """``sample`` cropped to rows [top, top + size) and the centred ``size`` share of the width, resized back."""
    h, w = sample.label.shape
    if size >= 1.0:
        return sample
    ch, cw = max(1, round(size * h)), max(1, round(size * w))
    y0, x0 = min(round(top * h), h - ch), (w - cw) // 2

    def resized(a: np.ndarray | None, resample: Image.Resampling) -> np.ndarray | None:
        if a is None:
            return None
        part = np.ascontiguousarray(a[y0 : y0 + ch, x0 : x0 + cw])
        return np.asarray(Image.fromarray(part).resize((w, h), resample)).astype(a.dtype)

    return Sample(
        image=resized(sample.image, Image.Resampling.BILINEAR),
        label=resized(sample.label, Image.Resampling.NEAREST),
        depth=resized(sample.depth, Image.Resampling.BILINEAR),
        instances=resized(sample.instances, Image.Resampling.NEAREST),
        id=sample.id,
        meta=sample.meta,
    )


class Tailored(Dataset):
    """``dataset`` cropped to (top, size) (when given), then with coarse labels of ``radius`` pixels."""

    def __init__(self, dataset: Dataset, radius: int, camera: tuple[float, float] | None) -> None:
        self.dataset, self.radius, self.camera = dataset, radius, camera
        self.name = f"{getattr(dataset, 'name', 'dataset')} (tailored)"

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Sample:
        sample = self.dataset[self._check_index(index)]
        if self.camera is not None:
            sample = crop(sample, *self.camera)
        if self.radius > 0:
            sample = Sample(sample.image, coarse(sample.label, self.radius), sample.depth, sample.instances, sample.id, sample.meta)
        return sample


def target_horizon(run_dir: RunDir, cfg: Profile, train_set: str) -> float:
    """The target's horizon as the segmenter trained on ``train_set`` sees it on the target's train images."""
    model = seg.load_model(run_dir, seg.model_stage("supervised", train_set))
    target = run_dir.dataset(f"data/{cfg.target}", "train")
    images = np.stack([target[i].image for i in range(min(HORIZON_IMAGES, len(target)))])
    predicted, _ = predict(model, images, window_of(cfg), batch=batch_of(cfg))
    try:
        return horizon(predicted)
    except ValueError as e:
        raise ValueError(f"tailor_camera: the segmenter trained on {train_set} finds no horizon on {cfg.target}: {e}") from e


def tailor(run_dir: RunDir, cfg: Profile, train_set: str) -> str:
    """Stage ``tailored/<train_set>`` for the profile's switches; returns its name.

    With ``tailor_camera`` the set's own source-only segmenter is trained first (it is
    stage 06's row for the untailored set) to read the target's horizon.
    """
    if not enabled(cfg):
        raise ValueError("tailor: the profile tailors nothing; set tailor_coarse > 0 or tailor_camera")
    inputs = [train_set]
    if cfg.tailor_camera:  # the crop follows from these inputs: measured when the stage is built, not on every call
        seg.fit(run_dir, cfg, train_set)
        inputs += [seg.model_stage("supervised", train_set), f"data/{cfg.target}"]
    params = {"train_set": train_set, "coarse": cfg.tailor_coarse, "camera": cfg.tailor_camera}

    def build(ctx):
        if not ctx.is_main:
            return
        camera = None
        if cfg.tailor_camera:
            measured = {"set_horizon": horizon(s.label for s in run_dir.dataset(train_set, "train")),
                        "target_horizon": target_horizon(run_dir, cfg, train_set)}  # fmt: skip
            camera = camera_crop(measured["set_horizon"], measured["target_horizon"])
            ctx.info.update({k: round(v, 4) for k, v in measured.items()})
            ctx.info["crop_top"], ctx.info["crop_size"] = round(camera[0], 4), round(camera[1], 4)
        write_cityscapes(Tailored(run_dir.dataset(train_set, "train"), cfg.tailor_coarse, camera), ctx.out, "train")

    name = f"{FOLDER}/{train_set}"
    run_dir.stage(name, params, build, inputs=inputs)
    return name

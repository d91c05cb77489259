import json

import numpy as np
import pytest

from synthlib import profiles, runs, segmentation, tailoring
from synthlib.datasets import Dataset, Sample, write_cityscapes
from synthlib.labels import IGNORE


class Street(Dataset):
    """Sky above a road whose top row (the horizon) lies in [low, high) of the height, a car on it, a thin pole."""

    def __init__(self, n: int, seed: int, low: float, high: float, tint: float = 0.0) -> None:
        self.n, self.seed, self.low, self.high, self.tint = n, seed, low, high, tint

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Sample:
        rng = np.random.default_rng([self.seed, i])
        label = np.full((32, 64), 10, np.uint8)
        cut = int(rng.integers(round(self.low * 32), round(self.high * 32)))
        label[cut:] = 0
        x0 = int(rng.integers(8, 44))
        label[cut - 3 : cut + 5, x0 : x0 + 12] = 13
        label[cut - 8 : cut + 6, 2:4] = 5
        image = np.zeros((32, 64, 3), np.float32)
        for c, colour in {10: (90, 140, 220), 0: (100, 100, 100), 13: (200, 30, 30), 5: (250, 250, 40)}.items():
            image[label == c] = colour
        image = np.clip(image + self.tint + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
        return Sample(image, label, instances=(label == 13).astype(np.int32), id=f"s{i}")


def test_coarse_labels_shrink_every_region_and_ignore_the_band_between():
    label = np.zeros((20, 30), np.uint8)
    label[:, 15:] = 13
    label[:, 6:8] = 5  # a pole two pixels wide: narrower than the band, it vanishes
    out = tailoring.coarse(label, 2)
    kept = out != IGNORE
    assert (out[kept] == label[kept]).all()  # nothing relabelled, only ignored
    assert (out[:, 13:17] == IGNORE).all() and (out[:, 17:] == 13).all() and (out[:, 10:13] == 0).all()
    assert not (out == 5).any() and (out[:, 4:10] == IGNORE).all()
    assert (out[:, :4] == 0).all()  # the image's edge is no boundary
    assert (tailoring.coarse(label, 0) == label).all()
    assert (tailoring.coarse(label, 1) != IGNORE).sum() > kept.sum()  # a smaller radius keeps more


def test_horizon_is_the_top_ground_row_and_ignores_stray_pixels():
    labels = np.full((3, 40, 50), 10, np.uint8)
    for label, row in zip(labels, (16, 20, 30), strict=True):
        label[row:] = 1  # sidewalk: ground
        label[row - 3 : row, :20] = 0  # road on 40 % of the rows just above: under the half a ground row needs
    labels[:, 5, 0] = 0  # a stray road pixel
    assert tailoring.horizon(labels) == 20 / 40
    with pytest.raises(ValueError, match="no image has a row at least 50% ground"):
        tailoring.horizon(np.full((2, 8, 8), 10, np.uint8))


@pytest.mark.parametrize("set_h, target_h", [(0.3, 0.5), (0.6, 0.4), (0.45, 0.45)])
def test_the_camera_crop_moves_the_set_horizon_to_the_target_horizon(set_h, target_h):
    top, size = tailoring.camera_crop(set_h, target_h)
    assert 0 <= top and top + size <= 1 + 1e-9
    assert (set_h - top) / size == pytest.approx(target_h)
    # the largest such crop: one of its edges is the image's
    assert size == 1 or top == pytest.approx(0) or top + size == pytest.approx(1)
    label = np.full((200, 400), 10, np.uint8)
    label[round(set_h * 200) :] = 0
    cropped = tailoring.crop(Sample(np.zeros((200, 400, 3), np.uint8), label, depth=np.ones((200, 400), np.float32)), top, size)
    assert cropped.label.shape == (200, 400) and cropped.image.shape == (200, 400, 3) and cropped.depth.shape == (200, 400)
    assert abs(tailoring.horizon([cropped.label]) - target_h) <= 1 / 200
    with pytest.raises(ValueError, match="within"):
        tailoring.camera_crop(0.0, 0.5)


@pytest.fixture
def street_run(tmp_path):
    """A source whose horizon is high (rows 8-11 of 32) and a target whose horizon is low (rows 16-19)."""
    run_dir = runs.open("t", tmp_path)
    for name, (low, high, tint) in {"src": (0.25, 0.35, 0), "tgt": (0.5, 0.6, 10)}.items():

        def build(ctx, low=low, high=high, tint=tint):
            write_cityscapes(Street(24, 0, low, high, tint), ctx.out, "train", progress=False)
            write_cityscapes(Street(8, 1, low, high, tint), ctx.out, "val", progress=False)

        run_dir.stage(f"data/{name}", {"tint": tint}, build)
    cfg = profiles.load("smoke", sources=["src"], target="tgt", conditions=[], seg_steps=150, seg_workers=1)
    return run_dir, cfg


def test_tailored_sets_are_stages_that_06_trains_on(street_run, one_thread):
    run_dir, cfg = street_run
    cfg = profiles.load("smoke", **{**_overrides(cfg), "tailor_coarse": 1, "tailor_camera": True})
    models = segmentation.train_all(run_dir, cfg, with_uda=False)
    assert list(models) == ["source only (src), tailored", "oracle (tgt)"]
    assert models["source only (src), tailored"] == "models/supervised/tailored/data/src"
    info = json.loads((run_dir.stage_path("tailored/data/src") / runs.MANIFEST).read_text())["info"]
    assert info["set_horizon"] == pytest.approx(9 / 32, abs=1.5 / 32)  # from the labels: rows 8-11
    # the target's horizon as the source's segmenter sees it: no target label is read
    assert info["crop_size"] < 1 and (info["set_horizon"] - info["crop_top"]) / info["crop_size"] == pytest.approx(
        info["target_horizon"], abs=1e-3
    )
    tailored = run_dir.dataset("tailored/data/src", "train")
    source = run_dir.dataset("data/src", "train")
    assert len(tailored) == len(source)
    assert tailoring.horizon(s.label for s in tailored) > tailoring.horizon(s.label for s in source)
    assert all((s.label == IGNORE).any() for s in tailored)  # coarse: boundaries are unlabelled
    # the oracle trains on the target as it is, and an untailored profile trains on the sets as they are
    assert segmentation.train_all(run_dir, profiles.load("smoke", **_overrides(cfg)), with_uda=False) == {
        "source only (src)": "models/supervised/data/src",
        "oracle (tgt)": "models/supervised/data/tgt",
    }


def test_tailoring_refuses_bad_settings(street_run):
    run_dir, cfg = street_run
    with pytest.raises(ValueError, match="tailors nothing"):
        tailoring.tailor(run_dir, cfg, "data/src")
    with pytest.raises(profiles.ProfileError, match="tailor_coarse"):
        profiles.load("smoke", tailor_coarse=-1)


def _overrides(cfg: profiles.Profile) -> dict:
    return {"sources": cfg.sources, "target": cfg.target, "conditions": [], "seg_steps": cfg.seg_steps, "seg_workers": 1}

"""Bad input of every kind gives one clear error that names the file or field and what was expected.

Datasets on disk (corrupt, truncated, unpaired, mismatched, out-of-table, empty,
missing, unreadable), profile fields (types, ranges, names), training that
diverges, a disk that fills up mid-stage, and corrupt checkpoints and weights.
Nothing half-written is ever taken as finished.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file

from synthlib import checkpoints, data, diffusion, profiles, runs, segmenters
from synthlib.checkpoints import DivergenceError, Guard
from synthlib.datasets import DatasetError, open_dataset, write_cityscapes
from synthlib.diffusion.train import DiffusionSettings, Examples
from synthlib.fingerprints import weights_fingerprint
from synthlib.integrity import CorruptFileError, WriteError
from synthlib.profiles import ProfileError
from synthlib.segmenters import TrainSettings, fit
from synthlib.translation import cyclegan
from synthlib.translation.cyclegan import CycleGAN, CycleGANSettings
from tests.test_datasets import STEMS, H, W, make_tree, rgb, save, save_synthia
from tests.test_diffusion import Halves
from tests.test_segmenters import Stripes
from tests.test_translation import TINY as TINY_CYCLEGAN
from tests.test_translation import Scenes

# The modules, not the functions of the same name that their packages export.
segmenter_train = importlib.import_module("synthlib.segmenters.train")
diffusion_train = importlib.import_module("synthlib.diffusion.train")

NAN = float("nan")
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits for a core

SEG = TrainSettings(steps=4, checkpoint_every=2, batch_size=2, crop=(32, 32), warmup_steps=1)



def first(kind: str, root: Path):
    """Open the ``train`` split and read its first sample (errors come at either step)."""
    return open_dataset(kind, root, "train")[0]


def rx(path: Path | str) -> str:
    return re.escape(str(path))


# --- 1-10: datasets on disk ----------------------------------------------------------------


def test_01_corrupt_png_names_the_file(tmp_path):
    (image, _), _ = make_tree("cityscapes", tmp_path)
    image.write_bytes(b"\x89PNG garbage, not an image")
    with pytest.raises(DatasetError, match=rf"cannot read image {rx(image)}: .* Is the file complete\?"):
        first("cityscapes", tmp_path)


@pytest.mark.parametrize("which", ["image", "label"])
def test_02_truncated_png_names_the_file(tmp_path, which):
    pair, _ = make_tree("cityscapes", tmp_path)
    path = pair[0] if which == "image" else pair[1]
    data_ = path.read_bytes()
    path.write_bytes(data_[: len(data_) // 2])
    with pytest.raises(DatasetError, match=rf"cannot read {which} {rx(path)}: .* Re-copy or re-extract it"):
        first("cityscapes", tmp_path)


def test_03_image_without_its_label(tmp_path):
    (image, label), _ = make_tree("cityscapes", tmp_path)
    label.unlink()
    with pytest.raises(DatasetError, match=rf"1 unpaired file\(s\): image {rx(image)} has no label \(expected {rx(label)}\)"):
        open_dataset("cityscapes", tmp_path, "train")


def test_04_label_without_its_image(tmp_path):
    (image, label), _ = make_tree("gta5", tmp_path)
    image.unlink()
    with pytest.raises(DatasetError, match=rf"label {rx(label)} has no image \(expected {rx(image)}\)"):
        open_dataset("gta5", tmp_path, "train")


def test_05_image_and_label_of_different_sizes(tmp_path):
    (image, label), _ = make_tree("folder", tmp_path)
    save(image, rgb(0, H + 2, W))
    with pytest.raises(DatasetError, match=rf"{rx(image)} is {H + 2}x{W} \(height x width\) but {rx(label)} is {H}x{W}"):
        first("folder", tmp_path)


# 06: label ids outside the label table name the file and the ids: tests/test_datasets.py::test_unknown_label_ids_name_the_file_and_ids


def test_06b_labelids_255_is_ignore_not_an_error(tmp_path):
    (_, label), _ = make_tree("cityscapes", tmp_path)
    values = np.full((H, W), 7, np.uint8)  # road
    values[0, :2] = 255  # unlabelled, as some converters write it
    save(label, values)
    sample = first("cityscapes", tmp_path)
    assert (sample.label[0, :2] == 255).all() and (sample.label[1:] == 0).all()


def test_07_an_empty_split_names_the_folder(tmp_path):
    (tmp_path / "leftImg8bit" / "train" / "aachen").mkdir(parents=True)
    (tmp_path / "gtFine" / "train").mkdir(parents=True)
    folder = tmp_path / "leftImg8bit" / "train"
    with pytest.raises(DatasetError, match=rf"no files matching '<city>/\*_leftImg8bit.png' under {rx(folder)}; is this the right root and split\?"):
        open_dataset("cityscapes", tmp_path, "train")


def test_08_a_missing_split_names_it_and_what_there_is(tmp_path):
    make_tree("cityscapes", tmp_path)
    with pytest.raises(DatasetError, match=rf"cityscapes split 'val': {rx(tmp_path / 'leftImg8bit' / 'val')} is not a directory. .* holds \['train'\]"):
        open_dataset("cityscapes", tmp_path, "val")
    make_tree("gta5", tmp_path / "gta5")
    with pytest.raises(DatasetError, match="gta5 has no official 'val' split; use split='train' or 'all'"):
        open_dataset("gta5", tmp_path / "gta5", "val")


def test_09_a_root_that_is_a_file(tmp_path):
    root = tmp_path / "cityscapes.zip"
    root.write_bytes(b"PK")
    with pytest.raises(DatasetError, match=rf"cityscapes root {rx(root)} is not a directory; expected the folder that holds leftImg8bit/ and gtFine/"):
        open_dataset("cityscapes", root, "train")


@pytest.mark.parametrize("kind", ["cityscapes", "folder"])
def test_10_an_unreadable_folder_names_it(tmp_path, monkeypatch, kind):
    """The tests run as root, who may read anything: listing the folder is made to fail as it would for a user."""
    (image, _), _ = make_tree(kind, tmp_path)
    locked = image.parent  # cityscapes: one city's folder, which a glob would silently skip
    real = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DatasetError, match=rf"folder {rx(locked)} cannot be read \(Permission denied\); give this user permission"):
        open_dataset(kind, tmp_path, "train")


def test_10b_other_files_beside_the_images(tmp_path):
    """Notes, thumbnails and hidden copies are not samples; a .png that is no image is an error naming it."""
    make_tree("folder", tmp_path)
    images = tmp_path / "train" / "images"
    (images / "README.txt").write_text("downloaded from ...")
    (images / "._aachen_000000_000019.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS copy residue
    assert len(open_dataset("folder", tmp_path, "train")) == 2
    fake = images / "zz_notes.png"
    fake.write_text("not an image")
    save(tmp_path / "train" / "labels" / "zz_notes.png", np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=f"cannot read image {rx(fake)}"):
        open_dataset("folder", tmp_path, "train")[2]


def test_10c_a_label_in_rgb_instead_of_one_channel(tmp_path):
    (_, label), _ = make_tree("cityscapes", tmp_path)
    save(label, np.zeros((H, W, 3), np.uint8))
    with pytest.raises(DatasetError, match=rf"label {rx(label)} is a RGB image with 3 channels; expected one channel of ids"):
        first("cityscapes", tmp_path)


def test_10d_a_synthia_label_with_classes_above_22(tmp_path):
    make_tree("synthia", tmp_path)
    label = tmp_path / "GT/LABELS" / f"{STEMS[0]}.png"
    save_synthia(label, np.full((H, W), 40, np.uint8))
    with pytest.raises(DatasetError, match=rf"{rx(label)} holds class ids \[40\]; SYNTHIA ids are 0-22"):
        first("synthia", tmp_path)


# --- 11-16, 21: profiles -------------------------------------------------------------------


def test_11_a_field_of_the_wrong_type(tmp_path):
    with pytest.raises(ProfileError, match=r"^overrides: profile field 'seg_steps' expects int, got 'many' \(str\)"):
        profiles.load("smoke", {"seg_steps": "many"})
    config = tmp_path / "mine.yaml"
    config.write_text("base: smoke\ndiff_depth: maybe\n")
    with pytest.raises(ProfileError, match=rf"user profile {rx(config)}: profile field 'diff_depth' expects bool, got 'maybe'"):
        profiles.load(str(config))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seg_steps": 0}, "overrides: profile field seg_steps 0 must be a positive integer (>= 1)"),
        ({"diff_stage2_steps": -5}, "profile field diff_stage2_steps -5 must be a positive integer (>= 1)"),
        ({"mcoc_grid_steps": [10, 0]}, "profile field mcoc_grid_steps (10, 0) (item 0) must be a positive integer (>= 1)"),
        ({"diff_lr": 0.0}, "profile field diff_lr 0.0 must be a finite number > 0"),
        ({"seg_lr": NAN}, "profile field seg_lr nan must be a finite number > 0"),
    ],
)
def test_12_steps_and_rates_out_of_range(fields, message):
    with pytest.raises(ProfileError, match=re.escape(message)):
        profiles.load("smoke", fields)


def test_13_an_erosion_larger_than_the_image():
    with pytest.raises(ProfileError, match=re.escape("profile field diff_erosion 40 must be smaller than the image (height x width 32x64): at most 31 pixels")):
        profiles.load("smoke", diff_erosion=40)
    assert profiles.load("smoke", diff_erosion=31).diff_erosion == 31


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("mcoc_threshold", 1.5, "within [0, 1]"),
        ("pseudo_threshold", -0.1, "within [0, 1]"),
        ("diff_p_uncond", 2, "within [0, 1]"),
        ("diff_ema", 1.0, "within [0, 1); 0 disables EMA"),
    ],
)
def test_14_a_probability_or_threshold_outside_0_1(tmp_path, field, value, expected):
    config = tmp_path / "mine.yaml"
    config.write_text(f"base: smoke\n{field}: {value}\n")
    with pytest.raises(ProfileError, match=re.escape(f"user profile {config}: profile field {field} {float(value)!r} must be {expected}")):
        profiles.load(str(config))


def test_14b_an_h_w_field_with_one_number():
    with pytest.raises(ProfileError, match=re.escape("profile field seg_crop (32,) must be (h, w): two integers, or [] for the whole image")):
        profiles.load("smoke", seg_crop=[32])


def test_14c_the_builtin_profiles_are_within_their_ranges():
    for name in profiles.names():
        cfg = profiles.load(name, profiles.as_dict(profiles.PROFILES[name]) | {"name": None})  # every field checked
        assert cfg == profiles.PROFILES[name]


def test_15_an_unknown_source_name(tmp_path):
    cfg = profiles.load("smoke", sources=["flta"], conditions=[])
    with pytest.raises(DatasetError, match=r"dataset 'flta' \(from the profile's sources/target/conditions\) is not a minicity style \(flat, game, real\) and has no root"):
        data.check_roots(cfg)
    (tmp_path / "kitti").mkdir()
    with pytest.raises(DatasetError, match=r"unknown dataset kind 'kitti'; choose one of \['cityscapes'"):
        data.check_roots(profiles.load("smoke", sources=["kitti"], conditions=[], roots={"kitti": str(tmp_path / "kitti")}))


def test_16_an_unknown_profile_or_a_missing_user_profile(tmp_path):
    with pytest.raises(ProfileError, match=r"profile='defualt' is not a profile; valid profiles: smoke, default, paper"):
        profiles.load("defualt")
    missing = tmp_path / "mine.yaml"
    with pytest.raises(ProfileError, match=rf"user profile {rx(missing)} does not exist"):
        profiles.load(str(missing))


def test_21_an_unknown_set_field_or_a_typo_in_a_user_profile(tmp_path):
    with pytest.raises(ProfileError, match=r"overrides: 'seg_stepz' is not a profile field; valid fields: seed, roots"):
        profiles.load("smoke", profiles.parse_assignments(["seg_stepz=3"]))
    config = tmp_path / "mine.yaml"
    config.write_text("base: smoke\nseg_step: 3\n")
    with pytest.raises(ProfileError, match=rf"user profile {rx(config)}: 'seg_step' is not a profile field"):
        profiles.load(str(config))


# --- 17: training that diverges -------------------------------------------------------------


def _finite_file(path: Path) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in load_file(path).values())


def test_17_nan_loss_in_segmenter_training_names_the_stage_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    real = segmenter_train._Parts.losses

    def losses(self, src, tgt, step):
        out = real(self, src, tgt, step)
        return {**out, "source": out["source"] * NAN} if step >= 2 else out

    monkeypatch.setattr(segmenter_train._Parts, "losses", losses)
    run_dir = runs.open("nan", tmp_path)

    def build(ctx):
        segmenters.train(segmenters.build("mit-tiny-s2"), Stripes(4, 0), SEG, checkpoints=ctx.checkpoints, progress=False)

    with pytest.raises(DivergenceError, match=r"stage 'models/nan' \(segmenter training\) diverged: the loss is not a finite number \(source = nan\) at step 3 of 4\. Stopped before saving anything: the last good checkpoint, .*step-2, is kept"):
        run_dir.stage("models/nan", {}, build)
    assert run_dir.manifest("models/nan") is None and not run_dir.stage_path("models/nan").exists()
    [kept] = (run_dir.path / ".work" / "models" / "nan").glob("*/step-*")
    assert kept.name == "step-2" and _finite_file(kept / "model.safetensors")


def test_17b_nan_loss_in_diffusion_training(tmp_path, monkeypatch):
    real, calls = diffusion_train._loss, []

    def loss(*args, **kwargs):
        calls.append(1)
        value = real(*args, **kwargs)
        return value * NAN if len(calls) >= 3 else value

    monkeypatch.setattr(diffusion_train, "_loss", loss)
    model = diffusion.build("micro", (8, 16), "p", seed=0)
    s = DiffusionSettings(steps=4, batch_size=2, warmup_steps=1, checkpoint_every=2)
    with pytest.raises(DivergenceError, match=r"^train diffusion diverged: the loss is not a finite number \(loss = nan\) at step 3 of 4\..*step-2, is kept"):
        diffusion_train.train(model, Examples([(Halves(4, 0), 0)], model.resolution, s), ["p"], s, tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-2"] and _finite_file(tmp_path / "step-2" / "model.safetensors")


def test_17c_nan_loss_in_cyclegan_training(tmp_path, monkeypatch):
    real, calls = cyclegan.generator_losses, []

    def generator_losses(*args, **kwargs):
        calls.append(1)
        losses, fake_s, fake_t = real(*args, **kwargs)
        if len(calls) >= 3:
            losses = {**losses, "cycle_source": losses["cycle_source"] * NAN}
        return losses, fake_s, fake_t

    monkeypatch.setattr(cyclegan, "generator_losses", generator_losses)
    settings = CycleGANSettings(steps=4, decay_steps=2, **{**TINY_CYCLEGAN, "checkpoint_every": 2})
    with pytest.raises(DivergenceError, match=r"^CycleGAN training diverged: the loss is not a finite number \(cycle_source = nan\) at step 3 of 4"):
        cyclegan.train(CycleGAN.build(settings), Scenes(4, "source"), Scenes(4, "target"), settings, checkpoints=tmp_path, progress=False)
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-2"]


def test_17d_nan_weights_never_replace_the_last_good_checkpoint(tmp_path):
    accelerator = Accelerator()
    (tmp_path / "step-2").mkdir()
    guard = Guard("training", tmp_path, 8, accelerator)
    with pytest.raises(DivergenceError, match=r"training diverged: the weights hold NaN or infinite values at step 4 of 8.*step-2, is kept"):
        guard.save(accelerator, 4, {}, [torch.tensor([1.0, NAN])])
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-2"]


# --- 18: a full disk mid-stage ---------------------------------------------------------------


def _disk_full_after(monkeypatch, n: int) -> None:
    real, calls = Image.Image.save, []

    def save_(self, fp, *args, **kwargs):
        calls.append(1)
        if len(calls) > n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_)


def test_18_a_full_disk_while_writing_a_stage(tmp_path, monkeypatch):
    run_dir = runs.open("full", tmp_path)
    cfg = profiles.load("smoke", sources=["flat"], minicity_train=3, minicity_val=2)
    _disk_full_after(monkeypatch, 7)  # mid-way through the second sample's files
    with pytest.raises(WriteError, match=r"cannot write dataset file .*\.tmp/data__flat\..*_gtFine_\w+\.png: No space left on device; the disk that holds .* is full: free space there") as err:
        data.prepare(run_dir, cfg, names=["flat"])
    assert err.value.errno == errno.ENOSPC
    assert run_dir.manifest("data/flat") is None and not run_dir.stage_path("data/flat").exists()
    assert list((run_dir.path / ".tmp").iterdir()) == []
    monkeypatch.undo()  # space again: the stage builds from scratch
    data.prepare(run_dir, cfg, names=["flat"])
    assert len(run_dir.dataset("data/flat", "train")) == 3


def test_18b_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, 1)
    with pytest.raises(WriteError, match=r"No space left on device; .* The partial file was removed\."):
        write_cityscapes(Stripes(2, 0), tmp_path, "train", progress=False)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["s0_leftImg8bit.png"]


def test_18c_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    accelerator = Accelerator()
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    checkpoints.save(accelerator, tmp_path, 2, {"loss": [1.0]})

    def full(folder):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(accelerator, "save_state", full)
    with pytest.raises(WriteError, match=rf"cannot write checkpoint {rx(tmp_path / 'step-4')}: No space left on device; .* The partial checkpoint was removed, the previous one is kept\."):
        checkpoints.save(accelerator, tmp_path, 4, {"loss": [1.0, 0.5]})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-2"]
    assert checkpoints.resume(accelerator, tmp_path, {}) == 2 and model is not None


# --- 19-20: corrupt checkpoints and weights -----------------------------------------------------


@pytest.fixture(scope="module")
def segmenter_checkpoint(tmp_path_factory):
    """A segmenter-training checkpoint folder holding ``step-1``."""
    folder = tmp_path_factory.mktemp("ckpt")
    settings = TrainSettings(steps=2, checkpoint_every=1, batch_size=2, crop=(32, 32), warmup_steps=1)
    torch.set_num_threads(1)
    segmenters.train(segmenters.build("mit-tiny-s2"), Stripes(4, 0), settings, checkpoints=folder, progress=False)
    assert [p.name for p in folder.glob("step-*")] == ["step-1"]
    return folder


@pytest.mark.parametrize(
    ("file", "damage", "problem"),
    [
        ("model.safetensors", "truncate", r"its header describes \d+ bytes of tensors, the file holds \d+"),
        ("model.safetensors", "garbage", "its safetensors header claims"),
        ("optimizer.bin", "truncate", r"not a torch.save archive"),
        ("history.json", "garbage", "cannot read the step and loss history"),
    ],
)
def test_19_a_corrupt_checkpoint_names_the_file_and_says_to_delete_it(tmp_path, segmenter_checkpoint, file, damage, problem):
    folder = tmp_path / "ckpt"
    shutil.copytree(segmenter_checkpoint, folder)
    path = folder / "step-1" / file
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"\xff" * 64)
    settings = TrainSettings(steps=2, checkpoint_every=1, batch_size=2, crop=(32, 32), warmup_steps=1)
    message = rf"{rx(path)} is corrupt: {problem}.*delete the checkpoint \(rm -r {rx(folder / 'step-1')}\): segmenter training then starts from step 0"
    with pytest.raises(CorruptFileError, match=message):
        segmenters.train(segmenters.build("mit-tiny-s2"), Stripes(4, 0), settings, checkpoints=folder, progress=False)


def test_20_corrupt_segmenter_weights_of_a_stage_or_a_folder(tmp_path):
    run_dir = runs.open("w", tmp_path)
    stage = "models/supervised/data/x"
    run_dir.stage(stage, {}, lambda ctx: segmenters.save(segmenters.build("mit-tiny"), ctx.out / "model"))
    weights = run_dir.stage_path(stage) / "model" / "model.safetensors"
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(CorruptFileError, match=rf"{rx(weights)} is corrupt: .* delete the stage \(rm -r {rx(run_dir.stage_path(stage))}\)"):
        fit.load_model(run_dir, stage)
    # a user's model folder (seg_model) fails as the stage's key is made, before anything trains
    folder = tmp_path / "my-segformer"
    shutil.copytree(run_dir.stage_path(stage) / "model", folder)
    with pytest.raises(CorruptFileError, match=rf"{rx(folder / 'model.safetensors')} is corrupt: .* delete it \(rm "):
        fit.fit(run_dir, profiles.load("smoke", seg_model=str(folder)), "data/x")
    assert run_dir.stages("*/*/*/*") == [stage]  # nothing else was made


def test_20c_road_distillation_without_a_pretrained_encoder_stops_before_training(tmp_path):
    run_dir = runs.open("w", tmp_path)
    cfg = profiles.load("smoke", seg_model="mit-tiny")
    jobs = [("data/x", "supervised", None), ("data/x", "road", "data/y")]
    with pytest.raises(ValueError, match=r"method 'road': ROAD-Net's distillation imitates a pretrained encoder, but "
                                         r"seg_model 'mit-tiny' is a config with random weights"):
        fit.fit_many(run_dir, cfg, jobs)
    assert run_dir.stages("*/*/*/*") == []  # the supervised job did not train first


def test_20b_corrupt_diffusion_weights_in_a_model_folder(tmp_path):
    folder = diffusion.save(diffusion.build("micro", (8, 16), "p", seed=0), tmp_path / "sd")
    unet = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(b"\x00" * 7)
    with pytest.raises(CorruptFileError, match=rf"{rx(unet)} is corrupt: 7 bytes, too short for a safetensors file"):
        weights_fingerprint(folder)  # what every stage loading diff_model from a folder does first
    with pytest.raises(CorruptFileError, match=rf"{rx(unet)} is corrupt"):
        diffusion.train_stage1(runs.open("d", tmp_path), profiles.load("smoke", diff_model=str(folder)))


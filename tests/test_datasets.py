"""Dataset adapters and the Cityscapes writer, on tiny fixture trees in the official layouts."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image

from synthlib import labels
from synthlib.datasets import KINDS, Dataset, DatasetError, Sample, open_dataset, write_cityscapes

H, W = 8, 16
STEMS = ("aachen_000000_000019", "bochum_000000_000313")


# --- writing fixtures --------------------------------------------------------


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def save_paletted(path: Path, ids: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    im.putpalette(labels.PALETTE.reshape(-1).tolist())  # GTA5 labels are coloured, the indices are the ids
    im.save(path)
    return path


def save_synthia(path: Path, classes: np.ndarray, instances: np.ndarray | None = None) -> Path:
    """A SYNTHIA GT/LABELS file: 16-bit RGB, class in channel 0, instance in channel 1."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = classes.shape
    data = np.zeros((h, w, 3), np.uint16)
    data[..., 0] = classes
    data[..., 1] = 0 if instances is None else instances
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=False, bitdepth=16).write(f, data.reshape(h, w * 3))
    return path


# Per kind: image path, label path, label writer, a valid raw label value and its trainId, an invalid one.
def _city_paths(root: Path, stem: str) -> tuple[Path, Path]:
    city = stem.split("_")[0]
    return (
        root / "leftImg8bit/train" / city / f"{stem}_leftImg8bit.png",
        root / "gtFine/train" / city / f"{stem}_gtFine_labelIds.png",
    )


def _acdc_paths(root: Path, stem: str, condition: str = "fog") -> tuple[Path, Path]:
    seq = stem.split("_")[0]
    return (
        root / "rgb_anon" / condition / "train" / seq / f"{stem}_rgb_anon.png",
        root / "gt" / condition / "train" / seq / f"{stem}_gt_labelIds.png",
    )


LAYOUTS = {
    "cityscapes": (_city_paths, save, 7, 0, 40),
    "acdc": (_acdc_paths, save, 7, 0, 40),
    "gta5": (lambda r, s: (r / "images" / f"{s}.png", r / "labels" / f"{s}.png"), save_paletted, 26, 13, 40),
    "synthia": (lambda r, s: (r / "RGB" / f"{s}.png", r / "GT/LABELS" / f"{s}.png"), save_synthia, 3, 0, 23),
    "folder": (lambda r, s: (r / "train/images" / f"{s}.png", r / "train/labels" / f"{s}.png"), save, 0, 0, 19),
}
FILE_KINDS = tuple(LAYOUTS)


def make_tree(kind: str, root: Path) -> list[tuple[Path, Path]]:
    """Two image/label pairs of ``kind`` under ``root``; labels hold the kind's valid raw value."""
    paths, write_label, raw, _, _ = LAYOUTS[kind]
    pairs = []
    for i, stem in enumerate(STEMS):
        image, label = paths(root, stem)
        save(image, rgb(i))
        write_label(label, np.full((H, W), raw, np.uint8))
        pairs.append((image, label))
    return pairs


def load(kind: str, root: Path, index: int = 0, **options) -> Sample:
    """Open and read one sample (errors may come at either step)."""
    return open_dataset(kind, root, "train", **options)[index]


# --- every adapter -----------------------------------------------------------


def test_kinds_cover_every_adapter():
    assert set(KINDS) == set(FILE_KINDS) | {"minicity"}


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_adapter_reads_images_and_labels_lazily(kind, tmp_path):
    pairs = make_tree(kind, tmp_path)
    ds = open_dataset(kind, tmp_path, "train")
    assert isinstance(ds, Dataset) and len(ds) == 2
    samples = list(ds)
    assert [s.id for s in samples] == list(STEMS)
    expected = LAYOUTS[kind][3]
    for i, s in enumerate(samples):
        assert s.image.dtype == np.uint8 and s.image.shape == (H, W, 3)
        np.testing.assert_array_equal(s.image, rgb(i))
        assert s.label.dtype == np.uint8 and s.label.shape == (H, W)
        assert (s.label == expected).all()
    pairs[1][0].unlink()  # indexed at construction, read only on access
    with pytest.raises(DatasetError, match=str(pairs[1][0])):
        ds[1]


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_missing_root_names_the_path(kind, tmp_path):
    missing = tmp_path / "not_there"
    with pytest.raises(DatasetError, match=f"{kind} root {missing} does not exist"):
        open_dataset(kind, missing, "train")


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_split_without_files_names_the_folder(kind, tmp_path):
    pairs = make_tree(kind, tmp_path)
    for image, label in pairs:
        image.unlink()
        label.unlink()
    with pytest.raises(DatasetError, match=f"no files matching .* under {pairs[0][0].parent.parent}"):
        open_dataset(kind, tmp_path, "train")


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_image_without_label_and_label_without_image(kind, tmp_path):
    (image0, label0), (image1, label1) = make_tree(kind, tmp_path)
    label0.unlink()
    image1.unlink()
    with pytest.raises(DatasetError) as err:
        open_dataset(kind, tmp_path, "train")
    message = str(err.value)
    assert f"image {image0} has no label (expected {label0})" in message
    assert f"label {label1} has no image (expected {image1})" in message


@pytest.mark.parametrize("kind", FILE_KINDS)
def test_unknown_label_ids_name_the_file_and_ids(kind, tmp_path):
    paths, write_label, raw, _, bad = LAYOUTS[kind]
    (_, label), _ = make_tree(kind, tmp_path)
    values = np.full((H, W), raw, np.uint8)
    values[0, :3] = bad
    write_label(label, values)
    with pytest.raises(DatasetError, match=rf"{label} holds .*\[{bad}\]"):
        load(kind, tmp_path)


@pytest.mark.parametrize("kind", FILE_KINDS)
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_or_truncated_image_names_the_file(kind, damage, tmp_path):
    (image, _), _ = make_tree(kind, tmp_path)
    data = image.read_bytes()
    image.write_bytes(b"this is not a png" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"{image}"):
        load(kind, tmp_path)


@pytest.mark.parametrize("kind", ["cityscapes", "synthia"])
def test_truncated_label_names_the_file(kind, tmp_path):
    (_, label), _ = make_tree(kind, tmp_path)
    data = label.read_bytes()
    label.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"cannot read label {label}"):
        load(kind, tmp_path)


@pytest.mark.parametrize("kind", [k for k in FILE_KINDS if k != "gta5"])  # gta5 skips such pairs, see below
def test_size_mismatch_names_both_files_and_sizes(kind, tmp_path):
    (image, label), _ = make_tree(kind, tmp_path)
    save(image, rgb(0, H, W - 4))
    with pytest.raises(DatasetError, match=f"{image} is {H}x{W - 4} .* but {label} is {H}x{W}"):
        load(kind, tmp_path)


def test_unknown_kind_lists_the_kinds(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown dataset kind 'kitti'.*'cityscapes', 'acdc', 'gta5'"):
        open_dataset("kitti", tmp_path, "train")


# --- Cityscapes --------------------------------------------------------------


def test_cityscapes_label_ids_instances_depth_and_meta(tmp_path):
    image, label = _city_paths(tmp_path, STEMS[0])
    save(image, rgb(0))
    ids = np.zeros((H, W), np.uint8)
    ids[:4] = 7  # road
    ids[4:, :8] = 26  # car
    ids[4:, 8:] = 24  # person
    ids[0, 0] = 0  # unlabeled
    save(label, ids)
    inst = ids.astype(np.uint16)
    inst[4:, :4], inst[4:, 4:8], inst[4:, 8:] = 26000, 26001, 24000
    inst[7, 15] = 24  # a person pixel without instance
    save(label.with_name(f"{STEMS[0]}_gtFine_instanceIds.png"), inst)
    depth = np.zeros((H, W), np.uint16)
    depth[:, 1:] = 512 + 3  # 2 m + 3/256
    save(tmp_path / "depth/train/aachen" / f"{STEMS[0]}_depth.png", depth)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/train.json").write_text(json.dumps({STEMS[0]: {"seed": 3}}))

    s = open_dataset("cityscapes", tmp_path, "train")[0]
    assert s.id == "aachen_000000_000019" and s.meta == {"seed": 3}
    assert s.label[0, 0] == 255 and (s.label[:4].ravel()[1:] == 0).all()
    assert (s.label[4:, :8] == 13).all() and (s.label[4:, 8:] == 11).all()
    assert s.instances.dtype == np.int32
    assert set(np.unique(s.instances)) == {0, 24000, 26000, 26001}
    assert s.instances[0, 0] == 0 and s.instances[7, 15] == 0 and s.instances[4, 5] == 26001
    assert s.depth.dtype == np.float32 and s.depth[0, 0] == 0.0 and s.depth[0, 1] == pytest.approx(2 + 3 / 256)


def test_cityscapes_without_optional_files_and_missing_split(tmp_path):
    make_tree("cityscapes", tmp_path)
    s = open_dataset("cityscapes", tmp_path, "train")[1]
    assert s.instances is None and s.depth is None and s.meta == {}
    with pytest.raises(DatasetError, match=f"split 'val'.*{tmp_path / 'leftImg8bit/val'} is not a directory.*'train'"):
        open_dataset("cityscapes", tmp_path, "val")


# --- ACDC --------------------------------------------------------------------


def test_acdc_conditions(tmp_path):
    save(_acdc_paths(tmp_path, "GOPR0475_frame_000041", "fog")[0], rgb(0))
    save(_acdc_paths(tmp_path, "GOPR0475_frame_000041", "fog")[1], np.full((H, W), 26, np.uint8))
    save(_acdc_paths(tmp_path, "GP010376_frame_000001", "night")[0], rgb(1))
    save(_acdc_paths(tmp_path, "GP010376_frame_000001", "night")[1], np.full((H, W), 23, np.uint8))

    both = open_dataset("acdc", tmp_path, "train")
    assert both.conditions == ("fog", "night") and len(both) == 2
    assert [(s.id, s.meta["condition"], int(s.label[0, 0])) for s in both] == [
        ("GOPR0475_frame_000041", "fog", 13),
        ("GP010376_frame_000001", "night", 10),
    ]
    night = open_dataset("acdc", tmp_path, "train", conditions="night")
    assert [s.id for s in night] == ["GP010376_frame_000001"]
    with pytest.raises(
        DatasetError, match=r"unknown \['haze'\]; valid conditions are \['fog', 'night', 'rain', 'snow'\]"
    ):
        open_dataset("acdc", tmp_path, "train", conditions=["fog", "haze"])
    with pytest.raises(DatasetError, match=str(tmp_path / "rgb_anon/snow/train")):
        open_dataset("acdc", tmp_path, "train", conditions=["snow"])


# --- GTA5 --------------------------------------------------------------------


def test_gta5_paletted_label_ids(tmp_path):
    image, label = tmp_path / "images/00001.png", tmp_path / "labels/00001.png"
    save(image, rgb(0))
    ids = np.array([[7, 26, 0, 11, 33, 32, 1, 23]] * H, np.uint8).repeat(2, axis=1)
    save_paletted(label, ids)
    assert Image.open(label).mode == "P"
    s = open_dataset("gta5", tmp_path, "train")[0]
    assert s.id == "00001"
    assert s.label[0, ::2].tolist() == [0, 13, 255, 2, 18, 17, 255, 10]


def test_gta5_skips_size_mismatches_with_one_warning(tmp_path):
    make_tree("gta5", tmp_path)
    bad = []
    for stem in ("02000", "03000"):
        save(tmp_path / "images" / f"{stem}.png", rgb(5, H, W + 2))
        save_paletted(tmp_path / "labels" / f"{stem}.png", np.full((H, W), 7, np.uint8))
        bad.append(tmp_path / "images" / f"{stem}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_dataset("gta5", tmp_path, "all")
    assert [s.id for s in ds] == list(STEMS)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipping 2 pair(s)" in message and all(str(p) in message for p in bad)
    assert f"({H}x{W + 2}) vs {tmp_path / 'labels/02000.png'} ({H}x{W})" in message


def test_gta5_split_and_ids_file(tmp_path):
    make_tree("gta5", tmp_path)
    (tmp_path / "subset.txt").write_text(f"{STEMS[1]}\n\n")
    assert open_dataset("gta5", tmp_path, "train", ids_file="subset.txt").ids == [STEMS[1]]
    with pytest.raises(DatasetError, match="gta5 has no official 'val' split; use split='train' or 'all'"):
        open_dataset("gta5", tmp_path, "val")
    (tmp_path / "subset.txt").write_text("99999\n")
    with pytest.raises(DatasetError, match="subset.txt lists 1 stem.*99999"):
        open_dataset("gta5", tmp_path, "train", ids_file=tmp_path / "subset.txt")


# --- SYNTHIA -----------------------------------------------------------------


def test_synthia_16bit_classes_from_first_channel(tmp_path):
    save(tmp_path / "RGB/0000000.png", rgb(0))
    classes = np.array([[3, 4, 2, 21, 5, 7, 15, 9, 6, 1, 10, 17, 8, 19, 12, 11]] * H, np.uint16)
    classes[1] = 0  # void
    classes[2] = 13  # a valid SYNTHIA id without a Cityscapes class
    classes[3] = 22
    instances = np.zeros((H, W), np.uint16)
    instances[0] = 3  # would read as road if channel 1 were taken for the class
    instances[0, 12] = 300  # car instance
    instances[0, 10] = 301  # person instance
    save_synthia(tmp_path / "GT/LABELS/0000000.png", classes, instances)
    ds = open_dataset("synthia", tmp_path, "all")
    s = ds[0]
    assert s.id == "0000000"
    assert s.label[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 17, 18]
    assert (s.label[1:4] == 255).all()
    assert s.instances.dtype == np.int32
    assert s.instances[0, 12] == 300 and s.instances[0, 10] == 301
    assert (np.delete(s.instances[0], [10, 11, 12, 13, 14, 15]) == 0).all()  # stuff pixels carry no instance
    assert ds.missing_classes == (9, 14, 16)
    assert [labels.CLASS_NAMES[t] for t in ds.missing_classes] == ["terrain", "truck", "train"]


def test_synthia_ids_above_22_are_errors(tmp_path):
    save(tmp_path / "RGB/0000001.png", rgb(0))
    classes = np.full((H, W), 3, np.uint16)
    classes[0, 0], classes[0, 1] = 23, 1000
    label = save_synthia(tmp_path / "GT/LABELS/0000001.png", classes)
    with pytest.raises(DatasetError, match=rf"{label} holds class ids \[23, 1000\]; SYNTHIA ids are 0-22"):
        open_dataset("synthia", tmp_path, "train")[0]


# --- folder ------------------------------------------------------------------


def test_folder_split_folders_or_shared_images(tmp_path):
    save(tmp_path / "images/a.jpg", rgb(0))
    save(tmp_path / "labels/a.png", np.full((H, W), 255, np.uint8))
    save(tmp_path / "val/images/b.png", rgb(1))
    (tmp_path / "val/labels").mkdir()
    labels.save_palette_png(tmp_path / "val/labels/b.png", np.full((H, W), 18, np.uint8))
    assert open_dataset("folder", tmp_path, "val")[0].label[0, 0] == 18  # root/val/images exists: used
    shared = open_dataset("folder", tmp_path, "train")  # root/train/images does not: root/images
    assert shared.ids == ["a"] and (shared[0].label == 255).all() and shared[0].image.shape == (H, W, 3)


# --- writing -----------------------------------------------------------------


class ListDataset(Dataset):
    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def _sample(sample_id: str, seed: int, meta: dict | None = None) -> Sample:
    rng = np.random.default_rng(seed)
    label = rng.choice(np.array([0, 2, 8, 10, 255], np.uint8), (H, W))
    instances = np.zeros((H, W), np.int32)
    label[4:, :4], instances[4:, :4] = 13, 7  # car 7
    label[4:, 4:8], instances[4:, 4:8] = 13, 42  # car 42
    label[:4, 12:], instances[:4, 12:] = 11, 9  # person 9
    label[4:, 12:] = 11  # person pixels without instance
    depth = rng.uniform(0.5, 200, (H, W)).astype(np.float32)
    depth[0, 0] = 0.0
    return Sample(rgb(seed), label, depth, instances, sample_id, meta or {})


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist(), strict=True))
    return ((a == 0) == (b == 0)).all() and len(pairs) == len(np.unique(a)) == len(np.unique(b))


def test_write_cityscapes_round_trip(tmp_path):
    samples = [_sample("aachen_000000_000019", 0, {"seed": 3, "guidance": 1.5}), _sample("synthetic7", 1)]
    assert write_cityscapes(ListDataset(samples), tmp_path, "train", progress=False) == tmp_path
    gt = tmp_path / "gtFine/train/aachen"
    assert (tmp_path / "leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png").is_file()
    assert (tmp_path / "leftImg8bit/train/all/synthetic7_leftImg8bit.png").is_file()
    train_ids = np.asarray(Image.open(gt / "aachen_000000_000019_gtFine_labelTrainIds.png"))
    np.testing.assert_array_equal(train_ids, samples[0].label)
    raw_instances = np.asarray(Image.open(gt / "aachen_000000_000019_gtFine_instanceIds.png"))
    assert set(np.unique(raw_instances[samples[0].instances > 0])) == {26000, 26001, 24000}

    back = open_dataset("cityscapes", tmp_path, "train")
    assert back.ids == sorted(s.id for s in samples)
    for original in samples:
        s = back[back.ids.index(original.id)]
        np.testing.assert_array_equal(s.image, original.image)
        np.testing.assert_array_equal(s.label, original.label)
        assert _same_partition(s.instances, original.instances)
        assert np.abs(s.depth - original.depth).max() <= 1 / 512 and s.depth[0, 0] == 0.0
        assert s.meta == original.meta
    assert json.loads((tmp_path / "meta/train.json").read_text()) == {"aachen_000000_000019": samples[0].meta}


def test_write_cityscapes_city_argument_and_refusals(tmp_path):
    write_cityscapes(ListDataset([_sample("x_1", 0)]), tmp_path, "val", city="gen", progress=False)
    assert open_dataset("cityscapes", tmp_path, "val").ids == ["x_1"]
    assert (tmp_path / "leftImg8bit/val/gen/x_1_leftImg8bit.png").is_file()
    with pytest.raises(DatasetError, match="x_1_leftImg8bit.png already exists"):
        write_cityscapes(ListDataset([_sample("x_1", 0)]), tmp_path, "val", city="gen", progress=False)
    with pytest.raises(DatasetError, match=r"sample 0 id 'a/b' cannot be a file name part"):
        write_cityscapes(ListDataset([_sample("a/b", 0)]), tmp_path, "test", progress=False)
    bad = _sample("y_1", 0)
    bad.label[0, 0] = 19
    with pytest.raises(DatasetError, match=r"sample 0 \(y_1\) holds values \[19\]"):
        write_cityscapes(ListDataset([bad]), tmp_path, "test", progress=False)
    assert not (tmp_path / "leftImg8bit/test").exists()

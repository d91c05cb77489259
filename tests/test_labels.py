import numpy as np
import pytest
from PIL import Image

from synthlib import labels as L


def test_table_has_the_19_cityscapes_train_classes_in_order():
    assert L.NUM_CLASSES == 19
    assert L.CLASS_NAMES[0] == "road" and L.CLASS_NAMES[13] == "car" and L.CLASS_NAMES[18] == "bicycle"
    assert len(L.SYNTHIA16) == 16 and len(L.SYNTHIA13) == 13
    assert {L.CLASS_NAMES[t] for t in set(range(19)) - set(L.SYNTHIA16)} == {"terrain", "truck", "train"}
    assert {L.CLASS_NAMES[t] for t in set(L.SYNTHIA16) - set(L.SYNTHIA13)} == {"wall", "fence", "pole"}


def test_label_to_train_and_back_round_trips_every_train_class():
    train = np.arange(19, dtype=np.uint8).reshape(1, -1)
    ids = L.train_to_label(train)
    assert ids[0, 0] == 7 and ids[0, 13] == 26 and ids[0, 18] == 33
    assert np.array_equal(L.label_to_train(ids), train)


def test_void_ids_become_ignore_and_ignore_becomes_unlabeled():
    ids = np.array([[0, 1, 4, 9, 29, 30]], np.uint8)  # unlabeled, ego, static, parking, caravan, trailer
    assert (L.label_to_train(ids) == L.IGNORE).all()
    assert L.train_to_label(np.array([[255]], np.uint8))[0, 0] == 0


def test_unknown_label_ids_are_named_with_the_file():
    with pytest.raises(L.LabelError, match=r"x_labelIds.png holds label ids \[34, 40\]"):
        L.label_to_train(np.array([[7, 34, 40]], np.uint8), source="x_labelIds.png")
    with pytest.raises(L.LabelError, match=r"\[19, 200\]"):
        L.train_to_label(np.array([[0, 19, 200]], np.uint8))


def test_colour_round_trip_and_palette_png(tmp_path):
    train = np.array([[0, 10, 13], [255, 8, 18]], np.uint8)
    rgb = L.colorize(train)
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 2]) == (0, 0, 142) and tuple(rgb[1, 0]) == (0, 0, 0)
    assert np.array_equal(L.color_to_train(rgb), train)
    L.save_palette_png(tmp_path / "p.png", train)
    img = Image.open(tmp_path / "p.png")
    assert img.mode == "P" and np.array_equal(np.array(img), train)
    assert np.array_equal(np.array(img.convert("RGB")), rgb)

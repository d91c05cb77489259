import numpy as np
import pytest

from synthlib import data, profiles, runs
from synthlib.datasets import DatasetError, write_cityscapes
from tests.test_segmenters import Stripes


def _cfg(**kw):
    base = dict(minicity_train=4, minicity_val=3, minicity_condition_val=2, conditions=["fog"])
    return profiles.load("smoke", **{**base, **kw})


def test_prepare_writes_every_dataset_once_and_skips_when_unchanged(tmp_path, capsys):
    run_dir = runs.open("d", tmp_path)
    cfg = _cfg()
    paths = data.prepare(run_dir, cfg)
    assert list(paths) == ["flat", "game", "real", "real-fog"]
    assert data.dataset_names(cfg) == {"flat": "source", "game": "source", "real": "target", "real-fog": "condition"}
    real = run_dir.dataset("data/real", "train")
    assert len(real) == 4 and len(run_dir.dataset("data/real", "val")) == 3
    assert len(run_dir.dataset("data/real-fog", "val")) == 2
    with pytest.raises(DatasetError):
        run_dir.dataset("data/real-fog", "train")  # conditions are for evaluation only
    s = real[0]
    assert s.image.shape == (cfg.height, cfg.width, 3) and s.depth is not None and s.instances is not None
    assert run_dir.manifest("data/real")["info"] == {"train_images": 4, "val_images": 3}
    capsys.readouterr()
    data.prepare(run_dir, cfg)
    assert capsys.readouterr().out.count("up to date, skipped") == 4
    data.prepare(run_dir, _cfg(minicity_val=5))  # a changed size rewrites the datasets it concerns
    assert len(run_dir.dataset("data/real", "val")) == 5


def test_the_ceiling_sets_are_source_maps_in_the_target_look(tmp_path):
    run_dir = runs.open("d", tmp_path)
    cfg = _cfg()
    assert data.ceiling_names(cfg) == ["flat_as_real", "game_as_real"]
    assert data.ceiling_names(_cfg(sources=["flat"], target="cityscapes")) == []
    assert "look" not in data.source_spec("flat", cfg)["options"]  # plain styles keep their stage hashes
    data.prepare(run_dir, cfg, names=["flat", "flat_as_real"])
    flat, ceiling = run_dir.dataset("data/flat", "train"), run_dir.dataset("data/flat_as_real", "train")
    assert len(ceiling) == len(flat) == 4 and not (run_dir.stage_path("data/flat_as_real") / "leftImg8bit" / "val").exists()
    assert np.array_equal(ceiling[1].label, flat[1].label) and not np.array_equal(ceiling[1].image, flat[1].image)
    with pytest.raises(DatasetError, match="takes two minicity styles"):
        data.source_spec("flat_as_cityscapes", cfg)


def test_real_datasets_come_from_roots_and_are_capped(tmp_path):
    root = tmp_path / "cs"
    write_cityscapes(Stripes(6, 0), root, "train", progress=False)
    write_cityscapes(Stripes(4, 1), root, "val", progress=False)
    run_dir = runs.open("d", tmp_path)
    cfg = _cfg(sources=["flat"], target="cityscapes", conditions=[], max_train=5)
    data.prepare(run_dir, cfg, roots={"cityscapes": str(root)})
    assert len(run_dir.dataset("data/cityscapes", "train")) == 5
    assert len(run_dir.dataset("data/cityscapes", "val")) == 4
    assert np.array_equal(run_dir.dataset("data/cityscapes", "val")[0].label, Stripes(4, 1)[0].label)


def test_a_dataset_without_root_is_named_before_anything_is_written(tmp_path):
    run_dir = runs.open("d", tmp_path)
    with pytest.raises(DatasetError, match=r"dataset 'gta5' .* has no root: pass roots=\{'gta5': '/path/to/gta5'\}"):
        data.prepare(run_dir, _cfg(sources=["flat", "gta5"]))
    assert run_dir.stages() == []


def test_class_frequencies_count_pixels_images_and_ignore():
    table = data.class_frequencies({"s": Stripes(4, 0)})
    pixels = table[("s", "pixels %")]
    assert pixels.sum() == pytest.approx(100.0)
    assert table.loc["sky", ("s", "images %")] == 100.0 and table.loc["train", ("s", "images %")] == 0.0
    assert pixels["ignore"] == 0.0

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_translation_ceiling_decomposes_the_gap_per_seed():
    ceiling = _benchmark("translation_ceiling")
    index = pd.MultiIndex.from_tuples([("flat", "source only"), ("flat", "Lab colour transfer"), ("flat", "FDA"),
                                       ("flat", "perfect translation"), ("", "oracle")])
    per_seed = pd.DataFrame({"seed 0": [20.0, 22.0, 19.0, 38.0, 40.0], "seed 1": [10.0, 12.0, 10.0, 25.0, 30.0]}, index)
    table = ceiling.decompose(per_seed)
    assert table.loc[("flat", "source only"), "mean"] == pytest.approx(15.0)
    assert table.loc[("", "oracle"), "std"] == pytest.approx(pd.Series([40.0, 30.0]).std())
    # per seed: colour closes 2/20 and 2/20, FDA -1/20 and 0/20, perfect 18/20 and 15/20 of the gap
    assert table.loc[("flat", "Lab colour transfer"), "gap closed (%)"] == pytest.approx(10.0)
    assert table.loc[("flat", "Lab colour transfer"), "gap closed std"] == pytest.approx(0.0)
    assert table.loc[("flat", "FDA"), "gap closed (%)"] == pytest.approx(-2.5)
    assert table.loc[("flat", "perfect translation"), "gap closed (%)"] == pytest.approx(82.5)
    assert table.loc[("flat", "source only"), "gap closed (%)"] == pytest.approx(0.0)
    assert pd.isna(table.loc[("", "oracle"), "gap closed (%)"])
    assert list(table.index.names) == ["source", "training data"]


def test_tailoring_summarises_each_variant_against_the_untailored_one():
    tailoring = _benchmark("tailoring")
    results = pd.Series({("data/flat", "none", 0): 20.0, ("data/flat", "none", 1): 22.0,
                         ("data/flat", "coarse labels", 0): 19.0, ("data/flat", "coarse labels", 1): 20.0,
                         ("data/game", "coarse labels", 0): 30.0, ("data/game", "coarse labels", 1): 31.0,
                         ("data/game", "none", 0): 25.0, ("data/game", "none", 1): 27.0})  # fmt: skip
    table = tailoring.summarise(results)
    assert list(table.index) == [("data/flat", "none"), ("data/flat", "coarse labels"),
                                 ("data/game", "none"), ("data/game", "coarse labels")]  # fmt: skip
    assert table.loc[("data/flat", "coarse labels"), "mean"] == pytest.approx(19.5)
    assert table.loc[("data/flat", "coarse labels"), "mean - none"] == pytest.approx(-1.5)
    assert table.loc[("data/game", "coarse labels"), "mean - none"] == pytest.approx(4.5)
    assert table.loc[("data/game", "none"), "std"] == pytest.approx(2**0.5)
    assert list(table.columns[:2]) == ["seed 0", "seed 1"]


def test_segmenter_seeds_compares_ours_with_the_best_translation_by_its_mean_over_seeds():
    seeds = _benchmark("segmenter_seeds")
    per_seed = pd.DataFrame({
        "seed 0": [20.0, 24.0, 25.0, 23.0, 24.0, 40.0],
        "seed 1": [10.0, 16.0, 17.0, 14.0, 11.0, 30.0],
    }, index=["source only (flat)", "generated (flat)", "generated, filtered + rectified (flat)",
              "colour transfer (Lab) (flat)", "CycleGAN (flat)", seeds.ORACLE])  # fmt: skip
    table = seeds.margins(per_seed, ["flat"], ["colour transfer (Lab)", "CycleGAN"])
    row = table.loc["flat"]
    # colour's mean 18.5 beats CycleGAN's 17.5 although CycleGAN wins seed 0
    assert row["best translation"] == "colour transfer (Lab)"
    assert row["ours"] == pytest.approx(21.0) and row["margin"] == pytest.approx(2.5)
    pooled = ((pd.Series([25.0, 17.0]).std() ** 2 + pd.Series([23.0, 14.0]).std() ** 2) / 2) ** 0.5
    assert row["2 x pooled std"] == pytest.approx(2 * pooled)
    # per seed, ours closes 5/20 and 7/20 of the gap: 30 % on average; colour 3/20 and 4/20
    assert row["ours gap closed %"] == pytest.approx(30.0)
    assert row["best translation gap closed %"] == pytest.approx(17.5)
    assert row["unfiltered"] == pytest.approx(20.0)


def test_the_editors_layout_score_is_one_for_the_same_edges_and_falls_without_them():
    editor_settings = _benchmark("editor_settings")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 16, 3), dtype=np.uint8)
    assert editor_settings.edge_correlation(images, images) == pytest.approx(1.0)
    assert editor_settings.edge_correlation(images, (images // 2 + 10).astype(np.uint8)) == pytest.approx(1.0, abs=0.01)  # darker, same edges
    assert abs(editor_settings.edge_correlation(images, rng.integers(0, 256, images.shape, dtype=np.uint8))) < 0.3


def test_the_latent_ceiling_keeps_images_at_their_size_and_loses_detail_only_through_a_bottleneck():
    ceiling = _benchmark("latent_ceiling")
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.repeat(rng.integers(0, 256, (2, 8, 16, 3), dtype=np.uint8), 4, 1), 4, 2)  # 4x4 blocks
    assert np.array_equal(ceiling._through_size(smooth, (32, 64)), smooth)  # the images' own size: no change
    small = ceiling._through_size(smooth, (16, 32))
    assert small.shape == smooth.shape and small.dtype == np.uint8 and not np.array_equal(small, smooth)
    noise = rng.integers(0, 256, (2, 32, 64, 3), dtype=np.uint8)
    lost = lambda x: float(np.abs(ceiling._through_size(x, (16, 32)).astype(int) - x).mean())  # noqa: E731
    assert lost(noise) > 2 * lost(smooth)  # what a 16x32 sample cannot hold is fine detail


def test_the_resolution_ceiling_shrinks_to_the_generator_size_and_back_keeping_only_what_that_size_holds():
    ceiling = _benchmark("resolution_ceiling")
    flat = np.full((2, 64, 128, 3), 90, np.uint8)
    assert np.array_equal(ceiling.round_trip(flat, (32, 64)), flat)  # nothing to lose
    checker = ((np.indices((64, 128)).sum(axis=0) % 2) * 255).astype(np.uint8)
    images = np.stack([np.repeat(checker[..., None], 3, axis=2)] * 2)
    back = ceiling.round_trip(images, (32, 64))
    assert back.shape == images.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - 127.5).max() <= 2  # one-pixel detail averages out at half the size
    blocks = np.kron(np.indices((32, 64)).sum(axis=0) % 2, np.ones((2, 2), int)).astype(np.uint8) * 255
    images = np.stack([np.repeat(blocks[..., None], 3, axis=2)])
    # 2x2 blocks are one pixel at 32x64: they come back, blurred, at about half the error of the lost 1 px checker
    assert np.abs(ceiling.round_trip(images, (32, 64)).astype(int) - images).mean() < 0.6 * 127.5


def test_zero_shot_ablation_compares_each_variant_with_source_only_and_full_sdgpa_per_condition():
    ablation = _benchmark("zero_shot_ablation")
    results = pd.Series({("fog", "whole images", 0): 14.0, ("fog", "whole images", 1): 16.0,
                         ("fog", "SDGPA", 0): 12.0, ("fog", "SDGPA", 1): 13.0,
                         ("fog", "source only", 0): 11.0, ("fog", "source only", 1): 11.0,
                         ("night", "SDGPA", 0): 9.0, ("night", "SDGPA", 1): 9.0,
                         ("night", "source only", 0): 10.0, ("night", "source only", 1): 12.0})  # fmt: skip
    table = ablation.summarise(results)
    assert list(table.index) == [("fog", "source only"), ("fog", "SDGPA"), ("fog", "whole images"),
                                 ("night", "source only"), ("night", "SDGPA")]  # fmt: skip
    assert table.loc[("fog", "whole images"), "mean"] == pytest.approx(15.0)
    assert table.loc[("fog", "whole images"), "- source only"] == pytest.approx(4.0)
    assert table.loc[("fog", "whole images"), "- SDGPA"] == pytest.approx(2.5)
    assert table.loc[("night", "SDGPA"), "- source only"] == pytest.approx(-2.0)
    assert table.loc[("night", "source only"), "std"] == pytest.approx(2**0.5)
    assert table.loc[("fog", "SDGPA"), "- SDGPA"] == pytest.approx(0.0)


def test_generation_downstream_names_a_labeller_inside_the_runs_directory_without_the_machines_path(tmp_path):
    import json

    from synthlib import runs

    downstream = _benchmark("generation_downstream")
    source = runs.open("dc", tmp_path)
    described = json.dumps({"mcoc_judge": "self_training", "pseudo_labeller": str(tmp_path / "dc" / "models" / "m" / "model")})
    shown = downstream._shown(described, source)
    assert shown == json.dumps({"mcoc_judge": "self_training", "pseudo_labeller": "dc/models/m/model"})
    assert str(tmp_path) not in shown

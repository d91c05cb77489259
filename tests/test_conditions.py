"""The adverse-conditions table: one run per target beside the main run, every row read from the same code as 07's."""

import numpy as np
import pandas as pd
import pytest

from synthlib import conditions, paper_tables, profiles, runs, zero_shot
from synthlib.cli import main as cli


def tiny(**overrides):
    fields = dict(conditions=["fog", "night"], minicity_train=8, minicity_val=4, minicity_condition_val=4, seg_steps=4,
                  uda_methods=["self_training", "advent"], i2i_k=[2], gen_max_maps=4, mcoc_grid_maps=2)  # fmt: skip
    return profiles.load("smoke", **{**fields, **overrides})


def test_every_condition_is_a_target_and_minicity_adds_the_game_look():
    assert conditions.targets(profiles.load("default")) == {
        "fog": "real-fog", "night": "real-night", "rain": "real-rain", "snow": "real-snow", "game": "game",
    }  # fmt: skip
    assert conditions.targets(profiles.load("paper")) == {c: f"acdc-{c}" for c in ("fog", "night", "rain", "snow")}
    column = conditions.target_profile(profiles.load("default"), "real-fog")
    assert (column.target, column.sources, column.conditions, column.uda_source) == ("real-fog", ("real",), (), "real")
    assert column.seg_steps == profiles.load("default").seg_steps  # nothing else changes


def test_an_unknown_target_is_named_before_anything_is_built(tmp_path, capsys):
    code = cli(["conditions", "--profile", "smoke", "--run", "r", "--runs-dir", str(tmp_path), "--targets", "fog,hail"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'hail'" in err and "fog, night, rain, snow, game" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    main = runs.open("main", tmp_path_factory.mktemp("conditions"))
    table = conditions.write(main, tiny(), ["fog", "game"], seeds=(1,))
    return main, table


def test_each_target_gets_its_own_run_and_every_row_of_the_table(built):
    main, mean = built
    table, _ = conditions.table(main, tiny(), ["fog", "game"])  # seed 0's
    assert list(table.index) == list(conditions.ROWS) and list(table.columns) == ["fog", "game"]
    assert np.isfinite(table["fog"]).all()  # every method, SDGPA included, on fog val
    assert np.isnan(table.loc[conditions.SDGPA, "game"])  # the editor knows weather edits only
    assert np.isfinite(table["game"].drop(conditions.SDGPA)).all()
    _, best = conditions.table(main, tiny(), ["fog", "game"])
    for column in ("fog", "game"):  # the best UDA row is the better of the two methods' own rows
        run_dir = conditions.target_run(main, column)
        column_cfg = conditions.target_profile(tiny(), conditions.targets(tiny())[column])
        miou = paper_tables.miou_table(paper_tables.evaluations(run_dir, column_cfg), column_cfg)
        assert best[column] in ("self-training", "ADVENT")
        assert table.loc[conditions.BEST_UDA, column] == pytest.approx(miou.loc[["self-training", "ADVENT"], "real"].max())
    assert (main.path / "tables" / "conditions_miou.md").is_file()
    assert (main.path / "tables" / "conditions_samples.png").is_file()


def test_the_columns_share_the_clear_source_and_sdgpa_is_measured_on_the_same_images(built):
    main, _ = built
    table, _ = conditions.table(main, tiny(), ["fog", "game"])
    fog, game = conditions.target_run(main, "fog"), conditions.target_run(main, "game")
    for run_dir in (fog, game):  # linked, not made again: the main run's oracle is the columns' source-only model
        assert run_dir.stage_path("data/real").is_symlink()
        assert run_dir.stage_path("models/supervised/data/real").is_symlink()
    assert game.stage_path("data/game").is_symlink()  # a source look of the main run is the same dataset
    assert game.stage_path("diffusion/pretrain").resolve() == fog.stage_path("diffusion/pretrain").resolve()  # on real, once
    # the fog run made real-fog with a train split too; its val images are the main run's condition val
    ours, theirs = fog.dataset("data/real-fog", "val"), main.dataset("data/real-fog", "val")
    assert len(fog.dataset("data/real-fog", "train")) == 8 and len(ours) == len(theirs) == 4
    assert all(np.array_equal(ours[i].image, theirs[i].image) for i in range(len(ours)))
    sdgpa = zero_shot.table(main, tiny(), {"fog": zero_shot.adapt(main, tiny(), "fog")[-1]})
    assert table.loc[paper_tables.SOURCE_ONLY, "fog"] == pytest.approx(sdgpa.loc["fog", "source only"])
    assert table.loc[conditions.SDGPA, "fog"] == pytest.approx(sdgpa.loc["fog", "zero-shot (SDGPA)"])


def test_a_second_call_builds_nothing_again(built):
    main, table = built
    fog = conditions.target_run(main, "fog")
    fog1 = runs.open("main-fog-seed1", main.path.parent)
    stages = [(fog, "generated/real-filtered"), (fog, "models/supervised/generated/real-filtered"),
              (fog, "models/self_training/data/real"), (fog1, "models/supervised/generated/real-filtered")]  # fmt: skip
    before = [run_dir.manifest(s)["finished"] for run_dir, s in stages]
    again = conditions.write(main, tiny(), ["fog", "game"], seeds=(1,))
    assert [run_dir.manifest(s)["finished"] for run_dir, s in stages] == before
    assert again.equals(table)


def test_other_seeds_train_every_row_again_on_the_same_training_sets(built):
    main, mean = built
    seed0, best = conditions.table(main, tiny(), ["fog", "game"])
    seed1 = conditions.seed_table(main, tiny(), 1, best, ["fog", "game"])  # made by write(): read back here
    assert np.isfinite(seed1["fog"]).all() and np.isnan(seed1.loc[conditions.SDGPA, "game"])
    pd.testing.assert_frame_equal(mean, (seed0 + seed1) / 2)
    fog1 = runs.open("main-fog-seed1", main.path.parent)
    for train_set in ("generated/real-filtered", "translated/cyclegan_k2-real", "data/real-fog"):  # the same sets, linked
        assert fog1.stage_path(train_set).resolve() == conditions.target_run(main, "fog").stage_path(train_set).resolve()
    for model in ("models/supervised/generated/real-filtered", "models/supervised/data/real-fog"):
        assert fog1.manifest(model)["params"]["settings"]["seed"] == 1
    # the clear target's seed-1 segmenter is trained once, in the main seed run, and is each column's source only
    main1 = runs.open("main-seed1", main.path.parent)
    assert main1.manifest("models/supervised/data/real")["params"]["settings"]["seed"] == 1
    assert fog1.stage_path("models/supervised/data/real").resolve() == main1.stage_path("models/supervised/data/real").resolve()
    assert (seed1.loc[paper_tables.SOURCE_ONLY] != seed0.loc[paper_tables.SOURCE_ONLY]).all()
    std = pd.read_csv(main.path / "tables" / "conditions_miou_std.csv", index_col=0)
    assert std.loc[paper_tables.ORACLE, "fog"] == pytest.approx(abs(seed0.loc[paper_tables.ORACLE, "fog"] - seed1.loc[paper_tables.ORACLE, "fog"]) / 2**0.5, abs=1e-3)  # CSVs keep 3 decimals

import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from synthlib import mcoc, paper_tables, segmentation
from synthlib.datasets import Sample, write_cityscapes
from synthlib.labels import CLASS_NAMES, SYNTHIA16
from synthlib.metrics import ConfusionMatrix
from synthlib.segmenters import build, save
from synthlib.segmenters import fit as seg
from tests.test_pseudo_labels import stripes_run  # noqa: F401 - fixture
from tests.test_segmenters import Stripes


def _evals(rows: dict[tuple[str, str], float]) -> pd.DataFrame:
    data = pd.DataFrame([{**dict.fromkeys(CLASS_NAMES, v), "mIoU": v} for v in rows.values()])
    data.index = pd.MultiIndex.from_tuples([(*k, f"eval/{k[0]}/{k[1]}") for k in rows], names=["row", "source", "stage"])
    return data


def test_miou_table_spreads_the_oracle_and_measures_the_gap_closed():
    from synthlib import profiles

    cfg = profiles.load("smoke", sources=["flat", "game"], target="real")
    evals = _evals(
        {
            ("source only", "flat"): 20.0,
            ("source only", "game"): 30.0,
            ("ADVENT", "game"): 35.0,
            (paper_tables.OURS, "flat"): 40.0,
            (paper_tables.OURS, "game"): 50.0,
            (paper_tables.ORACLE, "real"): 60.0,
        }
    )
    miou = paper_tables.miou_table(evals, cfg)
    assert list(miou.index) == ["source only", "ADVENT", paper_tables.OURS, paper_tables.ORACLE]
    assert list(miou.columns) == ["flat", "game", "spread", "mean"]
    assert miou.loc[paper_tables.ORACLE, ["flat", "game"]].tolist() == [60.0, 60.0]
    assert miou.loc["source only", "spread"] == 10.0 and miou.loc[paper_tables.OURS, "mean"] == 45.0
    # a row measured from one source has no spread (NaN, not 0) but has a mean
    assert np.isnan(miou.loc["ADVENT", "flat"]) and np.isnan(miou.loc["ADVENT", "spread"]) and miou.loc["ADVENT", "mean"] == 35.0
    assert miou.loc[paper_tables.ORACLE, "spread"] == 0.0  # the oracle fills every column: a spread of 0
    one_source = paper_tables.miou_table(_evals({("source only", "flat"): 20.0, (paper_tables.ORACLE, "real"): 60.0}), cfg)
    assert one_source["spread"].isna().all()  # a run of one source: no row has a spread
    gap = paper_tables.gap_closed(miou)
    # (40 - 20) / (60 - 20) and (50 - 30) / (60 - 30)
    assert gap.loc[paper_tables.OURS, "flat"] == pytest.approx(50.0)
    assert gap.loc[paper_tables.OURS, "game"] == pytest.approx(200 / 3)
    assert gap.loc["ADVENT", "game"] == pytest.approx(100 / 6)
    assert paper_tables.ORACLE not in gap.index
    with pytest.raises(paper_tables.TablesError, match="needs both"):
        paper_tables.gap_closed(miou.drop(index=paper_tables.ORACLE))
    # the ceiling (benchmarks/translation_ceiling.py) is its own row, in its source's column, above the oracle
    assert paper_tables._classify_model("models/supervised/data/flat_as_real", cfg) == (paper_tables.CEILING, "flat")
    assert paper_tables._classify_model("models/supervised/data/flat", cfg) == ("source only", "flat")
    with_ceiling = paper_tables.miou_table(pd.concat([evals, _evals({(paper_tables.CEILING, "flat"): 45.0})]), cfg)
    assert list(with_ceiling.index)[-2:] == [paper_tables.CEILING, paper_tables.ORACLE]
    assert list(with_ceiling.columns) == ["flat", "game", "spread", "mean"]


def test_07_regenerates_every_table_and_figure_from_the_run_directory(stripes_run, tmp_path, monkeypatch):  # noqa: F811
    run_dir, cfg = stripes_run
    judge = tmp_path / "judge"
    save(build("mit-tiny-s2"), judge)
    cfg = replace(cfg, mcoc_judge=str(judge), mcoc_min_pixels=4, mcoc_threshold=0.5)
    maps = Stripes(8, 3)
    samples = [Sample(x.image, x.label, None, None, f"{x.id}_gen0", {"source": "data/src", "map_index": i}) for i, x in enumerate(maps[j] for j in range(len(maps)))]
    run_dir.stage("generated/src", {}, lambda ctx: write_cityscapes(samples, ctx.out, "train", progress=False))
    # A stand-in judge that agrees with the maps except on the first two images, which it sees as all sky.
    labels_of = {s.id: s.label for s in samples}

    def stand_in(model, images, window):
        out = np.stack([labels_of[s.id] for s in samples[: len(images)]])
        out[:2] = 10
        return out

    monkeypatch.setattr(mcoc, "_predict", stand_in)
    mcoc.filter_set(run_dir, cfg, "generated/src")
    from synthlib import pseudo_labels

    pseudo_labels.train_baselines(run_dir, cfg)
    models = segmentation.train_all(run_dir, cfg)
    segmentation.evaluate_all(run_dir, cfg, models)

    made = paper_tables.write_all(run_dir, cfg)
    tables = run_dir.path / "tables"
    names = {*paper_tables.TABLES, *paper_tables.FIGURES}
    assert set(made) == names
    miou = made["paper_miou"]
    assert list(miou.index) == ["source only", "ADVENT", paper_tables.OURS_UNFILTERED, paper_tables.OURS, paper_tables.ORACLE]
    assert list(miou.columns) == ["src", "spread", "mean"]
    for row, stage in [("source only", "models/supervised/data/src"), (paper_tables.OURS, "models/supervised/generated/src-filtered"), (paper_tables.ORACLE, "models/supervised/data/tgt")]:
        assert miou.loc[row, "src"] == pytest.approx(seg.evaluate(run_dir, cfg, stage, segmentation.eval_sets(cfg)).loc["data/tgt:val", "mIoU"])
    first = {p.name: p.read_bytes() for p in tables.iterdir() if p.suffix == ".csv"}
    assert {f"{n}.csv" for n in paper_tables.TABLES} <= set(first) and {f"{n}.png" for n in paper_tables.FIGURES} <= {p.name for p in tables.iterdir()}

    # Again, with training made impossible: every file comes back, the tables identical.
    for p in tables.iterdir():  # files, and any folder report.py keeps beside them
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("07 must not train")

    monkeypatch.setattr(seg, "train", no_training)
    monkeypatch.setattr(seg, "fit", no_training)
    paper_tables.write_all(run_dir, cfg)
    again = {p.name: p.read_bytes() for p in tables.iterdir() if p.suffix == ".csv"}
    assert again == first
    assert {f"{n}.png" for n in paper_tables.FIGURES} <= {p.name for p in tables.iterdir()}


def test_an_empty_run_is_a_clear_error(stripes_run):  # noqa: F811
    run_dir, cfg = stripes_run
    with pytest.raises(paper_tables.TablesError, match="has no evaluations on data/tgt:val: run 01 and 06 first"):
        paper_tables.write_all(run_dir, cfg)


# Hand-made confusions over road (0), wall (3), terrain (9) and car (13); every other class is absent.
# Wall is among SYNTHIA's 16 classes but not its 13; terrain is among neither.
ROAD, WALL, TERRAIN, CAR = 0, 3, 9, 13
CONFUSIONS = {
    # IoU road 2/4, wall 0, terrain 0, car 1/1: means 150/4, 150/3, 150/2 over 19, 16, 13 classes
    "source only": ([ROAD, ROAD, WALL, TERRAIN, CAR], [ROAD, ROAD, ROAD, ROAD, CAR]),
    # road 2/3, wall 0, terrain 0, car 1: 125/3, 500/9, 250/3
    "ours": ([ROAD, ROAD, WALL, TERRAIN, CAR, CAR], [ROAD, ROAD, ROAD, WALL, CAR, CAR]),
    # road 1, wall 1/3, terrain 1/3, car 1: 200/3, 700/9, 100
    "oracle": ([ROAD, WALL, WALL, TERRAIN, TERRAIN, CAR], [ROAD, WALL, TERRAIN, TERRAIN, WALL, CAR]),
}


def _iou_row(name: str, confusion: str) -> pd.DataFrame:
    """One row of an iou.csv as the evaluation stages write it (per-class IoUs, then mIoU, mIoU16, mIoU13, ...)."""
    gt, pred = CONFUSIONS[confusion]
    return ConfusionMatrix().update(np.array(pred, np.uint8), np.array(gt, np.uint8)).row(name)


def _evals_from_confusions(rows: dict[tuple[str, str], str]) -> pd.DataFrame:
    data = pd.concat([_iou_row("x", c) for c in rows.values()])
    data.index = pd.MultiIndex.from_tuples([(*k, f"eval/{k[0]}/{k[1]}") for k in rows], names=_evals({}).index.names)
    return data


def test_a_synthia_source_gets_16_and_13_class_columns_and_gaps_on_the_same_classes():
    from synthlib import profiles

    cfg = profiles.load("smoke", sources=["gta5", "synthia"], target="cityscapes")
    evals = _evals_from_confusions(
        {
            ("source only", "gta5"): "source only",
            ("source only", "synthia"): "source only",
            ("ADVENT", "gta5"): "ours",
            (paper_tables.OURS, "synthia"): "ours",
            (paper_tables.ORACLE, "cityscapes"): "oracle",
        }
    )
    miou = paper_tables.miou_table(evals, cfg)
    assert list(miou.columns) == ["gta5", "synthia", "synthia (16)", "synthia (13)", "spread", "mean"]
    synthia = ["synthia", "synthia (16)", "synthia (13)"]
    assert miou.loc["source only", synthia].tolist() == pytest.approx([150 / 4, 150 / 3, 150 / 2])
    assert miou.loc[paper_tables.OURS, synthia].tolist() == pytest.approx([125 / 3, 500 / 9, 250 / 3])
    # the oracle is compared on each column's own classes
    assert miou.loc[paper_tables.ORACLE].tolist()[:4] == pytest.approx([200 / 3, 200 / 3, 700 / 9, 100])
    assert np.isnan(miou.loc["ADVENT", synthia]).all()
    # spread and mean stay over the 19-class columns: ours has one (synthia), so no spread despite its 16/13 columns
    assert np.isnan(miou.loc[paper_tables.OURS, "spread"])
    assert miou.loc["source only", "spread"] == pytest.approx(abs(miou.loc["source only", "gta5"] - miou.loc["source only", "synthia"]))
    assert miou.loc[paper_tables.OURS, "mean"] == pytest.approx(125 / 3)
    assert miou.loc["ADVENT", "mean"] == pytest.approx(125 / 3)

    gap = paper_tables.gap_closed(miou)
    assert list(gap.columns) == ["gta5", *synthia]
    # (125/3 - 150/4) / (200/3 - 150/4), (500/9 - 50) / (700/9 - 50), (250/3 - 75) / (100 - 75)
    assert gap.loc[paper_tables.OURS, synthia].tolist() == pytest.approx([100 / 7, 20.0, 100 / 3])

    # which sources get the columns: by name here, or as the caller says
    assert list(paper_tables.miou_table(evals, cfg, sixteen_class=[]).columns) == ["gta5", "synthia", "spread", "mean"]


def test_flat_and_game_keep_their_columns_when_the_evaluations_carry_subset_means():
    from synthlib import profiles

    cfg = profiles.load("smoke", sources=["flat", "game"], target="real")
    evals = _evals_from_confusions(
        {
            ("source only", "flat"): "source only",
            ("source only", "game"): "source only",
            (paper_tables.OURS, "game"): "ours",
            (paper_tables.ORACLE, "real"): "oracle",
        }
    )
    miou = paper_tables.miou_table(evals, cfg)
    assert list(miou.columns) == ["flat", "game", "spread", "mean"]
    assert miou.loc[paper_tables.ORACLE, ["flat", "game"]].tolist() == pytest.approx([200 / 3, 200 / 3])
    assert list(paper_tables.gap_closed(miou).columns) == ["flat", "game"]
    assert paper_tables.sixteen_class_sources(["flat", "game", "real", "synthia"]) == ["synthia"]


def test_adapters_missing_synthias_three_classes_are_the_sixteen_class_kinds():
    from synthlib.datasets import _ADAPTERS

    outside = tuple(t for t in range(len(CLASS_NAMES)) if t not in SYNTHIA16)
    kinds = {kind for kind, adapter in _ADAPTERS.items() if adapter.missing_classes == outside}
    assert kinds == set(paper_tables.SIXTEEN_CLASS_KINDS)


def test_07_finds_a_synthia_source_by_its_data_manifest_and_writes_its_columns(tmp_path):
    from synthlib import profiles, runs

    run_dir = runs.open("t", tmp_path)
    # 00's parameters for a SYNTHIA subset under another name (07 reads only its manifest), and a small target
    synthia = {"spec": {"kind": "synthia", "root": "/nowhere", "options": {}}, "splits": ["train"]}
    run_dir.stage("data/syn_small", synthia, lambda ctx: None)
    run_dir.stage("data/tgt", {}, lambda ctx: write_cityscapes(Stripes(2, 1), ctx.out, "val", progress=False))
    models = {"models/supervised/data/syn_small": "source only", "models/supervised/data/tgt": "oracle"}
    for model, confusion in models.items():

        def build(ctx, confusion=confusion):
            _iou_row("data/tgt:val", confusion).to_csv(ctx.out / "iou.csv")

        run_dir.stage(f"eval/{model}", {}, build)
    cfg = profiles.load("smoke", sources=["syn_small"], target="tgt", uda_source="syn_small", conditions=[])
    assert paper_tables.sixteen_class_sources(["syn_small", "tgt"], run_dir) == ["syn_small"]

    made = paper_tables.write_all(run_dir, cfg)
    miou = made["paper_miou"]
    assert list(miou.columns) == ["syn_small", "syn_small (16)", "syn_small (13)", "spread", "mean"]
    assert miou.loc["source only"].tolist()[:3] == pytest.approx([150 / 4, 150 / 3, 150 / 2])
    assert miou.loc[paper_tables.ORACLE].tolist()[:3] == pytest.approx([200 / 3, 700 / 9, 100])
    text = (run_dir.path / "tables" / "paper_miou.md").read_text()
    assert "'syn_small (16)' and 'syn_small (13)': over SYNTHIA's 16 and 13 classes" in text
    header = next(line for line in text.splitlines() if line.startswith("| training data"))
    assert [c.strip() for c in header.split("|")[2:-1]] == list(miou.columns)
    csv = pd.read_csv(run_dir.path / "tables" / "paper_gap_closed.csv", index_col=0)
    assert list(csv.columns) == ["syn_small", "syn_small (16)", "syn_small (13)"]

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from synthlib import mcoc, paper_tables, segmentation
from synthlib.datasets import Sample, write_cityscapes
from synthlib.labels import CLASS_NAMES
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
    assert np.isnan(miou.loc["ADVENT", "flat"]) and miou.loc["ADVENT", "spread"] == 0.0
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
    for p in tables.iterdir():
        p.unlink()

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

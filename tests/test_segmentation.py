import json

import numpy as np
import pandas as pd
import pytest

from synthlib import cli, report, segmentation
from synthlib.datasets import write_cityscapes
from synthlib.labels import colorize
from tests.test_pseudo_labels import stripes_run  # noqa: F401 - fixture
from tests.test_segmenters import Stripes


def test_training_sets_include_later_stages_by_folder(stripes_run):  # noqa: F811
    run_dir, cfg = stripes_run
    run_dir.stage("generated/src", {}, lambda ctx: write_cityscapes(Stripes(8, 3), ctx.out, "train", progress=False))
    assert segmentation.training_sets(run_dir, cfg) == ["data/src", "data/tgt", "generated/src"]


def test_train_all_orders_rows_and_evaluates_every_model(stripes_run, tmp_path):  # noqa: F811
    run_dir, cfg = stripes_run
    run_dir.stage("generated/src", {}, lambda ctx: write_cityscapes(Stripes(8, 3), ctx.out, "train", progress=False))
    models = segmentation.train_all(run_dir, cfg)
    assert list(models) == ["source only (src)", "generated/src", "oracle (tgt)"]
    per_class, conditions = segmentation.evaluate_all(run_dir, cfg, models)
    assert list(per_class.index) == list(models) and {"road", "car", "mIoU", "mIoU16"} <= set(per_class.columns)
    assert list(conditions.columns) == ["tgt"]
    assert (conditions["tgt"] == per_class["mIoU"]).all()
    # evaluations are cached stages: a second call reads them back
    again, _ = segmentation.evaluate_all(run_dir, cfg, models)
    pd.testing.assert_frame_equal(again, per_class)
    # tables carry their provenance and publish into results/
    md = report.write_table(per_class, run_dir, cfg, "per_class", "Per-class IoU")
    assert "profile `smoke`" in md.read_text() and "| oracle (tgt)" in md.read_text()
    fig = segmentation.prediction_grid(run_dir, cfg, models, n=2)
    assert len(fig.axes) == 2 * (2 + len(models))
    report.write_figure(fig, run_dir, "grid")
    out = tmp_path / "results"
    assert cli.main(["results", "--run", run_dir.name, "--runs-dir", str(run_dir.path.parent), "--to", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "per_class.csv", "per_class.md", "provenance.json"]
    assert set(json.loads((out / "provenance.json").read_text())["files"]) == {"grid.png", "per_class.csv", "per_class.md"}


WINDOW = (32, 32)  # Stripes are 32x64: three windows an image


def _windowed(stripes_run, tmp_path):  # noqa: F811
    """The stripes run on a profile that slides a 32x32 window, two windows a pass; an untrained model as stage and folder."""
    from dataclasses import replace

    from synthlib import segmenters

    run_dir, cfg = stripes_run
    model = segmenters.build(cfg.seg_model, seed=0)
    segmenters.save(model, tmp_path / "labeller")
    stage = "models/supervised/data/src"  # stands for a trained stage: 06, 01 and i2i evaluate it as they find it
    run_dir.stage(stage, {}, lambda ctx: segmenters.save(model, ctx.out / "model"))
    return run_dir, replace(cfg, seg_eval_window=WINDOW, seg_batch=2), segmenters.load(tmp_path / "labeller"), stage


def _predicted(run_dir, model, split):
    """Images, labels and predictions with the window (segmenters.predict) of the target's ``split``."""
    from synthlib.segmenters import predict

    data = run_dir.dataset("data/tgt", split)
    images, labels = np.stack([x.image for x in data]), np.stack([x.label for x in data])
    pred = predict(model, images, window=WINDOW, batch=2)[0]
    assert not np.array_equal(pred, predict(model, images)[0])  # whole images would give other predictions
    return images, labels, pred


def _miou(pred, labels) -> float:
    from synthlib.metrics import ConfusionMatrix

    return ConfusionMatrix().update(pred, labels).miou()


def _windows_only(seen, batch: int | None = 2) -> None:
    """Every forward pass saw 32x32 windows (and at most ``batch`` of them): no call site ran whole images."""
    assert seen and {(h, w) for _, h, w in seen} == {WINDOW}, seen
    assert batch is None or max(n for n, _, _ in seen) <= batch, seen


def test_stage_06_evaluates_and_draws_in_the_profiles_window(stripes_run, tmp_path, monkeypatch):  # noqa: F811
    from tests.test_segmenters import record_inputs

    run_dir, cfg, model, stage = _windowed(stripes_run, tmp_path)
    _, labels, pred = _predicted(run_dir, model, "val")
    seen = record_inputs(monkeypatch)
    per_class, _ = segmentation.evaluate_all(run_dir, cfg, {"m": stage})
    assert per_class.loc["m", "mIoU"] == pytest.approx(_miou(pred, labels))
    _windows_only(seen, batch=None)  # segmenters.fit.evaluate: the window, one image's three windows a pass
    seen.clear()
    monkeypatch.setattr(segmentation, "image_grid", lambda rows, titles, cell_inches: rows)
    rows = segmentation.prediction_grid(run_dir, cfg, {"m": stage}, n=3, split="val")
    assert all(np.array_equal(panels[2], colorize(p)) for (_, panels), p in zip(rows, pred[:3], strict=True))
    _windows_only(seen)


def test_pseudo_labels_and_translation_evaluations_run_in_the_profiles_window(stripes_run, tmp_path, monkeypatch):  # noqa: F811
    from synthlib import pseudo_labels
    from synthlib.translation import baselines, measures
    from tests.test_segmenters import record_inputs

    run_dir, cfg, model, stage = _windowed(stripes_run, tmp_path)
    _, val_labels, val_pred = _predicted(run_dir, model, "val")
    _, train_labels, train_pred = _predicted(run_dir, model, "train")
    seen = record_inputs(monkeypatch)
    quality = pseudo_labels.quality(run_dir, cfg, {"m": stage})
    assert quality.loc["m", "target val mIoU"] == pytest.approx(_miou(val_pred, val_labels))
    assert quality.loc["m", "pseudo-label mIoU (target train)"] == pytest.approx(_miou(train_pred, train_labels))
    _windows_only(seen, batch=None)  # segmenters.fit.evaluate
    seen.clear()
    pseudo_labels.make(run_dir, cfg, labeller=str(tmp_path / "labeller"), threshold=0.0)
    pseudo = run_dir.dataset("pseudo_labels", "train")
    assert np.array_equal(np.stack([x.label for x in pseudo]), train_pred)
    _windows_only(seen)
    seen.clear()
    monkeypatch.setattr(baselines.seg, "fit", lambda *a, **k: None)  # the source-only model is the stage made above
    table = measures.trained_on(run_dir, cfg)
    assert table.loc[("src", "source only"), "mIoU"] == pytest.approx(_miou(val_pred, val_labels))
    _windows_only(seen)

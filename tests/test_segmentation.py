import pandas as pd

from synthlib import cli, report, segmentation
from synthlib.datasets import write_cityscapes
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
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "per_class.csv", "per_class.md"]

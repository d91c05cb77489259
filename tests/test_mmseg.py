"""The mmsegmentation backend: the same network as transformers', trained by mmengine, evaluated by our code."""

import json

import numpy as np
import pytest
import torch
from transformers import SegformerConfig, SegformerModel

from synthlib import cli, data, export, profiles, runs
from synthlib.datasets import DatasetError
from synthlib.diffusion import scores
from synthlib.segmenters import fit, mmseg_backend
from synthlib.segmenters.mmseg_compat import import_mmseg
from synthlib.segmenters.model import ARCHITECTURES
from synthlib.segmenters.train import TrainSettings


@pytest.mark.parametrize("architecture", ["mit-tiny-s2", "mit-b0"])
def test_transformers_encoder_weights_give_mmseg_the_same_features(architecture):
    import_mmseg()
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    config = SegformerConfig(**ARCHITECTURES[architecture])
    encoder = SegformerModel(config).eval()
    backbone = MODELS.build(mmseg_backend.mit_backbone(config)).eval()
    backbone.load_state_dict(mmseg_backend.encoder_state_dict(encoder), strict=True)  # every weight named, none left
    x = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        expected = encoder(pixel_values=x, output_hidden_states=True).hidden_states
        got = backbone(x)
    assert len(got) == len(expected) == 4
    for a, b in zip(expected, got, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4)


def test_an_encoder_mmseg_cannot_express_is_refused_with_the_reason():
    odd = SegformerConfig(hidden_sizes=[16, 40, 64, 128], num_attention_heads=[1, 2, 4, 8], depths=[1, 1, 1, 1])
    with pytest.raises(mmseg_backend.MMSegConfigError, match="hidden_sizes"):
        mmseg_backend.mit_backbone(odd)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    cfg = profiles.load("smoke", {"seg_backend": "mmseg", "seg_steps": 20, "seg_rcs_temperature": 0.1})
    run_dir = runs.open("mmseg", tmp_path_factory.mktemp("runs"))
    data.prepare(run_dir, cfg, names=["real"])
    return run_dir, cfg


def test_mmseg_trains_on_smoke_and_the_projects_evaluation_reads_it(smoke_run, one_thread):
    run_dir, cfg = smoke_run
    stage = fit.model_stage("supervised", "data/real")
    path = fit.fit(run_dir, cfg, "data/real")
    assert run_dir.manifest(stage)["params"]["backend"] == "mmseg"
    losses = json.loads((path / "history.json").read_text())["source"]
    assert len(losses) == 20 and np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns
    model = fit.load_model(run_dir, stage)
    assert type(model).__name__ == "MMSegSegmenter"
    row = fit.evaluate(run_dir, cfg, stage, ["data/real:val"]).iloc[0]
    assert 0 < row["mIoU"] <= 100 and row["pixel_acc"] > 20  # better than nothing on 19 classes
    images = np.stack([run_dir.dataset("data/real", "val")[i].image for i in range(4)])
    feats = scores.features(model, images)  # the appearance score's features: the encoder's last stage
    assert feats.shape[0] == 4 and np.isfinite(feats).all()
    # The UDA methods are the project's own loop whatever the backend: their stage keys stay as they were.
    uda_cfg = profiles.load("smoke", {"seg_backend": "mmseg"})
    _, params, _, _ = fit._fit_stage(run_dir, uda_cfg, "data/real", "self_training", "data/real")
    assert "backend" not in params


def test_mmseg_starts_from_the_pretrained_encoder_and_samples_rare_classes(smoke_run, tmp_path, one_thread):
    run_dir, cfg = smoke_run
    model = fit.build(cfg.seg_model, seed=0)
    settings = TrainSettings(steps=2, batch_size=2, crop=(32, 64), rcs_temperature=0.1, checkpoint_every=1)
    root = run_dir.stage_path("data/real")
    mmseg_backend.fit_folder(model, root, settings, tmp_path / "work", tmp_path / "out")
    start = torch.load(tmp_path / "work" / "pretrained_encoder.pth")
    assert all(torch.equal(v, mmseg_backend.encoder_state_dict(model.segformer)[k]) for k, v in start.items())
    weights = np.load(tmp_path / "work" / "rcs_weights.npy")
    labels = sorted((root / "gtFine" / "train").rglob("*_labelTrainIds.png"))
    assert len(weights) == len(labels) and weights.sum() == pytest.approx(1.0) and weights.std() > 0
    cfg_text = (tmp_path / "out" / "mmseg_config.py").read_text()
    assert "CityscapesDataset" in cfg_text and "WeightedInfiniteSampler" in cfg_text and "init_cfg" not in cfg_text


def test_an_interrupted_mmseg_run_resumes_from_its_checkpoint(smoke_run, tmp_path, monkeypatch, one_thread):
    run_dir, cfg = smoke_run
    model = fit.build(cfg.seg_model, seed=0)
    settings = TrainSettings(steps=6, batch_size=2, crop=(32, 64), checkpoint_every=3)
    root = run_dir.stage_path("data/real")
    original = mmseg_backend._loss_history

    def crashing(path, every):
        hook = original(path, every)
        record = hook.after_train_iter

        def after(runner, batch_idx, data_batch=None, outputs=None):
            record(runner, batch_idx, data_batch, outputs)
            if runner.iter + 1 == 5:
                raise KeyboardInterrupt("simulated interruption")

        hook.after_train_iter = after
        return hook

    monkeypatch.setattr(mmseg_backend, "_loss_history", crashing)
    with pytest.raises(KeyboardInterrupt):
        mmseg_backend.fit_folder(model, root, settings, tmp_path / "work", tmp_path / "out")
    first = json.loads((tmp_path / "work" / "loss_history.json").read_text())["source"]
    assert len(first) == 3  # saved with the checkpoint at iteration 3
    ran = []

    def counting(path, every):
        hook = original(path, every)
        record = hook.after_train_iter

        def after(runner, batch_idx, data_batch=None, outputs=None):
            ran.append(runner.iter + 1)
            record(runner, batch_idx, data_batch, outputs)

        hook.after_train_iter = after
        return hook

    monkeypatch.setattr(mmseg_backend, "_loss_history", counting)
    history = mmseg_backend.fit_folder(model, root, settings, tmp_path / "work", tmp_path / "out")
    assert ran == [4, 5, 6]  # resumed after the checkpoint of iteration 3: 1-3 did not run again
    assert len(history["source"]) == 6 and history["source"][:3] == first
    assert (tmp_path / "out" / mmseg_backend.WEIGHTS_FILE).is_file()


def test_an_unknown_backend_is_refused_before_training(smoke_run):
    run_dir, _ = smoke_run
    cfg = profiles.load("smoke", {"seg_backend": "detectron"})
    with pytest.raises(ValueError, match="seg_backend 'detectron' unknown; valid: transformers, mmseg"):
        fit.fit(run_dir, cfg, "data/real")


def test_export_writes_cityscapes_layout_and_a_config_mmseg_trains_and_validates(smoke_run, tmp_path, capsys, one_thread):
    run_dir, cfg = smoke_run
    to = tmp_path / "exported"
    assert cli.main(["export", "data/real", str(to), "--run", run_dir.name, "--runs-dir", str(run_dir.path.parent),
                     "--profile", "smoke"]) == 0  # fmt: skip
    assert "mmseg_config.py" in capsys.readouterr().out
    for split, n in (("train", len(run_dir.dataset("data/real", "train"))), ("val", len(run_dir.dataset("data/real", "val")))):
        assert len(list((to / "leftImg8bit" / split).rglob("*_leftImg8bit.png"))) == n
        assert len(list((to / "gtFine" / split).rglob("*_gtFine_labelTrainIds.png"))) == n
    assert not list(tmp_path.glob(".exported.partial-*"))
    import_mmseg()
    from mmengine.config import Config
    from mmengine.runner import Runner

    config = Config.fromfile(str(to / "mmseg_config.py"))
    assert config.model.backbone.init_cfg.checkpoint == str(to / "pretrained_encoder.pth")
    smoke = profiles.load("smoke")  # --profile smoke: its budget, not the run's 20 steps
    assert config.train_cfg.max_iters == smoke.seg_steps and tuple(config.model.data_preprocessor.size) == tuple(smoke.seg_crop)
    config.train_cfg.max_iters, config.train_cfg.val_interval = 2, 2  # mmseg's own loop: 2 steps, then IoUMetric
    config.param_scheduler[-1].end = 2
    config.work_dir = str(tmp_path / "work")
    runner = Runner.from_cfg(config)
    runner.train()  # validation runs at the last iteration
    assert 0 <= runner.message_hub.get_scalar("val/mIoU").current() <= 100
    with pytest.raises(FileExistsError, match="exists"):
        export.export(run_dir, cfg, "data/real", to)
    with pytest.raises(DatasetError, match="generated/nowhere"):
        export.export(run_dir, cfg, "generated/nowhere", tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_failed_export_leaves_nothing_behind(smoke_run, tmp_path, monkeypatch):
    run_dir, cfg = smoke_run

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "config_text", full_disk)  # everything written but the config
    with pytest.raises(OSError, match="No space"):
        export.export(run_dir, cfg, "data/real", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []

import numpy as np
import pytest

from synthlib import profiles, pseudo_labels, runs
from synthlib.datasets import write_cityscapes
from synthlib.labels import IGNORE
from synthlib.segmenters import fit as seg
from synthlib.segmenters import predict
from tests.test_segmenters import Stripes


def test_threshold_sets_low_confidence_pixels_to_ignore():
    labels = np.array([[0, 13], [10, 2]], np.uint8)
    conf = np.array([[0.9, 0.4], [0.5, 0.99]], np.float32)
    assert pseudo_labels.threshold_labels(labels, conf, 0.5).tolist() == [[0, IGNORE], [10, 2]]
    assert (pseudo_labels.threshold_labels(labels, conf, 0.0) == labels).all()


@pytest.fixture
def stripes_run(tmp_path):
    """A run whose data stages are small Stripes sets: source 'src', tinted target 'tgt'."""
    run_dir = runs.open("t", tmp_path)
    for name, tint in (("src", 0), ("tgt", 40)):

        def build(ctx, tint=tint):
            write_cityscapes(Stripes(16, 0, tint=tint), ctx.out, "train", progress=False)
            write_cityscapes(Stripes(8, 1, tint=tint), ctx.out, "val", progress=False)

        run_dir.stage(f"data/{name}", {"tint": tint}, build)
    cfg = profiles.load(
        "smoke", sources=["src"], target="tgt", uda_source="src", uda_methods=["advent"], conditions=[], seg_steps=6, pseudo_labeller="advent"
    )
    return run_dir, cfg


def test_baselines_quality_and_pseudo_labels_stage(stripes_run):
    run_dir, cfg = stripes_run
    models = pseudo_labels.train_baselines(run_dir, cfg)
    assert list(models) == ["source only (src)", "ADVENT (src)", "oracle (tgt)"]
    quality = pseudo_labels.quality(run_dir, cfg, models)
    assert list(quality.index) == list(models)
    assert quality.notna().all().all() and (quality.to_numpy() >= 0).all()
    # ADVENT saw target images, never target labels
    assert run_dir.manifest(models["ADVENT (src)"])["params"]["target"] == "data/tgt"

    path = pseudo_labels.make(run_dir, cfg, labeller="advent", threshold=0.5)
    pseudo = run_dir.dataset("pseudo_labels", "train")
    target = run_dir.dataset("data/tgt", "train")
    assert len(pseudo) == len(target) == 16
    model = seg.load_model(run_dir, models["ADVENT (src)"])
    pred, conf = predict(model, np.stack([target[i].image for i in range(3)]))
    for i in range(3):
        assert pseudo[i].id == target[i].id and np.array_equal(pseudo[i].image, target[i].image)
        assert np.array_equal(pseudo[i].label, pseudo_labels.threshold_labels(pred[i], conf[i], 0.5))
        stored = pseudo_labels.confidence(run_dir, "train", pseudo[i].id)
        assert np.abs(stored - conf[i]).max() <= 0.5 / 255 + 1e-6
    info = run_dir.manifest("pseudo_labels")["info"]
    assert info["train"]["images"] == 16 and 0 <= info["train"]["mIoU"] <= 100
    assert (path / "gtFine" / "val").is_dir()


def test_bad_threshold_and_unknown_method(stripes_run):
    run_dir, cfg = stripes_run
    with pytest.raises(ValueError, match=r"threshold 1.5 must lie in \[0, 1\]"):
        pseudo_labels.make(run_dir, cfg, threshold=1.5)
    with pytest.raises(ValueError, match="segmenter method 'dann' unknown; valid: supervised, advent"):
        seg.fit(run_dir, cfg, "data/src", "dann")
    with pytest.raises(ValueError, match="adapts to a target"):
        seg.fit(run_dir, cfg, "data/src", "advent")


def test_segmenters_train_in_worker_processes_as_they_would_here(tmp_path, monkeypatch):
    import torch

    from synthlib.segmenters import fit as seg_fit

    def stripes(name):
        run_dir = runs.open(name, tmp_path)
        for data_name, tint in (("src", 0), ("tgt", 40)):
            run_dir.stage(f"data/{data_name}", {"tint": tint}, lambda ctx, t=tint: write_cityscapes(Stripes(16, 0, tint=t), ctx.out, "train", progress=False))
        return run_dir

    base = dict(sources=["src"], target="tgt", uda_source="src", uda_methods=["advent"], conditions=[], seg_steps=6)
    here, there = stripes("here"), stripes("there")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count changes float sums; each of 2 workers gets 1 of these 2
    try:
        alone = pseudo_labels.train_baselines(here, profiles.load("smoke", **base, seg_workers=1))
        torch.set_num_threads(2)
        side_by_side = pseudo_labels.train_baselines(there, profiles.load("smoke", **base, seg_workers=2))
    finally:
        torch.set_num_threads(threads)
    assert alone == side_by_side and len(alone) == 4  # source only, ADVENT, the smoke profile's labeller 'colour', oracle
    for stage in alone.values():
        a, b = seg.load_model(here, stage).state_dict(), seg.load_model(there, stage).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), stage  # the same training, in another process
        assert there.manifest(stage)["params"] == here.manifest(stage)["params"]

    # current stages start no process
    monkeypatch.setattr(seg_fit, "run_all", lambda *a, **k: pytest.fail("started processes for current stages"))
    assert pseudo_labels.train_baselines(there, profiles.load("smoke", **base, seg_workers=2)) == side_by_side


def test_colour_labeller_trains_on_every_source_recoloured_to_the_target(stripes_run):
    from synthlib import checks, mcoc
    from synthlib.colour import rgb_to_lab

    run_dir, cfg = stripes_run
    run_dir.stage("data/dark", {"tint": -30}, lambda ctx: write_cityscapes(Stripes(6, 2, tint=-30), ctx.out, "train", progress=False))
    cfg = profiles.load("smoke", sources=["src", "dark"], target="tgt", uda_source="src", uda_methods=[], conditions=[], seg_steps=6, pseudo_labeller="colour")

    models = pseudo_labels.train_baselines(run_dir, cfg)
    assert list(models) == ["source only (src)", "source only (dark)", "source only, Lab-recoloured (src+dark)", "oracle (tgt)"]
    assert models["source only, Lab-recoloured (src+dark)"] == "models/supervised/recoloured"
    recoloured, target = run_dir.dataset("recoloured", "train"), run_dir.dataset("data/tgt", "train")
    assert sorted(recoloured.ids) == sorted([f"src_s{i}" for i in range(16)] + [f"dark_s{i}" for i in range(6)])
    for source, i in (("src", 0), ("src", 5), ("dark", 1)):
        original = run_dir.dataset(f"data/{source}", "train")[i]  # reference drawn by the index in the source as read
        got = recoloured[recoloured.ids.index(f"{source}_{original.id}")]
        assert np.array_equal(got.label, original.label)
        reference = target[int(np.random.default_rng([cfg.seed, 6, i]).integers(len(target)))].image
        lab_got, lab_ref, lab_before = (rgb_to_lab(x).reshape(-1, 3) for x in (got.image, reference, original.image))
        # the reference's Lab mean and std, where the source image's were another tint's
        assert np.abs(lab_got.mean(0) - lab_ref.mean(0)).max() < 1.5 < np.abs(lab_before.mean(0) - lab_ref.mean(0)).max()
        assert np.abs(lab_got.std(0) - lab_ref.std(0)).max() < 1.5
    assert run_dir.manifest("models/supervised/recoloured")["params"]["target"] is None  # source only: no target image in training

    pseudo_labels.make(run_dir, cfg)
    assert run_dir.manifest("pseudo_labels")["params"]["labeller"] == "colour"
    assert "models/supervised/recoloured" in run_dir.manifest("pseudo_labels")["inputs"]
    quality = pseudo_labels.quality(run_dir, cfg, models)
    assert checks.pseudo_labeller(run_dir, cfg, quality) == "source only, Lab-recoloured (src+dark)"
    assert mcoc.judge_stage(cfg) == "models/supervised/recoloured" == mcoc.train_judge(run_dir, cfg)

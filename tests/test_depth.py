"""Depth stages: estimated once per dataset, stored as 16-bit PNGs, read back by stage 2 and generation."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from synthlib import data, depth, profiles, runs, tiny_hub
from synthlib.datasets import write_cityscapes
from synthlib.diffusion import pretrain, stage1, stage2
from synthlib.fingerprints import weights_fingerprint
from tests.test_runs import accelerate_launch

STAGE = "depth/real"


@pytest.fixture(scope="module")
def depth_model(tmp_path_factory):
    return tiny_hub.write_depth_model(tmp_path_factory.mktemp("hub") / "depth")


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A run holding minicity ``data/real`` (6 train, 3 val images of 32x64) that tests link into theirs."""
    run_dir = runs.open("source", tmp_path_factory.mktemp("runs"))
    data.prepare(run_dir, cfg_of(), names=["real"])
    return run_dir


def cfg_of(depth_model="", **overrides):
    fields = dict(minicity_train=6, minicity_val=3, sources=["real"], diff_depth_model=str(depth_model))
    return profiles.load("smoke", **{**fields, **overrides})


def new_run(tmp_path, source_run, name="t"):
    run_dir = runs.open(name, tmp_path)
    run_dir.link_from(source_run, ["data/real"])
    return run_dir


def counting(monkeypatch) -> list[int]:
    """Count the depth model's calls (images per call) wherever they come from."""
    calls, real = [], depth.estimate_depth
    monkeypatch.setattr(depth, "estimate_depth", lambda m, p, images, *a, **k: calls.append(len(images)) or real(m, p, images, *a, **k))
    return calls


def test_depth_is_estimated_once_stored_in_16_bits_and_read_back_within_tolerance(tmp_path, source_run, depth_model, monkeypatch):
    run_dir, cfg = new_run(tmp_path, source_run), cfg_of(depth_model)
    real = depth.estimate_depth
    calls = counting(monkeypatch)
    assert depth.estimate_dataset(run_dir, cfg, "data/real") == run_dir.stage_path(STAGE)
    assert sum(calls) == 9  # every image of both splits, once
    made = run_dir.manifest(STAGE)
    assert made["params"]["model_weights"] == weights_fingerprint(depth_model) and made["inputs"].keys() == {"data/real"}
    depth.estimate_dataset(run_dir, cfg, "data/real")
    assert sum(calls) == 9 and run_dir.manifest(STAGE)["fingerprint"] == made["fingerprint"]  # skipped

    files = sorted(run_dir.stage_path(STAGE).rglob(f"*{depth.SUFFIX}"))
    assert len(files) == 9
    for file in files:
        with Image.open(file) as im:
            assert im.mode == "I;16" and im.size == (56, 28)  # 16 bits, at the model's resolution (28x56), not 32x64
    index = json.loads((run_dir.stage_path(STAGE) / depth.INDEX).read_text())
    model, processor = depth.load_depth_model(depth_model)
    worst = 0.0
    for split in ("train", "val"):
        dataset = run_dir.dataset("data/real", split)
        reference = real(model, processor, [x.image for x in dataset])
        for x, expected in zip(dataset, reference, strict=True):
            got = depth.read(run_dir, STAGE, x.id)
            assert got.dtype == np.float32 and got.shape == (32, 64)
            low, high = index["maps"][split][x.id]["log_range"]
            error = np.abs(got / expected - 1).max()
            assert error <= (high - low) / 131068 + 1e-6, (x.id, error)  # the module's stated tolerance
            worst = max(worst, error)
    print(f"worst relative error read vs estimate_depth: {worst:.2e}")
    assert depth.read(run_dir, STAGE, dataset.ids[0], (16, 32)).shape == (16, 32)
    with pytest.raises(depth.DepthError, match="no map of sample 'nope'"):
        depth.read(run_dir, STAGE, "nope")

    tiny_hub.write_depth_model(depth_model, seed=1)  # new weights at the same path: made again
    try:
        depth.estimate_dataset(run_dir, cfg, "data/real")
        assert sum(calls) == 18 and run_dir.manifest(STAGE)["fingerprint"] != made["fingerprint"]
    finally:
        tiny_hub.write_depth_model(depth_model, seed=0)


def test_a_wide_depth_range_survives_16_bits_within_the_stated_tolerance(tmp_path, source_run, depth_model, monkeypatch):
    """Maps spanning 1e6:1 (estimate_depth's clamp), stored and read at the model's resolution: quantisation alone."""
    rng = np.random.default_rng(0)

    def wide(model, processor, images, batch_size=8, resize=True):
        assert not resize
        return np.exp(rng.uniform(0, math.log(1e6), (len(images), 28, 56))).astype(np.float32)

    stored = {}
    monkeypatch.setattr(depth, "estimate_depth", lambda *a, **k: stored.setdefault(len(stored), wide(*a, **k)))
    run_dir = new_run(tmp_path, source_run)
    depth.estimate_dataset(run_dir, cfg_of(depth_model), "data/real")
    ids = run_dir.dataset("data/real", "train").ids
    expected = stored[0][: len(ids)]  # the first call: the 6 train images, in order
    got = np.stack([depth.read(run_dir, STAGE, i, (28, 56)) for i in ids])
    error = np.abs(got / expected - 1).max()
    print(f"worst relative error over a 1e6:1 range: {error:.2e}")
    assert error <= math.log(1e6) / 131068 + 1e-6
    with pytest.raises(depth.DepthError, match="needs a monocular depth model"):
        depth.estimate_dataset(run_dir, cfg_of(""), "data/real")


def test_stage_2_reads_the_depth_stage_instead_of_running_the_model(tmp_path, source_run, depth_model, monkeypatch):
    run_dir = new_run(tmp_path, source_run)
    cfg = cfg_of(depth_model, diff_pretrain_steps=2, diff_stage1_steps=2, diff_stage2_steps=2, diff_sample_steps=2, diff_eval_images=2)

    def copy(ctx):  # pseudo-labels: the target images with their own labels, as the labeller writes them
        for split in ("train", "val"):
            write_cityscapes(run_dir.dataset("data/real", split), ctx.out, split, progress=False)

    run_dir.stage(stage2.PAIRS, {"copy": 1}, copy)
    depth.estimate_dataset(run_dir, cfg, "data/real")
    calls, reads, real_read = counting(monkeypatch), [], depth.read
    monkeypatch.setattr(depth, "read", lambda *a, **k: reads.append(a[2]) or real_read(*a, **k))
    pretrain.pretrain(run_dir, cfg)  # the steps stage 2 needs, made first as the graph makes them
    stage1.train_stage1(run_dir, cfg)
    stage2.train_stage2(run_dir, cfg)
    assert calls == [] and reads  # the training pairs were read from the stage
    assert set(reads) <= set(run_dir.dataset(stage2.PAIRS, "train").ids)
    assert run_dir.manifest(stage2.STAGE)["inputs"].keys() == {"diffusion/stage1", stage2.PAIRS, STAGE}

    evaluation = stage2._Faithfulness(run_dir, cfg)  # the faithfulness score's val maps
    val = run_dir.dataset(stage2.PAIRS, "val")
    expected = np.stack([real_read(run_dir, STAGE, x.id, split="val") for x in val][: len(evaluation.maps)])
    assert calls == [] and np.array_equal(evaluation.depth[:], expected)  # read a batch at a time, never all at once


def test_stage_2_without_a_depth_model_asks_for_no_depth_stage(tmp_path, source_run, monkeypatch):
    """Embedded profiles: the dataset's depth, the stages' parameters and inputs as before."""
    run_dir, asked = new_run(tmp_path, source_run), {}
    monkeypatch.setattr(run_dir, "stage", lambda name, params, build, inputs=(), force=False: asked.setdefault(name, (params, list(inputs))))
    monkeypatch.setattr(run_dir, "require", lambda name, made_by: run_dir.stage_path(name))  # stage 1 taken as made
    stage2.train_stage2(run_dir, cfg_of())
    assert not any(name.startswith("depth/") for name in asked)
    params, inputs = asked[stage2.STAGE]
    assert inputs == ["diffusion/stage1", stage2.PAIRS] and params["depth_model"] == "" and "window" not in params["eval"]


_ESTIMATE = """
import sys
from synthlib import depth, profiles, runs

cfg = profiles.load("smoke", minicity_train=6, minicity_val=3, sources=["real"], diff_depth_model=sys.argv[3])
depth.estimate_dataset(runs.open(sys.argv[2], sys.argv[1]), cfg, "data/real")
"""


def test_accelerate_launch_shares_the_images_out_and_writes_the_same_files(tmp_path, source_run, depth_model):
    one, two = new_run(tmp_path, source_run, "one"), new_run(tmp_path, source_run, "two")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the launched processes: the same floating-point sums
    try:
        depth.estimate_dataset(one, cfg_of(depth_model), "data/real")
    finally:
        torch.set_num_threads(threads)
    script = tmp_path / "estimate.py"
    script.write_text(_ESTIMATE)
    accelerate_launch(script, tmp_path, "two", depth_model)

    def files(run_dir):
        root = run_dir.stage_path(STAGE)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}

    made, reference = files(two), files(one)
    assert sorted(made) == sorted(reference) and len(made) == 10  # 9 maps and the index
    assert [name for name in made if made[name] != reference[name]] == []

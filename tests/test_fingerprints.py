import json
import os
import shutil
import time
from dataclasses import replace

import pytest
import torch
from safetensors.torch import save_file
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from synthlib import fingerprints, mcoc, profiles, pseudo_labels, runs, segmenters, zoo
from synthlib.datasets import write_cityscapes
from synthlib.diffusion.pretrain import pretrain
from synthlib.diffusion.stage1 import train_stage1
from synthlib.diffusion.stage2 import train_stage2
from synthlib.fingerprints import weights_fingerprint
from synthlib.generation import generate_set
from synthlib.segmenters import fit as seg
from tests.test_segmenters import Stripes

TINY = dict(hidden_sizes=[8, 8, 8, 8], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=8)


def _segformer(seed: int = 0) -> SegformerForSemanticSegmentation:
    torch.manual_seed(seed)
    return SegformerForSemanticSegmentation(SegformerConfig(num_labels=19, **TINY))


@pytest.fixture
def no_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache: hub ids resolve only to what a test puts there."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


# --- the fingerprint -----------------------------------------------------------------------


def test_replaced_weights_at_the_same_path_change_the_fingerprint(tmp_path):
    model, folder = _segformer(), tmp_path / "seg"
    model.save_pretrained(folder)
    first = weights_fingerprint(folder)
    assert len(first) == fingerprints.DIGEST_CHARS and int(first, 16) >= 0
    assert weights_fingerprint(str(folder)) == first

    model.save_pretrained(folder)  # the same weights written again: new mtimes, same contents
    assert weights_fingerprint(folder) == first

    stamps = {file: file.stat().st_mtime_ns for file in folder.iterdir()}
    with torch.no_grad():
        model.decode_head.classifier.bias[3] += 0.5  # one weight
    model.save_pretrained(folder)
    for file, stamp in stamps.items():  # rewritten within a coarse file system's tick: same sizes, same mtimes
        os.utime(file, ns=(stamp, stamp))
    changed = weights_fingerprint(folder)
    assert changed != first

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "semantic_loss_ignore_index": 254}))
    assert weights_fingerprint(folder) not in (first, changed)  # configs count too


def test_hidden_files_caches_and_other_files_are_left_out(tmp_path):
    folder = tmp_path / "seg"
    _segformer().save_pretrained(folder)
    before = weights_fingerprint(folder)
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "model.safetensors.metadata").write_text("etag 1")
    (folder / ".cache" / "huggingface" / "download.json").write_text("{}")
    (folder / ".gitattributes").write_text("*.safetensors filter=lfs")
    (folder / "README.md").write_text("model card")
    assert weights_fingerprint(folder) == before
    shutil.copy(folder / "model.safetensors", folder / "extra.safetensors")
    assert weights_fingerprint(folder) != before  # a new weight file is part of the model


def test_big_weight_files_are_hashed_by_header_and_sampled_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprints, "FULL_HASH_BYTES", 2**20)  # 4 MiB of weights count as big here
    file = tmp_path / "unet.safetensors"
    weights = torch.randn(2**20, generator=torch.Generator().manual_seed(0))
    save_file({"w": weights}, file)
    first = weights_fingerprint(file)
    save_file({"w": weights.clone()}, file)
    assert weights_fingerprint(file) == first
    save_file({"w": weights + 1e-3 * torch.randn(2**20)}, file)  # retrained: every weight moved a little
    assert weights_fingerprint(file) != first
    save_file({"w": weights.reshape(1024, 1024)}, file)  # same bytes, another shape: the header differs
    assert weights_fingerprint(file) != first

    reads = []
    real_open = type(file).open
    monkeypatch.setattr(type(file), "open", lambda self, *a: _Counting(real_open(self, *a), reads))
    weights_fingerprint(file)
    assert 0 < sum(reads) <= 8 + 200 + fingerprints.BLOCKS * fingerprints.BLOCK_BYTES < file.stat().st_size / 2


def test_named_configs_missing_paths_and_uncached_hub_ids_have_none(no_hub_cache):
    for spec in ("micro", "mit-tiny-s2", "", "some-org/some-model", "./absent/model", "not a repo id"):
        assert weights_fingerprint(spec) is None, spec


def test_a_cached_hub_id_is_its_snapshot_folder(tmp_path, no_hub_cache):
    commit = "0" * 40
    repo = no_hub_cache / "models--some-org--tiny-segformer"
    snapshot = repo / "snapshots" / commit
    _segformer().save_pretrained(tmp_path / "seg")
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in (tmp_path / "seg").iterdir():  # the hub's layout: snapshot files link to blobs
        blob = repo / "blobs" / file.name
        shutil.copy(file, blob)
        os.symlink(blob, snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert weights_fingerprint("some-org/tiny-segformer") == weights_fingerprint(tmp_path / "seg") is not None


def test_unchanged_old_files_are_not_read_again(tmp_path, monkeypatch):
    folder = tmp_path / "seg"
    _segformer().save_pretrained(folder)
    old = time.time() - 60
    for file in folder.iterdir():
        os.utime(file, (old, old))
    hashed = []
    real = fingerprints._file_digest
    monkeypatch.setattr(fingerprints, "_file_digest", lambda path, size: hashed.append(path.name) or real(path, size))
    first = weights_fingerprint(folder)
    assert sorted(hashed) == ["config.json", "model.safetensors"]
    assert weights_fingerprint(folder) == first and len(hashed) == 2  # memoised
    _segformer(seed=1).save_pretrained(folder)  # replaced: new mtimes, hashed again
    assert weights_fingerprint(folder) != first and len(hashed) == 4


# --- stages ----------------------------------------------------------------------------------


@pytest.fixture
def stripes_run(tmp_path):
    """A run with small Stripes data stages: source 'src', tinted target 'tgt'."""
    run_dir = runs.open("t", tmp_path / "runs")
    for name, tint in (("src", 0), ("tgt", 40)):

        def build(ctx, tint=tint):
            write_cityscapes(Stripes(8, 0, tint=tint), ctx.out, "train", progress=False)
            write_cityscapes(Stripes(4, 1, tint=tint), ctx.out, "val", progress=False)

        run_dir.stage(f"data/{name}", {"tint": tint}, build)
    return run_dir


def test_stages_of_a_model_folder_rerun_when_its_weights_are_replaced(tmp_path, stripes_run):
    run_dir, folder = stripes_run, tmp_path / "segformer"
    segmenters.save(segmenters.build("mit-tiny-s2", seed=0), folder)
    cfg = profiles.load("smoke", sources=["src"], target="tgt", uda_source="src", conditions=[], seg_steps=2)
    with_folder = profiles.load(
        "smoke", sources=["src"], target="tgt", uda_source="src", conditions=[], seg_steps=2, seg_model=str(folder)
    )
    stage = seg.model_stage("supervised", "data/src")

    def made():
        seg.fit(run_dir, with_folder, "data/src")
        pseudo_labels.make(run_dir, cfg, labeller=str(folder))
        return {name: run_dir.manifest(name) for name in (stage, pseudo_labels.STAGE)}

    first = made()
    assert first[stage]["params"]["model_weights"] == weights_fingerprint(folder)
    assert first[pseudo_labels.STAGE]["params"]["labeller_weights"] == weights_fingerprint(folder)
    again = made()  # nothing changed: both skipped
    assert all(again[name]["fingerprint"] == first[name]["fingerprint"] for name in first)

    segmenters.save(segmenters.build("mit-tiny-s2", seed=1), folder)  # new weights, same path
    replaced = made()
    for name in first:
        assert replaced[name]["fingerprint"] != first[name]["fingerprint"], name
        assert replaced[name]["params"]["model" if name == stage else "labeller"] == str(folder)

    seg.fit(run_dir, replace(cfg, seg_model="mit-tiny-s2"), "data/src")  # a named config: the parameters of before
    assert set(run_dir.manifest(stage)["params"]) == {"model", "train_set", "target", "settings"}
    seg.fit(run_dir, cfg, "data/src")  # smoke's zoo:mit-tiny-s2: the weights of the zoo model's folder
    assert cfg.seg_model == "zoo:mit-tiny-s2"
    assert run_dir.manifest(stage)["params"]["model_weights"] == weights_fingerprint(zoo.folder("mit-tiny-s2"))


def test_the_mcoc_judge_from_a_folder_adds_its_weights(tmp_path):
    folder = tmp_path / "judge"
    segmenters.save(segmenters.build("mit-tiny-s2"), folder)
    cfg = profiles.load("smoke", mcoc_judge=str(folder))
    assert mcoc._judge_weights(cfg, mcoc.judge_stage(cfg)) == {"judge_weights": weights_fingerprint(folder)}
    named = profiles.load("smoke")
    assert mcoc._judge_weights(named, mcoc.judge_stage(named)) == {}


def test_diffusion_and_depth_stages_record_their_weights(tmp_path, stripes_run, monkeypatch):
    """The parameters stage 1, stage 2 and generation ask their stages for (the stages themselves not run)."""
    run_dir = stripes_run
    for name in ("sd", "depth"):
        (tmp_path / name).mkdir()
        save_file({"w": torch.full((4,), float(len(name)))}, tmp_path / name / "model.safetensors")
    asked = {}

    def stage(name, params, build, inputs=(), force=False):
        asked[name] = params
        return tmp_path / "made" / name

    monkeypatch.setattr(run_dir, "stage", stage)
    monkeypatch.setattr(run_dir, "require", lambda name, made_by: tmp_path / "made" / name)  # the steps before, taken as made
    common = dict(sources=["src"], target="tgt", conditions=[], diff_depth=True)
    loaded = profiles.load("smoke", diff_model=str(tmp_path / "sd"), diff_depth_model=str(tmp_path / "depth"), **common)
    train_stage1(run_dir, loaded)
    train_stage2(run_dir, loaded)
    generate_set(run_dir, loaded, "src")
    assert asked["diffusion/stage1"]["model_weights"] == weights_fingerprint(tmp_path / "sd")
    assert asked["diffusion/stage2"]["depth_weights"] == weights_fingerprint(tmp_path / "depth")
    assert asked["generated/src"]["depth_weights"] == weights_fingerprint(tmp_path / "depth")

    asked.clear()
    micro = profiles.load("smoke", **common)  # micro, the dataset's depth: no weights keys
    pretrain(run_dir, micro)
    train_stage1(run_dir, micro)
    train_stage2(run_dir, micro)
    generate_set(run_dir, micro, "src")
    assert asked.keys() == {"diffusion/pretrain", "diffusion/stage1", "diffusion/stage2", "generated/src"}
    assert not any(key.endswith("_weights") for params in asked.values() for key in params)


class _Counting:
    """A file whose reads are counted into ``reads``."""

    def __init__(self, file, reads: list) -> None:
        self.file, self.reads = file, reads

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def read(self, n: int = -1) -> bytes:
        data = self.file.read(n)
        self.reads.append(len(data))
        return data

    def seek(self, offset: int) -> int:
        return self.file.seek(offset)

import numpy as np
import pytest
import torch
from PIL import Image

from synthlib import diffusion, generation, profiles, runs
from synthlib.datasets import DatasetError, Sample, write_cityscapes
from synthlib.labels import CLASS_NAMES, IGNORE
from synthlib.runs import StageError
from tests.test_runs import accelerate_launch

ROAD, SKY, PERSON, CAR, TRAIN = 0, 10, 11, 13, 16


def toy_maps(n: int, size=(8, 16)) -> list[Sample]:
    """Sky over road, a car somewhere on it; depth and instances like a real source."""
    out = []
    for i in range(n):
        label = np.full(size, ROAD, np.uint8)
        label[: size[0] // 2] = SKY
        x = 1 + 3 * i % (size[1] - 4)
        label[size[0] // 2 : size[0] // 2 + 2, x : x + 3] = CAR
        instances = np.where(label == CAR, 1, 0).astype(np.int32)
        depth = np.linspace(50, 5, size[0], dtype=np.float32)[:, None].repeat(size[1], 1)
        out.append(Sample(np.zeros((*size, 3), np.uint8), label, depth, instances, f"toy_{i:03d}", {"index": i}))
    return out


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """An untrained stage-2 model at 8x16 (micro config, concat branch with depth): generation does not care."""
    folder = tmp_path_factory.mktemp("stage2") / "model"
    diffusion.save(diffusion.add_branch(diffusion.build("micro", (8, 16), "p", seed=0), "concat", depth=True), folder)
    return folder


def make_run(tmp_path, model_folder, monkeypatch, maps: list[Sample], name: str = "t"):
    """A run with a source ``data/toy`` and a stage-2 model stage, without training anything."""
    import shutil

    run_dir = runs.open(name, tmp_path)
    run_dir.stage("data/toy", {"n": len(maps)}, lambda ctx: write_cityscapes(maps, ctx.out, "train", progress=False))
    run_dir.stage(generation.MODEL_STAGE, {"test": 1}, lambda ctx: shutil.copytree(model_folder, ctx.out / "model"))
    return run_dir


def smoke(**overrides):
    fields = {"gen_sources": ["toy"], "gen_per_map": 2, "gen_batch": 3, "gen_steps": 2, "gen_max_maps": 0}
    return profiles.load("smoke", **{**fields, **overrides})


def images_of(run_dir, stage):
    ds = run_dir.dataset(stage, "train")
    return {ds.ids[i]: ds[i] for i in range(len(ds))}


def test_generated_set_records_seeds_and_settings_and_is_deterministic(tmp_path, model_folder, monkeypatch):
    maps = toy_maps(4)
    a = make_run(tmp_path, model_folder, monkeypatch, maps, "a")
    b = make_run(tmp_path, model_folder, monkeypatch, maps, "b")
    cfg = smoke()
    for run_dir in (a, b):
        assert generation.generate_all(run_dir, cfg) == {"data/toy": run_dir.stage_path("generated/toy")}
    first, second = images_of(a, "generated/toy"), images_of(b, "generated/toy")
    assert sorted(first) == [f"toy_{i:03d}_gen{k}" for i in range(4) for k in range(2)]
    for key, sample in first.items():
        assert np.array_equal(sample.image, second[key].image)  # fixed seeds, same images
        source = maps[int(key[4:7])]
        assert np.array_equal(sample.label, source.label) and sample.instances is not None  # labels = the source map
        assert sample.meta["seed"] == generation.seed_of(cfg.seed, int(key[4:7]), int(key[-1]))
        assert sample.meta["source_meta"] == {"index": int(key[4:7])}
        assert {k: sample.meta[k] for k in ("guidance_scale", "conditioning_scale", "steps", "scheduler")} == {
            "guidance_scale": 1.0, "conditioning_scale": 1.0, "steps": 2, "scheduler": "ddim"}
    assert not np.array_equal(first["toy_000_gen0"].image, first["toy_000_gen1"].image)  # two seeds, two images
    table = generation.table(a, "toy")
    assert len(table) == 8 and table["seed"].is_unique and set(table["steps"]) == {2}
    assert generation.summary(a, ["toy"]).loc["generated/toy", "images"] == 8
    # a different batch size makes the same images (up to float rounding)
    c = make_run(tmp_path, model_folder, monkeypatch, maps, "c")
    generation.generate_set(c, smoke(gen_batch=8), "toy")
    third = images_of(c, "generated/toy")
    assert all(np.abs(third[k].image.astype(int) - first[k].image.astype(int)).max() <= 1 for k in first)


def test_an_interrupted_generation_resumes_without_redoing_or_duplicating(tmp_path, model_folder, monkeypatch):
    maps = toy_maps(5)  # 10 images in batches of 3: 4 batches
    reference = make_run(tmp_path, model_folder, monkeypatch, maps, "reference")
    generation.generate_set(reference, smoke(), "toy")
    run_dir = make_run(tmp_path, model_folder, monkeypatch, maps, "t")
    real, calls = generation.sample_images, []

    def crash_on_third(*args, **kwargs):
        calls.append(len(args[1]))
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated interruption in the third batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "sample_images", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        generation.generate_set(run_dir, smoke(), "toy")
    assert run_dir.manifest("generated/toy") is None  # nothing half-made is visible
    calls.clear()
    monkeypatch.setattr(generation, "sample_images", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    generation.generate_set(run_dir, smoke(), "toy")
    assert calls == [3, 1]  # only the third and fourth batches were generated
    assert run_dir.manifest("generated/toy")["info"]["resumed_batches"] == 2
    resumed, full = images_of(run_dir, "generated/toy"), images_of(reference, "generated/toy")
    assert sorted(resumed) == sorted(full) and len(resumed) == 10
    assert all(np.array_equal(resumed[k].image, full[k].image) for k in full)
    assert generation.table(run_dir, "toy")["id"].is_unique


_GENERATE = """
import sys
from synthlib import generation, profiles, runs

cfg = profiles.load("smoke", gen_sources=["toy"], gen_per_map=2, gen_batch=3, gen_steps=2, gen_max_maps=0)
generation.generate_set(runs.open(sys.argv[2], sys.argv[1]), cfg, "toy")
"""


def test_accelerate_launch_shares_the_batches_out_and_makes_the_one_process_files(tmp_path, model_folder, monkeypatch):
    maps = toy_maps(5)  # 10 images in batches of 3: 4 batches
    one = make_run(tmp_path, model_folder, monkeypatch, maps, "one")
    two = make_run(tmp_path, model_folder, monkeypatch, maps, "two")
    real, calls = generation.sample_images, []

    def crash_in_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption in the second batch")
        return real(*args, **kwargs)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the launched processes: the same floating-point sums
    try:
        generation.generate_set(one, smoke(), "toy")
        monkeypatch.setattr(generation, "sample_images", crash_in_second_batch)
        with pytest.raises(KeyboardInterrupt):
            generation.generate_set(two, smoke(), "toy")  # leaves batch 0 finished
    finally:
        torch.set_num_threads(threads)
    script = tmp_path / "generate.py"
    script.write_text(_GENERATE)
    accelerate_launch(script, tmp_path, "two")  # resumes "two" in two processes
    info = two.manifest("generated/toy")["info"]
    assert info["resumed_batches"] == 1
    assert info["batches_per_process"] == [1, 2]  # process 0: batch 2 (0 was done); process 1: batches 1 and 3
    assert one.manifest("generated/toy")["info"]["batches_per_process"] == [4]

    def files(run_dir):
        root = run_dir.stage_path("generated/toy")
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}

    made, reference = files(two), files(one)
    assert sorted(made) == sorted(reference)
    assert [name for name in made if made[name] != reference[name]] == []  # byte for byte: images, labels, meta, table
    assert sum(name.endswith("_leftImg8bit.png") for name in made) == 10
    assert sorted(images_of(two, "generated/toy")) == [f"toy_{i:03d}_gen{k}" for i in range(5) for k in range(2)]


def test_bad_maps_and_empty_sets_are_clear_errors(tmp_path, model_folder, monkeypatch):
    model = diffusion.load(model_folder)
    cfg = smoke()
    bad = toy_maps(2)
    bad[1].label[0, 0] = 30
    with pytest.raises(generation.GenerationError, match=r"map 1 \(toy_001\).*holds values \[30\]"):
        generation.generate_from(model, cfg, bad)
    with pytest.raises(generation.GenerationError, match="no maps to generate from"):
        generation.generate_from(model, cfg, [])
    square = make_run(tmp_path, model_folder, monkeypatch, toy_maps(2, size=(8, 8)), "square")
    with pytest.raises(generation.GenerationError, match=r"data/toy \(train\): map 'toy_000' is 8x8 .* the model generates 8x16"):
        generation.generate_set(square, cfg, "toy")
    assert square.manifest("generated/toy") is None
    generation.generate_set(square, smoke(gen_fit="crop"), "toy")  # centre-cropped to 4x8
    assert square.dataset("generated/toy", "train")[0].label.shape == (4, 8)
    with pytest.raises(DatasetError, match="no completed dataset stage 'data/gta5'"):
        generation.generate_set(square, cfg, "gta5")
    # a label file edited after the source was written: the stage no longer matches its record, and the error names the file
    run_dir = make_run(tmp_path, model_folder, monkeypatch, toy_maps(2), "edited")
    path = next((run_dir.stage_path("data/toy") / "gtFine" / "train").rglob("toy_001_gtFine_labelIds.png"))
    Image.fromarray(np.full((8, 16), 40, np.uint8)).save(path)
    with pytest.raises(StageError, match="toy_001_gtFine_labelIds.png changed"):
        generation.generate_set(run_dir, cfg, "toy")
    assert run_dir.manifest("generated/toy") is None
    with pytest.raises(generation.GenerationError, match="gen_scheduler 'euler' unknown"):
        generation.sampling_settings(cfg, scheduler="euler")


def test_compose_draws_shapes_with_instances_and_ground_depth():
    sample = generation.compose([generation.rect("car", 0.25, 0.5, 0.75, 0.75), generation.ellipse(PERSON, 0.4, 0.55, 0.6, 1.0)], 16, 32, base=[
        generation.rect("sky", 0, 0, 1, 0.5), generation.polygon("road", [(0, 0.5), (1, 0.5), (1, 1), (0, 1)])])
    label = sample.label
    assert set(np.unique(label)) == {ROAD, SKY, PERSON, CAR}
    assert (label[:8] == SKY).all() and label[9, 8] == CAR and label[15, 16] == PERSON  # the person is drawn in front
    assert len(np.unique(sample.instances[label == CAR])) == 1 and np.unique(sample.instances[label == PERSON]).size == 1
    assert (sample.instances[np.isin(label, [ROAD, SKY])] == 0).all()
    road = sample.depth[:, 0]
    assert (np.diff(road[8:]) < 0).all() and road[-1] < 6  # the ground comes closer towards the bottom
    assert sample.depth[9, 8] == pytest.approx(sample.depth[11, 0])  # a car stands on the ground at its lowest row
    cases = generation.edge_cases(32, 64)
    crossing = cases["pedestrian crossing in front of the car"].label
    rows, cols = np.nonzero(crossing == CAR)
    assert (crossing[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] == PERSON).any()  # in front of the car
    tram = cases["tram across the road"].label
    assert (tram == TRAIN).sum(1).max() > 0.8 * 64  # across (almost) the whole width
    assert all(IGNORE not in c.label for c in cases.values())
    with pytest.raises(generation.GenerationError, match="class 'tram' unknown"):
        generation.rect("tram", 0, 0, 1, 1)


def test_painter_paints_and_generates(model_folder):
    model = diffusion.load(model_folder)
    painter = generation.painter(model, smoke(height=8, width=16), seeds=(0, 1))
    before = len(painter.shapes)
    painter.cls.value = "train"
    painter.buttons["paint"].click()
    assert len(painter.shapes) == before + 1 and painter.shapes[-1].cls == CLASS_NAMES.index("train")
    painter.buttons["generate"].click()
    assert painter.images.shape == (2, 8, 16, 3) and painter.result.value[:4] == b"\x89PNG"
    painter.buttons["undo"].click()
    assert len(painter.shapes) == before
    images = generation.generate_from(model, smoke(), list(generation.edge_cases(8, 16).values()), seeds=[5, 5, 5, 5])
    assert images.shape == (4, 8, 16, 3)


def test_generation_reads_the_source_depth_stage_instead_of_running_the_depth_model(tmp_path, model_folder, monkeypatch):
    from synthlib import depth, tiny_hub

    folder = tiny_hub.write_depth_model(tmp_path / "depth")
    maps = toy_maps(3, size=(8, 8))  # square maps for an 8x16 model: gen_fit="crop" cuts them to 4x8
    run_dir = make_run(tmp_path, model_folder, monkeypatch, maps)
    calls, real_estimate = [], depth.estimate_depth
    monkeypatch.setattr(depth, "estimate_depth", lambda *a, **k: calls.append(len(a[2])) or real_estimate(*a, **k))
    given, real_sample = [], generation.sample_images
    monkeypatch.setattr(generation, "sample_images", lambda m, labels, d, **k: given.append(d) or real_sample(m, labels, d, **k))
    cfg = smoke(diff_depth_model=str(folder), gen_fit="crop")
    generation.generate_set(run_dir, cfg, "toy")
    assert sum(calls) == 3  # stage depth/toy, made on demand: each source image once
    assert run_dir.manifest("generated/toy")["inputs"].keys() == {"data/toy", generation.MODEL_STAGE, "depth/toy"}
    stored = [depth.read(run_dir, "depth/toy", x.id)[2:6] for x in maps]  # 8x8, centre-cropped as the maps were
    jobs = [i for i in range(3) for _ in range(2)]  # map index of each image, in batch order
    assert np.array_equal(np.concatenate(given), np.stack([stored[i] for i in jobs]))
    made = run_dir.dataset("generated/toy", "train")[0]
    assert np.allclose(made.depth, maps[0].depth[2:6], atol=1 / 256)  # the generated set keeps the source's own depth

    generation.generate_set(run_dir, smoke(diff_depth_model=str(folder), gen_fit="crop", gen_steps=3), "toy")
    assert sum(calls) == 3  # other settings, same depth stage: the depth model is not run again


@pytest.mark.parametrize("branch", ["concat", "controlnet"])
def test_the_zoo_prior_generates_at_the_worlds_resolution_without_resizing_and_deterministically(branch, monkeypatch):
    from synthlib.diffusion import sampling

    model = diffusion.add_branch(diffusion.build("zoo:prior-tiny", (32, 64), "a photo of a city street"), branch, depth=True)
    assert model.space == "latent" and model.sample_size == (8, 16)  # the zoo VAE's 4x: 8x16 latents for 32x64 maps
    sizes = []

    def no_resize(images, size):
        sizes.append((tuple(images.shape[-2:]), tuple(size)))
        assert tuple(images.shape[-2:]) == tuple(size), f"resized {tuple(images.shape[-2:])} -> {tuple(size)}"
        return images

    monkeypatch.setattr(sampling, "resize", no_resize)
    cfg = profiles.load("smoke", gen_steps=3, gen_batch=2)
    maps = toy_maps(3, size=(32, 64))
    first = generation.generate_from(model, cfg, maps, seeds=[5, 6, 7])
    assert first.shape == (3, 32, 64, 3) and sizes and all(a == (32, 64) for a, _ in sizes)
    again = generation.generate_from(model, cfg, maps, seeds=[5, 6, 7])
    other = generation.generate_from(model, cfg, maps, seeds=[8, 6, 7])
    assert np.array_equal(first, again)  # the same seeds, the same images
    assert not np.array_equal(first[0], other[0]) and np.array_equal(first[1:], other[1:])  # a seed is its image's alone

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from synthlib import generation, mcoc, profiles, runs
from synthlib.datasets import Sample, write_cityscapes
from synthlib.labels import IGNORE, NUM_CLASSES

ROAD, SIDEWALK, BUILDING, SKY, PERSON, CAR, TRUCK, BUS, TRAIN = 0, 1, 2, 10, 11, 13, 14, 15, 16


def scene() -> tuple[np.ndarray, np.ndarray]:
    """8x12: two cars, a one-pixel car, a road split by an ignore column, sky; and a judge's prediction."""
    label = np.full((8, 12), SKY, np.uint8)
    label[5:8, :] = ROAD
    label[5:8, 6] = IGNORE  # splits the road into two objects of 18 and 15 pixels
    label[1:3, 0:2] = CAR  # car A: 4 pixels
    label[1:3, 4:6] = CAR  # car B: 4 pixels
    label[0, 11] = CAR  # a one-pixel car
    pred = label.copy()
    pred[label == IGNORE] = BUS  # what the judge says on ignore pixels never counts
    pred[1, 0] = ROAD  # car A: 3 of 4 right
    pred[1:3, 4] = SKY  # car B: 2 of 4 right
    pred[2, 5] = SKY  # ... 1 of 4 right
    pred[0, 11] = SKY  # the one-pixel car: wrong, but not an object with min_pixels=2
    pred[5:8, 0:6] = BUILDING  # the left road: all wrong
    return label, pred


def test_mcoc_of_a_hand_made_scene():
    label, pred = scene()
    s = mcoc.score(label, pred, min_pixels=2)
    objects = s.objects.sort_values(["class", "pixels"])
    assert list(objects["class"].astype(str)) == ["road", "road", "sky", "car", "car"]
    roads = objects[objects["class"] == "road"]
    assert roads["pixels"].tolist() == [15, 18] and roads["consistency"].tolist() == [1.0, 0.0]
    assert sorted(objects.loc[objects["class"] == "car", "consistency"]) == [0.25, 0.75]
    assert s.classwise[0, ROAD] == pytest.approx(0.5)  # mean over the class's two objects
    assert s.classwise[0, CAR] == pytest.approx(0.5)
    assert s.classwise[0, SKY] == pytest.approx(1.0)
    assert np.isnan(s.classwise[0, PERSON]) and np.isnan(s.classwise[0, TRAIN])  # absent classes are not averaged
    assert s.image[0] == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # mean over the classes present
    assert mcoc.mcoc(label, pred, min_pixels=2) == pytest.approx(2 / 3)
    # with min_pixels=1 the one-pixel car is an object, and wrong: car = (0.75 + 0.25 + 0) / 3
    assert mcoc.score(label, pred, min_pixels=1).classwise[0, CAR] == pytest.approx(1 / 3)
    # with min_pixels=5 no car is an object: the image averages road and sky only
    assert mcoc.score(label, pred, min_pixels=5).image[0] == pytest.approx((0.5 + 1.0) / 2)


def test_objects_are_instances_else_8_connected_components():
    label = np.full((6, 6), SKY, np.uint8)
    label[0, 0] = label[1, 1] = CAR  # diagonal neighbours: one component
    label[3:5, 0:4] = CAR  # two touching cars, told apart by their instance ids
    label[0, 4:6] = PERSON  # one person in two parts with one instance id
    label[2, 4:6] = PERSON
    label[5, 5] = IGNORE
    instances = np.zeros((6, 6), np.int32)
    instances[3:5, 0:2], instances[3:5, 2:4] = 1, 2
    instances[0, 4:6] = instances[2, 4:6] = 3
    found = mcoc.objects(label, instances)
    pixels = sorted(zip(found.cls[1:].tolist(), found.pixels[1:].tolist(), strict=True))
    assert pixels == [(SKY, 21), (PERSON, 4), (CAR, 2), (CAR, 4), (CAR, 4)]
    without = mcoc.objects(label)  # components only: the touching cars merge, the person splits
    assert sorted(zip(without.cls[1:].tolist(), without.pixels[1:].tolist(), strict=True)) == [(SKY, 21), (PERSON, 2), (PERSON, 2), (CAR, 2), (CAR, 8)]
    assert found.ids.shape == (1, 6, 6) and found.ids[0, 5, 5] == 0  # ignore pixels belong to no object


def test_images_without_objects_are_nan_and_the_dataset_ignores_them():
    label, pred = scene()
    empty = np.full_like(label, IGNORE)
    tiny = np.full_like(label, IGNORE)
    tiny[0, 0] = CAR  # an object under min_pixels only
    s = mcoc.score(np.stack([label, empty, tiny]), np.stack([pred, pred, pred]), min_pixels=2)
    assert np.isnan(s.image[1]) and np.isnan(s.image[2])
    assert s.dataset == pytest.approx(s.image[0])
    assert math.isnan(mcoc.score(np.stack([empty, tiny]), np.stack([pred, pred]), min_pixels=2).dataset)
    assert mcoc.keep(s.image, 0.9).tolist() == [False, True, True]  # nothing to judge: kept


def _reference(labels, preds, instances, min_pixels):
    """MCOC by the definition, one object at a time."""
    out = []
    structure = np.ones((3, 3), bool)
    for label, pred, inst in zip(labels, preds, instances, strict=True):
        per_class = {}
        objects = []
        for c in range(NUM_CLASSES):
            with_id = (label == c) & (inst != 0)
            for i in np.unique(inst[with_id]):
                objects.append((c, with_id & (inst == i)))
            comp, k = ndimage.label((label == c) & (inst == 0), structure)
            objects += [(c, comp == j) for j in range(1, k + 1)]
        for c, mask in objects:
            if mask.sum() >= min_pixels:
                per_class.setdefault(c, []).append((pred[mask] == c).mean())
        out.append(np.mean([np.mean(v) for v in per_class.values()]) if per_class else np.nan)
    return np.array(out)


def test_vectorised_mcoc_equals_the_definition_across_blocks():
    rng = np.random.default_rng(0)
    n = 70  # more than one block of maps
    coarse = rng.choice([ROAD, SKY, PERSON, CAR, BUS, IGNORE], size=(n, 4, 6))
    labels = np.kron(coarse, np.ones((3, 3), np.uint8)).astype(np.uint8)  # 12x18 maps of 3x3 blocks
    labels[rng.random(labels.shape) < 0.05] = CAR  # speckle: objects under min_pixels
    instances = np.where(np.isin(labels, [PERSON, CAR]) & (rng.random(labels.shape) < 0.5), rng.integers(1, 4, labels.shape), 0)
    preds = np.where(rng.random(labels.shape) < 0.7, labels, rng.integers(0, NUM_CLASSES, labels.shape)).astype(np.uint8)
    for inst in (instances, np.zeros_like(instances)):
        s = mcoc.score(labels, preds, inst, min_pixels=3)
        np.testing.assert_allclose(s.image, _reference(labels, preds, inst, 3), equal_nan=True)
    assert len(s.objects) == s.objects["object"].max()  # one row per object, numbered across blocks


def test_rectification_relabels_a_train_the_judge_sees_as_a_bus():
    label = np.full((10, 20), ROAD, np.uint8)
    label[2:7, 2:12] = TRAIN  # 50 pixels
    label[8:10, 15:20] = CAR
    pred = label.copy()
    pred[2:6, 2:12] = BUS  # 40 of the train's 50 pixels: 80 %
    fixed, changed = mcoc.rectify(label, pred, min_pixels=4, fraction=0.5)
    expected = label.copy()
    expected[label == TRAIN] = BUS
    assert np.array_equal(fixed, expected)
    assert changed[["class", "to"]].values.tolist() == [["train", "bus"]]
    assert changed["share"].iloc[0] == pytest.approx(0.8) and changed["pixels"].iloc[0] == 50
    ignored, _ = mcoc.rectify(label, pred, min_pixels=4, fraction=0.5, mode="ignore")
    assert (ignored[label == TRAIN] == IGNORE).all() and np.array_equal(ignored[label != TRAIN], label[label != TRAIN])
    unchanged, none = mcoc.rectify(label, pred, min_pixels=4, fraction=0.9)  # 80 % is not more than 90 %
    assert np.array_equal(unchanged, label) and none.empty
    assert np.array_equal(mcoc.rectify(label, pred, min_pixels=51, fraction=0.5)[0], label)  # not an object


def test_rectification_needs_one_other_class():
    label = np.full((10, 10), ROAD, np.uint8)
    label[0:5, 0:10] = TRAIN
    pred = label.copy()
    pred[0:2, :], pred[2, :4] = BUS, BUS  # 48 % bus ...
    pred[2, 4:], pred[3, :] = CAR, CAR  # ... 32 % car: no single class has most of it
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5)
    assert np.array_equal(fixed, label) and changed.empty
    fixed, changed = mcoc.rectify(label, pred, fraction=0.3)  # a lower bar: the most frequent other class wins
    assert changed["to"].tolist() == ["bus"] and (fixed[label == TRAIN] == BUS).all()


def test_rectification_within_a_category_keeps_objects_the_judge_missed():
    label = np.full((10, 20), ROAD, np.uint8)
    label[1:5, 1:6] = CAR  # 20 pixels the judge sees as road: a small car it missed
    label[1:5, 10:16] = TRUCK  # 24 pixels it sees as a car
    label[6:9, 2:8] = SIDEWALK  # 18 pixels it sees as road
    pred = np.full_like(label, ROAD)
    pred[1:5, 10:16] = CAR
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5, within="category")
    assert sorted(changed[["class", "to"]].values.tolist()) == [["sidewalk", "road"], ["truck", "car"]]
    assert (fixed[label == CAR] == CAR).all() and (fixed[label == TRUCK] == CAR).all() and (fixed[label == SIDEWALK] == ROAD).all()
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5)  # "any": the missed car becomes road too
    assert sorted(changed["class"]) == ["car", "sidewalk", "truck"] and (fixed[label == CAR] == ROAD).all()
    # a class of another category is no "other class" at all: 60 % road and 40 % truck is not most of the car
    pred[1:3, 1:5] = TRUCK
    assert sorted(mcoc.rectify(label, pred, fraction=0.5, within="category")[1]["class"]) == ["sidewalk", "truck"]
    with pytest.raises(mcoc.MCOCError, match="rectification scope 'near' unknown; valid: any, category"):
        mcoc.rectify(label, pred, within="near")


def ignore_scene() -> tuple[np.ndarray, np.ndarray]:
    """10x20 road with ignore pixels where real maps have them: pixel 0, the last column, inside a train."""
    label = np.full((10, 20), ROAD, np.uint8)
    label[2:7, 2:12] = TRAIN
    label[8:10, 15:20] = CAR
    label[0, 0] = IGNORE  # the first pixel of the block
    label[:, 19] = IGNORE  # ... and the last: the car keeps 8 pixels
    label[4, 6] = IGNORE  # a hole in the train: 49 pixels
    pred = np.full_like(label, ROAD)  # the car is seen as road
    pred[2:7, 2:12] = BUS  # the train as a bus
    pred[label == IGNORE] = BUS  # what the judge says on ignore pixels never counts
    return label, pred


def test_ignore_pixels_are_never_objects_nor_rectified():
    label, pred = ignore_scene()
    ignore = label == IGNORE
    found = mcoc.objects(label)
    assert found.cls[0] == 0 and (found.ids[0][ignore] == 0).all()
    assert sorted(zip(found.cls[1:].tolist(), found.pixels[1:].tolist(), strict=True)) == [(ROAD, 131), (CAR, 8), (TRAIN, 49)]
    judged = np.zeros(NUM_CLASSES, bool)
    judged[[CAR, TRAIN]] = True
    assert sorted(mcoc.objects(label, classes=judged).cls[1:].tolist()) == [CAR, TRAIN]
    assert mcoc.score(label, pred).image[0] == pytest.approx(1 / 3)  # road right, car and train wrong
    expected = label.copy()
    expected[label == TRAIN] = BUS
    # rectify finds its own objects (the path that read the ignore id as a class), and with objects given
    for found_ in (None, found):
        fixed, changed = mcoc.rectify(label, pred, fraction=0.5, within="category", found=found_)
        assert np.array_equal(fixed, expected)
        assert changed[["class", "to", "pixels"]].values.tolist() == [["train", "bus", 49]]
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5)  # any class: the car seen as road becomes road
    assert sorted(changed[["class", "to"]].values.tolist()) == [["car", "road"], ["train", "bus"]]
    assert (fixed[ignore] == IGNORE).all() and (fixed[label == CAR] == ROAD).all() and (fixed[label == TRAIN] == BUS).all()
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5, mode="ignore")
    assert np.array_equal(fixed == IGNORE, ignore | (label == CAR) | (label == TRAIN))
    instances = np.zeros(label.shape, np.int32)
    instances[2:7, 2:12] = 7  # an instance over the train, its ignore pixel included: still 49 pixels
    fixed, changed = mcoc.rectify(label, pred, instances, fraction=0.5, within="category")
    assert np.array_equal(fixed, expected) and changed["pixels"].tolist() == [49]
    # a stack across blocks: an all-ignore map first, then the scene; image indices are the stack's
    stack = np.stack([np.full_like(label, IGNORE), label] * 40)
    fixed, changed = mcoc.rectify(stack, np.stack([pred] * 80), fraction=0.5, within="category")
    assert (fixed[0::2] == IGNORE).all() and all(np.array_equal(f, expected) for f in fixed[1::2])
    assert changed["image"].tolist() == list(range(1, 80, 2))
    assert changed["object"].tolist() == np.flatnonzero(mcoc.objects(stack).cls == TRAIN).tolist()  # objects' numbering


def test_only_classes_the_judge_sees_on_target_images_make_objects(tmp_path, monkeypatch):
    label, pred = scene()
    judged = np.zeros(NUM_CLASSES, bool)
    judged[[ROAD, SKY]] = True  # a judge blind to cars
    found = mcoc.objects(label, min_pixels=2, classes=judged)
    assert sorted(found.cls[1:].tolist()) == [ROAD, ROAD, SKY]
    assert mcoc.score(label, pred, found=found).image[0] == pytest.approx((0.5 + 1.0) / 2)  # the cars do not count
    fixed, changed = mcoc.rectify(label, pred, fraction=0.5, found=found)
    assert changed[["class", "to"]].values.tolist() == [["road", "building"]]  # the left road; car B (3/4 sky) stays a car
    assert (fixed[label == CAR] == CAR).all()
    with pytest.raises(mcoc.MCOCError, match="classes must be 19 booleans"):
        mcoc.objects(label, classes=[ROAD, SKY])

    # which classes a judge sees: its predictions on target train images, class by class
    run_dir = runs.open("j", tmp_path)
    targets = [Sample(np.zeros((20, 100, 3), np.uint8), np.zeros((20, 100), np.uint8), None, None, f"t{i}") for i in range(3)]
    run_dir.stage("data/real", {}, lambda ctx: write_cityscapes(targets, ctx.out, "train", progress=False))

    def stand_in(model, images, window):
        out = np.full((len(images), 20, 100), ROAD, np.uint8)
        out[:, :2, :3] = CAR  # 0.3 % of the pixels
        out[0, 0, 99] = PERSON  # one pixel of 6000
        return out

    monkeypatch.setattr(mcoc, "_predict", stand_in)
    # replace, not profiles.load: the share is checked here even where the profile's own range check would refuse it
    seen = lambda share: np.flatnonzero(mcoc.judged_classes(run_dir, replace(profiles.load("smoke"), mcoc_judged_share=share), None)).tolist()  # noqa: E731
    assert seen(0.001) == [ROAD, CAR]
    assert seen(0.0001) == [ROAD, PERSON, CAR]
    assert seen(0.0) == list(range(NUM_CLASSES))  # 0: every class, MCOC as docs/design.md §5 defines it
    with pytest.raises(mcoc.MCOCError, match=r"mcoc_judged_share 1.5 must lie in \[0, 1\)"):
        seen(1.5)


@pytest.mark.parametrize("threshold", [-0.1, 1.5, "0.5", None, True])
def test_a_threshold_outside_0_1_is_an_error(threshold):
    with pytest.raises(mcoc.MCOCError, match=r"must be a number in \[0, 1\]"):
        mcoc.keep(np.array([0.5]), threshold)


def test_bad_maps_and_parameters_are_errors():
    label, pred = scene()
    with pytest.raises(mcoc.MCOCError, match=r"maps hold values \[30\]"):
        mcoc.score(np.full((4, 4), 30, np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(mcoc.MCOCError, match="do not match the maps' shape"):
        mcoc.score(label, pred[:4])
    with pytest.raises(mcoc.MCOCError, match="min_pixels must be an integer >= 1"):
        mcoc.score(label, pred, min_pixels=0)
    with pytest.raises(mcoc.MCOCError, match="rectification mode 'erase' unknown"):
        mcoc.rectify(label, pred, mode="erase")
    with pytest.raises(mcoc.MCOCError, match="oracle"):
        mcoc.judge_stage(profiles.load("smoke", mcoc_judge="oracle"))
    assert mcoc.judge_stage(profiles.load("smoke")) == "models/supervised/recoloured"  # the pseudo-labeller, 'colour'
    assert mcoc.judge_stage(profiles.load("smoke", pseudo_labeller="self_training")) == "models/self_training/data/game"


def test_settings_heatmap_marks_the_best_setting():
    table = pd.DataFrame(
        [{"guidance_scale": g, "conditioning_scale": c, "steps": s, "scheduler": "ddim", "MCOC": 0.1 * g + c / 10 + s / 100, "seconds per image": s * g}
         for g in (1.0, 2.0) for c in (0.5, 1.0) for s in (5, 10)]
    )
    best = mcoc.best_settings(table, profiles.load("smoke"))
    assert (best.guidance_scale, best.conditioning_scale, best.steps) == (2.0, 1.0, 10)
    fig = mcoc.settings_heatmap(table)
    assert len(fig.axes) == 3  # a panel per step count and the colour bar


# --- the filtering stage, with a stand-in judge ---------------------------------------------------


def test_filter_stage_drops_rectifies_and_reports(tmp_path, monkeypatch):
    from synthlib import segmenters

    run_dir = runs.open("t", tmp_path)
    good, bad, train = (np.full((8, 16), ROAD, np.uint8) for _ in range(3))
    good[:4], bad[:4], train[:4] = SKY, SKY, SKY
    train[3:7, 2:10] = TRAIN
    maps = {"a_good": good, "a_bad": bad, "a_train": train}
    samples = [Sample(np.zeros((8, 16, 3), np.uint8), m, None, None, name, {"seed": i}) for i, (name, m) in enumerate(maps.items())]
    run_dir.stage("generated/toy", {}, lambda ctx: write_cityscapes(samples, ctx.out, generation.SPLIT, progress=False))
    judge = tmp_path / "judge"
    segmenters.save(segmenters.build("mit-tiny-s2"), judge)

    def stand_in(model, images, window):
        """The judge: right on a_good, sky where a_bad has road, trains seen as buses."""
        out = np.stack([maps[i].copy() for i in ("a_bad", "a_good", "a_train")])  # the dataset's (sorted) order
        out[0][out[0] == ROAD] = SKY
        out[2][out[2] == TRAIN] = BUS
        return out

    monkeypatch.setattr(mcoc, "_predict", stand_in)
    cfg = profiles.load("smoke", mcoc_judge=str(judge), mcoc_min_pixels=4, mcoc_judged_share=0.0)
    with pytest.raises(mcoc.MCOCError, match=r"mcoc_threshold 1.5 must be a number in \[0, 1\]"):
        mcoc.filter_set(run_dir, cfg, "generated/toy", threshold=1.5)
    assert run_dir.manifest("generated/toy-filtered") is None
    mcoc.filter_set(run_dir, cfg, "generated/toy", threshold=0.6)
    kept = run_dir.dataset("generated/toy-filtered", "train")
    assert kept.ids == ["a_good", "a_train"]
    assert (kept[1].label[train == TRAIN] == BUS).all() and kept[1].meta["seed"] == 2 and kept[1].meta["objects_changed"] == 1
    info = run_dir.manifest("generated/toy-filtered")["info"]
    assert (info["images"], info["kept"], info["dropped"], info["objects relabelled"], info["images changed"]) == (3, 2, 1, 1, 1)
    table = mcoc.image_scores(run_dir, "generated/toy").set_index("id")
    assert table.loc["a_bad", "mcoc"] == pytest.approx(0.5) and not table.loc["a_bad", "kept"]
    assert table.loc["a_train", "mcoc"] == pytest.approx(2 / 3) and table.loc["a_train", "mcoc rectified"] == pytest.approx(1.0)
    changes = mcoc.changed_objects(run_dir, "generated/toy")  # road seen as sky is not rectified: sky is not a "flat" class
    assert changes[["id", "kept", "class", "to"]].values.tolist() == [["a_train", True, "train", "bus"]]
    mcoc.filter_set(run_dir, cfg, "generated/toy", threshold=0.6, within="any")  # a changed parameter rebuilds the stage
    changes = mcoc.changed_objects(run_dir, "generated/toy")  # changes of dropped images are listed too, not kept
    assert changes[["id", "kept", "class", "to"]].values.tolist() == [["a_bad", False, "road", "sky"], ["a_train", True, "train", "bus"]]
    with pytest.raises(mcoc.MCOCError, match="mcoc_rectify_within 'class' unknown; valid: any, category"):
        mcoc.filter_set(run_dir, cfg, "generated/toy", within="class")
    assert mcoc.summary(run_dir, ["generated/toy"]).loc["generated/toy", "kept"] == 2


def test_filter_stage_keeps_ignore_pixels_of_the_maps(tmp_path, monkeypatch):
    from synthlib import segmenters

    run_dir = runs.open("t", tmp_path)
    label, pred = ignore_scene()
    samples = [Sample(np.zeros((10, 20, 3), np.uint8), label, None, None, f"m{i}", {}) for i in range(2)]
    run_dir.stage("generated/toy", {}, lambda ctx: write_cityscapes(samples, ctx.out, generation.SPLIT, progress=False))
    judge = tmp_path / "judge"
    segmenters.save(segmenters.build("mit-tiny-s2"), judge)
    monkeypatch.setattr(mcoc, "_predict", lambda model, images, window: np.stack([pred] * len(images)))
    cfg = profiles.load("smoke", mcoc_judge=str(judge), mcoc_min_pixels=4, mcoc_judged_share=0.0)
    mcoc.filter_set(run_dir, cfg, "generated/toy", threshold=0.0, within="any")
    kept = run_dir.dataset("generated/toy-filtered", "train")
    assert kept.ids == ["m0", "m1"]
    for i in range(2):
        written = kept[i].label
        assert (written[label == IGNORE] == IGNORE).all() and (written[label == TRAIN] == BUS).all() and (written[label == CAR] == ROAD).all()
    changes = mcoc.changed_objects(run_dir, "generated/toy")
    assert sorted(changes[["id", "class", "to"]].values.tolist()) == [["m0", "car", "road"], ["m0", "train", "bus"], ["m1", "car", "road"], ["m1", "train", "bus"]]


def test_the_judge_runs_in_the_profiles_window_everywhere(tmp_path, monkeypatch):
    """judged_classes, filter_set, rectification_figure and search_settings see what predict sees with the window."""
    from synthlib import segmenters
    from synthlib.labels import colorize
    from tests.test_segmenters import Stripes, record_inputs

    run_dir = runs.open("w", tmp_path)
    for name, tint in (("src", 0), ("tgt", 40)):

        def build(ctx, tint=tint):
            write_cityscapes(Stripes(8, 0, tint=tint), ctx.out, "train", progress=False)
            write_cityscapes(Stripes(4, 1, tint=tint), ctx.out, "val", progress=False)

        run_dir.stage(f"data/{name}", {"tint": tint}, build)
    generated = [Sample(x.image, x.label, None, None, x.id, {"seed": i}) for i, x in enumerate(Stripes(6, 2))]
    run_dir.stage("generated/src", {}, lambda ctx: write_cityscapes(generated, ctx.out, generation.SPLIT, progress=False))
    run_dir.stage(generation.MODEL_STAGE, {}, lambda ctx: None)  # stands for stage 2; generation itself is stubbed below
    folder = tmp_path / "judge"
    segmenters.save(segmenters.build("mit-tiny-s2", seed=0), folder)
    window = (32, 32)  # Stripes are 32x64: three windows an image, two a forward pass
    cfg = profiles.load(
        "smoke", sources=["src"], target="tgt", conditions=[], mcoc_judge=str(folder), seg_eval_window=list(window), seg_batch=2,
        mcoc_min_pixels=4, mcoc_judged_share=0.01, mcoc_grid_guidance=[1.0], mcoc_grid_conditioning=[1.0], mcoc_grid_steps=[2], mcoc_grid_maps=3,
    )

    # what the judge sees, by segmenters.predict with the window
    judge = segmenters.load(folder)
    target = np.stack([x.image for x in run_dir.dataset("data/tgt", "train")])
    on_target = segmenters.predict(judge, target, window=window, batch=2)[0]
    assert not np.array_equal(on_target, segmenters.predict(judge, target)[0])  # whole images would be judged otherwise
    judged = np.bincount(on_target.ravel(), minlength=NUM_CLASSES) / on_target.size >= 0.01
    images, labels = np.stack([x.image for x in generated]), np.stack([x.label for x in generated])
    on_generated = segmenters.predict(judge, images, window=window, batch=2)[0]
    expected = mcoc.score(labels, on_generated, found=mcoc.objects(labels, np.zeros(labels.shape, np.int32), 4, judged)).image

    seen = record_inputs(monkeypatch)
    assert (mcoc.judged_classes(run_dir, cfg, judge) == judged).all()
    mcoc.filter_set(run_dir, cfg, "generated/src", threshold=0.0)
    table = mcoc.image_scores(run_dir, "generated/src").set_index("id").loc[[x.id for x in generated]]
    np.testing.assert_allclose(table["mcoc"].to_numpy(float), expected, rtol=1e-6, equal_nan=True)

    monkeypatch.setattr(mcoc, "image_grid", lambda rows, titles, cell_inches: rows)
    for _, panels in mcoc.rectification_figure(run_dir, cfg, "generated/src", n=2):
        i = next(i for i, x in enumerate(images) if np.array_equal(x, panels[0]))
        assert np.array_equal(panels[2], colorize(on_generated[i]))

    monkeypatch.setattr(generation, "model_path", lambda run_dir, cfg: None)
    monkeypatch.setattr(generation, "load_model", lambda run_dir, cfg: None)
    monkeypatch.setattr(generation, "fit_to_model", lambda sample, model, mode, where: sample)
    monkeypatch.setattr(generation, "generate_from", lambda model, cfg, maps, seeds, s: np.stack([m.image for m in maps]))  # the maps' own images
    held_out = run_dir.dataset("data/src", "val")
    maps = np.stack([held_out[i].label for i in range(3)])
    on_maps = segmenters.predict(judge, np.stack([held_out[i].image for i in range(3)]), window=window, batch=2)[0]
    found = mcoc.objects(maps, np.zeros(maps.shape, np.int32), 4, judged)
    assert mcoc.search_settings(run_dir, cfg)["MCOC"].iloc[0] == pytest.approx(mcoc.nanmean(mcoc.score(maps, on_maps, found=found).image))

    assert seen and {(h, w) for _, h, w in seen} == {window} and max(n for n, _, _ in seen) == 2  # windows, two a pass, never whole images


def test_settings_search_estimates_the_held_out_maps_depth_once(monkeypatch):
    from types import SimpleNamespace

    import torch

    from synthlib import depth, profiles
    from synthlib.datasets import Sample

    calls = []
    monkeypatch.setattr(depth, "load_depth_model", lambda spec: (torch.nn.Linear(1, 1), None))
    monkeypatch.setattr(depth, "estimate_depth", lambda model, proc, images: calls.append(len(images)) or np.ones((1, 4, 6), np.float32))
    cfg = profiles.load("smoke", diff_depth_model="some/depth-model")
    model = SimpleNamespace(conditioning={"branch": "controlnet", "depth": True})
    own = np.full((4, 6), 7.0, np.float32)
    maps = [Sample(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8), depth=own, id="a"),
            Sample(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8), id="b")]  # fmt: skip
    out = depth.with_depth(maps, model, cfg)
    assert calls == [1] and (out[0].depth == 7).all() and (out[1].depth == 1).all()  # only the map without depth
    assert depth.with_depth(maps, SimpleNamespace(conditioning={"branch": "controlnet", "depth": False}), cfg) is maps
    assert depth.with_depth(maps, model, profiles.load("smoke")) is maps  # no depth model: the maps' own depth

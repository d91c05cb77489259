"""minicity: determinism, class coverage, instances, depth, conditions, target-style labels, bad input, the gap."""

from __future__ import annotations

import numpy as np
import pytest

from synthlib.datasets.base import DatasetError, Sample
from synthlib.labels import CLASS_NAMES, IGNORE, NUM_CLASSES, THING_TRAIN_IDS
from synthlib.minicity import CONDITIONS, STYLES, MiniCity, generate

ROAD = CLASS_NAMES.index("road")


def test_sample_has_every_field_with_the_documented_types():
    s = generate(0, "real", 0, 64, 128)
    assert isinstance(s, Sample)
    assert s.image.shape == (64, 128, 3) and s.image.dtype == np.uint8
    assert s.label.shape == (64, 128) and s.label.dtype == np.uint8
    assert s.depth.dtype == np.float32 and (s.depth > 0).all()
    assert s.instances.dtype == np.int32
    assert s.id == "minicity_real_clear_train_00000"
    assert set(np.unique(s.label)) <= set(range(NUM_CLASSES)) | {IGNORE}


def test_same_seed_gives_identical_bytes_and_other_seeds_other_scenes():
    for style in STYLES:
        a, b = generate(3, style, 7, 64, 128), generate(3, style, 7, 64, 128)
        for field in ("image", "label", "depth", "instances"):
            assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), (style, field)
        c = generate(4, style, 7, 64, 128)
        assert (a.label != c.label).mean() > 0.05  # a different scene, not noise on the same one
        d = generate(3, style, 7, 64, 128, split="val")
        assert (a.label != d.label).mean() > 0.05


def test_layout_does_not_depend_on_image_size():
    small, big = generate(1, "game", 2, 64, 128), generate(1, "game", 2, 128, 256)
    down = big.label[1::2, 1::2]  # pixel centres of the small image
    assert (small.label == down).mean() > 0.9


def test_all_19_classes_occur_in_every_style():
    # 150 scenes at 32x64 are a modest, fast sample; rare classes each sit in >= 2 % of images
    for style in STYLES:
        counts = np.zeros(NUM_CLASSES, int)
        for i in range(150):
            lab = generate(0, style, i, 32, 64).label
            counts += np.bincount(lab.ravel(), minlength=256)[:NUM_CLASSES] > 0
        scarce = [CLASS_NAMES[c] for c in range(NUM_CLASSES) if counts[c] < 3]  # 2 % of 150
        assert not scarce, f"{style}: {scarce} in fewer than 2 % of 150 scenes"
        for big in ("road", "building", "sky", "car"):
            assert counts[CLASS_NAMES.index(big)] > 120, (style, big, counts)


def test_instances_belong_to_exactly_one_thing_class_and_never_to_stuff():
    for style in STYLES:
        for i in range(6):
            s = generate(0, style, i, 64, 128)
            inst, lab = s.instances, s.label
            assert inst.max() > 0
            things = np.isin(lab, THING_TRAIN_IDS)
            assert (inst[~things & (lab != IGNORE)] == 0).all()  # no instance on stuff
            for k in np.unique(inst[inst > 0]):
                classes = set(np.unique(lab[inst == k])) - {IGNORE}  # coarse labels may void parts
                assert len(classes) <= 1 and classes <= set(THING_TRAIN_IDS), (style, i, k, classes)
            if style != "real":  # pixel-perfect labels: every thing pixel has an instance
                assert (inst[things] > 0).all()


def test_road_depth_grows_towards_the_horizon():
    for style in STYLES:
        s = generate(0, style, 5, 128, 256)
        rows = [r for r in range(s.label.shape[0]) if (s.label[r] == ROAD).sum() >= 5]
        medians = np.array([np.median(s.depth[r][s.label[r] == ROAD]) for r in rows])
        assert len(rows) > 20
        assert (np.diff(medians) < 0).all(), style  # lower rows are nearer
        assert medians[0] > 5 * medians[-1]


def test_conditions_share_the_clear_label_map_and_change_the_image():
    clear = generate(0, "real", 4, 64, 128)
    for cond in CONDITIONS[1:]:
        s = generate(0, "real", 4, 64, 128, condition=cond)
        assert np.array_equal(s.label, clear.label) and np.array_equal(s.instances, clear.instances)
        assert np.array_equal(s.depth, clear.depth)
        assert np.abs(s.image.astype(int) - clear.image).mean() > 10, cond
        assert s.id == f"minicity_real_{cond}_train_00004"
    night = generate(0, "real", 4, 64, 128, condition="night")
    assert night.image.mean() < 0.5 * clear.image.mean()


def test_target_style_has_a_void_hood_and_void_borders_and_sources_do_not():
    s = generate(0, "real", 0, 64, 128)
    assert (s.label[-1] == IGNORE).all()  # the ego vehicle's bonnet along the bottom row
    assert (s.label[: s.label.shape[0] // 2] == IGNORE).any()  # void seams above the bonnet
    voids = [(generate(0, "real", i, 64, 128).label[:52] == IGNORE).mean() for i in range(5)]
    assert 0.005 < np.mean(voids) < 0.2
    for style in ("flat", "game"):
        assert not (generate(0, style, 0, 64, 128).label == IGNORE).any()


def test_the_styles_keep_class_semantics_in_colour():
    # no permuted palette: sky is bluish-bright, vegetation greenish, road near grey, in every style
    for style in STYLES:
        sums = {c: np.zeros(3) for c in ("sky", "vegetation", "road")}
        for i in range(8):
            s = generate(0, style, i, 64, 128)
            for c in sums:
                m = s.label == CLASS_NAMES.index(c)
                sums[c] += s.image[m].astype(float).sum(0) / max(m.sum(), 1)
        sky, veg, road = (sums[c] / 8 for c in ("sky", "vegetation", "road"))
        assert sky[2] >= sky[0] and sky.mean() > 130, (style, sky)
        assert veg[1] >= veg[0] and veg[1] >= veg[2], (style, veg)
        assert road.max() - road.min() < 25, (style, road)


def test_a_look_renders_one_style_s_scene_in_another_style_s_appearance():
    def class_colours(samples):
        means = []
        for c in ("road", "building", "vegetation", "car", "sidewalk"):
            pixels = np.concatenate([s.image[s.label == CLASS_NAMES.index(c)] for s in samples]).astype(float)
            means.append(pixels.mean(0))
        return np.stack(means)

    flat = [generate(0, "flat", i, 64, 128) for i in range(8)]
    as_real = [generate(0, "flat", i, 64, 128, look="real") for i in range(8)]
    real = [generate(0, "real", i, 64, 128) for i in range(8)]
    for a, b in zip(flat, as_real, strict=True):
        assert np.array_equal(a.label, b.label) and np.array_equal(a.depth, b.depth) and np.array_equal(a.instances, b.instances)
        assert not np.array_equal(a.image, b.image)
    # each class takes the real style's colours, not flat's
    to_real, to_flat = (np.abs(class_colours(as_real) - class_colours(ref)).mean() for ref in (real, flat))
    assert to_real < 0.5 * to_flat, (to_real, to_flat)
    assert as_real[0].id == "minicity_flat_as_real_clear_train_00000" and as_real[0].meta["look"] == "real"
    assert np.array_equal(generate(0, "flat", 3, 64, 128, look="flat").image, flat[3].image)
    data = MiniCity("flat", "train", 4, look="real")
    assert np.array_equal(data[2].image, as_real[2].image) and data.name == "minicity_flat_as_real_clear_train"
    with pytest.raises(DatasetError, match="look='anime' is not a minicity style"):
        generate(0, "flat", 0, 64, 128, look="anime")


def test_dataset_is_lazy_indexable_and_matches_generate():
    ds = MiniCity(style="game", split="val", n=5, height=32, width=64, seed=2)
    assert len(ds) == 5
    assert np.array_equal(ds[-1].image, generate(2, "game", 4, 32, 64, split="val").image)
    assert ds[1] is ds[1]  # cached
    with pytest.raises(IndexError):
        ds[5]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"style": "photo"}, ["style", "flat", "game", "real"]),
        ({"condition": "hail"}, ["condition", "fog", "night", "rain", "snow"]),
        ({"style": "game", "condition": "fog"}, ["condition", "real"]),
        ({"height": 64, "width": 100}, ["height", "width", "1:2"]),
        ({"height": 16, "width": 32}, ["height", "32"]),
        ({"n": 0}, ["n", "positive"]),
        ({"n": -3}, ["n", "positive"]),
        ({"seed": 1.5}, ["seed", "integer"]),
        ({"seed": "0"}, ["seed", "integer"]),
        ({"split": "test"}, ["split", "train", "val"]),
    ],
)
def test_bad_input_names_the_parameter_and_what_is_allowed(kwargs, words):
    with pytest.raises(DatasetError) as err:
        MiniCity(**kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    if "n" not in kwargs:  # generate() checks the same way
        args = {"seed": 0, "style": "real", "index": 0, "height": 64, "width": 128} | kwargs
        with pytest.raises(DatasetError):
            generate(**args)


def test_tiny_budget_oracle_beats_source_only_on_real_val():
    torch = pytest.importorskip("torch")
    from synthlib.segmenters.small_unet import channel_stats, evaluate, train_segmenter

    torch.set_num_threads(1)  # a tiny model: one thread avoids oversubscription on a busy machine
    n_train, n_val, steps = 64, 32, 60
    data = {style: MiniCity(style, "train", n_train, 32, 64, seed=0).arrays() for style in ("flat", "real")}
    val = MiniCity("real", "val", n_val, 32, 64, seed=0).arrays()
    scores = {}
    for style, (images, labels) in data.items():
        stats = channel_stats(images)
        model = train_segmenter(images, labels, stats, steps=steps, batch_size=8, base_width=8, seed=0)
        scores[style] = evaluate(model, *val, stats).miou()
    assert scores["real"] > scores["flat"] + 2, scores


def _car_scene(style: str):
    """A scene of ``style`` with plenty of car pixels, rasterised at 64x128."""
    from synthlib.minicity.layout import sample_scene
    from synthlib.minicity.render import rasterise
    from synthlib.minicity.styles import STYLE_TABLE

    car = CLASS_NAMES.index("car")
    for i in range(20):
        scene = sample_scene(STYLE_TABLE[style], np.random.default_rng(i))
        cv = rasterise(scene, 64, 128)
        if (cv.label == car).sum() > 150:
            return scene, cv
    raise AssertionError("no scene with cars")


@pytest.mark.parametrize("style", ["flat", "game"])
def test_swapping_one_class_s_material_changes_only_that_class_s_pixels(style):
    import dataclasses

    from synthlib.minicity.appearance import shade
    from synthlib.minicity.materials import Material
    from synthlib.minicity.styles import STYLE_TABLE

    st = STYLE_TABLE[style]
    other = Material("brick", 0.25, 0.5, (1.15, 0.9, 0.85), gloss=0.0 if st.materials.car.gloss else 0.6)
    swapped = dataclasses.replace(st, materials=dataclasses.replace(st.materials, car=other))
    scene, cv = _car_scene(style)
    a = shade(cv, scene, st, "clear", np.random.default_rng(1))
    b = shade(cv, scene, swapped, "clear", np.random.default_rng(1))
    car = cv.label == CLASS_NAMES.index("car")
    assert np.array_equal(a[~car], b[~car])  # every other class is bit-identical
    assert np.abs(a[car].astype(int) - b[car]).mean() > 8  # the car itself clearly changes


def test_mix_corpus_draws_a_new_look_per_image_deterministically_with_perfect_labels():
    from synthlib.minicity import CORPUS_STYLES
    from synthlib.minicity.materials import FIELDS, REAL_MATERIALS
    from synthlib.minicity.world import scene_style

    assert "mix" in CORPUS_STYLES and "mix" not in STYLES
    a, again, b = generate(0, "mix", 1, 64, 128), generate(0, "mix", 1, 64, 128), generate(0, "mix", 2, 64, 128)
    for field in ("image", "label", "depth", "instances"):
        assert getattr(a, field).tobytes() == getattr(again, field).tobytes(), field
    for s in (a, b):
        assert set(np.unique(s.label)) <= set(range(NUM_CLASSES))  # pixel-perfect: no void
        things = np.isin(s.label, THING_TRAIN_IDS)
        assert (s.instances[things] > 0).all() and (s.instances[~things] == 0).all()
    # another index is another look: the mean colour of the classes both show differs
    shared = [c for c in np.unique(a.label) if (a.label == c).sum() > 30 and (b.label == c).sum() > 30]
    assert len(shared) >= 4
    diffs = [np.abs(a.image[a.label == c].mean(0) - b.image[b.label == c].mean(0)).max() for c in shared]
    assert np.median(diffs) > 8, diffs
    # the corpus never uses the target's material for a class
    for i in range(30):
        mats = scene_style(0, "mix", "train", i).materials
        for c, name in enumerate(FIELDS):
            if name != "sky":
                assert mats.for_class(c).kind != REAL_MATERIALS.for_class(c).kind, (i, name)
    assert MiniCity("mix", "val", 3)[2].id == "minicity_mix_clear_val_00002"
    # the corpus sees every weather, on the clear scene's labels
    fog = generate(0, "mix", 1, 64, 128, condition="fog")
    assert np.array_equal(fog.label, a.label) and np.abs(fog.image.astype(int) - a.image).mean() > 5


def test_gap_decomposition_trains_a_row_per_source_and_translator():
    from synthlib.minicity_gap import check_requirements, measure_gap

    seen = []

    def swap_in_target(images, references):  # a "translation" that hands back the target's own images
        seen.append((images.shape, references.copy()))
        return references

    table = measure_gap(32, 64, n_train=6, n_val=4, steps=2, batch_size=2, base_width=8, threads=1,
                        translation=False, translators={"swap": swap_in_target})
    real = MiniCity("real", "train", 6, 32, 64, seed=0).arrays()[0]
    assert len(seen) == 2 and all(shape == (6, 32, 64, 3) for shape, _ in seen)
    # every reference is one of the target's training images, each used once
    refs = seen[0][1]
    assert sorted(int(np.flatnonzero([np.array_equal(r, x) for x in real])[0]) for r in refs) == list(range(6))
    oracle = float(table.loc[(table.trained_on == "real") & (table.evaluated_on == "real"), "mIoU"].iloc[0])
    for style in ("flat", "game"):
        src = float(table.loc[(table.trained_on == style) & (table.input_norm == "source"), "mIoU"].iloc[0])
        row = table.loc[table.trained_on == f"{style}+swap"].iloc[0]
        assert row.evaluated_on == "real" and row.input_norm == "translated"
        assert row.gap_closed == pytest.approx((row.mIoU - src) / (oracle - src))
    checks = check_requirements(table)
    assert {"flat: swap closes <= 25 %", "game: swap closes <= 25 %"} <= set(checks)

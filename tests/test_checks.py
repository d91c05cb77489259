"""synthlib.checks: each check passes on what a correct notebook makes and names what is wrong otherwise."""

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthlib import checks, paper_tables, profiles, runs
from synthlib.datasets import Sample, write_cityscapes
from synthlib.labels import CLASS_NAMES, IGNORE


def _samples(n: int, size=(8, 16), prefix: str = "a") -> list[Sample]:
    h, w = size
    label = np.zeros((h, w), np.uint8)
    label[: h // 2] = 10  # sky over road
    label[0, 0] = IGNORE
    return [Sample(np.full((h, w, 3), 40 * i, np.uint8), label, None, None, f"{prefix}_{i:03d}", {}) for i in range(n)]


def _write(run_dir, name, samples, split="train", extra=None):
    def build(ctx):
        write_cityscapes(samples, ctx.out, split, progress=False)
        if extra:
            extra(ctx)

    return run_dir.stage(name, {"n": len(samples)}, build)


def _png(path, size=(4, 6)):
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)
    return path


# --- generic checks -------------------------------------------------------------------------------


def test_table_has_its_rows_and_columns_or_says_which_are_missing():
    quality = pd.DataFrame({"target val mIoU": [4.5, 8.1], "pixel acc": [41.0, 55.6]}, index=["source only (flat)", "oracle (real)"])
    assert checks.table(quality, rows=["oracle (real)"], columns=["target val mIoU"], n_rows=2, name="pseudo_label_quality") is quality
    with pytest.raises(checks.CheckError, match=r"pseudo_label_quality: no row 'ADVENT \(game\)' \(rows: 'source only \(flat\)', 'oracle \(real\)'\)"):
        checks.table(quality, rows=["ADVENT (game)"], name="pseudo_label_quality")
    with pytest.raises(checks.CheckError, match="pseudo_label_quality: no column 'mIoU'"):
        checks.table(quality, columns=["mIoU"], name="pseudo_label_quality")
    with pytest.raises(checks.CheckError, match="pseudo_label_quality: 2 rows, expected 3"):
        checks.table(quality, n_rows=3, name="pseudo_label_quality")
    with pytest.raises(checks.CheckError, match="stage1_appearance: 0 rows, expected at least 1"):
        checks.table(pd.DataFrame(), name="stage1_appearance")  # appearance_table of a run without scores
    with pytest.raises(checks.CheckError, match="paper_gap_closed: expected a table \\(DataFrame\\), got NoneType"):
        checks.table(None, name="paper_gap_closed")
    with pytest.raises(checks.CheckError, match="twice: row 'a' appears more than once"):
        checks.table(pd.DataFrame({"x": [1, 2]}, index=["a", "a"]), name="twice")
    # a MultiIndex row is a whole key or a value of one level
    per_class = pd.DataFrame({"mIoU": [1.0, 2.0]}, index=pd.MultiIndex.from_tuples([("source only", "flat"), ("oracle", "real")]))
    checks.table(per_class, rows=[("source only", "flat"), "oracle", "flat"], name="paper_per_class")
    with pytest.raises(checks.CheckError, match=r"paper_per_class: no row \('source only', 'real'\)"):
        checks.table(per_class, rows=[("source only", "real")], name="paper_per_class")


def test_miou_is_finite_and_in_0_100_and_names_the_bad_cell():
    table = pd.DataFrame({"flat": [18.8, 28.7], "game": [18.3, 28.7]}, index=["source only", "oracle"])
    assert checks.miou(table, name="paper_miou").tolist() == [[18.8, 18.3], [28.7, 28.7]]
    checks.miou([0.0, 100.0], name="edges")
    bad = table.copy()
    bad.loc["oracle", "game"] = 250.0
    with pytest.raises(checks.CheckError, match=r"paper_miou: out of range \[0, 100\] at \('oracle', 'game'\) = 250"):
        checks.miou(bad, name="paper_miou")
    with pytest.raises(checks.CheckError, match=r"quality: out of range \[0, 100\] at \(0, 0\) = -1"):
        checks.miou([-1.0], name="quality")
    bad.loc["oracle", "game"] = math.nan
    with pytest.raises(checks.CheckError, match=r"paper_miou: empty \(NaN\) at \('oracle', 'game'\) = nan"):
        checks.miou(bad, name="paper_miou")
    checks.miou(bad, name="paper_miou", allow_nan=True)  # an empty cell where allowed
    bad.loc["oracle", "flat"] = math.nan
    with pytest.raises(checks.CheckError, match="paper_miou: row 'oracle' has no value"):
        checks.miou(bad, name="paper_miou", allow_nan=True)
    with pytest.raises(checks.CheckError, match="mIoU: every value is empty"):
        checks.miou(pd.Series([math.nan, math.nan]), name="mIoU", allow_nan=True)
    with pytest.raises(checks.CheckError, match=r"gap: infinite at \(0, 0\) = inf"):
        checks.values([math.inf], name="gap", allow_nan=True)
    with pytest.raises(checks.CheckError, match="settings: holds values that are not numbers"):
        checks.values(pd.DataFrame({"scheduler": ["ddim"]}), name="settings")
    with pytest.raises(checks.CheckError, match="stage1_appearance: out of range \\[0, inf\\] at .*'before'"):
        checks.values(pd.Series({"before": -3.0, "after": 2.0}), name="stage1_appearance", low=0)


def test_the_spread_of_a_one_source_row_is_an_allowed_empty_cell():
    cfg = profiles.load("smoke", sources=["flat", "game"], target="real")
    rows = {("source only", "flat"): 20.0, ("source only", "game"): 30.0, ("ADVENT", "game"): 35.0, (paper_tables.ORACLE, "real"): 60.0}
    evals = pd.DataFrame([{**dict.fromkeys(CLASS_NAMES, v), "mIoU": v} for v in rows.values()])
    evals.index = pd.MultiIndex.from_tuples([(*k, f"eval/{k[0]}/{k[1]}") for k in rows], names=["row", "source", "stage"])
    miou = paper_tables.miou_table(evals, cfg)
    checks.table(miou, rows=["source only", paper_tables.ORACLE], columns=["flat", "game", "spread", "mean"], name="paper_miou")
    checks.miou(miou, name="paper_miou", allow_nan=True)
    with pytest.raises(checks.CheckError, match=r"paper_miou: empty \(NaN\) at \('ADVENT', 'flat'\) = nan, \('ADVENT', 'spread'\) = nan"):
        checks.miou(miou, name="paper_miou")


def test_named_is_a_name_among_the_candidates():
    assert checks.named("self_training", ["advent", "self_training"], "pseudo-labeller") == "self_training"
    with pytest.raises(checks.CheckError, match="pseudo-labeller: 'road' is not one of 'advent', 'self_training'"):
        checks.named("road", ["advent", "self_training"], "pseudo-labeller")
    for empty in ("", "  ", None):
        with pytest.raises(checks.CheckError, match="pseudo-labeller: expected a name, got"):
            checks.named(empty, ["advent"], "pseudo-labeller")


def test_images_exist_open_and_have_their_size(tmp_path):
    paths = [_png(tmp_path / f"{i}.png") for i in range(2)]
    assert checks.images(paths, size=(4, 6), name="figures", n=2) == 2
    with pytest.raises(checks.CheckError, match=r"figures: .*1\.png is 4x6 \(height x width\), expected 8x6"):
        checks.images(paths[1:], size=(8, 6), name="figures")
    with pytest.raises(checks.CheckError, match=r"figures: .*missing\.png is missing or empty"):
        checks.images([tmp_path / "missing.png"], name="figures")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(checks.CheckError, match=r"figures: .*broken\.png does not open as an image"):
        checks.images([tmp_path / "broken.png"], name="figures")
    with pytest.raises(checks.CheckError, match="figures: 2 images, expected 3"):
        checks.images(paths, name="figures", n=3)
    with pytest.raises(checks.CheckError, match="figures: no images"):
        checks.images([], name="figures")


def test_images_of_a_dataset_and_a_dataset_stage(tmp_path):
    run_dir = runs.open("c", tmp_path)
    _write(run_dir, "data/src", _samples(3))
    assert checks.images(run_dir.dataset("data/src", "train"), size=(8, 16), name="data/src") == 3
    with pytest.raises(checks.CheckError, match=r"data/src: sample 0 is 8x16 \(height x width\), expected 16x32"):
        checks.images(run_dir.dataset("data/src", "train"), size=(16, 32), name="data/src")

    assert checks.dataset(run_dir, "data/src", "train", n=3, size=(8, 16), aspect=(32, 64)) == 3
    with pytest.raises(checks.CheckError, match=r"data/src \(train\): 3 image/label pairs, expected 4"):
        checks.dataset(run_dir, "data/src", "train", n=4)
    with pytest.raises(checks.CheckError, match=r"data/src \(train\): a_000_leftImg8bit.png is 8x16 \(height x width\), expected 64x128"):
        checks.dataset(run_dir, "data/src", "train", size=(64, 128))
    with pytest.raises(checks.CheckError, match=r"data/src \(train\): a_000_leftImg8bit.png is 8x16, not of the aspect ratio of 32x32"):
        checks.dataset(run_dir, "data/src", "train", aspect=(32, 32))
    with pytest.raises(checks.CheckError, match=r"run 'c' has no completed stage 'data/tgt' \(completed: 'data/src'\)"):
        checks.dataset(run_dir, "data/tgt", "train")
    with pytest.raises(checks.CheckError, match=r"data/src \(val\): no split folder"):
        checks.dataset(run_dir, "data/src", "val")

    # ``like``: the same ids and image sizes as the set it came from
    _write(run_dir, "translated/x-src", _samples(2))
    assert checks.dataset(run_dir, "translated/x-src", "train", n=2, like="data/src") == 2
    _write(run_dir, "translated/y-src", _samples(1, prefix="b"))
    with pytest.raises(checks.CheckError, match=r"translated/y-src \(train\): sample 'b_000' is not among the samples of data/src \(train\)"):
        checks.dataset(run_dir, "translated/y-src", "train", like="data/src")
    _write(run_dir, "translated/z-src", _samples(1, size=(16, 32)))
    with pytest.raises(checks.CheckError, match=r"translated/z-src \(train\): a_000_leftImg8bit.png is 16x32 but its image in data/src is 8x16"):
        checks.dataset(run_dir, "translated/z-src", "train", like="data/src")

    # a label lost after the stage was made
    label = next((run_dir.stage_path("data/src") / "gtFine" / "train").glob("*/a_001_gtFine_labelIds.png"))
    label.unlink()
    with pytest.raises(checks.CheckError, match=r"data/src \(train\): images without labels 'a_001'; labels without images none"):
        checks.dataset(run_dir, "data/src", "train")


def test_files_were_written_under_the_runs_tables(tmp_path):
    run_dir = runs.open("c", tmp_path)
    folder = run_dir.path / checks.TABLES
    folder.mkdir(parents=True)
    pd.DataFrame({"mIoU": [1.0]}).to_csv(folder / "paper_miou.csv")
    (folder / "paper_miou.md").write_text("| mIoU |\n")
    _png(folder / "paper_figure1.png")
    assert [p.name for p in checks.files(run_dir, tables=["paper_miou"], figures=["paper_figure1"])] == ["paper_miou.csv", "paper_miou.md", "paper_figure1.png"]
    with pytest.raises(checks.CheckError, match=r"table paper_gap_closed: .*paper_gap_closed\.csv was not written"):
        checks.files(run_dir, tables=["paper_gap_closed"])
    (folder / "empty.csv").write_text("mIoU\n")
    (folder / "empty.md").write_text("nothing")
    with pytest.raises(checks.CheckError, match=r"table empty: .*empty\.csv has no rows"):
        checks.files(run_dir, tables=["empty"])
    with pytest.raises(checks.CheckError, match=r"figure paper_mcoc_threshold: .*paper_mcoc_threshold\.png is missing"):
        checks.files(run_dir, figures=["paper_mcoc_threshold"])


# --- what each notebook must have made ----------------------------------------------------------


def test_run_datasets_have_the_profiles_minicity_sizes(tmp_path):
    from synthlib import data

    cfg = profiles.load("smoke", minicity_train=3, minicity_val=2, minicity_condition_val=1, conditions=["fog"])
    run_dir = runs.open("c", tmp_path)
    data.prepare(run_dir, cfg)
    found = checks.run_datasets(run_dir, cfg)
    assert found == {"flat": {"train": 3, "val": 2}, "game": {"train": 3, "val": 2}, "real": {"train": 3, "val": 2}, "real-fog": {"val": 1}}
    with pytest.raises(checks.CheckError, match=r"data/flat \(train\): 3 image/label pairs, expected 4"):
        checks.run_datasets(run_dir, profiles.load("smoke", minicity_train=4, minicity_val=2, minicity_condition_val=1, conditions=["fog"]))
    with pytest.raises(checks.CheckError, match=r"data/flat \(train\): minicity_flat_clear_train_00000_leftImg8bit.png is 32x64 \(height x width\), expected 64x128"):
        checks.run_datasets(run_dir, profiles.load("default", minicity_train=3, minicity_val=2, minicity_condition_val=1, conditions=["fog"]))
    with pytest.raises(checks.CheckError, match=r"run 'c' has no completed stage 'data/real-night'"):
        checks.run_datasets(run_dir, profiles.load("smoke", minicity_train=3, minicity_val=2, minicity_condition_val=1, conditions=["night"]))


def test_the_chosen_pseudo_labeller_is_a_measured_candidate_and_labelled_every_target_image(tmp_path):
    cfg = profiles.load("smoke", target="tgt", uda_source="src", pseudo_labeller="self_training")
    run_dir = runs.open("c", tmp_path)
    splits = {"train": 3, "val": 2}

    def target(ctx, confidence=False, forget=None):
        for split, n in splits.items():
            write_cityscapes(_samples(n, prefix=split), ctx.out, split, progress=False)
            if confidence:  # what pseudo_labels.make writes beside the labels
                (ctx.out / "confidence" / split).mkdir(parents=True)
                for i in range(n):
                    if f"{split}_{i:03d}" != forget:
                        _png(ctx.out / "confidence" / split / f"{split}_{i:03d}_confidence.png", (8, 16))

    run_dir.stage("data/tgt", {}, target)
    run_dir.stage("pseudo_labels", {"labeller": "self_training"}, lambda ctx: target(ctx, confidence=True))
    quality = pd.DataFrame({"target val mIoU": [4.5, 4.3], "pseudo-label mIoU (target train)": [6.2, 5.5]}, index=["source only (src)", "self-training (src)"])
    assert checks.pseudo_labeller(run_dir, cfg, quality) == "self-training (src)"
    assert checks.pseudo_labelled(run_dir, cfg) == {"train": 3, "val": 2}
    with pytest.raises(checks.CheckError, match="the chosen pseudo-labeller among the measured candidates .*: 'self-training \\(src\\)' is not one of 'source only \\(src\\)'"):
        checks.pseudo_labeller(run_dir, cfg, quality.iloc[:1])
    with pytest.raises(checks.CheckError, match="the pseudo-labeller of stage pseudo_labels .*: 'self_training' is not one of 'advent'"):
        checks.pseudo_labeller(run_dir, profiles.load("smoke", target="tgt", uda_source="src", pseudo_labeller="advent"), quality)
    garbage = quality.copy()
    garbage.iloc[1, 0] = 130.0
    with pytest.raises(checks.CheckError, match=r"pseudo_label_quality, row 'self-training \(src\)': out of range \[0, 100\]"):
        checks.pseudo_labeller(run_dir, cfg, garbage)
    run_dir.stage("pseudo_labels", {"labeller": "self_training", "again": 1}, lambda ctx: target(ctx, confidence=True, forget="val_001"))
    with pytest.raises(checks.CheckError, match=r"pseudo_labels confidence maps \(val\): .*val_001_confidence.png is missing"):
        checks.pseudo_labelled(run_dir, cfg)


def test_generated_and_filtered_sets_have_the_expected_counts(tmp_path):
    cfg = profiles.load("smoke", sources=["src"], gen_max_maps=2, gen_per_map=2, diff_resolution=[16, 32])
    run_dir = runs.open("c", tmp_path)
    _write(run_dir, "data/src", _samples(3))
    _write(run_dir, "generated/src", [Sample(s.image, s.label, None, None, f"{s.id}_gen{k}", {}) for s in _samples(2) for k in range(2)])
    summary = pd.DataFrame({"maps": [2], "images per map": [2], "images": [4]}, index=["generated/src"])
    assert checks.generated_sets(run_dir, cfg, summary) == {"generated/src": 4}
    with pytest.raises(checks.CheckError, match=r"generated/src \(train\): 4 image/label pairs, expected 6"):
        checks.generated_sets(run_dir, profiles.load("smoke", sources=["src"], gen_max_maps=0, gen_per_map=2, diff_resolution=[16, 32]))
    with pytest.raises(checks.CheckError, match=r"generated/src \(train\): a_000_gen0_leftImg8bit.png is 8x16, not of the aspect ratio of 16x16"):
        checks.generated_sets(run_dir, profiles.load("smoke", sources=["src"], gen_max_maps=2, gen_per_map=2, diff_resolution=[16, 16]))
    with pytest.raises(checks.CheckError, match="generation_sets, column 'images': {'generated/src': 5} do not match the sets on disk {'generated/src': 4}"):
        checks.generated_sets(run_dir, cfg, summary.assign(images=[5]))

    kept = ["a_000_gen0", "a_001_gen1"]
    scores = pd.DataFrame({"id": [f"a_{i:03d}_gen{k}" for i in range(2) for k in range(2)], "mcoc": [0.6, 0.1, math.nan, 0.7]})
    scores["kept"] = scores["id"].isin(kept)

    def filtered(ctx, scores=scores):
        made = run_dir.dataset("generated/src", "train")
        write_cityscapes([made[i] for i in range(len(made)) if made[i].id in kept], ctx.out, "train", progress=False)
        scores.to_csv(ctx.out / "mcoc.csv", index=False)

    run_dir.stage("generated/src-filtered", {}, filtered)
    summary = pd.DataFrame({"images": [4], "kept": [2], "dropped": [2]}, index=["generated/src"])
    assert checks.filtered_sets(run_dir, cfg, summary) == {"generated/src": (2, 4)}
    with pytest.raises(checks.CheckError, match="mcoc_filtering, column 'kept': {'generated/src': 3} do not match"):
        checks.filtered_sets(run_dir, cfg, summary.assign(kept=[3]))
    run_dir.stage("generated/src-filtered", {"again": 1}, lambda ctx: filtered(ctx, scores.assign(mcoc=[1.5, 0.1, 0.2, 0.7])))
    with pytest.raises(checks.CheckError, match=r"generated/src-filtered/mcoc.csv, column 'mcoc': out of range \[0, 1\] at \(0, 'mcoc'\) = 1.5"):
        checks.filtered_sets(run_dir, cfg)
    run_dir.stage("generated/src-filtered", {"again": 2}, lambda ctx: filtered(ctx, scores.assign(kept=True)))
    with pytest.raises(checks.CheckError, match=r"generated/src-filtered \(train\): 2 image/label pairs, expected 4"):
        checks.filtered_sets(run_dir, cfg)


def test_rows_of_the_translation_and_segmentation_tables(tmp_path):
    cfg = profiles.load("smoke")
    rows = checks.translation_rows(cfg)
    assert rows[:2] == [("flat", "source only"), ("flat", "FDA")] and len(rows) == 2 * 5 and rows[5] == ("game", "source only")
    run_dir = runs.open("c", tmp_path)
    assert checks.segmentation_rows(run_dir, cfg, ["data/flat", "data/real", "generated/flat-filtered"]) == [
        "source only (flat)", "oracle (real)", "generated/flat-filtered"
    ]
    assert checks.segmentation_rows(run_dir, cfg) == ["source only (flat)", "source only (game)", "oracle (real)"]  # nothing else made yet

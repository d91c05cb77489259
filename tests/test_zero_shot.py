"""Zero-shot adaptation from a text description (SDGPA): edited sets, the progressive schedule, its switches."""

import numpy as np
import pytest

from synthlib import checks, data, editing, profiles, runs, zero_shot
from synthlib.labels import IGNORE
from synthlib.segmenters import fit as seg


def smoke(**overrides):
    fields = dict(conditions=["fog", "night"], minicity_train=8, minicity_val=4, minicity_condition_val=4, seg_steps=4)
    return profiles.load("smoke", **{**fields, **overrides})


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """The clear target with labels, two condition val sets, and the clear target's segmenter (stage 01's)."""
    run_dir = runs.open("source", tmp_path_factory.mktemp("zero_shot"))
    data.prepare(run_dir, smoke(), names=["real", "real-fog", "real-night"])
    seg.fit(run_dir, smoke(), "data/real")
    return run_dir


def new_run(tmp_path, source_run, name="t"):
    run_dir = runs.open(name, tmp_path)
    run_dir.link_from(source_run, ["data/real", "data/real-fog", "data/real-night", "models/supervised/data/real"])
    return run_dir


def test_the_progressive_schedule_visits_its_phases_in_order(tmp_path, source_run):
    run_dir, cfg = new_run(tmp_path, source_run), smoke()
    models = zero_shot.adapt(run_dir, cfg, "fog")
    assert models == ["models/supervised/zero_shot/intermediate/fog", "models/supervised/zero_shot/agreed/fog"]
    made = ["zero_shot/edited/fog", "zero_shot/intermediate/fog", models[0], "zero_shot/agreed/fog", models[1]]
    finished = [run_dir.manifest(stage)["finished"] for stage in made]
    assert finished == sorted(finished)
    assert run_dir.manifest(models[0])["params"]["init"] == "models/supervised/data/real"  # phase 1 from the source model
    assert run_dir.manifest(models[1])["params"]["init"] == models[0]  # phase 2 from phase 1
    assert run_dir.manifest("zero_shot/agreed/fog")["params"] == {"model": models[0]}  # phase 1's model judged the labels

    table = zero_shot.table(run_dir, cfg, {"fog": models[-1]})
    assert list(table.index) == ["fog"] and np.isfinite(table.to_numpy()).all()
    assert table.loc["fog", "change"] == pytest.approx(table.loc["fog", "zero-shot (SDGPA)"] - table.loc["fog", "source only"])


def test_each_switch_changes_the_schedule(tmp_path, source_run):
    assert zero_shot.schedule(smoke()) == ["intermediate", "edited"]
    assert zero_shot.schedule(smoke(zs_intermediate=False)) == ["edited"]
    run_dir = new_run(tmp_path, source_run)
    plain = zero_shot.adapt(run_dir, smoke(zs_intermediate=False, zs_self_training=False), "night")
    assert plain == ["models/supervised/zero_shot/edited/night"]  # the edited labels as they are, from the source model
    assert run_dir.manifest(plain[0])["params"]["init"] == "models/supervised/data/real"
    separate = zero_shot.adapt(new_run(tmp_path, source_run, "u"), smoke(zs_progressive=False), "night")
    assert [runs.open("u", tmp_path).manifest(m)["params"]["init"] for m in separate] == ["models/supervised/data/real"] * 2


def test_edited_sets_keep_the_source_labels_and_agreed_labels_only_drop(tmp_path, source_run):
    run_dir, cfg = new_run(tmp_path, source_run), smoke()
    zero_shot.adapt(run_dir, cfg, "fog")
    source, edited = run_dir.dataset("data/real", "train"), run_dir.dataset("zero_shot/edited/fog", "train")
    agreed, mid = run_dir.dataset("zero_shot/agreed/fog", "train"), run_dir.dataset("zero_shot/intermediate/fog", "train")
    assert edited.ids == source.ids == agreed.ids == mid.ids
    for i in range(len(source)):
        s, e, a, m = source[i], edited[i], agreed[i], mid[i]
        assert e.image.shape == s.image.shape and np.array_equal(e.label, s.label) and np.array_equal(m.label, s.label)
        assert np.abs(e.image.astype(int) - s.image).mean() > 1  # edited, not copied
        assert np.abs(m.image.astype(int) - (s.image.astype(int) + e.image) / 2).max() <= 0.5  # half and half
        kept = a.label != IGNORE
        assert np.array_equal(a.label[kept], s.label[kept])
    assert 0 < run_dir.manifest("zero_shot/agreed/fog")["info"]["labels_kept"] < 1


def test_an_interrupted_edit_resumes_from_its_finished_chunks(tmp_path, source_run, monkeypatch):
    monkeypatch.setattr(zero_shot, "_CHUNK", 3)  # 8 images: chunks of 3, 3 and 2
    real_edit, calls = editing.edit, []

    def edit(*args, **kwargs):
        calls.append(list(kwargs["indices"]))
        if len(calls) == 2 and not hasattr(edit, "crashed"):
            edit.crashed = True
            raise KeyboardInterrupt  # the process stops in the second chunk
        return real_edit(*args, **kwargs)

    monkeypatch.setattr(editing, "edit", edit)
    run_dir = new_run(tmp_path, source_run)
    with pytest.raises(KeyboardInterrupt):
        zero_shot.edited(run_dir, smoke(), "fog")
    assert run_dir.manifest("zero_shot/edited/fog") is None
    zero_shot.edited(run_dir, smoke(), "fog")
    assert calls == [[0, 1, 2], [3, 4, 5], [3, 4, 5], [6, 7]]  # the first chunk was not edited again
    reference = new_run(tmp_path, source_run, "reference")
    monkeypatch.setattr(editing, "edit", real_edit)
    zero_shot.edited(reference, smoke(), "fog")
    a, b = run_dir.dataset("zero_shot/edited/fog", "train"), reference.dataset("zero_shot/edited/fog", "train")
    assert all(np.array_equal(a[i].image, b[i].image) for i in range(len(a)))


def test_a_condition_without_an_instruction_is_named(tmp_path, source_run):
    with pytest.raises(zero_shot.ZeroShotError, match=r"no instruction for condition\(s\) night \(has: fog\)"):
        zero_shot.adapt(new_run(tmp_path, source_run), smoke(zs_instructions={"fog": "add fog"}), "fog")


def test_only_the_first_images_are_edited_when_capped(tmp_path, source_run):
    run_dir = new_run(tmp_path, source_run)
    zero_shot.adapt(run_dir, smoke(zs_max_images=5, zs_self_training=False), "fog")
    source = run_dir.dataset("data/real", "train")
    for kind in ("edited", "intermediate"):
        assert run_dir.dataset(f"zero_shot/{kind}/fog", "train").ids == source.ids[:5]
    # 05's check expects the cap, not every clear image (a default run edits 200 of 500)
    assert checks.notebooks.edited_sets(run_dir, smoke(conditions=["fog"], zs_max_images=5)) == {"fog": 5}
    with pytest.raises(checks.CheckError, match="zero_shot/edited/fog"):
        checks.notebooks.edited_sets(run_dir, smoke(conditions=["fog"], zs_max_images=0))


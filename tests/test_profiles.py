import pytest

from synthlib import profiles


def test_env_var_picks_the_profile_and_arguments_win(monkeypatch):
    monkeypatch.setenv("SYNTHLIB_PROFILE", "smoke")
    assert profiles.load().name == "smoke"
    assert profiles.load("default").name == "default"
    monkeypatch.delenv("SYNTHLIB_PROFILE")
    assert profiles.load().name == "default"


def test_override_one_field_and_none_means_keep():
    cfg = profiles.load("smoke", minicity_train=7, target=None, sources=["flat"])
    assert cfg.minicity_train == 7 and cfg.sources == ("flat",)
    assert cfg.target == profiles.PROFILES["smoke"].target
    assert cfg.height == profiles.PROFILES["smoke"].height


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    with pytest.raises(profiles.ProfileError, match="valid profiles: smoke, default, paper"):
        profiles.load("tiny")
    monkeypatch.setenv("SYNTHLIB_PROFILE", "nope")
    with pytest.raises(profiles.ProfileError, match=r"\$SYNTHLIB_PROFILE='nope'"):
        profiles.load()


def test_unknown_field_lists_the_valid_fields():
    with pytest.raises(profiles.ProfileError, match=r"'hieght' is not a profile field; valid fields: seed, roots"):
        profiles.load("smoke", hieght=3)


@pytest.mark.parametrize("field,value", [("height", "64"), ("height", 3.5), ("height", True), ("sources", "flat"), ("sources", [1])])
def test_wrong_types_are_rejected(field, value):
    with pytest.raises(profiles.ProfileError, match=f"profile field '{field}' expects"):
        profiles.load("smoke", **{field: value})


def test_describe_has_every_profile_and_field():
    table = profiles.describe()
    assert list(table.columns) == profiles.names()
    assert list(table.index) == profiles.field_names()


def test_user_profile_file_layers_and_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "models" / "sd").mkdir(parents=True)
    config = tmp_path / "mine.yaml"
    config.write_text(
        "base: paper\nseg_steps: 100\nseg_crop: [256, 256]\ndiff_model: models/sd\nseg_model: nvidia/mit-b5\n"
        "roots:\n  gta5: data/gta5\n  synthia: {root: /abs/synthia, kind: synthia}\n"
    )
    cfg = profiles.load(str(config))
    assert cfg.name == "paper" and cfg.seg_steps == 100 and cfg.seg_crop == (256, 256)
    assert cfg.height == profiles.PROFILES["paper"].height  # untouched fields keep the base's values
    assert cfg.diff_model == str(tmp_path / "models" / "sd")  # a folder beside the file
    assert cfg.seg_model == "nvidia/mit-b5"  # a hub id stays one
    assert cfg.roots == {"gta5": str(tmp_path / "data" / "gta5"), "synthia": {"root": "/abs/synthia", "kind": "synthia"}}
    # overrides over the file, keyword arguments over both; roots merge per dataset
    cfg = profiles.load(str(config), {"seg_steps": 5, "roots": {"gta5": "/elsewhere"}}, seg_steps=7)
    assert cfg.seg_steps == 7 and cfg.roots["gta5"] == "/elsewhere" and cfg.roots["synthia"]["root"] == "/abs/synthia"
    monkeypatch.setenv("SYNTHLIB_PROFILE", str(config))  # how reproduce points kernels at it
    assert profiles.load().seg_steps == 100


@pytest.mark.parametrize(
    "text,message",
    [
        ("base: huge\n", "base 'huge' is not a profile"),
        ("seg_stepz: 3\n", "'seg_stepz' is not a profile field"),
        ("seg_steps: many\n", "profile field 'seg_steps' expects int"),
        ("roots: {gta5: 3}\n", r"roots\['gta5'\] must be a folder"),
        ("- a\n- b\n", "expected a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_user_profiles_name_the_file_and_the_problem(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.load(str(config))
    with pytest.raises(profiles.ProfileError, match="does not exist"):
        profiles.load(str(tmp_path / "missing.yaml"))


def test_parse_assignments_reads_json_else_text_and_lists_by_comma():
    parsed = profiles.parse_assignments(
        ["seg_steps=20", "seg_crop=[64,64]", "sources=gta5,synthia", "diff_prompt=1", "diff_depth=false", "diff_model=/m/sd"]
    )
    assert parsed == {
        "seg_steps": 20, "seg_crop": [64, 64], "sources": ["gta5", "synthia"], "diff_prompt": "1", "diff_depth": False,
        "diff_model": "/m/sd",
    }  # fmt: skip
    cfg = profiles.load("smoke", parsed)
    assert cfg.sources == ("gta5", "synthia") and cfg.diff_prompt == "1" and cfg.seg_crop == (64, 64)
    # one item of a list field, as README's `--set i2i_k=10`
    one = profiles.parse_assignments(["i2i_k=10", "uda_methods=self_training", "conditions=fog"])
    assert one == {"i2i_k": [10], "uda_methods": ["self_training"], "conditions": ["fog"]}
    assert profiles.load("smoke", one).i2i_k == (10,)
    with pytest.raises(profiles.ProfileError, match="expected FIELD=VALUE"):
        profiles.parse_assignments(["=3"])

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
    with pytest.raises(profiles.ProfileError, match=r"'hieght' is not a profile field; valid fields: seed, height"):
        profiles.load("smoke", hieght=3)


@pytest.mark.parametrize("field,value", [("height", "64"), ("height", 3.5), ("height", True), ("sources", "flat"), ("sources", [1])])
def test_wrong_types_are_rejected(field, value):
    with pytest.raises(profiles.ProfileError, match=f"profile field '{field}' expects"):
        profiles.load("smoke", **{field: value})


def test_describe_has_every_profile_and_field():
    table = profiles.describe()
    assert list(table.columns) == profiles.names()
    assert list(table.index) == profiles.field_names()

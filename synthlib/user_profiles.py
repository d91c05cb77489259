"""User profiles and command-line settings: a YAML file, ``--set FIELD=VALUE`` and ``--roots NAME=FOLDER``.

A user profile names a built-in base profile, dataset roots and any fields::

    base: paper
    roots: {gta5: /data/gta5, cityscapes: /data/cityscapes}
    diff_model: /models/stable-diffusion-v1-5

``synthlib.profiles.load`` reads it; field names and types are checked there.
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: File suffixes of user profiles.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
#: Fields that name a model by local folder or hub id: relative folders in a user profile resolve against the file.
MODEL_FIELDS = ("seg_model", "pseudo_labeller", "mcoc_judge", "diff_model", "diff_depth_model", "zs_editor")


def is_user_profile(name: str | os.PathLike) -> bool:
    """True when ``name`` names a user-profile file rather than a built-in profile."""
    text = str(name)
    return text.endswith(CONFIG_SUFFIXES) or (os.sep in text and Path(text).is_file())


def read_user_profile(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """(base profile name, fields) of a user-profile file; relative roots and model folders resolved against it.

    The file is YAML (JSON is YAML too): ``base`` names a built-in profile
    (default ``default``), ``roots`` maps dataset names to folders, and every
    other key is a profile field. Field names and types are checked by ``load``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise _error(f"user profile {path} does not exist (expected a YAML file with base:, roots: and profile fields)")
    import yaml  # papermill's dependency too

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except yaml.YAMLError as e:
        raise _error(f"user profile {path}: not valid YAML: {e}") from e
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise _error(f"user profile {path}: expected a mapping (base:, roots:, fields), got {type(data).__name__}")
    data = dict(data)
    base = data.pop("base", "default")
    from synthlib.profiles import PROFILES

    if base not in PROFILES:
        raise _error(f"user profile {path}: base {base!r} is not a profile; valid profiles: {', '.join(PROFILES)}")
    here = path.resolve().parent
    if isinstance(data.get("roots"), Mapping):
        data["roots"] = {k: _resolve_root(v, here) for k, v in data["roots"].items()}
    for key in MODEL_FIELDS:
        value = data.get(key)
        if isinstance(value, str) and value and (value.startswith(".") or (here / value).exists()):
            data[key] = str((here / value).resolve())
    return base, data


def parse_assignments(items: list[str] | tuple[str, ...], option: str = "--set") -> dict[str, Any]:
    """``["seg_steps=200", "sources=gta5,synthia"]`` -> field values, as ``synthlib reproduce --set`` takes them.

    A value is parsed as JSON where it parses (numbers, booleans, lists), else
    kept as text; a text field keeps the text as typed, and a list field also
    takes comma-separated items or one item (``i2i_k=10`` is ``[10]``). ``load``
    checks names and types.
    """
    from synthlib.profiles import Profile

    hints = typing.get_type_hints(Profile)
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise _error(f"{option} {item!r}: expected FIELD=VALUE, e.g. {option} seg_steps=2000")
        value = _parse_json(text)
        hint = hints.get(key)
        if hint is str:
            value = text
        elif typing.get_origin(hint) is tuple and not isinstance(value, list):
            value = [_parse_json(part.strip()) for part in text.split(",") if part.strip()]
        out[key] = value
    return out


def parse_roots(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["gta5=/data/gta5"]`` -> ``{"gta5": "/data/gta5"}`` (absolute), as ``--roots`` takes them."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise _error(f"--roots {item!r}: expected NAME=FOLDER, e.g. --roots gta5=/data/gta5")
        out[key.strip()] = str(Path(text.strip()).expanduser().resolve())
    return out


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _resolve_root(entry: Any, here: Path) -> Any:
    """A root folder from a user profile, absolute (relative ones are relative to the file)."""
    if isinstance(entry, str):
        return str((here / Path(entry).expanduser()).resolve())
    if isinstance(entry, Mapping) and isinstance(entry.get("root"), str):
        return {**entry, "root": _resolve_root(entry["root"], here)}
    return entry


def _error(message: str):
    from synthlib.profiles import ProfileError  # profiles imports this module

    return ProfileError(message)

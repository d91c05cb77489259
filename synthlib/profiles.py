"""Profiles: the one parameter set that decides sizes, steps and models of a run.

Three profiles, ``smoke`` (CI, seconds), ``default`` (a laptop, minutes) and
``paper`` (a GPU workstation with real data and Stable Diffusion). A notebook
parameter overrides one field: ``load("default", minicity_train=100)``; an
``overrides`` mapping overrides any: ``load("paper", {"seg_steps": 2000})``. The
profile comes from the argument, else the ``SYNTHLIB_PROFILE`` environment
variable, else ``default``; either may also name a *user profile* file
(``synthlib.user_profiles``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

import pandas as pd

from synthlib import profile_ranges
from synthlib.profile_fields import Profile
from synthlib.user_profiles import CONFIG_SUFFIXES, is_user_profile, parse_assignments, parse_roots, read_user_profile  # noqa: F401

ENV_VAR = "SYNTHLIB_PROFILE"


class ProfileError(ValueError):
    """Unknown profile, unknown field, or a value of the wrong type."""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        cell_timeout=1800,
        height=32,
        width=64,
        minicity_train=24,
        minicity_val=12,
        minicity_condition_val=6,
        seg_model="zoo:mit-tiny-s2",  # the zoo's tiny encoder: built in seconds
        seg_steps=12,
        seg_batch=4,
        seg_crop=(32, 64),
        seg_workers=1,
        uda_methods=("advent", "road", "self_training"),
        pseudo_labeller="colour",  # the default profile's
        diff_model="micro",
        diff_batch=4,
        diff_pretrain_steps=30,
        diff_stage1_steps=20,
        diff_eval_every=0,
        diff_stage2_steps=40,
        diff_sample_steps=10,
        diff_eval_images=8,
        # Generation and MCOC (04_generation, 05_mcoc_filtering)
        gen_per_map=2,
        gen_max_maps=6,
        gen_guidance=1.0,  # no second (unconditional) pass: the smoke run stays fast
        gen_conditioning_scale=1.0,
        gen_steps=10,
        gen_batch=8,
        mcoc_min_pixels=4,
        mcoc_threshold=0.15,  # the smoke models are barely trained: their MCOCs lie around 0.2
        mcoc_grid_conditioning=(0.5, 1.0),
        mcoc_grid_steps=(5,),
        mcoc_grid_maps=4,
        # Image-to-image translation baselines (04_translation_baselines)
        i2i_k=(0, 2),
        i2i_ngf=8,
        i2i_ndf=8,
        i2i_blocks=1,
        i2i_disc_layers=2,
        i2i_steps=4,
        i2i_decay_steps=2,
        i2i_batch=2,
        i2i_buffer=4,
        i2i_guide_steps=3,
        zs_editor="zoo:editor-tiny",
        zs_patch=(16, 32),
        zs_steps=3,
        zs_max_images=0,
    ),
    # Rare-class sampling: the oracle learns 10 classes with it, 8 without (benchmarks/segmenter_init.py --oracle-only)
    # The pseudo-labeller: source only on the Lab-recoloured sources labels minicity's target train at 21.9 mIoU,
    # self-training at 18.4, and ours gains 2.8-3.4 points from it (results/generation_downstream.md, docs/design.md §8)
    "default": Profile(seg_rcs_temperature=0.01, pseudo_labeller="colour"),
    "paper": Profile(
        name="paper",
        cell_timeout=7 * 24 * 3600,  # stage 2 at 20,000 SD steps is one cell of many hours
        height=512,
        width=1024,
        sources=("gta5", "synthia"),
        target="cityscapes",
        conditions=("fog", "night", "rain", "snow"),
        uda_source="gta5",
        seg_model="nvidia/mit-b5",
        seg_steps=40000,
        seg_batch=2,
        seg_lr=6e-5,
        seg_crop=(512, 512),
        seg_rcs_temperature=0.01,
        seg_eval_window=(1024, 1024),
        seg_workers=1,
        diff_model="stable-diffusion-v1-5/stable-diffusion-v1-5",
        diff_resolution=(512, 1024),
        diff_prediction="epsilon",
        diff_batch=2,
        diff_lr=1e-5,
        diff_ema=0.9999,
        diff_gradient_checkpointing=True,
        diff_inference_dtype="float16",  # SD 1.5's frozen VAE, text encoder and UNet in fp16, as diffusers' ControlNet script
        data_workers=8,
        diff_checkpoint_every=1000,
        diff_pretrain_steps=0,
        diff_stage1_steps=10000,
        diff_eval_every=2000,
        diff_branch="controlnet",
        diff_stage2_steps=20000,
        diff_erosion=8,
        diff_depth_model="depth-anything/Depth-Anything-V2-Small-hf",
        diff_p_uncond=0.1,  # SD's own rate of dropped captions
        diff_text_dropout=True,  # ... dropped with the map: unconditional = "" + no map
        # SD 1.5's pipelines' default; ControlNet samples at 9, but here the map is guided too and more saturates colours
        diff_guidance=7.5,
        diff_sample_steps=50,
        diff_eval_images=500,
        # Generation and MCOC (04_generation, 05_mcoc_filtering)
        gen_per_map=2,
        gen_guidance=7.5,  # as diff_guidance (1 would sample SD with no guidance at all); 05's search may pick another
        gen_conditioning_scale=1.0,
        gen_steps=50,
        gen_batch=8,
        gen_fit="crop",
        mcoc_min_pixels=256,
        mcoc_judged_share=0.0,  # a Cityscapes-level judge sees every class: MCOC exactly as docs/design.md §5
        mcoc_rectify_within="any",  # a Cityscapes-level judge: rectification as docs/design.md §5 has it
        mcoc_grid_guidance=(3.0, 7.5, 9.0),  # around SD's 7.5 and ControlNet's 9: 1 and 2 barely guide SD
        mcoc_grid_conditioning=(0.5, 1.0, 1.5),
        mcoc_grid_steps=(20, 50),
        mcoc_grid_maps=100,
        # Image-to-image translation baselines (04_translation_baselines)
        i2i_fda_beta=0.01,
        i2i_ngf=64, i2i_ndf=64,  # CycleGAN's generator and discriminator widths
        i2i_blocks=9,
        i2i_steps=200000,
        i2i_decay_steps=100000,
        i2i_batch=1,
        i2i_crop=(256, 256),
        i2i_guide_steps=2000,
        i2i_checkpoint_every=5000,
        zs_editor="timbrooks/instruct-pix2pix",
        zs_patch=(512, 512),
        zs_steps=50,
        zs_guidance=7.5,  # InstructPix2Pix's defaults
        zs_image_guidance=1.5,
        zs_max_images=0,
    ),
}


def names() -> list[str]:
    """The profile names."""
    return list(PROFILES)


def field_names() -> list[str]:
    """The fields a notebook parameter may override."""
    return [f.name for f in fields(Profile) if f.name != "name"]


def load(profile: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None, **fields_: Any) -> Profile:
    """The profile (a name or a user-profile file; else ``$SYNTHLIB_PROFILE``, else ``default``) with fields overridden.

    Layers, each over the one before: the base profile, the user profile's
    fields, ``overrides`` (any fields, e.g. a notebook's ``overrides`` parameter
    that papermill fills), then keyword arguments (a notebook's named
    parameters). Values that are None are ignored, so notebook parameters can
    default to None ("use the profile's value"). Lists are accepted for tuple
    fields. ``roots`` mappings are merged, later layers winning per dataset.
    Values out of their range (``synthlib.profile_ranges``) raise ``ProfileError``.
    """
    name = str(profile) if profile else os.environ.get(ENV_VAR) or "default"
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if is_user_profile(name):
        base, file_fields = read_user_profile(name)
        layers.append((f"user profile {name}", file_fields))
    elif name in PROFILES:
        base = name
    else:
        source = "profile" if profile else f"${ENV_VAR}"
        raise ProfileError(
            f"{source}={name!r} is not a profile; valid profiles: {', '.join(PROFILES)}, "
            f"or a user profile file ({', '.join(CONFIG_SUFFIXES)})"
        )
    layers += [("overrides", overrides or {}), ("", fields_)]
    hints = typing.get_type_hints(Profile)
    changes: dict[str, Any] = {}
    for where, values in layers:
        if not isinstance(values, Mapping):
            raise ProfileError(f"{where}: expected a mapping of profile fields to values, got {values!r}")
        for key, value in values.items():
            if value is None:
                continue
            prefix = f"{where}: " if where else ""
            if key not in hints or key == "name":
                raise ProfileError(f"{prefix}{key!r} is not a profile field; valid fields: {', '.join(field_names())}")
            try:
                value = _coerce(key, value, hints[key])
            except ProfileError as e:  # say which layer (a user profile file, overrides) the value came from
                raise ProfileError(f"{prefix}{e}") from None
            profile_ranges.check_field(key, value, where)  # steps >= 1, thresholds in [0, 1], ...
            changes[key] = {**changes.get(key, {}), **value} if key == "roots" else value
    cfg = replace(PROFILES[base], **changes)
    profile_ranges.check_profile(cfg)  # ranges between fields (an erosion within the image)
    return cfg


def describe(*extra: Profile) -> pd.DataFrame:
    """A table of every profile (columns) and field (rows); ``extra`` profiles (e.g. a loaded user profile) added."""
    columns = {name: as_dict(p) for name, p in PROFILES.items()}
    for i, p in enumerate(extra):
        columns[f"{p.name} (user{'' if len(extra) == 1 else f' {i + 1}'})"] = as_dict(p)
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()}).drop(index="name")


def as_dict(cfg: Profile) -> dict[str, Any]:
    """Every field of ``cfg``, JSON-ready (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field's annotation; accept list for tuple and int for float."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ProfileError as e:
                errors.append(str(e))
        raise ProfileError(errors[0])
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ProfileError(f"profile field {key!r} expects a mapping of names to values, got {value!r}")
        if key == "roots":
            for name, entry in value.items():
                ok = isinstance(entry, (str, os.PathLike)) or (isinstance(entry, Mapping) and "root" in entry)
                if not ok:
                    raise ProfileError(f"roots[{name!r}] must be a folder or {{'root': folder, ...}}, got {entry!r}")
            return {k: (str(v) if isinstance(v, os.PathLike) else v) for k, v in value.items()}
        return dict(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ProfileError(f"profile field {key!r} expects a list of {_type_name(args[0])}, got {value!r}")
        item_type = args[0]
        return tuple(_coerce(key, v, item_type) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool) or not isinstance(value, hint):
        raise ProfileError(f"profile field {key!r} expects {_type_name(hint)}, got {value!r} ({type(value).__name__})")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))

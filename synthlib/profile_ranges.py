"""The ranges of the profile's numeric fields, which ``profiles.load`` checks on every value it is given.

Only ranges evident from what a field means: counts of steps, images and
workers are at least 1 (or 0 where the field says 0 disables), probabilities,
shares and thresholds lie in [0, 1], learning rates are positive, and every
number is finite. A value out of range raises ``ProfileError`` naming the
field, the value and the range, before anything runs. Fields checked where a
stage first uses them, before it trains, are left to that check, which knows
more (the ``i2i_*`` fields: ``translation.baselines.check``; ``seg_eval_window``:
``segmenters.infer.window_of``; a negative ``diff_erosion``: stage 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (None: unbounded), ends included unless ``open_low`` / ``open_high``."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    note: str = ""  # what the ends mean, e.g. "0 = no limit"

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or (value < self.high if self.open_high else value <= self.high)

    def describe(self, integer: bool) -> str:
        if self.high is not None:
            text = f"within {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
        elif self.low == 1 and integer:
            text = "a positive integer (>= 1)"
        elif self.low == 0 and integer:
            text = "a non-negative integer (>= 0)"
        else:
            text = f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
        return f"{text}; {self.note}" if self.note else text


AT_LEAST_1 = Range(1)
AT_LEAST_0 = Range(0)
POSITIVE = Range(0, open_low=True)
UNIT = Range(0, 1)

RANGES: dict[str, Range] = {
    "seed": AT_LEAST_0,
    "cell_timeout": Range(0, note="0 = no limit"),
    "height": AT_LEAST_1,
    "width": AT_LEAST_1,
    "minicity_train": AT_LEAST_1,
    "minicity_val": AT_LEAST_1,
    "minicity_condition_val": AT_LEAST_1,
    "max_train": Range(0, note="0 = all"),
    "max_val": Range(0, note="0 = all"),
    "seg_steps": AT_LEAST_1,
    "seg_batch": AT_LEAST_1,
    "seg_lr": POSITIVE,
    "seg_crop": AT_LEAST_1,
    "seg_rcs_temperature": Range(0, note="0 disables rare-class sampling"),
    "seg_workers": AT_LEAST_1,
    "tailor_coarse": Range(0, note="0 keeps the fine labels"),
    "pseudo_threshold": UNIT,
    "diff_resolution": AT_LEAST_1,
    "diff_patch": AT_LEAST_1,
    "diff_batch": AT_LEAST_1,
    "diff_lr": POSITIVE,
    "diff_ema": Range(0, 1, open_high=True, note="0 disables EMA"),
    "diff_lora_rank": Range(0, note="0 trains the whole UNet"),
    "data_workers": AT_LEAST_0,
    "diff_checkpoint_every": Range(0, note="0 = no checkpoints"),
    "diff_pretrain_steps": Range(0, note="0 = no pretraining"),
    "diff_pretrain_jitter": AT_LEAST_0,
    "diff_stage1_steps": AT_LEAST_1,
    "diff_eval_every": Range(0, note="0 = no scores while training"),
    "diff_stage2_steps": AT_LEAST_1,
    "diff_p_uncond": UNIT,
    "diff_guidance": AT_LEAST_0,
    "diff_conditioning_scale": AT_LEAST_0,
    "diff_sample_steps": AT_LEAST_1,
    "diff_eval_images": AT_LEAST_1,
    "gen_per_map": AT_LEAST_1,
    "gen_max_maps": Range(0, note="0 = all"),
    "gen_guidance": AT_LEAST_0,
    "gen_conditioning_scale": AT_LEAST_0,
    "gen_steps": AT_LEAST_1,
    "gen_batch": AT_LEAST_1,
    "mcoc_min_pixels": AT_LEAST_1,
    "mcoc_judged_share": UNIT,
    "mcoc_threshold": UNIT,
    "mcoc_rectify_fraction": UNIT,
    "mcoc_grid_guidance": AT_LEAST_0,
    "mcoc_grid_conditioning": AT_LEAST_0,
    "mcoc_grid_steps": AT_LEAST_1,
    "mcoc_grid_maps": AT_LEAST_1,
    "zs_patch": AT_LEAST_1,
    "zs_overlap": Range(0, 1, open_high=True),
    "zs_steps": AT_LEAST_1,
    "zs_seg_steps": Range(0, note="0 = a quarter of seg_steps"),
    "zs_max_images": Range(0, note="0 = all"),
    "zs_guidance": AT_LEAST_0,
    "zs_image_guidance": AT_LEAST_0,
}
"""Per field, the range of its value (of each item, for list fields)."""

#: (h, w) fields: exactly two items, or none where that means "the whole image".
PAIRS: dict[str, bool] = {"seg_crop": True, "diff_resolution": False, "zs_patch": True}


def check_field(key: str, value: Any, where: str = "") -> None:
    """Raise ``ProfileError`` when the (type-checked) ``value`` of field ``key`` is out of its range."""
    rule = RANGES.get(key)
    if rule is None:
        return
    items = value if isinstance(value, tuple) else (value,)
    if key in PAIRS and len(items) != 2 and not (PAIRS[key] and not items):
        empty = ", or [] for the whole image" if PAIRS[key] else ""
        _fail(where, f"profile field {key} {value!r} must be (h, w): two integers{empty}")
    for item in items:
        if not rule.contains(item):
            text = rule.describe(integer=isinstance(item, int))
            shown = f"{value!r} (item {item!r})" if isinstance(value, tuple) else repr(value)
            _fail(where, f"profile field {key} {shown} must be {text}")


def check_profile(cfg: Any) -> None:
    """Raise ``ProfileError`` for ranges between fields of the resolved profile ``cfg``."""
    side = min(cfg.height, cfg.width)
    if cfg.diff_erosion >= side:
        _fail(
            "",
            f"profile field diff_erosion {cfg.diff_erosion} must be smaller than the image (height x width "
            f"{cfg.height}x{cfg.width}): at most {side - 1} pixels; a radius that large leaves no map its classes",
        )


def _fail(where: str, message: str) -> None:
    from synthlib.profiles import ProfileError  # profiles imports this module

    raise ProfileError(f"{where}: {message}" if where else message)

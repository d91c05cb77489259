"""minicity: a procedural urban world whose synthetic-to-real gap is real and measurable on a CPU.

Two source styles with pixel-perfect labels (``flat`` like VEIS, ``game`` like
GTA5) and a target style ``real`` (like Cityscapes) with weather conditions
(like ACDC). All 19 Cityscapes classes, instances and depth. ``mix`` is a
domain-randomised pretraining corpus (a new look per image, never the target's).
See docs/design.md §4.

    >>> from synthlib.minicity import MiniCity, generate
    >>> sample = generate(seed=0, style="real", index=3, height=64, width=128, condition="fog")
    >>> val = MiniCity(style="real", split="val", n=200)

``synthlib.minicity_gap.measure_gap`` trains one small segmenter per domain and
reports the gap.
"""

from __future__ import annotations

from .render import SKY_DEPTH
from .world import (
    CONDITIONS,
    CORPUS_STYLES,
    SPLITS,
    STYLES,
    MiniCity,
    check_options,
    class_presence,
    coarsen_labels,
    generate,
    generate_many,
)

__all__ = [
    "CONDITIONS",
    "CORPUS_STYLES",
    "SKY_DEPTH",
    "SPLITS",
    "STYLES",
    "MiniCity",
    "check_options",
    "class_presence",
    "coarsen_labels",
    "generate",
    "generate_many",
]


"""Measure minicity's domain gap with one small, honest segmenter per training domain.

The same conv net (``segmenters.small_unet``, a small UNet with BatchNorm), the same augmentation (random
scale, crop, flip) and the same step budget are used for every domain:

(a) flat train, (b) game train, (c) real train (the oracle). Each model is
evaluated on real val and on its own domain's val. Inputs are normalised per
channel with the statistics of the model's training set; (d) evaluates each
source model on real val with real statistics instead (per-channel colour
normalisation, the cheapest possible adaptation) to show how much of the gap
is a global colour shift and how much is not. (e) trains on each source's
scenes rendered in the target's appearance (``look="real"``: real's palette,
materials, lighting and sensor on the source's layout and camera), the perfect
translation: what is left between it and the oracle is layout, not appearance.

The numbers say whether the world is a faithful miniature of GTA5/VEIS ->
Cityscapes: source-only should reach 35-60 % of the oracle, each source model
on its own val should be near the oracle (the gap is the domain, not the
difficulty), colour normalisation should close little of the gap and the
perfect translation most of it (the gap is appearance, as GTA5 -> Cityscapes).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import torch

from synthlib.minicity import MiniCity
from synthlib.segmenters.small_unet import channel_stats, evaluate, train_segmenter

SOURCES = ("flat", "game")
TARGET = "real"


def measure_gap(height: int = 64, width: int = 128, n_train: int = 500, n_val: int = 200, steps: int = 1200,
                seed: int = 0, batch_size: int = 8, lr: float = 3e-3, base_width: int = 16,
                threads: int | None = 2, log=None, translation: bool = True,
                translators: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None) -> pd.DataFrame:
    """Train flat, game and real models with one budget and tabulate mIoU on real val and own val.

    Returns one row per (train domain, eval domain, input normalisation) with the 19 per-class
    IoUs, mIoU (and the 16/13-class means), ``pct_of_oracle`` and, for the colour-normalised
    and (with ``translation``) the perfect-translation rows, ``gap_closed`` =
    (that row - source only) / (oracle - source only). ``translators`` maps a name to a
    function (source images, target images) -> translated source images, one reference
    per image (Lab colour transfer, FDA); each adds a row per source trained on its
    translation (``trained_on`` ``"<source>+<name>"``) with its ``gap_closed``.
    ``seed`` seeds both the world (which scenes) and the training (init, batches).
    ``threads`` sets torch's CPU threads and the number of processes generating data.
    """
    if threads:
        torch.set_num_threads(threads)
    data = {}
    for style in (*SOURCES, TARGET):
        data[style] = {
            split: MiniCity(style, split, n, height, width, seed=seed).arrays(workers=threads or 1)
            for split, n in (("train", n_train), ("val", n_val))
        }
    rows = []
    stats = {style: channel_stats(data[style]["train"][0]) for style in data}
    for i, style in enumerate((*SOURCES, TARGET)):
        t0 = time.perf_counter()
        model = train_segmenter(*data[style]["train"], stats[style], steps=steps, batch_size=batch_size, lr=lr,
                                base_width=base_width, seed=seed * 1000 + i)
        if log:
            log(f"trained on {style} in {time.perf_counter() - t0:.0f} s")
        evals = [(style, style, stats[style])]
        if style != TARGET:
            evals += [(TARGET, style, stats[style]), (TARGET, TARGET, stats[TARGET])]
        for eval_style, norm_style, norm in evals:
            cm = evaluate(model, *data[eval_style]["val"], norm)
            norm_name = "own" if eval_style == style else ("source" if norm_style == style else "target")
            row = cm.row(f"{style}->{eval_style} ({norm_name} stats)")
            row.insert(0, "input_norm", norm_name)
            row.insert(0, "evaluated_on", eval_style)
            row.insert(0, "trained_on", style)
            rows.append(row)
    translated = []  # (source style, trained_on, what, images, labels)
    if translation:
        for style in SOURCES:
            images, labels = MiniCity(style, "train", n_train, height, width, seed=seed, look=TARGET).arrays(
                workers=threads or 1)
            translated.append((style, f"{style}_as_{TARGET}", "perfect translation", images, labels))
    references = data[TARGET]["train"][0][np.random.default_rng(seed).permutation(n_train)]  # one target image each
    for name, translate in (translators or {}).items():
        for style in SOURCES:
            images, labels = data[style]["train"]
            translated.append((style, f"{style}+{name}", name, translate(images, references), labels))
    for i, (_, trained_on, what, images, labels) in enumerate(translated):
        norm = channel_stats(images)
        t0 = time.perf_counter()
        model = train_segmenter(images, labels, norm, steps=steps, batch_size=batch_size, lr=lr,
                                base_width=base_width, seed=seed * 1000 + 3 + i)
        if log:
            log(f"trained on {trained_on} in {time.perf_counter() - t0:.0f} s")
        row = evaluate(model, *data[TARGET]["val"], norm).row(f"{trained_on}->{TARGET} ({what})")
        row.insert(0, "input_norm", "translated")
        row.insert(0, "evaluated_on", TARGET)
        row.insert(0, "trained_on", trained_on)
        rows.append(row)
    table = pd.concat(rows)
    oracle = float(table.loc[(table.trained_on == TARGET) & (table.evaluated_on == TARGET), "mIoU"].iloc[0])
    table["pct_of_oracle"] = 100.0 * table["mIoU"] / oracle
    table["gap_closed"] = np.nan
    for style in SOURCES:
        src = table.loc[(table.trained_on == style) & (table.input_norm == "source"), "mIoU"].iloc[0]
        normed = table.index[(table.trained_on == style) & (table.input_norm == "target")][0]
        table.loc[normed, "gap_closed"] = (table.loc[normed, "mIoU"] - src) / (oracle - src)
        of_style = (table.trained_on == f"{style}_as_{TARGET}") | table.trained_on.str.startswith(f"{style}+")
        table.loc[of_style, "gap_closed"] = (table.loc[of_style, "mIoU"] - src) / (oracle - src)
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The gap figures in one small table: mIoU per row plus % of oracle and gap closed."""
    return table[["trained_on", "evaluated_on", "input_norm", "mIoU", "pct_of_oracle", "gap_closed"]].round(2)


def check_requirements(table: pd.DataFrame) -> dict[str, bool]:
    """The three properties minicity promises (docs/design.md §4), each True or False."""
    oracle = float(table.loc[(table.trained_on == TARGET) & (table.evaluated_on == TARGET), "mIoU"].iloc[0])
    out = {"oracle > 35": oracle > 35}
    for style in SOURCES:
        sel = table.trained_on == style
        src = float(table.loc[sel & (table.input_norm == "source"), "mIoU"].iloc[0])
        own = float(table.loc[sel & (table.input_norm == "own"), "mIoU"].iloc[0])
        closed = float(table.loc[sel & (table.input_norm == "target"), "gap_closed"].iloc[0])
        out[f"{style}: source-only 35-60% of oracle"] = 35 <= 100 * src / oracle <= 60
        out[f"{style}: own val within 10 of oracle"] = abs(own - oracle) <= 10
        out[f"{style}: colour norm closes <= 25 %"] = closed <= 0.25
        translated = table.trained_on == f"{style}_as_{TARGET}"
        if translated.any():
            out[f"{style}: perfect translation closes >= 75 %"] = float(table.loc[translated, "gap_closed"].iloc[0]) >= 0.75
        for trained_on, closed in table.loc[table.trained_on.str.startswith(f"{style}+"), ["trained_on", "gap_closed"]].values:
            out[f"{style}: {trained_on.split('+', 1)[1]} closes <= 25 %"] = float(closed) <= 0.25
    return out

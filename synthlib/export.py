"""Hand a run's dataset to other tools: a Cityscapes-layout folder and a ready mmsegmentation config.

Any dataset stage of a run (``data/<name>``, ``translated/<method>-<source>``,
``generated/<source>``, ``generated/<source>-filtered``) is written under ``to`` as
``leftImg8bit/train`` + ``gtFine/train``, with the run's target val set as
``leftImg8bit/val`` + ``gtFine/val`` (Cityscapes file names; ``_labelTrainIds`` PNGs are
what mmseg's ``CityscapesDataset`` reads). Beside them:

- ``mmseg_config.py``: an mmseg 1.x config training the profile's SegFormer on the folder
  with the profile's budget (crop, batch, steps, learning rate and schedule), validating
  on ``val`` with mmseg's IoUMetric: ``python tools/train.py mmseg_config.py`` in an
  mmsegmentation checkout.
- ``pretrained_encoder.pth``: the profile's pretrained encoder in mmseg's MiT names, which
  the config starts from (left out, with the config starting from random weights, when
  the profile's ``seg_model`` is a named config).

The folder appears complete or not at all: it is written under a hidden name and renamed.
"""

from __future__ import annotations

import os
import pprint
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthlib.datasets import write_cityscapes
from synthlib.profiles import Profile
from synthlib.runs import RunDir
from synthlib.segmenters import fit
from synthlib.segmenters import mmseg_backend as mm
from synthlib.segmenters.model import build

CONFIG_FILE = "mmseg_config.py"
ENCODER_FILE = "pretrained_encoder.pth"


def export(run_dir: RunDir, cfg: Profile, dataset: str, to: str | Path, val: str | None = None) -> Path:
    """Write run dataset stage ``dataset`` (train split) and ``val`` (default: the target's val) under ``to``.

    ``to`` must not exist. Returns it. Raises ``DatasetError`` naming a missing stage,
    ``FileExistsError`` for an existing ``to`` and ``ModelError`` for a ``seg_model`` that
    cannot be loaded here, before anything is written.
    """
    to = Path(to).absolute()
    if to.exists():
        raise FileExistsError(f"{to} exists: export writes a new folder (delete it or choose another)")
    val = val or f"data/{cfg.target}"
    train_set, val_set = run_dir.dataset(dataset, "train"), run_dir.dataset(val, "val")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the decode head is new": only the encoder is exported
        model = build(cfg.seg_model, seed=cfg.seed)
    tmp = to.parent / f".{to.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write_cityscapes(train_set, tmp, "train")
        write_cityscapes(val_set, tmp, "val")
        settings = fit.settings(cfg)
        pretrained = None
        if getattr(model.config, "synthlib_init", None) != "config":
            torch.save(mm.encoder_state_dict(model.segformer), tmp / ENCODER_FILE)
            pretrained = to / ENCODER_FILE
        size = train_set[0].image.shape[:2]
        config = mm.config_of(model.config, to, settings, size, pretrained=pretrained, val_split="val")
        config["resume"] = False  # a fresh work_dir per experiment, as mmseg's tools/train.py expects
        (tmp / CONFIG_FILE).write_text(config_text(config, f"{dataset} of run {run_dir.name!r}, profile {cfg.name!r}"))
        tmp.rename(to)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return to


def config_text(config: dict[str, Any], what: str) -> str:
    """An mmengine config file (plain Python assignments) for ``config``."""
    lines = [
        f"# mmsegmentation 1.x config written by synthlib export: SegFormer trained on {what}.",
        "# Cityscapes layout under data_root; rare-class sampling is left to the training code (mmseg has none).",
        "",
    ]
    for key, value in config.items():
        lines.append(f"{key} = {pprint.pformat(_plain(value), width=110, sort_dicts=False)}")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value

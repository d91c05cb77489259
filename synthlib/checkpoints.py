"""Resumable training state on top of accelerate's ``save_state`` / ``load_state``.

A checkpoint folder holds at most one complete ``step-N`` (written as a hidden
temporary folder and renamed, so a crash mid-save leaves the previous one) with
``history.json`` beside accelerate's state. Every training loop of the project
(segmenters, diffusion) saves and resumes through here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from accelerate import Accelerator


def save(accelerator: Accelerator, folder: Path, step: int, history: dict) -> None:
    """Save the prepared objects' state after ``step`` steps, replacing older checkpoints."""
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    folder = Path(folder)
    tmp = folder / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    accelerator.save_state(str(tmp))
    (tmp / "history.json").write_text(json.dumps({"step": step, "history": history}))
    tmp.rename(folder / f"step-{step}")  # a checkpoint is visible only when complete
    for old in folder.glob("step-*"):
        if old.name != f"step-{step}":
            shutil.rmtree(old, ignore_errors=True)


def resume(accelerator: Accelerator, folder: Path | None, history: dict, what: str = "training") -> int:
    """Load the newest checkpoint in ``folder`` (if any) into the prepared objects.

    Fills ``history`` with the saved one and returns the step to continue from (0 without a checkpoint).
    """
    if folder is None:
        return 0
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    if not found:
        return 0
    accelerator.load_state(str(found[-1]))
    saved = json.loads((found[-1] / "history.json").read_text())
    history.update(saved["history"])
    print(f"[synthlib] resumed {what} from {found[-1].name}")
    return int(saved["step"])

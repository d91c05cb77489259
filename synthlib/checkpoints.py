"""Resumable training state on top of accelerate's ``save_state`` / ``load_state``.

A checkpoint folder holds at most one complete ``step-N`` (written as a hidden
temporary folder and renamed, so a crash mid-save leaves the previous one) with
``history.json`` beside accelerate's state. Every training loop of the project
(segmenters, diffusion, CycleGAN) saves and resumes through here, and stops
through ``Guard`` at its first non-finite loss, before NaN weights can replace
the last good checkpoint.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors import SafetensorError

from synthlib.integrity import CorruptFileError, check_folder, write_error

#: Consecutive non-finite losses tolerated under fp16 mixed precision, whose gradient scaler skips such steps
#: (an overflow it then avoids by lowering its scale); without a scaler the first one stops the loop.
TOLERATED_WITH_SCALER = 10
#: What a corrupt ``load_state`` raises (torch.load, safetensors, pickle), beside a state that does not fit.
_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError, SafetensorError)


class DivergenceError(ArithmeticError):
    """A training loop's loss or weights became NaN or infinite; the last good checkpoint is kept."""


def save(accelerator: Accelerator, folder: Path, step: int, history: dict) -> None:
    """Save the prepared objects' state after ``step`` steps, replacing older checkpoints.

    A failed write (a full disk) removes the partial checkpoint, keeps the previous
    one and raises ``synthlib.integrity.WriteError`` naming the folder.
    """
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        return
    folder = Path(folder)
    tmp = folder / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        accelerator.save_state(str(tmp))
        (tmp / "history.json").write_text(json.dumps({"step": step, "history": history}))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(folder / f"step-{step}", e, "checkpoint", "the partial checkpoint was removed, the previous one is kept") from e
    tmp.rename(folder / f"step-{step}")  # a checkpoint is visible only when complete
    for old in folder.glob("step-*"):
        if old.name != f"step-{step}":
            shutil.rmtree(old, ignore_errors=True)


def resume(accelerator: Accelerator, folder: Path | None, history: dict, what: str = "training") -> int:
    """Load the newest checkpoint in ``folder`` (if any) into the prepared objects.

    Fills ``history`` with the saved one and returns the step to continue from (0 without a checkpoint).
    A checkpoint that cannot be loaded raises ``CorruptFileError`` naming it and saying to delete it.
    """
    if folder is None:
        return 0
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    if not found:
        return 0
    latest = found[-1]
    advice = f"delete the checkpoint (rm -r {latest}): {what} then starts from step 0"
    check_folder(latest, advice)  # names the truncated or overwritten file, before load_state fails on it
    try:
        saved = json.loads((latest / "history.json").read_text())
        step, saved_history = int(saved["step"]), dict(saved["history"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorruptFileError(latest / "history.json", f"cannot read the step and loss history ({e})", advice) from e
    try:
        accelerator.load_state(str(latest))
    except _LOAD_ERRORS as e:
        if isinstance(e, torch.cuda.OutOfMemoryError):  # not the checkpoint's fault
            raise
        raise CorruptFileError(latest, f"accelerate cannot load this state ({type(e).__name__}: {e})", advice) from e
    history.update(saved_history)
    print(f"[synthlib] resumed {what} from {latest.name}")
    return step


def stage_of(folder: Path | None) -> str | None:
    """The stage whose checkpoint folder ``folder`` is (``runs`` keeps them at ``<run>/.work/<stage>/<hash>``), or None."""
    parts = Path(folder).parts if folder is not None else ()
    if ".work" not in parts or len(parts) - parts.index(".work") < 3:
        return None
    return "/".join(parts[parts.index(".work") + 1 : -1])


class Guard:
    """Stops a training loop at its first non-finite loss, before NaN weights reach a checkpoint or the stage.

    ``check`` after every step's losses, ``save`` in place of ``checkpoints.save``,
    ``finish`` after the loop (an update can turn the weights NaN with a finite loss).
    Errors name the stage (from the checkpoint folder's place in the run), the
    step, and the checkpoint that is kept.
    """

    def __init__(self, what: str, checkpoints: Path | None, steps: int, accelerator: Accelerator) -> None:
        self.what, self.checkpoints, self.steps = what, checkpoints, steps
        self.tolerated = TOLERATED_WITH_SCALER if getattr(accelerator, "scaler", None) is not None else 0
        self._streak = 0

    def check(self, step: int, losses: Mapping[str, float], params: Callable[[], Iterable[torch.Tensor]]) -> None:
        """After step ``step`` (0-based): raise ``DivergenceError`` on non-finite losses (and weights, under a scaler)."""
        bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
        if not bad:
            self._streak = 0
            return
        self._streak += 1
        if self._streak > self.tolerated or not _finite(params()):
            terms = ", ".join(f"{k} = {v}" for k, v in bad.items())
            raise DivergenceError(self._message(step + 1, f"the loss is not a finite number ({terms})"))

    def save(self, accelerator: Accelerator, step: int, history: dict, params: Iterable[torch.Tensor]) -> None:
        """``checkpoints.save`` after ``step`` steps, unless the weights are no longer finite (then raise)."""
        if self.checkpoints is None:
            return
        self.finish(step, params)
        save(accelerator, self.checkpoints, step, history)

    def finish(self, step: int, params: Iterable[torch.Tensor]) -> None:
        """Raise ``DivergenceError`` unless every weight is finite after ``step`` steps."""
        if not _finite(params):
            raise DivergenceError(self._message(step, "the weights hold NaN or infinite values"))

    def _message(self, step: int, problem: str) -> str:
        stage = stage_of(self.checkpoints)
        where = f"stage {stage!r} ({self.what})" if stage else self.what
        kept = "checkpoints were off"
        if self.checkpoints is not None:
            found = sorted(Path(self.checkpoints).glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
            kept = f"the last good checkpoint, {found[-1]}, is kept" if found else "no checkpoint had been saved yet"
        return (
            f"{where} diverged: {problem} at step {step} of {self.steps}. Stopped before saving anything: {kept}. "
            "Lower the learning rate, or look for NaN or infinite values in the inputs."
        )


def _finite(params: Iterable[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)

"""The stage graph: every step of the pipeline, what it needs, and how it builds itself — declared in one place.

A *step* makes a group of stages with the calls its notebook makes (``data``
makes ``data/<name>``, ``stage2`` makes ``diffusion/stage2``, ...). Stage
functions never build what they read: they ask the run for it
(``RunDir.require``) and fail naming the step that makes it. What runs when is
decided here: ``build`` makes a step after everything it needs, in order, each
step cached as its stages are (a current stage is skipped), and each notebook
starts with ``build_needs`` for its own steps. ``status`` reads a run through
the very same calls without building anything (``runs.planning``): each step
is current, stale or missing, and why (``synthlib stages --run NAME``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pandas as pd

from synthlib import runs
from synthlib.profiles import Profile
from synthlib.runs import RunDir


@dataclass(frozen=True)
class Step:
    """One step: its name, the notebook whose stages it makes, the steps it needs, and how it builds them."""

    name: str
    notebook: str
    needs: tuple[str, ...]
    build: Callable[[RunDir, Profile], object]
    makes: str


def _data(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import data
    from synthlib.datasets import DatasetError

    names = []
    for name in data.dataset_names(cfg):
        try:
            data.source_spec(name, cfg)
        except DatasetError:
            if run_dir.manifest(f"data/{name}") is None:
                raise
            continue  # written by 00_data from roots given to the notebook, which the profile does not name
        names.append(name)
    data.prepare(run_dir, cfg, names=names)


def _pseudo_labels(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import pseudo_labels

    pseudo_labels.train_baselines(run_dir, cfg)
    pseudo_labels.make(run_dir, cfg)


def _pretrain(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib.diffusion import pretrain

    pretrain.pretrain(run_dir, cfg)


def _stage1(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import diffusion

    diffusion.train_stage1(run_dir, cfg)


def _stage2(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import diffusion

    diffusion.train_stage2(run_dir, cfg)


def _generation(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import generation

    generation.generate_all(run_dir, cfg)


def _translation(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import translation

    translation.check(run_dir, cfg)
    translation.source_models(run_dir, cfg)
    translation.train_cyclegans(run_dir, cfg)
    translation.write_sets(run_dir, cfg)


def _zero_shot(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import zero_shot

    zero_shot.table(run_dir, cfg, zero_shot.adapt_all(run_dir, cfg))


def _judge(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import mcoc

    mcoc.train_judge(run_dir, cfg)


def _mcoc(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import mcoc

    mcoc.settings_used(run_dir, cfg, mcoc.search_settings(run_dir, cfg))
    mcoc.filter_all(run_dir, cfg)


def _segmentation(run_dir: RunDir, cfg: Profile) -> None:
    from synthlib import segmentation

    segmentation.evaluate_all(run_dir, cfg, segmentation.train_all(run_dir, cfg))


#: Every step in an order that puts each after what it needs.
STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        Step("data", "00_data", (), _data, "data/<dataset>: every source, target and condition set"),
        Step("pseudo_labels", "01_pseudo_labels", ("data",), _pseudo_labels, "models/* (source only, UDA), recoloured (labeller colour), pseudo_labels"),
        Step("pretrain", "02_stage1", ("data",), _pretrain, "diffusion/pretrain (embedded profiles only)"),
        Step("stage1", "02_stage1", ("pretrain", "pseudo_labels"), _stage1, "diffusion/stage1"),
        Step("stage2", "03_stage2", ("stage1", "pseudo_labels"), _stage2, "diffusion/stage2"),
        Step("generation", "04_generation", ("stage2",), _generation, "generated/<source>"),
        Step("translation", "04_translation_baselines", ("pseudo_labels",), _translation, "i2i/*, translated/<method>-<source>"),
        Step("judge", "05_mcoc_filtering", ("pseudo_labels",), _judge, "the MCOC judge's model stage"),
        Step("zero_shot", "05_zero_shot", ("pseudo_labels",), _zero_shot, "zero_shot/*, models/supervised/zero_shot/*"),
        Step("mcoc", "05_mcoc_filtering", ("generation", "judge"), _mcoc, "mcoc/settings, generated/<source>-filtered"),
        Step("segmentation", "06_segmentation", ("mcoc", "translation"), _segmentation, "models/supervised/*, eval/*"),
    )
}


def order(names: Iterable[str]) -> list[str]:
    """The steps ``names`` and everything they need, in the order of ``STEPS`` (unknown names raise ``ValueError``)."""
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in STEPS:
            raise ValueError(f"no step {name!r}; valid: {', '.join(STEPS)}")
        if name not in wanted:
            wanted.add(name)
            todo.extend(STEPS[name].needs)
    return [name for name in STEPS if name in wanted]


def build(run_dir: RunDir, cfg: Profile, name: str) -> None:
    """Make step ``name`` after everything it needs (current stages are skipped)."""
    for step in order([name]):
        STEPS[step].build(run_dir, cfg)


def build_needs(run_dir: RunDir, cfg: Profile, *names: str) -> None:
    """Make what the steps ``names`` need, not the steps themselves: the first call of a notebook."""
    for step in order(names):
        if step not in names:
            STEPS[step].build(run_dir, cfg)


def status(run_dir: RunDir, cfg: Profile) -> pd.DataFrame:
    """One row per step: its notebook, needs, state (current / stale / missing / waiting / error) and why.

    Each step's own calls run under ``runs.planning()``: every stage they ask for is
    checked as a build would check it (parameters, inputs, code, packages, files), and
    the first one that is not current stops the step with its reason. A step whose needs
    are not current waits for them (its stages would be remade after them anyway).
    """
    rows, states = [], {}
    quiet = dataclasses.replace(cfg, seg_workers=1)  # checked in this process: no workers are started
    for name, step in STEPS.items():
        waiting = [n for n in step.needs if states[n] != "current"]
        stages: list[tuple[str, str]] = []
        if waiting:
            state, why = "waiting", f"for {', '.join(waiting)}"
        else:
            state, why, stages = _plan(run_dir, quiet, step)
        states[name] = state
        current = sum(1 for _, s in stages if s == "current")
        rows.append({"step": name, "notebook": step.notebook, "needs": ", ".join(step.needs), "state": state,
                     "stages current": current, "why": why})  # fmt: skip
    return pd.DataFrame(rows).set_index("step")


def _plan(run_dir: RunDir, cfg: Profile, step: Step) -> tuple[str, str, list[tuple[str, str]]]:
    """(state, why, the stages checked) of one step whose needs are current."""
    sink = io.StringIO()
    with runs.planning() as plan, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            step.build(run_dir, cfg)
        except runs.PlanStop as stop:
            return ("missing" if stop.why == "missing" else "stale"), f"{stop.stage}: {stop.why}", list(plan)
        except Exception as e:  # noqa: BLE001 - whatever stops the step's calls is what the user must fix
            return "error", f"{type(e).__name__}: {e}", list(plan)
    return "current", f"{len(plan)} stages", list(plan)

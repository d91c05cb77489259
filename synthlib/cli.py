"""The ``synthlib`` command: ``reproduce`` runs the notebooks in order, ``stages`` tells what a run holds, ``profiles`` lists profiles.

``synthlib reproduce --profile smoke --run ci --only 00,01`` executes
``notebooks/00_*.ipynb``, ``01_*.ipynb`` ... with papermill, passing ``profile``,
``run`` and ``overrides`` as parameters; executed copies are kept in
``runs/<run>/notebooks``. ``--config my.yaml`` takes a user profile (base
profile, roots, fields), ``--set FIELD=VALUE`` and ``--roots NAME=FOLDER``
override single fields and dataset roots; all are checked before a kernel
starts and recorded in ``runs/<run>/run.json``. Each cell may run for the
profile's ``cell_timeout`` seconds.
Finished stages are cached, so a second call resumes where the first stopped.
``--jobs 2`` runs independent notebooks side by side: a notebook waits for the
ones its metadata ``synthlib.needs`` names (number prefixes or names, e.g.
``["01"]`` or ``["04_generation"]``), by default for every lower-numbered one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from synthlib import graph, profiles, runs
from synthlib.reproduce import (  # noqa: F401 - the command's pieces, public here too
    RUN_RECORD,
    default_notebooks_dir,
    default_results_dir,
    needed_by,
    reproduce,
    select_notebooks,
)
from synthlib.steps import STEPS, resolve, run_step


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="synthlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="execute the notebooks in order with papermill")
    rep.add_argument("--profile", default=None, help=f"one of {', '.join(profiles.names())} (default: $SYNTHLIB_PROFILE or default)")
    _profile_options(rep)
    rep.add_argument("--run", default=None, help="run directory name under runs/ (default: the profile's name)")
    rep.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 00,01,06")
    rep.add_argument("--notebooks", type=Path, default=None, help="folder of the notebooks (default: the checkout's notebooks/)")
    rep.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    rep.add_argument(
        "--jobs", type=int, default=1,
        help="notebooks run at once where their needs allow; each kernel gets the CPU cores divided among "
        "the running notebooks (OMP_NUM_THREADS) unless OMP_NUM_THREADS is set",
    )  # fmt: skip
    rep.add_argument(
        "--results", type=Path, default=None,
        help="where the run's tables and figures are copied when every notebook succeeded "
        "(default: the checkout's results/ for the default profile, results/<profile>/ for others)",
    )  # fmt: skip
    rep.add_argument(
        "--rerun", action="store_true",
        help="execute every selected notebook, also those that ran to their end before with nothing changed since "
        "(skipped otherwise; their stages stay cached either way)",
    )  # fmt: skip
    _add_stage_commands(sub)
    _add_conditions(sub)
    res = sub.add_parser("results", help="copy a run's tables and figures into results/, or --check that results/ is current")
    res.add_argument("--run", default="default", help="run directory name under runs/")
    res.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    res.add_argument("--to", type=Path, default=None, help="destination (default: the checkout's results/)")
    res.add_argument("--only", default=None, help="comma-separated table / figure names to copy (default: all), e.g. seg_backends")
    res.add_argument(
        "--check", action="store_true",
        help="copy nothing: tell whether every file in results/ (or --to) was made by the current code, and which "
        "are stale; exit status 1 when any is",
    )  # fmt: skip
    zoo_parser = sub.add_parser(
        "zoo", help="build, list or check the embedded model zoo (pretrained stand-ins for hub weights)",
        description="The embedded profiles start from zoo models (zoo:NAME in a profile field) as real runs start "
        "from downloaded weights. build: train the named models (all by default; resumable); list: where each lives "
        "and whether it is built; check: whether each built model's files match its manifest.",
    )  # fmt: skip
    zoo_parser.add_argument("action", choices=("build", "list", "check"))
    zoo_parser.add_argument("names", nargs="*", help="zoo models (default: all; --tiny: the -tiny ones)")
    zoo_parser.add_argument("--tiny", action="store_true", help="only the tiny models the smoke profile uses")
    _add_export(sub)
    prof = sub.add_parser("profiles", help="print the profiles and their fields (with --config/--set/--roots: the resolved one too)")
    prof.add_argument("name", nargs="?", default=None)
    _profile_options(prof)
    args = parser.parse_args(argv)
    try:
        if args.command == "zoo":
            return _zoo(args.action, args.names, args.tiny)
        if args.command == "export":
            return _export(args.dataset, args.to, args.run, args.runs_dir, args.profile, args.val)
        if args.command == "results":
            only = args.only.split(",") if args.only else None
            return _check_results(args.to) if args.check else _results(args.run, args.runs_dir, args.to, only)
        overrides = profiles.parse_assignments(args.set)
        roots = profiles.parse_roots(args.roots)
        if args.command == "profiles":
            return _profiles(args.name, args.config, overrides, roots)
        if args.command == "stages":
            return _stages(args.profile, args.run, args.runs_dir, args.config, overrides, roots)
        if args.command == "conditions":
            return _conditions(args, overrides, roots)
        if args.command == "stage":
            return run_step(args.name, args.profile, args.run, args.runs_dir, args.config, overrides, roots)
        return reproduce(
            args.profile, args.run, args.only, args.notebooks, args.runs_dir, args.results, args.jobs,
            config=args.config, overrides=overrides, roots=roots, rerun=args.rerun,
        )  # fmt: skip
    except (profiles.ProfileError, runs.StageError, FileNotFoundError, ValueError) as e:
        print(f"synthlib: error: {e}", file=sys.stderr)
        return 2


def _stages(profile: str | None, run: str | None, runs_dir: Path | None, config: str | None, overrides: dict, roots: dict) -> int:
    """``synthlib stages``: the run's step graph with each step's state; 1 when a step is not current."""
    import pandas as pd

    cfg, _, _ = resolve(profile, config, overrides, roots)
    name = run or (Path(config).stem if config is not None else cfg.name)
    root = Path(runs_dir) if runs_dir is not None else runs.default_root()
    if not (root / name).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"no run {name!r} in {root} (runs there: {', '.join(found) or 'none'})")
    table = graph.status(runs.open(name, root), cfg)
    print(f"run {root / name} with profile {cfg.name}:")
    with pd.option_context("display.width", 200, "display.max_colwidth", 110):
        print(table.to_string())
    return 0 if (table["state"] == "current").all() else 1


def _add_stage_commands(sub) -> None:
    """``stage NAME`` (build one step and what it needs) and ``stages`` (a run's step graph and state)."""
    stg = sub.add_parser(
        "stage", help="build one step's stages as its notebook would, e.g. under accelerate launch on N GPUs",
        description="Build the stages of one step of the pipeline, as its notebook would, without the notebook's "
        "figures. Under `accelerate launch --num_processes N -m synthlib stage NAME ...` every process joins the "
        "training and generation loops; `synthlib reproduce` with the same settings then finds the stages current.",
    )  # fmt: skip
    stg.add_argument("name", choices=list(STEPS), help="the step: " + "; ".join(f"{k} ({v})" for k, v in STEPS.items()))
    _run_options(stg)
    sts = sub.add_parser(
        "stages", help="print a run's stage graph: each step's needs, whether it is current, stale or missing, and why",
        description="Read a run without building anything: each step of the pipeline (synthlib stage NAME builds one) "
        "with the notebook it belongs to, the steps it needs, its state and the reason (the first stage that is not "
        "current, and what changed: parameters, an input stage, the code, the packages).",
    )  # fmt: skip
    _run_options(sts)


def _run_options(parser) -> None:
    """--profile, --run and --runs-dir of a command that works on one run, then the profile options."""
    parser.add_argument("--profile", default=None, help=f"one of {', '.join(profiles.names())} (default: $SYNTHLIB_PROFILE or default)")
    parser.add_argument("--run", default=None, help="run directory name under runs/ (default: the profile's name, or the user profile file's)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    _profile_options(parser)


def _add_conditions(sub) -> None:
    cnd = sub.add_parser(
        "conditions", help="the adverse-conditions table: every method with each condition (and game) as the target",
        description="Adapt from the clear target to each condition of the profile (and, on minicity, to the game look): "
        "each target gets its own run <run>-<column> beside the main run, built to 06 by the stage graph; SDGPA "
        "zero-shot comes from the main run's zero_shot step. Writes the table conditions_miou and the figure "
        "conditions_samples into the main run's tables (synthlib results copies them).",
    )  # fmt: skip
    cnd.add_argument("--targets", default=None, help="comma-separated columns, e.g. fog,game (default: every condition and look)")
    cnd.add_argument("--seeds", default="", help="comma-separated seeds besides the profile's own: every row's segmenters trained again")
    _run_options(cnd)


def _conditions(args, overrides: dict, roots: dict) -> int:
    from synthlib import conditions

    cfg, _, _ = resolve(args.profile, args.config, overrides, roots)
    run_dir = runs.open(args.run or (Path(args.config).stem if args.config is not None else cfg.name), args.runs_dir)
    seeds = tuple(int(k) for k in args.seeds.split(",") if k.strip())
    result = conditions.write(run_dir, cfg, args.targets.split(",") if args.targets else None, seeds)
    print(f"mIoU (%) on each target's val, from the clear {cfg.target}" + (" (mean over seeds)" if seeds else ""))
    print(result.round(1).to_string())
    print(f"written: {run_dir.path / 'tables' / 'conditions_miou.md'}")
    return 0


def _add_export(sub) -> None:
    exp = sub.add_parser(
        "export", help="write a run dataset as a Cityscapes-layout folder with a ready mmsegmentation config",
        description="Write a dataset stage of a run (data/NAME, translated/METHOD-SOURCE, generated/SOURCE, "
        "generated/SOURCE-filtered) as a Cityscapes-layout folder (train split, and the target's val split), with "
        "mmseg_config.py training the profile's SegFormer on it and the pretrained encoder it starts from.",
    )  # fmt: skip
    exp.add_argument("dataset", help="the run's dataset stage, e.g. generated/game-filtered")
    exp.add_argument("to", type=Path, help="the new folder to write (must not exist)")
    exp.add_argument("--run", default="default", help="run directory name under runs/")
    exp.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    exp.add_argument("--profile", default=None, help="the profile whose budget the config takes (default: the run's)")
    exp.add_argument("--val", default=None, help="the dataset stage whose val split is exported (default: data/<target>)")


def _export(dataset: str, to: Path, run: str, runs_dir: Path | None, profile: str | None, val: str | None) -> int:
    from synthlib import export
    from synthlib.datasets import DatasetError

    run_dir = runs.open(run, runs_dir) if runs_dir else runs.open(run)
    if not run_dir.path.is_dir() or not run_dir.stages():
        raise FileNotFoundError(f"run {run!r} has no stages under {run_dir.path.parent}: reproduce it first")
    cfg = profiles.load(profile) if profile else _run_profile(run_dir)
    try:
        out = export.export(run_dir, cfg, dataset, to, val)
    except DatasetError as e:
        raise ValueError(str(e)) from e
    print(f"exported {dataset} of run {run!r} to {out} (train: {len(run_dir.dataset(dataset, 'train'))} images); "
          f"mmseg: python tools/train.py {out / export.CONFIG_FILE}")  # fmt: skip
    return 0


def _run_profile(run_dir: runs.RunDir) -> profiles.Profile:
    """The profile the run was last reproduced with (its resolved fields), else the environment's."""
    recorded = run_dir.path / "run.json"
    if not recorded.is_file():
        return profiles.load()
    rec = json.loads(recorded.read_text())
    known = {f.name for f in dataclasses.fields(profiles.Profile)} - {"name"}
    name = Path(str(rec["profile"])).stem  # a user profile's fields are all in "resolved"
    base = name if name in profiles.names() else "default"
    return profiles.load(base, {k: v for k, v in rec.get("resolved", {}).items() if k in known})


def _results(run: str, runs_dir: Path | None, to: Path | None, only: list[str] | None = None) -> int:
    from synthlib import report

    run_dir = runs.open(run, runs_dir)
    copied = report.publish(run_dir, to or Path(__file__).resolve().parents[1] / "results", only)
    print(f"copied {len(copied)} file(s) from {run_dir.path / report.TABLES}")
    return 0


def _zoo(action: str, names: list[str], tiny: bool) -> int:
    from synthlib import zoo

    if not names:
        names = [n for n in zoo.MODELS if "tiny" in n] if tiny else list(zoo.MODELS)
    for name in names:
        zoo.get(name)  # every name checked before anything is built
    if action == "build":
        for name in names:
            zoo.build(name)
        return 0
    bad = 0
    for name in names:
        where = zoo.folder(name)
        if not zoo.is_built(name):
            print(f"{name:12s} not built   {where}")
            continue
        record = zoo.manifest(name)
        state = f"built {record['built']} in {record['build_seconds']:.0f} s"
        if action == "check":
            changed = zoo.verify(name)
            bad += bool(changed)
            state = f"CHANGED: {', '.join(changed)}" if changed else "intact"
        print(f"{name:12s} {state}   {where}")
    return 1 if bad else 0


def _check_results(folder: Path | None) -> int:
    from synthlib import report

    folder = folder or Path(__file__).resolve().parents[1] / "results"
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder at {folder}")
    problems = report.results_check(folder)
    for line in problems:
        print(f"stale: {line}")
    count = sum(1 for f in folder.iterdir() if f.is_file() and f.name != report.RESULTS_RECORD)
    print(f"{folder}: {count - len(problems)} of {count} file(s) current with this code" + ("" if problems else " (all)"))
    return 1 if problems else 0


def _profiles(name: str | None, config: Path | None, overrides: dict[str, Any], roots: dict[str, str]) -> int:
    if config is None and not overrides and not roots:
        table = profiles.describe()
        if name is not None:
            profiles.load(name)  # validates the name with a helpful error
            table = table[[name]]
        print(table.to_string())
        return 0
    if config is not None and name is not None:
        raise ValueError("give a profile name or --config, not both: a user profile names its base profile")
    if roots:
        overrides = {**overrides, "roots": {**overrides.get("roots", {}), **roots}}
    cfg = profiles.load(str(config) if config is not None else name, overrides)
    table = profiles.describe(cfg)
    print(table[[cfg.name, table.columns[-1]]].to_string())
    return 0


def _profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None, help="a user profile (YAML): base: PROFILE, roots: {NAME: FOLDER}, and fields")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE",
        help="override a profile field (repeatable); VALUE is read as JSON where it parses, e.g. seg_steps=2000, "
        "seg_crop=[256,256], diff_model=/models/sd",
    )  # fmt: skip
    parser.add_argument("--roots", action="append", default=[], metavar="NAME=FOLDER", help="a dataset's root folder (repeatable), e.g. gta5=/data/gta5")


if __name__ == "__main__":
    raise SystemExit(main())

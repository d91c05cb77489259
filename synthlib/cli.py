"""The ``synthlib`` command: ``reproduce`` runs the notebooks in order, ``profiles`` lists profiles.

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
import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthlib import profiles, runs
from synthlib.steps import STEPS, resolve, run_step

#: How the last ``reproduce`` of a run was asked for, under the run directory.
RUN_RECORD = "run.json"


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
    stg = sub.add_parser(
        "stage", help="build one step's stages as its notebook would, e.g. under accelerate launch on N GPUs",
        description="Build the stages of one step of the pipeline, as its notebook would, without the notebook's "
        "figures. Under `accelerate launch --num_processes N -m synthlib stage NAME ...` every process joins the "
        "training and generation loops; `synthlib reproduce` with the same settings then finds the stages current.",
    )  # fmt: skip
    stg.add_argument("name", choices=list(STEPS), help="the step: " + "; ".join(f"{k} ({v})" for k, v in STEPS.items()))
    stg.add_argument("--profile", default=None, help=f"one of {', '.join(profiles.names())} (default: $SYNTHLIB_PROFILE or default)")
    stg.add_argument("--run", default=None, help="run directory name under runs/ (default: the profile's name, or the user profile file's)")
    stg.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    _profile_options(stg)
    res = sub.add_parser("results", help="copy a run's tables and figures into results/")
    res.add_argument("--run", default="default", help="run directory name under runs/")
    res.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    res.add_argument("--to", type=Path, default=None, help="destination (default: the checkout's results/)")
    prof = sub.add_parser("profiles", help="print the profiles and their fields (with --config/--set/--roots: the resolved one too)")
    prof.add_argument("name", nargs="?", default=None)
    _profile_options(prof)
    args = parser.parse_args(argv)
    try:
        if args.command == "results":
            return _results(args.run, args.runs_dir, args.to)
        overrides = profiles.parse_assignments(args.set)
        roots = profiles.parse_roots(args.roots)
        if args.command == "profiles":
            return _profiles(args.name, args.config, overrides, roots)
        if args.command == "stage":
            return run_step(args.name, args.profile, args.run, args.runs_dir, args.config, overrides, roots)
        return reproduce(
            args.profile, args.run, args.only, args.notebooks, args.runs_dir, args.results, args.jobs,
            config=args.config, overrides=overrides, roots=roots,
        )  # fmt: skip
    except (profiles.ProfileError, runs.StageError, FileNotFoundError, ValueError) as e:
        print(f"synthlib: error: {e}", file=sys.stderr)
        return 2


def reproduce(
    profile: str | None = None,
    run: str | None = None,
    only: str | None = None,
    notebooks: Path | None = None,
    runs_dir: Path | None = None,
    results: Path | None = None,
    jobs: int = 1,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    roots: dict[str, str] | None = None,
) -> int:
    """Execute the selected notebooks (in order, or ``jobs`` at once where their needs allow),
    then publish the run's tables; 0 on success, 1 when a notebook fails.

    ``config`` is a user profile file (instead of ``profile``), ``overrides`` profile
    fields and ``roots`` dataset folders on top of it. Every one of them, and every
    dataset root's layout, is checked before the first kernel starts.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    cfg, source, overrides = resolve(profile, config, overrides, roots)  # unknown fields, wrong types: before any kernel
    from synthlib import data

    data.check_roots(cfg)  # a missing root or one whose layout its adapter does not recognise
    run_dir = runs.open(run or (Path(config).stem if config is not None else cfg.name), runs_dir)
    selected = select_notebooks(notebooks or default_notebooks_dir(), only)
    needs = {nb: needed_by(nb, selected) for nb in selected}
    out_dir = run_dir.path / "notebooks"
    out_dir.mkdir(exist_ok=True)
    _record(run_dir, source or cfg.name, config, overrides, cfg)
    # The kernels inherit the environment: point them at the same profile and runs folder.
    os.environ[profiles.ENV_VAR] = source or cfg.name
    os.environ[runs.RUNS_ENV_VAR] = str(run_dir.path.parent.resolve())
    settings = _Settings(source or cfg.name, overrides, cfg.cell_timeout)

    pending, running, done, failed = list(selected), {}, set(), None
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            ready = [nb for nb in pending if needs[nb] <= done] if failed is None else []
            starting = ready[: jobs - len(running)]
            for nb in starting:
                pending.remove(nb)
                threads = _threads(len(running) + len(starting)) if jobs > 1 else None
                print(f"[{len(selected) - len(pending)}/{len(selected)}] {nb.name} (profile {cfg.name}, run {run_dir.name}"
                      + (f", {threads} thread(s))" if threads else ")"), flush=True)  # fmt: skip
                running[pool.submit(_execute, nb, out_dir / nb.name, settings, run_dir.name, threads, jobs == 1)] = nb
            if not running:
                break  # a failure stopped the schedule
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                nb = running.pop(future)
                error = future.result()
                if error is None:
                    done.add(nb)
                elif failed is None:
                    failed = error
                    print(f"\nsynthlib: {error}", file=sys.stderr)
    if failed is not None:
        return 1
    print(f"done: {len(selected)} notebook(s); executed copies in {out_dir}")
    if (run_dir.path / "tables").is_dir():
        from synthlib import report

        results = results or default_results_dir(run_dir.name if config is not None else cfg.name)
        copied = report.publish(run_dir, results)
        print(f"copied {len(copied)} table and figure file(s) to {results}")
    return 0


def needed_by(notebook: Path, selected: list[Path]) -> set[Path]:
    """The selected notebooks ``notebook`` must wait for.

    Its metadata ``synthlib.needs`` lists them by number prefix or name; without
    it, every selected notebook with a lower number. Unselected ones count as done.
    """
    meta = json.loads(notebook.read_text()).get("metadata", {}).get("synthlib", {})
    if "needs" not in meta:
        return {nb for nb in selected if nb.name[:2] < notebook.name[:2]}
    names = list(meta["needs"])
    known = {nb.stem for nb in select_notebooks(notebook.parent, None)}
    unknown = [n for n in names if not any(k == n or k.startswith(f"{n}_") for k in known)]
    if unknown:
        raise ValueError(f"{notebook}: metadata synthlib.needs names {', '.join(unknown)}, which no notebook in {notebook.parent} is")
    return {nb for nb in selected if any(nb.stem == n or nb.stem.startswith(f"{n}_") for n in names)}


def _threads(running: int) -> int | None:
    """CPU threads for a kernel started beside ``running - 1`` others; None leaves a user's OMP_NUM_THREADS alone."""
    if "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // running)


@dataclass(frozen=True)
class _Settings:
    """What every notebook of one ``reproduce`` call is given."""

    profile: str  # a profile name or a user profile's absolute path
    overrides: dict[str, Any]
    cell_timeout: int  # seconds; 0 = none


def _execute(nb: Path, out: Path, settings: _Settings, run: str, threads: int | None, show: bool) -> str | None:
    """Run one notebook with papermill in its own process; None on success, else what failed where.

    A process per notebook (papermill's command line) lets each kernel get its own thread count.
    Side by side, the kernel's progress goes to ``<executed copy>.log`` instead of the terminal.
    """
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    # -r: raw strings, so a run named "2024" stays a name; -y: the overrides as YAML (JSON is YAML)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "-r", "profile", settings.profile, "-r", "run", run,
           "-y", json.dumps({"overrides": settings.overrides}), "--cwd", str(nb.parent), "-k", "python3"]  # fmt: skip
    if settings.cell_timeout:
        cmd += ["--execution-timeout", str(settings.cell_timeout)]
    t0 = time.perf_counter()
    if show:
        code = subprocess.run(cmd, env=env).returncode
    else:
        with open(out.with_suffix(".log"), "w") as log:
            code = subprocess.run(cmd + ["--no-progress-bar"], env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        print(f"  {nb.name}: {'done' if code == 0 else 'failed'} in {time.perf_counter() - t0:.0f} s", flush=True)
    if code == 0:
        return None
    return _failure(nb, out, settings.cell_timeout)


def _failure(nb: Path, out: Path, timeout: int = 0) -> str:
    """Which cell of the executed copy failed and how, read from the copy papermill saved."""
    where = f"The executed copy with the full traceback is {out}"
    if not out.is_file():
        return f"{nb.name} failed before its first cell ran (see {out.with_suffix('.log')} or the output above)"
    # papermill's own red error banners are not cells of the notebook: leave them out of the count
    cells = [c for c in json.loads(out.read_text())["cells"] if "papermill-error-cell-tag" not in c["metadata"].get("tags", [])]
    for index, cell in enumerate(cells):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        first_line = next((line for line in source.splitlines() if line.strip()), "")
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            # nbclient interrupts the kernel when a cell runs past the execution timeout
            if timeout and output["ename"] == "KeyboardInterrupt":
                return (f"{nb.name}: cell {index + 1} of the executed copy (starting `{first_line[:80]}`) did not finish "
                        f"within the cell timeout of {timeout} s (profile field cell_timeout); raise it with "
                        f"--set cell_timeout=SECONDS if the cell is slow rather than stuck\n{where}")  # fmt: skip
            return (f"{nb.name} failed in cell {index + 1} of the executed copy (starting `{first_line[:80]}`): "
                    f"{output['ename']}: {output['evalue']}\n{where}")  # fmt: skip
    return f"{nb.name} failed. {where}"


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the checkout synthlib is installed from (editable install)."""
    folder = Path(__file__).resolve().parents[1] / "notebooks"
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder}; pass --notebooks DIR")
    return folder


def default_results_dir(profile: str) -> Path:
    """``results/`` of the checkout for the default profile; ``results/<profile>/`` for the others."""
    root = Path(__file__).resolve().parents[1] / "results"
    return root if profile == "default" else root / profile


def select_notebooks(folder: Path, only: str | None) -> list[Path]:
    """The ``NN_*.ipynb`` notebooks of ``folder`` in order, restricted to the ``only`` numbers.

    A number may name several notebooks (``04_generation`` and ``04_translation_baselines``
    are independent steps of the same stage): ``--only 04`` runs all of them.
    """
    found = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {folder}")
    if only is None:
        return found
    wanted = {w.strip().zfill(2) for w in only.split(",") if w.strip()}
    numbers = sorted({p.name[:2] for p in found})
    unknown = sorted(wanted - set(numbers))
    if unknown:
        raise ValueError(f"--only {only}: no notebook numbered {', '.join(unknown)}; available: {', '.join(numbers)}")
    return [p for p in found if p.name[:2] in wanted]


def _results(run: str, runs_dir: Path | None, to: Path | None) -> int:
    from synthlib import report

    run_dir = runs.open(run, runs_dir)
    copied = report.publish(run_dir, to or Path(__file__).resolve().parents[1] / "results")
    print(f"copied {len(copied)} file(s) from {run_dir.path / report.TABLES}")
    return 0


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


def _record(run_dir: runs.RunDir, source: str, config: str | Path | None, overrides: dict[str, Any], cfg: profiles.Profile) -> None:
    """Write ``run.json``: how this ``reproduce`` was asked for and the profile it resolved to (the last call's)."""
    record = {
        "profile": source,
        "user_profile": str(Path(config).expanduser().resolve()) if config is not None else None,
        "user_profile_text": Path(config).expanduser().read_text() if config is not None else None,
        "overrides": overrides,
        "resolved": profiles.as_dict(cfg),
        "command": sys.argv,
        "git": runs.git_revision(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp = run_dir.path / f".{RUN_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(run_dir.path / RUN_RECORD)


if __name__ == "__main__":
    raise SystemExit(main())

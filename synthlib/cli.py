"""The ``synthlib`` command: ``reproduce`` runs the notebooks in order, ``profiles`` lists profiles.

``synthlib reproduce --profile smoke --run ci --only 00,01`` executes
``notebooks/00_*.ipynb``, ``01_*.ipynb`` ... with papermill, passing ``profile``
and ``run`` as parameters; executed copies are kept in ``runs/<run>/notebooks``.
Finished stages are cached, so a second call resumes where the first stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from synthlib import profiles, runs


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="synthlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="execute the notebooks in order with papermill")
    rep.add_argument("--profile", default=None, help=f"one of {', '.join(profiles.names())} (default: $SYNTHLIB_PROFILE or default)")
    rep.add_argument("--run", default=None, help="run directory name under runs/ (default: the profile's name)")
    rep.add_argument("--only", default=None, help="comma-separated notebook numbers, e.g. 00,01,06")
    rep.add_argument("--notebooks", type=Path, default=None, help="folder of the notebooks (default: the checkout's notebooks/)")
    rep.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    rep.add_argument(
        "--results", type=Path, default=None,
        help="where the run's tables and figures are copied when every notebook succeeded "
        "(default: the checkout's results/ for the default profile, results/<profile>/ for others)",
    )  # fmt: skip
    res = sub.add_parser("results", help="copy a run's tables and figures into results/")
    res.add_argument("--run", default="default", help="run directory name under runs/")
    res.add_argument("--runs-dir", type=Path, default=None, help="where run directories live (default: runs/)")
    res.add_argument("--to", type=Path, default=None, help="destination (default: the checkout's results/)")
    prof = sub.add_parser("profiles", help="print the profiles and their fields")
    prof.add_argument("name", nargs="?", default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "profiles":
            return _profiles(args.name)
        if args.command == "results":
            return _results(args.run, args.runs_dir, args.to)
        return reproduce(args.profile, args.run, args.only, args.notebooks, args.runs_dir, args.results)
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
) -> int:
    """Execute the selected notebooks in order, then publish the run's tables; 0 on success, 1 when a notebook fails."""
    import papermill as pm

    cfg = profiles.load(profile)  # fail on an unknown profile before starting a kernel
    run_dir = runs.open(run or cfg.name, runs_dir)
    selected = select_notebooks(notebooks or default_notebooks_dir(), only)
    out_dir = run_dir.path / "notebooks"
    out_dir.mkdir(exist_ok=True)
    # The kernels inherit the environment: point them at the same profile and runs folder.
    os.environ[profiles.ENV_VAR] = cfg.name
    os.environ[runs.RUNS_ENV_VAR] = str(run_dir.path.parent.resolve())
    for i, nb in enumerate(selected, 1):
        print(f"[{i}/{len(selected)}] {nb.name} (profile {cfg.name}, run {run_dir.name})", flush=True)
        out = out_dir / nb.name
        try:
            pm.execute_notebook(
                str(nb),
                str(out),
                parameters={"profile": cfg.name, "run": run_dir.name},
                cwd=str(nb.parent),
                progress_bar=True,
                kernel_name="python3",
            )
        except pm.PapermillExecutionError as e:
            first_line = next((line for line in e.source.splitlines() if line.strip()), "")
            print(
                f"\nsynthlib: {nb.name} failed in cell {e.cell_index + 1} of the executed copy "
                f"(starting `{first_line[:80]}`): {e.ename}: {e.evalue}\n"
                f"The executed copy with the full traceback is {out}",
                file=sys.stderr,
            )
            return 1
    print(f"done: {len(selected)} notebook(s); executed copies in {out_dir}")
    if (run_dir.path / "tables").is_dir():
        from synthlib import report

        results = results or default_results_dir(cfg.name)
        copied = report.publish(run_dir, results)
        print(f"copied {len(copied)} table and figure file(s) to {results}")
    return 0


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


def _profiles(name: str | None) -> int:
    table = profiles.describe()
    if name is not None:
        profiles.load(name)  # validates the name with a helpful error
        table = table[[name]]
    print(table.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

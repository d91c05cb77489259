"""``synthlib reproduce``: run the notebooks in order (or side by side where their needs allow) with papermill.

Each notebook runs in its own papermill process and kernel; finished stages are
cached, so a run that stopped for any reason (a failing cell, Ctrl-C, a killed
process) resumes where it stopped when the same command is given again. One
``reproduce`` at a time holds a run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthlib import notebook_records, profiles, runs
from synthlib.steps import resolve

#: How the last ``reproduce`` of a run was asked for, under the run directory.
RUN_RECORD = "run.json"


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
    rerun: bool = False,
) -> int:
    """Execute the selected notebooks (in order, or ``jobs`` at once where their needs allow),
    then publish the run's tables; 0 on success, 1 when a notebook fails.

    ``config`` is a user profile file (instead of ``profile``), ``overrides`` profile
    fields and ``roots`` dataset folders on top of it. Every one of them, and every
    dataset root's layout, is checked before the first kernel starts. A notebook that
    ran to its end before, with nothing it depends on or left changed since
    (``synthlib.notebook_records``), is skipped unless ``rerun``.
    """
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    cfg, source, overrides = resolve(profile, config, overrides, roots)  # unknown fields, wrong types: before any kernel
    from synthlib import data

    data.check_roots(cfg)  # a missing root or one whose layout its adapter does not recognise
    run_dir = runs.open(run or (Path(config).stem if config is not None else cfg.name), runs_dir)
    selected = select_notebooks(notebooks or default_notebooks_dir(), only)
    needs = {nb: needed_by(nb, selected) for nb in selected}
    with run_dir.lock("synthlib reproduce"):  # a second reproduce of this run stops here with a clear message
        out_dir = run_dir.path / "notebooks"
        out_dir.mkdir(exist_ok=True)
        _record(run_dir, source or cfg.name, config, overrides, cfg)
        # The kernels inherit the environment: point them at the same profile and runs folder.
        os.environ[profiles.ENV_VAR] = source or cfg.name
        os.environ[runs.RUNS_ENV_VAR] = str(run_dir.path.parent.resolve())
        context = notebook_records.context(cfg, source or cfg.name, overrides, config)
        settings = _Settings(source or cfg.name, overrides, cfg.cell_timeout, context, rerun)
        try:
            failed = _schedule(selected, needs, jobs, out_dir, settings, run_dir, cfg.name)
        except KeyboardInterrupt:
            print(f"\nsynthlib: interrupted; the stages finished so far are kept in {run_dir.path}. "
                  "Give the same command again to resume from them.", file=sys.stderr)  # fmt: skip
            return 130
        if failed:
            return 1
        print(f"done: {len(selected)} notebook(s); executed copies in {out_dir}")
        if (run_dir.path / "tables").is_dir():
            from synthlib import report

            results = results or default_results_dir(run_dir.name if config is not None else cfg.name)
            copied = report.publish(run_dir, results)
            print(f"copied {len(copied)} table and figure file(s) to {results}")
    return 0


def _schedule(selected: list[Path], needs: dict[Path, set[Path]], jobs: int, out_dir: Path, settings: _Settings,
              run_dir: runs.RunDir, profile: str) -> bool:  # fmt: skip
    """Run the notebooks, ``jobs`` at once where their needs allow; True when one failed (the rest are not started)."""
    pending, running, done, failed = list(selected), {}, set(), None
    with ThreadPoolExecutor(max_workers=jobs) as pool, _stopping_children():
        while pending or running:
            ready = [nb for nb in pending if needs[nb] <= done] if failed is None else []
            starting = ready[: jobs - len(running)]
            for nb in starting:
                pending.remove(nb)
                threads = _threads(len(running) + len(starting)) if jobs > 1 else None
                print(f"[{len(selected) - len(pending)}/{len(selected)}] {nb.name} (profile {profile}, run {run_dir.name}"
                      + (f", {threads} thread(s))" if threads else ")"), flush=True)  # fmt: skip
                running[pool.submit(_execute, nb, out_dir / nb.name, settings, run_dir, threads, jobs == 1)] = nb
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
    return failed is not None


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
    context: dict[str, Any]  # what decides every notebook besides itself (notebook_records.context)
    rerun: bool  # execute notebooks whose records say they are up to date too


def _execute(nb: Path, out: Path, settings: _Settings, run_dir: runs.RunDir, threads: int | None, show: bool) -> str | None:
    """Run one notebook with papermill in its own process (or skip it when up to date); None on success, else what failed where.

    A process per notebook (papermill's command line) lets each kernel get its own thread count.
    Side by side, the kernel's progress goes to ``<executed copy>.log`` instead of the terminal.
    """
    why = "--rerun" if settings.rerun else notebook_records.changed(run_dir, nb, settings.context)
    if why is None:
        print(f"  {nb.name}: up to date, skipped (executed copy: {out})", flush=True)
        return None
    if why != notebook_records.NEVER:
        print(f"  {nb.name}: executed again ({why})", flush=True)
    run, started = run_dir.name, time.time_ns()
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    # -r: raw strings, so a run named "2024" stays a name; -y: the overrides as YAML (JSON is YAML)
    cmd = [sys.executable, "-m", "papermill", str(nb), str(out), "-r", "profile", settings.profile, "-r", "run", run,
           "-y", json.dumps({"overrides": settings.overrides}), "--cwd", str(nb.parent), "-k", "python3",
           "--start-timeout", str(KERNEL_START_TIMEOUT)]  # fmt: skip
    if settings.cell_timeout:
        cmd += ["--execution-timeout", str(settings.cell_timeout)]
    t0 = time.perf_counter()
    if show:
        code = _run_child(cmd, env)
    else:
        with open(out.with_suffix(".log"), "w") as log:
            code = _run_child(cmd + ["--no-progress-bar"], env, stdout=log, stderr=subprocess.STDOUT)
        print(f"  {nb.name}: {'done' if code == 0 else 'failed'} in {time.perf_counter() - t0:.0f} s", flush=True)
    if code != 0:
        return _failure(nb, out, settings.cell_timeout)
    notebook_records.write(run_dir, nb, settings.context, started)
    return None


#: Seconds a kernel may take to start. Papermill's 60 s default failed a notebook of a run side by side
#: (``--jobs 2``) whose kernel started while another notebook and a test run loaded both cores.
KERNEL_START_TIMEOUT = 600

#: The papermill processes running now, so that Ctrl-C can stop them.
_CHILDREN: set[subprocess.Popen] = set()


#: Starts a command that dies with its parent (Linux: PR_SET_PDEATHSIG survives exec), so a killed
#: ``reproduce`` leaves no papermill behind; its kernel exits once papermill is gone (ipykernel polls for it).
#: A start-up line rather than ``preexec_fn``, which is unsafe in a process with threads.
_WITH_PARENT = (
    "import ctypes, os, signal, sys; parent = int(sys.argv[1]); "
    "sys.platform.startswith('linux') and ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "os.getppid() == parent or sys.exit(1); os.execv(sys.argv[2], sys.argv[2:])"
)


def _run_child(cmd: list[str], env: dict[str, str], **streams: Any) -> int:
    """Run one papermill process to its end, dying with this process; its exit code."""
    child = subprocess.Popen([sys.executable, "-c", _WITH_PARENT, str(os.getpid()), *cmd], env=env, **streams)
    _CHILDREN.add(child)
    try:
        return child.wait()
    finally:
        _CHILDREN.discard(child)


@contextmanager
def _stopping_children() -> Iterator[None]:
    """Stop the running papermill processes when Ctrl-C reaches this one, before the worker threads are joined."""
    try:
        yield
    except KeyboardInterrupt:
        _stop_children()
        raise


def _stop_children(grace: float = 10.0) -> None:
    """Interrupt the running papermill processes (they stop their kernels), then terminate any left after ``grace`` s."""
    children = list(_CHILDREN)
    for child in children:
        child.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


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

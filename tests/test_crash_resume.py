"""A run survives Ctrl-C and kill -9 anywhere, resumes, and ends byte-identical to an uninterrupted one.

The reference is nbval's run of the notebooks, which conftest.py starts in an empty
folder of its own (a run made here when this file runs alone); a second uninterrupted
run must match it too: ``synthlib reproduce``'s, which test_cli makes from an empty folder.
"""

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import NBVAL_RUNS, SESSION_RUNS
from synthlib import cli, runs

RUN = "smoke"  # the run name is in every table's provenance line: compared runs share it


def _outputs(run_path: Path) -> dict[str, str]:
    """A digest of every file of every completed stage (manifests aside: they hold times) and of every table and figure.

    What legitimately differs between two runs of the same code is left out: timings
    (keys and columns named for seconds), the run directory's own path, the provenance
    line's git revisions (a run resumed after a commit is made at two), and PNG metadata
    (figures are compared by their pixels). Weights, datasets and every measured number
    stay byte for byte.
    """
    stages = [m.parent for m in run_path.rglob(runs.MANIFEST) if not m.relative_to(run_path).parts[0].startswith(".")]
    files = [f for stage in stages for f in stage.rglob("*") if f.is_file() and f.name != runs.MANIFEST]
    files += [f for f in (run_path / "tables").glob("*") if f.is_file()]
    return {f.relative_to(run_path).as_posix(): hashlib.sha256(_normalised(f, run_path)).hexdigest() for f in files}


def _normalised(file: Path, run_path: Path) -> bytes:
    if file.suffix == ".png":
        return np.asarray(Image.open(file)).tobytes()
    if file.suffix not in (".json", ".csv", ".md", ".txt"):
        return file.read_bytes()
    text = file.read_text().replace(str(run_path.resolve()), "<run>").replace(str(run_path), "<run>")
    if file.suffix == ".json":
        return json.dumps(_untimed(json.loads(text)), sort_keys=True).encode()
    if file.suffix == ".csv":
        table = pd.read_csv(io.StringIO(text))
        return table.drop(columns=[c for c in table.columns if "second" in c or "/step" in c]).to_csv(index=False).encode()
    lines = [line for line in text.splitlines() if not line.startswith("run `")]  # the provenance line
    if file.suffix == ".md" and any("second" in line or "/step" in line for line in lines if line.startswith("|")):
        return b""  # a table of timings: its numbers are in the .csv beside it, compared without them
    return "\n".join(lines).encode()


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "second" not in k and k not in ("started", "finished")}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _differences(run: dict[str, str], reference: dict[str, str]) -> list[str]:
    """What ``run`` lacks or holds otherwise than ``reference``; the reference may hold more stages (other tests add
    some to the session's smoke run), but every file of ``run`` must be there and the same."""
    out = [f"only in the run: {k}" for k in sorted(set(run) - set(reference))]
    return out + [f"differs: {k}" for k in sorted(set(run) & set(reference)) if run[k] != reference[k]]


def _reference(tmp_path: Path) -> Path:
    """An uninterrupted smoke run from an empty folder: nbval's (conftest.py starts it in one), else one made here."""
    if (NBVAL_RUNS / RUN / "tables" / "paper_miou.md").is_file():
        return NBVAL_RUNS / RUN
    return _fresh_run(tmp_path / "reference")


def _second_run(tmp_path: Path) -> Path:
    """Another uninterrupted smoke run from an empty folder: the one test_cli's ``synthlib reproduce`` made in the
    session's runs folder (nothing else writes there), else one made here."""
    if (SESSION_RUNS / RUN / "tables" / "paper_miou.md").is_file() and (NBVAL_RUNS / RUN).is_dir():
        return SESSION_RUNS / RUN
    return _fresh_run(tmp_path / "second")


def _fresh_run(runs_dir: Path) -> Path:
    proc = _start(runs_dir, runs_dir.parent / f"{runs_dir.name}.log")
    try:
        assert proc.wait(timeout=1800) == 0, (runs_dir.parent / f"{runs_dir.name}.log").read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    return runs_dir / RUN


def _start(runs_dir: Path, log: Path) -> subprocess.Popen:
    runs_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "synthlib", "reproduce", "--profile", "smoke", "--run", RUN,
           "--runs-dir", str(runs_dir), "--results", str(runs_dir / "results")]  # fmt: skip
    env = dict(os.environ, SYNTHLIB_PROFILE="smoke", **{runs.RUNS_ENV_VAR: str(runs_dir)})
    # its own process group: kill -9 takes reproduce, papermill and the kernel at once, as a crash would
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 1200) -> bool:
    """Wait until ``text`` is in the log; False when the run ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} did not appear in {log} within {timeout} s")


@pytest.mark.after_notebooks
def test_kill_9_at_six_random_points_then_resume_gives_the_uninterrupted_run(tmp_path):
    reference = _outputs(_reference(tmp_path))
    notebooks = [nb.name for nb in cli.select_notebooks(cli.default_notebooks_dir(), None)]
    rng = random.Random(16)
    # six points (each restart re-executes the notebook it stopped in: CI time): a notebook (in order, so the
    # run moves on) and a moment after it starts
    points = sorted((rng.randrange(len(notebooks)), round(rng.uniform(0.5, 8.0), 1)) for _ in range(6))
    runs_dir, log = tmp_path / "killed", tmp_path / "log.txt"
    landed = []
    for index, delay in points:
        proc = _start(runs_dir, log)
        try:
            if _wait_for(proc, log, f"] {notebooks[index]} ("):
                time.sleep(delay)
        finally:  # a failed wait must not leave the run going
            alive = proc.poll() is None
            os.killpg(proc.pid, signal.SIGKILL) if alive else None
            proc.wait()
        started = [line for line in log.read_text().splitlines() if line.startswith("[")]
        landed.append(f"{notebooks[index]} +{delay} s: " + (f"killed during {started[-1].split()[1]}" if alive else "run had ended"))
    print("\n".join(landed))
    proc = _start(runs_dir, log)
    try:
        assert proc.wait(timeout=1800) == 0, log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert sum("killed during" in line for line in landed) >= 5, landed
    run_path = runs_dir / RUN
    for leftovers in (".tmp", ".trash", ".work"):
        assert not [f for f in (run_path / leftovers).rglob("*") if f.is_file()], leftovers
    assert _differences(_outputs(run_path), reference) == []


@pytest.mark.after_notebooks
def test_two_uninterrupted_smoke_runs_are_byte_identical(tmp_path):
    first = _outputs(_reference(tmp_path))
    second = _outputs(_second_run(tmp_path))
    assert len(second) > 100 and any(k.startswith("tables/paper_miou") for k in second)
    assert _differences(second, first) == [] and _differences(first, second) == []


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = None\nrun = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)


STAGE = "from synthlib import runs\nr = runs.open(run, {root!r})\nr.stage({name!r}, {{}}, lambda ctx: {body})"


def test_ctrl_c_stops_reproduce_and_the_same_command_resumes(tmp_path):
    nbs, marker = tmp_path / "nbs", tmp_path / "building"
    nbs.mkdir()
    _notebook(nbs / "00_a.ipynb", STAGE.format(root=str(tmp_path), name="a", body="(ctx.out / 'a.txt').write_text('a')"))
    slow = f"(open({str(marker)!r}, 'w').write(str(__import__('os').getpid())), __import__('time').sleep(120))"
    _notebook(nbs / "01_slow.ipynb", STAGE.format(root=str(tmp_path), name="b", body=slow))
    cmd = [sys.executable, "-m", "synthlib", "reproduce", "--profile", "smoke", "--run", "c",
           "--notebooks", str(nbs), "--runs-dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    kernel = int(marker.read_text())
    proc.send_signal(signal.SIGINT)  # to reproduce alone, not its children: it must stop them itself
    # it stops within its 10 s grace per child; the margin is for a loaded CI machine (60 s ran out once in a full suite)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 130
    assert "synthlib: interrupted; the stages finished so far are kept in" in err and "Give the same command again" in err
    for _ in range(100):  # the kernel that was building stage b goes too
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the kernel (pid {kernel}) still runs after reproduce was interrupted")
    run = runs.open("c", tmp_path)  # opening cleans what the killed build left
    assert run.stages() == ["a"] and not any((run.path / ".tmp").iterdir())
    _notebook(nbs / "01_slow.ipynb", STAGE.format(root=str(tmp_path), name="b", body="(ctx.out / 'b.txt').write_text('b')"))
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert "00_a.ipynb: up to date, skipped" in again.stdout  # it ran to its end before the interruption
    assert run.stages() == ["a", "b"]

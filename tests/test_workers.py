import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthlib.segmenters.workers import run_all

SLEEP_AFTER_TOUCH = "import pathlib, time; pathlib.Path({path!r}).touch(); time.sleep(120)"


def _alive(pid: int) -> bool:
    """False once the process is gone or a zombie nobody reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_for(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


def test_run_all_returns_each_jobs_result_in_the_order_of_the_jobs():
    assert run_all(pow, [(2, 10), (3, 2), (5, 0)], workers=2, threads=1) == [1024, 9, 1]


def test_a_failed_job_stops_the_running_ones_at_once_instead_of_waiting_for_them(tmp_path):
    started = tmp_path / "started"
    t0 = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        # the first job would run two minutes; the second fails once the first has started
        run_all(exec, [(SLEEP_AFTER_TOUCH.format(path=str(started)),),
                       (f"import pathlib, time\nwhile not pathlib.Path({str(started)!r}).exists(): time.sleep(0.1)\n1 / 0",)],
                workers=2, threads=1)  # fmt: skip
    assert started.exists()
    assert time.monotonic() - t0 < 60
    # gone long before the first job's two minutes; a loaded machine may take a few seconds to reap them
    assert _wait_for(lambda: multiprocessing.active_children() == [], 15), multiprocessing.active_children()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers die with their parent through Linux's prctl")
def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path):
    started = tmp_path / "started"
    script = (
        "import sys\nfrom synthlib.segmenters.workers import run_all\n"
        f"run_all(exec, [({SLEEP_AFTER_TOUCH.format(path=str(started))!r},)], workers=1, threads=1)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert _wait_for(started.exists, 120), "the worker never started its job"
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent_of(int(p.name)) == parent.pid]
        assert children, "no worker process found under the parent"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait_for(lambda: not any(_alive(pid) for pid in children), 20), "a worker outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError, ValueError):
        return -1

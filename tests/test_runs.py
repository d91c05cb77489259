import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from synthlib import runs


def _writer(text):
    def build(ctx):
        (ctx.out / "out.txt").write_text(text)
        ctx.info["chars"] = len(text)

    return build


def test_stage_writes_manifest_and_skips_when_unchanged(tmp_path, capsys):
    run = runs.open("r", tmp_path)
    calls = []

    def build(ctx):
        calls.append(1)
        (ctx.out / "x.txt").write_text("hello")

    path = run.stage("data/a", {"n": 3}, build)
    assert (path / "x.txt").read_text() == "hello"
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["stage"] == "data/a" and manifest["params"] == {"n": 3}
    assert manifest["params_hash"] == runs.hash_params({"n": 3})
    assert set(manifest["packages"]) >= {"python", "torch", "numpy"} and manifest["seconds"] >= 0
    assert {"revision", "dirty"} <= set(manifest["git"])
    run.stage("data/a", {"n": 3}, build)
    assert len(calls) == 1
    assert "data/a: up to date, skipped" in capsys.readouterr().out
    run.stage("data/a", {"n": 4}, build)
    assert len(calls) == 2 and run.manifest("data/a")["params"] == {"n": 4}
    assert run.stages() == ["data/a"]
    assert not any((tmp_path / "r" / ".tmp").iterdir())
    # deeper stages are found by a pattern only
    run.stage("eval/models/supervised/data/a", {}, build)
    assert run.stages() == ["data/a"]
    assert run.stages("eval/models/*/*/*") == ["eval/models/supervised/data/a"]


def test_dataclass_params_and_info_go_in_the_manifest(tmp_path):
    @dataclass
    class P:
        steps: int = 5
        sizes: tuple = (1, 2)

    run = runs.open("r", tmp_path)
    run.stage("s", P(), _writer("abc"))
    manifest = run.manifest("s")
    assert manifest["params"] == {"steps": 5, "sizes": [1, 2]}
    assert manifest["info"] == {"chars": 3}


def test_changed_input_reruns_every_dependant(tmp_path):
    run = runs.open("r", tmp_path)
    built = []

    def build(name):
        def f(ctx):
            built.append(name)
            (ctx.out / "f").write_text(name)

        return f

    run.stage("a", {"v": 1}, build("a"))
    run.stage("b", {}, build("b"), inputs=["a"])
    run.stage("c", {}, build("c"), inputs=["b"])
    assert built == ["a", "b", "c"]
    run.stage("a", {"v": 1}, build("a"))
    run.stage("b", {}, build("b"), inputs=["a"])
    run.stage("c", {}, build("c"), inputs=["b"])
    assert built == ["a", "b", "c"]  # nothing changed
    run.stage("a", {"v": 2}, build("a"))
    assert not run.is_current("b", {}, ["a"])
    run.stage("b", {}, build("b"), inputs=["a"])
    assert not run.is_current("c", {}, ["b"])
    run.stage("c", {}, build("c"), inputs=["b"])
    assert built == ["a", "b", "c", "a", "b", "c"]


def test_missing_input_stage_is_a_clear_error(tmp_path):
    run = runs.open("r", tmp_path)
    with pytest.raises(runs.StageError, match="stage 'b' needs stage 'a', which run 'r' has not completed"):
        run.stage("b", {}, _writer("x"), inputs=["a"])


def test_a_failing_build_leaves_nothing_and_keeps_the_old_stage(tmp_path):
    run = runs.open("r", tmp_path)
    run.stage("s", {"v": 1}, _writer("old"))

    def broken(ctx):
        (ctx.out / "out.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run.stage("s", {"v": 2}, broken)
    assert (run.stage_path("s") / "out.txt").read_text() == "old"
    assert run.manifest("s")["params"] == {"v": 1}
    assert not any((tmp_path / "r" / ".tmp").iterdir())


def test_bad_names_and_params_are_rejected(tmp_path):
    run = runs.open("r", tmp_path)
    with pytest.raises(runs.StageError, match="stage name '../x'"):
        run.stage("../x", {}, _writer(""))
    with pytest.raises(runs.StageError, match="not JSON-serialisable"):
        run.stage("s", {"f": object()}, _writer(""))
    with pytest.raises(runs.StageError, match="run name"):
        runs.open("a/b", tmp_path)


def test_checkpoints_survive_a_failure_and_are_removed_on_success(tmp_path):
    run = runs.open("r", tmp_path)
    seen = []

    def flaky(ctx):
        seen.append(sorted(p.name for p in ctx.checkpoints.iterdir()))
        (ctx.checkpoints / "step-10").write_text("state")
        if len(seen) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.stage("train", {"steps": 20}, flaky)
    run.stage("train", {"steps": 20}, flaky)
    assert seen == [[], ["step-10"]]  # the second attempt resumed from the checkpoint
    assert not (tmp_path / "r" / ".work" / "train").exists()


_KILLED_STAGE = """
import sys, time
from pathlib import Path
from synthlib import runs
run = runs.open("r", sys.argv[1])
def build(ctx):
    (ctx.out / "part-1").write_text("written")
    Path(sys.argv[2]).write_text("ready")
    time.sleep(60)
run.stage("data/killed", {"v": 1}, build)
"""


def test_sigkill_mid_stage_leaves_nothing_visible_and_reruns_cleanly(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_STAGE, str(tmp_path), str(ready)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the stage process died before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stale = list((tmp_path / "r" / ".tmp").iterdir())
    assert len(stale) == 1 and (stale[0] / "part-1").exists()  # only in the hidden temp folder
    run = runs.open("r", tmp_path)  # opening cleans temp folders of dead processes
    assert not (tmp_path / "r" / "data" / "killed").exists()
    assert run.manifest("data/killed") is None
    assert not any((tmp_path / "r" / ".tmp").iterdir())
    path = run.stage("data/killed", {"v": 1}, _writer("complete"))
    assert (path / "out.txt").read_text() == "complete" and not (path / "part-1").exists()
    assert run.stages() == ["data/killed"]


def test_default_root_follows_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path / "elsewhere"))
    assert runs.open("x").path == tmp_path / "elsewhere" / "x"


def accelerate_launch(script, *args, processes: int = 2) -> subprocess.CompletedProcess:
    """Run ``script`` in ``processes`` CPU processes with ``accelerate launch``; fails the test when it fails.

    ``accelerate launch --cpu --num_processes 2`` starts a single process (accelerate starts several CPU
    processes only through mpirun), so torchrun starts them (``--multi_gpu``) and ``ACCELERATE_USE_CPU``
    makes them one gloo process group on the CPU.
    """
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(script), *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"accelerate launch failed:\n{result.stdout}\n{result.stderr}"
    return result


_SHARED_STAGE = """
import sys
from pathlib import Path
from synthlib import runs

run, calls = runs.open("r", sys.argv[1]), Path(sys.argv[2])

def build(ctx):
    with open(calls / str(ctx.process_index), "a") as f:
        f.write(f"{ctx.out} {ctx.num_processes} {ctx.is_main}\\n")
    (ctx.out / f"part-{ctx.process_index}").write_text("written by every process")
    if ctx.is_main:
        (ctx.out / "shared.txt").write_text("written once")
        ctx.info["writer"] = ctx.process_index

for _ in range(2):  # the second time the stage is up to date on every process
    run.stage("data/shared", {"v": 1}, build)
    assert run.manifest("data/shared") is not None  # no process returns before the stage exists
"""


def test_a_stage_under_accelerate_launch_is_built_by_every_process_into_one_folder(tmp_path):
    script, calls = tmp_path / "stage.py", tmp_path / "calls"
    script.write_text(_SHARED_STAGE)
    calls.mkdir()
    result = accelerate_launch(script, tmp_path, calls)
    seen = {f.name: f.read_text().splitlines() for f in calls.iterdir()}
    assert sorted(seen) == ["0", "1"] and all(len(lines) == 1 for lines in seen.values())  # once per process
    (out0, n0, main0), (out1, n1, main1) = seen["0"][0].split(), seen["1"][0].split()
    assert out0 == out1 and n0 == n1 == "2" and (main0, main1) == ("True", "False")  # one temporary folder
    path = tmp_path / "r" / "data" / "shared"
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "part-0", "part-1", "shared.txt"]
    assert json.loads((path / "manifest.json").read_text())["info"] == {"writer": 0}
    assert not any((tmp_path / "r" / ".tmp").iterdir()) and not (tmp_path / "r" / ".work" / "data" / "shared").exists()
    assert result.stdout.count("data/shared: done") == 1 and result.stdout.count("data/shared: up to date") == 1


def test_link_from_shares_another_run_s_stages_without_writing_into_it(tmp_path):
    source, other = runs.open("source", tmp_path), runs.open("other", tmp_path)
    source.stage("data/a", {"n": 1}, lambda ctx: (ctx.out / "x.txt").write_text("a"))
    other.link_from(source, ["data/a", "data/a"])
    assert other.stage_path("data/a").is_symlink() and other.manifest("data/a") == source.manifest("data/a")
    # a changed stage is rebuilt here, replacing the link; the source keeps its own
    other.stage("data/a", {"n": 2}, lambda ctx: (ctx.out / "x.txt").write_text("b"))
    assert not other.stage_path("data/a").is_symlink()
    assert (source.stage_path("data/a") / "x.txt").read_text() == "a"
    with pytest.raises(runs.StageError, match="run 'source' lacks stage 'data/b': run 00 first"):
        other.link_from(source, ["data/b"], hint=": run 00 first")

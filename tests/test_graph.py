"""The declared stage graph: order, stage functions that read instead of build, and a run's state read without building."""

import subprocess
import sys

import pytest

from conftest import NBVAL_RUNS
from synthlib import diffusion, generation, graph, profiles, reproduce, runs, stage_keys


def test_every_step_comes_after_what_it_needs_and_unknown_steps_are_named():
    assert graph.order(["stage2"]) == ["data", "pseudo_labels", "pretrain", "stage1", "stage2"]
    assert graph.order(["segmentation"])[-1] == "segmentation"
    declared = list(graph.STEPS)
    assert all(declared.index(need) < declared.index(name) for name in declared for need in graph.STEPS[name].needs)
    with pytest.raises(ValueError, match="no step 'stage3'; valid: data, pseudo_labels"):
        graph.order(["stage3"])


def test_the_graph_agrees_with_the_order_reproduce_runs_the_notebooks_in():
    """A step's needs are made by its own notebook or by one that notebook waits for under `reproduce --jobs`."""
    notebooks = reproduce.select_notebooks(reproduce.default_notebooks_dir(), None)
    by_stem = {nb.stem: nb for nb in notebooks}

    def waits_for(stem: str) -> set[str]:
        out, todo = set(), [by_stem[stem]]
        while todo:
            for nb in reproduce.needed_by(todo.pop(), notebooks):
                if nb.stem not in out:
                    out.add(nb.stem)
                    todo.append(nb)
        return out

    for step in graph.STEPS.values():
        assert step.notebook in by_stem
        for need in graph.order([step.name])[:-1]:
            made_in = graph.STEPS[need].notebook
            assert made_in == step.notebook or made_in in waits_for(step.notebook), (step.name, need)


def test_stage_functions_read_what_earlier_steps_made_and_never_build_it(tmp_path):
    cfg = profiles.load("smoke")
    run_dir = runs.open("fresh", tmp_path)
    with pytest.raises(runs.StageError, match=r"no completed stage 'diffusion/stage1': step 'stage1' .* makes it"):
        diffusion.train_stage2(run_dir, cfg)
    with pytest.raises(runs.StageError, match=r"no completed stage 'diffusion/pretrain': step 'pretrain'"):
        diffusion.train_stage1(run_dir, cfg)
    with pytest.raises(runs.StageError, match=r"no completed stage 'diffusion/stage2': step 'stage2'"):
        generation.model_path(run_dir, cfg)
    assert run_dir.stages() == []  # nothing was trained on the way


def _toy_steps(built: list[str]) -> dict[str, graph.Step]:
    """Two toy steps: ``a`` makes stage a (parameter n), ``b`` makes stage b from it."""

    def make(name, params, inputs=()):
        def build(run_dir, cfg):
            def write(ctx):
                built.append(name)
                (ctx.out / "x.txt").write_text(name)

            run_dir.stage(name, params(cfg), write, inputs=inputs)

        return build

    a = graph.Step("a", "00_data", (), make("a", lambda cfg: {"n": cfg.seed}), "a")
    b = graph.Step("b", "01_pseudo_labels", ("a",), make("b", lambda cfg: {"m": 1}, inputs=["a"]), "b")
    return {"a": a, "b": b}


def test_status_reads_each_step_without_building_and_says_why(tmp_path, monkeypatch):
    built: list[str] = []
    monkeypatch.setattr(graph, "STEPS", _toy_steps(built))
    run_dir, cfg = runs.open("toy", tmp_path), profiles.load("smoke", seed=0)

    table = graph.status(run_dir, cfg)
    assert table["state"].to_dict() == {"a": "missing", "b": "waiting"}
    assert table.loc["a", "why"] == "a: missing" and table.loc["b", "why"] == "for a"
    assert built == [] and run_dir.stages() == []

    graph.build(run_dir, cfg, "b")
    assert built == ["a", "b"]
    table = graph.status(run_dir, cfg)
    assert table["state"].to_dict() == {"a": "current", "b": "current"} and table["stages current"].tolist() == [1, 1]

    stale = graph.status(run_dir, profiles.load("smoke", seed=3))
    assert stale["state"].to_dict() == {"a": "stale", "b": "waiting"}
    assert stale.loc["a", "why"] == "a: parameters changed (n)"
    assert built == ["a", "b"]  # still nothing built

    graph.build_needs(run_dir, profiles.load("smoke", seed=3), "b")  # a is made again, b is not
    assert built == ["a", "b", "a"]
    assert graph.status(run_dir, profiles.load("smoke", seed=3))["why"]["b"] == "b: input stage a made again since"


def test_stale_reasons_name_what_changed():
    versions = {p: "2.0" for p in stage_keys.provenance.KEY_PACKAGES}
    manifest = {"params_hash": stage_keys.hash_params({"s": {"steps": 5, "lr": 1}}), "params": {"s": {"steps": 5, "lr": 1}},
                "inputs": {"x": "f1"}, "code": {"fingerprint": stage_keys.provenance.code_fingerprint([]), "modules": []},
                "packages": dict(versions)}  # fmt: skip
    same = {"s": {"steps": 5, "lr": 1}}
    assert stage_keys.stale_reason(manifest, same, {"x": "f1"}, versions) is None
    assert stage_keys.stale_reason(None, same, {}, versions) == "missing"
    assert stage_keys.stale_reason(manifest, {"s": {"steps": 6, "lr": 1}}, {"x": "f1"}, versions) == "parameters changed (s.steps)"
    assert stage_keys.stale_reason(manifest, same, {"x": "f2"}, versions) == "input stage x made again since"
    assert stage_keys.stale_reason(manifest, same, {"x": None}, versions) == "input stage x missing"
    assert stage_keys.stale_reason(manifest, same, {"x": "f1"}, {**versions, "torch": "9.9"}) == "packages changed (torch 2.0 -> 9.9)"
    manifest["code"] = {"fingerprint": "0" * 16, "modules": ["synthlib/labels.py"]}  # a manifest without per-file digests
    assert stage_keys.stale_reason(manifest, same, {"x": "f1"}, versions) == "its code changed (one of 1 modules: synthlib/labels.py)"
    manifest["code"] = {**stage_keys.code_record(["synthlib/labels.py", "synthlib/metrics.py"]), "fingerprint": "0" * 16}
    manifest["code"]["files"]["synthlib/metrics.py"] = "0" * 16  # as if metrics.py had other code when the stage was made
    assert stage_keys.stale_reason(manifest, same, {"x": "f1"}, versions) == "its code changed (synthlib/metrics.py)"


@pytest.mark.after_notebooks
def test_synthlib_stages_reads_the_notebooks_run_and_changes_nothing():
    """The smoke run the notebooks made is current step by step; another seg_steps makes 01 stale and the rest wait."""
    run_dir = runs.open("smoke", NBVAL_RUNS)
    before = {name: run_dir.manifest(name)["fingerprint"] for name in run_dir.stages()}
    command = [sys.executable, "-m", "synthlib", "stages", "--profile", "smoke", "--run", "smoke", "--runs-dir", str(NBVAL_RUNS)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(f"{step} " in done.stdout for step in graph.STEPS) and "stale" not in done.stdout
    table = graph.status(run_dir, profiles.load("smoke", seg_steps=profiles.load("smoke").seg_steps + 1))
    assert table.loc["pseudo_labels", "state"] == "stale" and "parameters changed (" in table.loc["pseudo_labels", "why"]
    assert table.loc["data", "state"] == "current" and table.loc["segmentation", "state"] == "waiting"
    assert {name: run_dir.manifest(name)["fingerprint"] for name in run_dir.stages()} == before

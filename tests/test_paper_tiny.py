"""paper-tiny: the paper profile, end to end, on tiny models in the hub's layouts and real-layout datasets.

The same code path a GPU user runs (Stable Diffusion in latent space, ControlNet,
a MiT ImageNet checkpoint turned into a segmenter, a Depth Anything model, GTA5,
SYNTHIA, Cityscapes and ACDC folders), with only paths and sizes changed, through
the command a user types. A regression in any stage of the paper path fails here.
"""

import json

import pytest

from synthlib import cli, profiles, runs, tiny_hub
from tests.test_runs import accelerate_launch


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paper-tiny")
    tiny_hub.write_all(folder, height=64, width=128, n_train=4, n_val=3, conditions=("fog", "night"))
    return folder


def test_reproduce_runs_the_paper_profile_from_a_user_profile_and_from_set_and_roots(hub, tmp_path, monkeypatch):
    # reproduce points the kernels at its profile and runs folder through the environment: restore both
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    monkeypatch.setenv(runs.RUNS_ENV_VAR, str(tmp_path))
    config = tiny_hub.write_user_profile(hub)
    results = tmp_path / "results"
    assert cli.main(["reproduce", "--config", str(config), "--runs-dir", str(tmp_path), "--results", str(results)]) == 0

    run_dir = runs.open("paper-tiny", tmp_path)
    executed = sorted(p.name for p in (run_dir.path / "notebooks").glob("*.ipynb"))
    assert executed == sorted(p.name for p in cli.select_notebooks(cli.default_notebooks_dir(), None))
    stages = set(run_dir.stages())
    assert {"data/gta5", "data/synthia", "data/cityscapes", "data/acdc-fog", "data/acdc-night"} <= stages
    assert {"diffusion/stage1", "diffusion/stage2", "pseudo_labels", "generated/gta5-filtered", "generated/synthia-filtered"} <= stages
    assert "diffusion/pretrain" not in stages  # a loaded Stable Diffusion is not pretrained here

    # stage 2 is Stable Diffusion in latent space with a ControlNet, saved in the hub layout
    stage2 = run_dir.stage_path("diffusion/stage2") / "model"
    settings = json.loads((stage2 / "synthlib_diffusion.json").read_text())
    assert settings["space"] == "latent" and settings["conditioning"] == {"branch": "controlnet", "depth": True}
    assert (stage2 / "controlnet" / "config.json").is_file() and (stage2 / "vae" / "config.json").is_file()
    assert json.loads((stage2 / "scheduler" / "scheduler_config.json").read_text())["clip_sample"] is False
    # the segmenters started from the ImageNet encoder checkpoint with a new 19-class head
    seg = json.loads((run_dir.stage_path("models/supervised/data/gta5") / "model" / "config.json").read_text())
    assert len(seg["id2label"]) == 19 and seg["synthlib_init"] == "encoder"
    # the paper's table: SYNTHIA on 16 and 13 classes too
    table = (results / "paper_miou.md").read_text()
    assert "synthia (16)" in table and "synthia (13)" in table and "profile `paper`" in table
    record = json.loads((run_dir.path / "run.json").read_text())
    assert record["user_profile"] == str(config) and record["resolved"]["diff_branch"] == "controlnet"

    # The same settings given as --set and --roots resolve to the same stages: nothing is rebuilt.
    made = {name: run_dir.manifest(name)["fingerprint"] for name in run_dir.stages()}
    fields = {k: v for k, v in profiles.read_user_profile(config)[1].items() if k != "roots"}
    sets = [f"--set={k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in fields.items()]
    roots = [f"--roots={name}={hub / 'data' / name}" for name in tiny_hub.DATASETS]
    args = ["reproduce", "--profile", "paper", "--run", "paper-tiny", "--runs-dir", str(tmp_path), "--results", str(results)]
    assert cli.main([*args, *sets, *roots]) == 0
    assert {name: run_dir.manifest(name)["fingerprint"] for name in made} == made
    assert json.loads((run_dir.path / "run.json").read_text())["resolved"] == record["resolved"]

    # N GPUs: stage 2 retrained by `accelerate launch -m synthlib stage` in two (gloo, CPU) processes
    before = run_dir.manifest("diffusion/stage2")
    accelerate_launch("-m", "synthlib", "stage", "stage2", "--config", config, "--runs-dir", tmp_path, "--set", "diff_stage2_steps=3")
    after = run_dir.manifest("diffusion/stage2")
    assert after["fingerprint"] != before["fingerprint"] and after["params"]["settings"]["steps"] == 3
    assert after["inputs"] == before["inputs"]  # the same stage 1, pseudo-labels and depth: only stage 2 re-ran

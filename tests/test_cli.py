import importlib
import json
import os
import shutil

import nbformat
import pytest

from synthlib import cli, runs

reproduce_module = importlib.import_module("synthlib.reproduce")


@pytest.fixture
def isolated_env(monkeypatch):
    # reproduce() points the kernels at its profile and runs folder through the environment.
    monkeypatch.setenv("SYNTHLIB_PROFILE", "smoke")
    monkeypatch.setenv(runs.RUNS_ENV_VAR, "unused")


def _notebook(path, *sources, needs=None):
    nb = nbformat.v4.new_notebook()
    if needs is not None:
        nb.metadata["synthlib"] = {"needs": needs}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = None\nrun = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(s) for s in sources)]
    nbformat.write(nb, path)


def test_reproduce_smoke_runs_the_project_notebooks(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SYNTHLIB_PROFILE", "smoke")  # restored afterwards; reproduce sets both
    monkeypatch.setenv(runs.RUNS_ENV_VAR, os.environ[runs.RUNS_ENV_VAR])
    # The session's runs folder and the profile's run name: the nbval runs of the same
    # notebooks later in this session then find these stages cached.
    run_dir = runs.open("smoke")
    results = tmp_path / "results"
    assert cli.main(["reproduce", "--profile", "smoke", "--results", str(results)]) == 0
    executed = sorted(p.name for p in (run_dir.path / "notebooks").glob("*.ipynb"))
    assert executed == sorted(p.name for p in cli.select_notebooks(cli.default_notebooks_dir(), None))
    assert "data/real" in run_dir.stages()
    first = json.loads((run_dir.path / "notebooks" / executed[0]).read_text())
    assert any(c.get("outputs") for c in first["cells"] if c["cell_type"] == "code")
    # 07's tables and figures are published; the table names its run and profile
    published = {p.name for p in results.iterdir()}
    assert {"paper_miou.md", "paper_miou.csv", "paper_per_class.csv", "paper_figure1.png"} <= published
    assert "run `smoke` · profile `smoke`" in (results / "paper_miou.md").read_text()
    # a second call skips the notebook that ran to its end; --rerun executes it again, from the cached stages
    capsys.readouterr()
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "00", "--results", str(results)]) == 0
    assert "00_data.ipynb: up to date, skipped" in capsys.readouterr().out
    assert cli.main(["reproduce", "--profile", "smoke", "--only", "00", "--rerun", "--results", str(results)]) == 0
    rerun = (run_dir.path / "notebooks" / "00_data.ipynb").read_text()  # the kernel printed it there
    assert "data/real: up to date, skipped" in rerun


def test_reproduce_reports_the_failing_notebook_and_cell(tmp_path, isolated_env, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_ok.ipynb", "x = 1")
    _notebook(nbs / "01_bad.ipynb", "y = 2", "raise ValueError('the map is empty')")
    _notebook(nbs / "02_never.ipynb", "z = 3")
    code = cli.main(["reproduce", "--profile", "smoke", "--run", "f", "--notebooks", str(nbs), "--runs-dir", str(tmp_path)])
    assert code == 1
    err = capsys.readouterr().err
    # cell 4 of the executed copy: parameters, papermill's injected parameters, y = 2, the raise
    assert "01_bad.ipynb failed in cell 4 of the executed copy (starting `raise ValueError" in err and "ValueError: the map is empty" in err
    out_dir = tmp_path / "f" / "notebooks"
    assert (out_dir / "00_ok.ipynb").exists() and (out_dir / "01_bad.ipynb").exists()
    assert not (out_dir / "02_never.ipynb").exists()


def test_jobs_run_independent_notebooks_side_by_side_after_their_needs(tmp_path, isolated_env, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    nbs, log = tmp_path / "nbs", tmp_path / "log"
    nbs.mkdir()
    log.mkdir()
    stamp = (
        "import os, time\n"
        "start = time.time(); time.sleep({sleep})\n"
        "open(r'{log}/{name}', 'w').write(f\"{{start}} {{time.time()}} {{os.environ.get('OMP_NUM_THREADS')}}\")"
    )
    _notebook(nbs / "00_data.ipynb", stamp.format(sleep=0, log=log, name="00"))
    _notebook(nbs / "01_chain.ipynb", stamp.format(sleep=4, log=log, name="01"), needs=["00"])
    _notebook(nbs / "02_side.ipynb", stamp.format(sleep=4, log=log, name="02"), needs=["00_data"])
    _notebook(nbs / "03_all.ipynb", stamp.format(sleep=0, log=log, name="03"))  # no metadata: waits for 00-02
    assert cli.main(["reproduce", "--profile", "smoke", "--run", "2024", "--notebooks", str(nbs), "--runs-dir", str(tmp_path), "--jobs", "2"]) == 0
    injected = nbformat.read(tmp_path / "2024" / "notebooks" / "00_data.ipynb", as_version=4).cells[1].source
    assert 'run = "2024"' in injected  # a name, not a number
    times = {p.name: [float(x) for x in p.read_text().split()[:2]] for p in log.iterdir()}
    threads = {p.name: p.read_text().split()[2] for p in log.iterdir()}
    assert times["01"][0] >= times["00"][1] and times["02"][0] >= times["00"][1]  # both waited for 00
    assert times["01"][0] < times["02"][1] and times["02"][0] < times["01"][1]  # and ran side by side
    assert times["03"][0] >= max(times["01"][1], times["02"][1])  # 03 waited for both
    cores = os.cpu_count()
    assert threads["00"] == threads["03"] == str(cores) and threads["01"] == threads["02"] == str(max(1, cores // 2))
    # a failure stops what depends on it; the notebook already running beside it finishes
    _notebook(nbs / "01_chain.ipynb", "raise RuntimeError('stage 01 broke')", needs=["00"])
    for p in log.iterdir():
        p.unlink()
    assert cli.main(["reproduce", "--profile", "smoke", "--run", "k", "--notebooks", str(nbs), "--runs-dir", str(tmp_path), "--jobs", "2"]) == 1
    assert sorted(p.name for p in log.iterdir()) == ["00", "02"]
    with pytest.raises(ValueError, match="needs names 09"):
        _notebook(nbs / "02_side.ipynb", "x = 1", needs=["09"])
        cli.needed_by(nbs / "02_side.ipynb", cli.select_notebooks(nbs, None))


def test_results_go_to_results_for_default_and_a_subfolder_for_other_profiles():
    assert cli.default_results_dir("default") == cli.default_notebooks_dir().parent / "results"
    assert cli.default_results_dir("smoke") == cli.default_notebooks_dir().parent / "results" / "smoke"


def test_only_selects_notebooks_and_rejects_unknown_numbers(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "04_x.ipynb", "04_y.ipynb", "06_c.ipynb", "notes.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in cli.select_notebooks(tmp_path, "6,0")] == ["00_a.ipynb", "06_c.ipynb"]
    # One number may name several notebooks; all of them run, in name order.
    assert [p.name for p in cli.select_notebooks(tmp_path, "04")] == ["04_x.ipynb", "04_y.ipynb"]
    assert len(cli.select_notebooks(tmp_path, None)) == 5
    with pytest.raises(ValueError, match="no notebook numbered 03; available: 00, 01, 04, 06"):
        cli.select_notebooks(tmp_path, "03")


def test_profiles_command_prints_fields_and_rejects_unknown(capsys):
    assert cli.main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out and "paper" in out and "minicity_train" in out
    assert cli.main(["profiles", "huge"]) == 2
    assert "valid profiles: smoke, default, paper" in capsys.readouterr().err
    assert cli.main(["reproduce", "--profile", "huge"]) == 2


STAGE = (
    "from synthlib import runs\nr = runs.open(run, {root!r})\n"
    "r.stage('a', {{}}, lambda ctx: (ctx.out / 'a.txt').write_text('a'))\n"
    "(r.path / 'tables').mkdir(exist_ok=True)\n(r.path / 'tables' / '{table}').write_text('{table}')\n"
    "open({marks!r}, 'a').write('{name} ')"
)


def test_a_notebook_that_ran_to_its_end_is_skipped_until_what_it_depends_on_or_left_changes(tmp_path, isolated_env, capsys):
    nbs, marks = tmp_path / "nbs", tmp_path / "marks.txt"
    nbs.mkdir()
    marks.write_text("")
    for name in ("00_make", "01_read"):
        _notebook(nbs / f"{name}.ipynb", STAGE.format(root=str(tmp_path), marks=str(marks), table=f"{name}.md", name=name))
    args = ["reproduce", "--profile", "smoke", "--run", "s", "--notebooks", str(nbs), "--runs-dir", str(tmp_path),
            "--results", str(tmp_path / "results")]  # fmt: skip

    def executed(*extra: str) -> list[str]:
        marks.write_text("")
        assert cli.main([*args, *extra]) == 0
        return marks.read_text().split()

    assert executed() == ["00_make", "01_read"]
    capsys.readouterr()
    assert executed() == [] and capsys.readouterr().out.count("up to date, skipped") == 2
    assert executed("--set", "seg_steps=13") == ["00_make", "01_read"]  # a profile field
    assert executed("--set", "seg_steps=13") == []
    (tmp_path / "s" / "tables" / "00_make.md").unlink()  # what one notebook left
    assert executed("--set", "seg_steps=13") == ["00_make"]
    assert "00_make.ipynb: executed again (tables/00_make.md changed or removed since)" in capsys.readouterr().out
    run = runs.open("s", tmp_path)
    shutil.rmtree(run.stage_path("a"))  # a stage
    assert executed("--set", "seg_steps=13") == ["00_make", "01_read"]
    _notebook(nbs / "01_read.ipynb", STAGE.format(root=str(tmp_path), marks=str(marks), table="01_read.md", name="01_read"), "x = 1")
    assert executed("--set", "seg_steps=13") == ["01_read"]  # the notebook itself


def test_a_cell_over_the_timeout_stops_the_run_naming_notebook_and_cell(tmp_path, isolated_env, capsys):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_slow.ipynb", "x = 1", "import time\ntime.sleep(60)", "y = 2")
    _notebook(nbs / "01_never.ipynb", "z = 3")
    args = ["reproduce", "--profile", "smoke", "--run", "t", "--notebooks", str(nbs), "--runs-dir", str(tmp_path)]
    assert cli.main([*args, "--set", "cell_timeout=3"]) == 1
    err = capsys.readouterr().err
    assert "00_slow.ipynb: cell 4 of the executed copy (starting `import time`) did not finish within the cell timeout of 3 s (profile field cell_timeout)" in err
    assert not (tmp_path / "t" / "notebooks" / "01_never.ipynb").exists()


def test_a_kernel_slow_to_start_gets_the_start_timeout_not_papermills_default(tmp_path, isolated_env, monkeypatch, capsys):
    # a kernel that takes 4 s to start, as one does beside training notebooks on a loaded machine
    slow = tmp_path / "slow_site"
    slow.mkdir()
    # (at start-up a kernel's argv is ['-m', '-f', '<connection file>.json', ...]: the module name is not in it yet)
    (slow / "sitecustomize.py").write_text("import sys, time\nif '-f' in sys.argv[1:2]:\n    time.sleep(4)\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")])))
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_a.ipynb", "x = 1")
    args = ["reproduce", "--profile", "smoke", "--run", "t", "--notebooks", str(nbs), "--runs-dir", str(tmp_path)]
    monkeypatch.setattr(reproduce_module, "KERNEL_START_TIMEOUT", 1)
    assert cli.main(args) == 1  # papermill was given the timeout: 1 s is too short
    assert "00_a.ipynb" in capsys.readouterr().err
    monkeypatch.setattr(reproduce_module, "KERNEL_START_TIMEOUT", 60)
    assert cli.main(args) == 0
    monkeypatch.undo()
    assert reproduce_module.KERNEL_START_TIMEOUT >= 300  # ten times the 4 s here is what a busy machine took


def test_set_roots_and_config_reach_every_notebook_and_the_run_record(tmp_path, isolated_env):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    # the notebook resolves its profile the way every project notebook does, and writes what it got
    _notebook(
        nbs / "00_show.ipynb",
        "import json\nfrom synthlib import profiles\ncfg = profiles.load(profile, overrides)\n"
        f"open(r'{tmp_path}/seen.json', 'w').write(json.dumps(profiles.as_dict(cfg)))",
    )
    data = tmp_path / "gta5"
    (data / "images").mkdir(parents=True)
    config = tmp_path / "mine.yaml"
    config.write_text("base: smoke\nseg_steps: 5\nsources: [flat]\nroots:\n  extra: ./gta5\n")
    args = ["reproduce", "--config", str(config), "--notebooks", str(nbs), "--runs-dir", str(tmp_path)]
    assert cli.main([*args, "--set", "seg_crop=16,32", "--set", "diff_prompt=a photo of 3 streets", "--roots", f"more={data}"]) == 0
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["name"] == "smoke" and seen["seg_steps"] == 5 and seen["sources"] == ["flat"]
    assert seen["seg_crop"] == [16, 32] and seen["diff_prompt"] == "a photo of 3 streets"
    assert seen["roots"] == {"extra": str(data), "more": str(data)}  # relative to the file; merged
    record = json.loads((tmp_path / "mine" / "run.json").read_text())  # the run is named after the file
    assert record["user_profile"] == str(config) and "seg_steps: 5" in record["user_profile_text"]
    assert record["overrides"]["seg_crop"] == [16, 32] and record["resolved"] == seen


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--set", "seg_stepz=3"], "'seg_stepz' is not a profile field"),
        (["--set", "seg_steps=many"], "profile field 'seg_steps' expects int, got 'many'"),
        (["--set", "seg_steps"], "expected FIELD=VALUE"),
        (["--roots", "gta5"], "expected NAME=FOLDER"),
        (["--set", "sources=[\"gta5\"]"], "dataset 'gta5'"),  # no root for it
        (["--set", "sources=[\"gta5\"]", "--roots", "gta5=/nonexistent/gta5"], "gta5 root /nonexistent/gta5 does not exist"),
        (["--set", "sources=[\"synthia\"]", "--roots", "synthia=."], "RGB"),  # a folder without SYNTHIA's layout
    ],
)
def test_bad_settings_fail_before_any_notebook_runs(tmp_path, isolated_env, capsys, extra, message):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_mark.ipynb", f"open(r'{tmp_path}/ran', 'w').write('x')")
    code = cli.main(["reproduce", "--profile", "smoke", "--run", "b", "--notebooks", str(nbs), "--runs-dir", str(tmp_path), *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "b").exists()


def test_profiles_command_shows_a_user_profile_resolved(tmp_path, capsys):
    config = tmp_path / "mine.yaml"
    config.write_text("base: paper\nseg_steps: 7\nroots: {gta5: /data/gta5}\n")
    assert cli.main(["profiles", "--config", str(config), "--set", "seed=3"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split() == ["paper", "paper", "(user)"]
    values = {r.split()[0]: r.split()[1:] for r in rows}
    assert values["seg_steps"] == ["40000", "7"] and values["seed"] == ["0", "3"]
    assert "/data/gta5" in out

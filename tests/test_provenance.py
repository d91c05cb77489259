"""Stage keys that follow the code and packages, stages that cannot be edited unnoticed, stamped and checkable results."""

import importlib.util
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from synthlib import cli, mcoc, profiles, provenance, report, runs  # noqa: E402


def _module(path, name):
    """Import a freshly written file as a module (a build function defined outside synthlib, like a benchmark's)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


BUILD = '''"""A stage's build."""
from synthlib import labels


def build(ctx):
    """Doc."""
    (ctx.out / "x.txt").write_text("{text}")
'''


def test_code_modules_follow_imports_to_the_synthlib_files_a_build_runs():
    modules = provenance.code_modules(mcoc.filter_set)
    assert "synthlib/mcoc.py" in modules and "synthlib/__init__.py" in modules
    assert "synthlib/runs.py" in modules and "synthlib/provenance.py" in modules  # through runs
    assert "synthlib/cli.py" not in modules and "synthlib/reproduce.py" not in modules  # never imported by mcoc


def test_fingerprint_follows_code_not_docstrings_comments_or_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "BASE_DIR", tmp_path)
    file = tmp_path / "a.py"
    file.write_text('"""One."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n')
    first = provenance.code_fingerprint(["a.py"])
    file.write_text('"""Another docstring."""\n# a comment\n\n\ndef f(x):\n    """Other doc."""\n    return x + 1  # why\n')
    os.utime(file, ns=(1, 1))  # a new time too: the memo must not hide a change
    assert provenance.code_fingerprint(["a.py"]) == first
    file.write_text('"""One."""\n\ndef f(x):\n    """Doc."""\n    return x + 2\n')
    assert provenance.code_fingerprint(["a.py"]) != first
    file.unlink()
    assert provenance.code_fingerprint(["a.py"]) != first  # a file gone counts as changed


def test_a_stage_reruns_when_its_code_changes_and_not_when_only_its_comments_do(tmp_path, capsys):
    script = tmp_path / "bench.py"
    script.write_text(BUILD.format(text="one"))
    run = runs.open("r", tmp_path)
    run.stage("s", {}, _module(script, "bench_one").build)
    manifest = run.manifest("s")
    assert str(script.resolve()) in manifest["code"]["modules"] and "synthlib/labels.py" in manifest["code"]["modules"]
    script.write_text("# a new comment\n" + BUILD.format(text="one").replace('"""Doc."""', '"""New doc."""'))
    assert run.is_current("s", {})
    script.write_text(BUILD.format(text="two"))
    assert not run.is_current("s", {})  # asked without the build: its recorded files are hashed again
    path = run.stage("s", {}, _module(script, "bench_two").build)
    assert (path / "x.txt").read_text() == "two"
    assert capsys.readouterr().out.count("done in") == 2


def test_a_stage_reruns_under_other_versions_of_the_key_packages(tmp_path, monkeypatch):
    run = runs.open("r", tmp_path)
    run.stage("s", {}, _module_build(tmp_path))
    assert run.is_current("s", {})
    versions = {**runs.package_versions(), "diffusers": "0.0.1"}
    monkeypatch.setattr(runs, "package_versions", lambda: versions)
    assert not run.is_current("s", {})


def _module_build(tmp_path):
    script = tmp_path / "b.py"
    script.write_text(BUILD.format(text="x"))
    return _module(script, "bench_b").build


def test_a_stage_edited_by_hand_is_refused_with_the_file_named(tmp_path):
    run = runs.open("r", tmp_path)
    build = _module_build(tmp_path)

    def reused():
        return run.stage("s", {}, build)

    path = reused()
    os.utime(path / "x.txt", ns=(5, 5))  # a copy that lost the time: same contents, still trusted
    assert reused() == path
    (path / "x.txt").write_text("y")
    with pytest.raises(runs.StageError, match=r"stage 's' of run 'r' was changed after it was made \(x.txt changed contents\)"):
        reused()
    (path / "x.txt").write_text("xx")
    with pytest.raises(runs.StageError, match=r"x.txt changed size \(1 -> 2 bytes\).*delete that folder"):
        reused()
    (path / "x.txt").unlink()
    (path / "extra.png").write_bytes(b"1")
    with pytest.raises(runs.StageError, match="x.txt was removed; extra.png was added"):
        reused()
    with pytest.raises(runs.StageError, match="extra.png was added"):
        run.verify("s")


def test_a_run_directory_has_one_reproduce_at_a_time(tmp_path):
    run = runs.open("r", tmp_path)
    with run.lock("synthlib reproduce"):
        with pytest.raises(runs.StageError, match=rf"run directory {run.path} is in use by synthlib reproduce \(pid {os.getpid()}"):
            with runs.open("r", tmp_path).lock("another"):
                pass
        code = cli.main(["reproduce", "--profile", "smoke", "--run", "r", "--runs-dir", str(tmp_path), "--only", "00"])
        assert code == 2
    with run.lock("again"):  # released when its holder is done
        pass


def _stage_with(run, name, text, git=None):
    path = run.stage(name, {"text": text}, _writer_build)
    if git is not None:  # as if made at another revision
        manifest = json.loads((path / runs.MANIFEST).read_text())
        manifest["git"] = git
        (path / runs.MANIFEST).write_text(json.dumps(manifest))
    return path


def _writer_build(ctx):
    (ctx.out / "v.txt").write_text(ctx.params["text"])


def test_tables_and_figures_are_stamped_and_the_check_finds_what_is_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_USED", {})
    run, cfg = runs.open("r", tmp_path), profiles.load("smoke")
    _stage_with(run, "a", "1")
    table = report.write_table(pd.DataFrame({"x": [1.0]}), run, cfg, "t", "A table")
    line = table.read_text().splitlines()[2]
    assert line.startswith("run `r` · profile `smoke` · git ") and "mixed" not in line and "(1 stages)" in line
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = report.write_figure(fig, run, "f", cfg=cfg)
    plt.close(fig)
    assert Image.open(png).info["Description"] == line
    results = tmp_path / "results"
    report.publish(run, results)
    assert report.results_check(results) == []
    assert cli.main(["results", "--check", "--to", str(results)]) == 0

    # a stage made at another revision: the stamp says mixed and names both
    _stage_with(run, "b", "2", git={"revision": "0123456789abcdef", "dirty": False})
    mixed = report.write_table(pd.DataFrame({"x": [2.0]}), run, cfg, "u", "Another").read_text().splitlines()[2]
    assert "git mixed (" in mixed and "0123456789ab: 1 stage(s)" in mixed

    # a stage whose code changed after it was made: "code mixed" in the stamp, stale in the check
    manifest = json.loads((run.stage_path("a") / runs.MANIFEST).read_text())
    manifest["code"]["fingerprint"] = "0" * 16
    (run.stage_path("a") / runs.MANIFEST).write_text(json.dumps(manifest))
    assert "code mixed (1 of 2 stages made by other code than now: r/a)" in report.provenance(run, cfg)
    report.write_table(pd.DataFrame({"x": [3.0]}), run, cfg, "v", "Third")
    report.publish(run, results)
    (results / "t.csv").write_text("edited")
    (results / "stray.md").write_text("from nowhere")
    problems = report.results_check(results)
    assert "t.csv: its contents differ from those published (edited by hand?)" in problems
    assert "stray.md: no provenance record (not written by report.write_table/write_figure and published)" in problems
    assert any(p.startswith("v.md: made from stages whose code has changed since: r/a") for p in problems)
    assert cli.main(["results", "--check", "--to", str(results)]) == 1


def test_publishing_one_table_leaves_the_other_results_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(runs, "_USED", {})
    run, cfg = runs.open("r", tmp_path), profiles.load("smoke")
    _stage_with(run, "a", "1")
    report.write_table(pd.DataFrame({"x": [1.0]}), run, cfg, "t", "A table")
    report.write_table(pd.DataFrame({"x": [2.0]}), run, cfg, "u", "Another")
    results = tmp_path / "results"
    results.mkdir()
    (results / "u.md").write_text("an older u")
    assert cli.main(["results", "--run", "r", "--runs-dir", str(tmp_path), "--to", str(results), "--only", "t"]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["provenance.json", "t.csv", "t.md", "u.md"]
    assert (results / "u.md").read_text() == "an older u"  # not copied over
    assert report.results_check(results) == ["u.md: no provenance record (not written by report.write_table/write_figure and published)"]
    with pytest.raises(FileNotFoundError, match="no table or figure nope"):
        report.publish(run, results, ["nope"])

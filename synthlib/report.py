"""Tables and figures with provenance: every file names the run, profile, revisions and code it came from.

Stages write into ``runs/<name>/tables/``; ``publish`` copies a run's tables
into the repository's ``results/`` (``synthlib results --run NAME``), with one
record per file in ``results/provenance.json``: the stages the process that wrote
it had made or read, each with its git revision and code fingerprint, and the
code of the writer itself. ``synthlib results --check`` (``results_check``)
tells from those records whether every file still matches the current code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from synthlib import provenance as prov
from synthlib import runs
from synthlib.profiles import Profile
from synthlib.runs import RunDir

TABLES = "tables"
#: Under a run's tables folder: one provenance record per file written.
RECORDS = ".provenance"
#: Under ``results/``: the records of every published file.
RESULTS_RECORD = "provenance.json"


def provenance(run_dir: RunDir, cfg: Profile) -> str:
    """One line naming the run directory, profile, git revisions and code behind what this process computed."""
    return stamp(record(run_dir, cfg.name))


def record(run_dir: RunDir, profile: str) -> dict[str, Any]:
    """The provenance of a file written now: the stages this process used, and the code it has loaded."""
    stages, code_sets = {}, {}
    for run_path, name in runs.used_stages():
        file = run_path / name / runs.MANIFEST
        if not file.is_file():
            continue
        manifest = json.loads(file.read_text())
        code = manifest.get("code")
        if code:
            code_sets[code["fingerprint"]] = code["modules"]
        stages[f"{run_path.name}/{name}"] = {"code": code and code["fingerprint"], "git": manifest.get("git")}
    modules = prov.loaded_modules()
    writer = prov.code_fingerprint(modules)
    code_sets[writer] = modules
    return {
        "run": run_dir.name, "profile": profile, "writer": {"code": writer, "git": prov.git_revision()},
        "stages": stages, "code_sets": code_sets, "packages": prov.package_versions(),
    }  # fmt: skip


def stamp(rec: dict[str, Any]) -> str:
    """The record as one line: run, profile, the git revision(s) and the code, "mixed" where they differ."""
    revisions: dict[str, int] = {}
    for stage in rec["stages"].values():
        revisions[_revision(stage["git"])] = revisions.get(_revision(stage["git"]), 0) + 1
    mine = _revision(rec["writer"]["git"])
    if set(revisions) <= {mine}:
        git = mine
    else:
        parts = [f"{rev}: {n} stage(s)" + (" and this file" if rev == mine else "") for rev, n in revisions.items()]
        git = "mixed (" + "; ".join(parts + ([] if mine in revisions else [f"{mine}: this file"])) + ")"
    other = stale_stages(rec)
    if other:
        shown = ", ".join(other[:4]) + (", ..." if len(other) > 4 else "")
        code = f"code mixed ({len(other)} of {len(rec['stages'])} stages made by other code than now: {shown})"
    else:
        code = f"code {_combined(rec)} ({len(rec['stages'])} stages)"
    return f"run `{rec['run']}` · profile `{rec['profile']}` · git {git} · {code}"


def stale_stages(rec: dict[str, Any]) -> list[str]:
    """The record's stages whose code has changed since they were made (or that predate code fingerprints)."""
    sets = rec["code_sets"]
    return [name for name, stage in rec["stages"].items()
            if stage["code"] not in sets or prov.code_fingerprint(sets[stage["code"]]) != stage["code"]]  # fmt: skip


def write_table(df: pd.DataFrame, run_dir: RunDir, cfg: Profile, name: str, caption: str, digits: int = 1) -> Path:
    """Write ``<name>.csv`` and ``<name>.md`` (caption, provenance, table) under the run's tables folder."""
    folder = run_dir.path / TABLES
    folder.mkdir(exist_ok=True)
    rec = record(run_dir, cfg.name)
    _write(folder / f"{name}.csv", df.to_csv(float_format=f"%.{digits + 2}f").encode(), rec)
    text = f"# {caption}\n\n{stamp(rec)}\n\n{df.round(digits).to_markdown()}\n"
    _write(folder / f"{name}.md", text.encode(), rec)
    return folder / f"{name}.md"


def write_figure(fig: plt.Figure, run_dir: RunDir, name: str, dpi: int = 120, cfg: Profile | None = None) -> Path:
    """Save a figure as ``<name>.png`` under the run's tables folder, its provenance line in the PNG's Description."""
    folder = run_dir.path / TABLES
    folder.mkdir(exist_ok=True)
    rec = record(run_dir, cfg.name if cfg is not None else _profile_name(run_dir))
    tmp = folder / f".{name}.png.tmp"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata={"Description": stamp(rec)})
    _write(folder / f"{name}.png", tmp.read_bytes(), rec)
    tmp.unlink()
    return folder / f"{name}.png"


def publish(run_dir: RunDir, results: Path, only: Sequence[str] | None = None) -> list[Path]:
    """Copy the run's tables and figures into ``results`` (replacing files of the same name) with their records.

    ``only``: the names (without suffix) of the tables and figures to copy, e.g. one
    benchmark's table; every other file in ``results`` stays as it is.
    """
    source = run_dir.path / TABLES
    if not source.is_dir():
        raise FileNotFoundError(f"run {run_dir.name!r} has no tables yet ({source}); run the notebooks first")
    files = sorted(f for f in source.iterdir() if f.is_file() and not f.name.startswith("."))
    if only is not None:
        missing = sorted(set(only) - {f.stem for f in files})
        if missing:
            raise FileNotFoundError(f"run {run_dir.name!r} has no table or figure {', '.join(missing)} in {source}")
        files = [f for f in files if f.stem in set(only)]
    results.mkdir(parents=True, exist_ok=True)
    index = _read_index(results)
    copied = []
    for file in files:
        shutil.copy2(file, results / file.name)
        copied.append(results / file.name)
        rec_file = source / RECORDS / f"{file.name}.json"
        if rec_file.is_file():
            rec = json.loads(rec_file.read_text())
            index["code_sets"].update(rec.pop("code_sets"))
            index["files"][file.name] = rec
        else:
            index["files"].pop(file.name, None)  # an old run's file: no record, so the check calls it unknown
    _atomic(results / RESULTS_RECORD, json.dumps(index, indent=1, sort_keys=True).encode() + b"\n")
    return copied


def results_check(results: Path) -> list[str]:
    """What in ``results`` does not come from the current code: one line per file, empty when all is current.

    A file is current when ``provenance.json`` has its record, its bytes are those
    recorded, and the code of every stage it was computed from, and of the process
    that wrote it, hashes as it did then.
    """
    index = _read_index(results)
    problems = []
    for file in sorted(f for f in results.iterdir() if f.is_file() and f.name != RESULTS_RECORD):
        rel = file.relative_to(results).as_posix()
        rec = index["files"].get(rel)
        if rec is None:
            problems.append(f"{rel}: no provenance record (not written by report.write_table/write_figure and published)")
            continue
        if prov.file_sha256(file) != rec["sha256"]:
            problems.append(f"{rel}: its contents differ from those published (edited by hand?)")
            continue
        rec = {**rec, "code_sets": index["code_sets"]}
        stale = stale_stages(rec)
        if stale:
            problems.append(f"{rel}: made from stages whose code has changed since: {', '.join(stale)}")
        elif prov.code_fingerprint(index["code_sets"][rec["writer"]["code"]]) != rec["writer"]["code"]:
            problems.append(f"{rel}: the code that wrote it has changed since; run its notebook again (its stages are current)")
    return problems


def _write(path: Path, data: bytes, rec: dict[str, Any]) -> None:
    """Write a file and its record, each in one step (a reader never sees half a table)."""
    _atomic(path, data)
    folder = path.parent / RECORDS
    folder.mkdir(exist_ok=True)
    _atomic(folder / f"{path.name}.json", json.dumps({**rec, "sha256": prov.file_sha256(path)}, indent=1).encode())


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read_index(results: Path) -> dict[str, Any]:
    file = results / RESULTS_RECORD
    if not file.is_file():
        return {"files": {}, "code_sets": {}}
    return json.loads(file.read_text())


def _revision(git: dict[str, Any] | None) -> str:
    if not git or not git.get("revision"):
        return "unknown"
    return git["revision"][:12] + (" (uncommitted changes)" if git.get("dirty") else "")


def _combined(rec: dict[str, Any]) -> str:
    codes = sorted({str(s["code"]) for s in rec["stages"].values()} | {rec["writer"]["code"]})
    return hashlib.sha256(" ".join(codes).encode()).hexdigest()[: prov.DIGEST_CHARS]


def _profile_name(run_dir: RunDir) -> str:
    """The profile a figure's run was made with, when the caller does not say: the last reproduce's, else the environment's."""
    from synthlib import profiles

    recorded = run_dir.path / "run.json"
    if recorded.is_file():
        return Path(str(json.loads(recorded.read_text())["profile"])).stem
    return os.environ.get(profiles.ENV_VAR, "default")

"""What a notebook that ran to its end under ``synthlib reproduce`` left, so that the next call can skip it.

Resuming a run replays every notebook before the one that stopped, and a replay
costs a kernel, the imports and every table and figure drawn again, although
each stage is cached. After a notebook succeeds, ``reproduce`` writes a record
under ``<run>/notebooks/.records/``: what decided its execution (the notebook's
bytes, the profile and its overrides, the synthlib code, the key packages, the
weights of every model field) and what it left (every stage of the run with its
key, the tables and figures it wrote with their sha256). The next call skips the
notebook when all of it still holds, and runs it again when anything differs: a
changed parameter, a stage made again or removed, a table edited or deleted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from synthlib import fingerprints, profiles, provenance, runs, zoo
from synthlib.user_profiles import MODEL_FIELDS

RECORDS = ".records"
#: Why a notebook without a record runs.
NEVER = "not run to its end before"


def context(cfg: profiles.Profile, source: str, overrides: dict[str, Any], config: str | Path | None) -> dict[str, Any]:
    """What decides every notebook of one ``reproduce`` call, besides the notebook itself."""
    resolved = profiles.as_dict(cfg)
    code = sorted(p.relative_to(provenance.BASE_DIR).as_posix() for p in provenance.PACKAGE_DIR.rglob("*.py"))
    return {
        "profile": source,
        "user_profile_text": Path(config).expanduser().read_text() if config is not None else None,
        "overrides": overrides,
        "resolved": json.loads(json.dumps(resolved)),  # tuples as lists, as the record reads back
        "code": provenance.code_fingerprint(code),
        "packages": provenance.package_versions(),
        "weights": {f: _weights(resolved.get(f)) for f in MODEL_FIELDS},
    }


def write(run_dir: runs.RunDir, notebook: Path, ctx: dict[str, Any], started_ns: int) -> None:
    """Record that ``notebook`` ran to its end under ``ctx``; tables written since ``started_ns`` count as its own."""
    tables = run_dir.path / "tables"
    written = [f for f in sorted(tables.rglob("*")) if f.is_file() and f.stat().st_mtime_ns >= started_ns] if tables.is_dir() else []
    record = {
        "context": {**ctx, "notebook": provenance.file_sha256(notebook)},
        "stages": _stages(run_dir),
        "tables": {f.relative_to(run_dir.path).as_posix(): provenance.file_sha256(f) for f in written},
    }
    folder = run_dir.path / "notebooks" / RECORDS
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{notebook.stem}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(folder / f"{notebook.stem}.json")


def changed(run_dir: runs.RunDir, notebook: Path, ctx: dict[str, Any]) -> str | None:
    """None when ``notebook`` ran to its end before and everything it depended on and left still holds; else why not."""
    file = run_dir.path / "notebooks" / RECORDS / f"{notebook.stem}.json"
    if not file.is_file() or not (run_dir.path / "notebooks" / notebook.name).is_file():
        return NEVER
    record = json.loads(file.read_text())
    now = {**ctx, "notebook": provenance.file_sha256(notebook)}
    differs = sorted(k for k in now.keys() | record["context"].keys() if now.get(k) != record["context"].get(k))
    if differs:
        return f"{', '.join(differs)} changed"
    stages = _stages(run_dir)
    remade = sorted(name for name, key in record["stages"].items() if stages.get(name) != key)
    if remade:
        return f"stage {remade[0]} made again or removed since" + (f" (and {len(remade) - 1} more)" if len(remade) > 1 else "")
    for rel, digest in record["tables"].items():
        if not (run_dir.path / rel).is_file() or provenance.file_sha256(run_dir.path / rel) != digest:
            return f"{rel} changed or removed since"
    return None


def _stages(run_dir: runs.RunDir) -> dict[str, str]:
    """Every completed stage of the run with its key; a stage's own folder is not searched for more."""
    out = {}
    for folder, dirs, files in os.walk(run_dir.path):
        rel = Path(folder).relative_to(run_dir.path)
        if rel.parts and rel.parts[0].startswith("."):
            dirs[:] = []
        elif runs.MANIFEST in files:
            out[rel.as_posix()] = json.loads((Path(folder) / runs.MANIFEST).read_text())["fingerprint"]
            dirs[:] = []
    return out


def _weights(spec: Any) -> str | None:
    """A model field's weights: a zoo model by its keyed folder, anything else by its files.

    The zoo folder's key holds everything its weights depend on, so a model the first
    notebook builds counts as the same before and after; nothing is built here.
    """
    if not isinstance(spec, str) or not spec:
        return None
    if zoo.is_zoo(spec):
        return zoo.folder(spec.split(":", 1)[1]).name
    return fingerprints.weights_fingerprint(spec)


"""Where zoo models live on this machine, what their folders are keyed by, and how one is built once.

A model's folder is ``<root>/<name>-<key>``: the key digests its config and the
fingerprint of the code that decides its weights (the builder's zoo modules,
minicity's renderer, the label table, the segmenter definitions), so changing
either builds a new one beside the old. A build works in a hidden ``.<name>-<key>.partial`` folder
(checkpoints inside: an interrupted build resumes), writes the manifest
``zoo.json`` last and renames the folder into place, so a folder with a manifest
is complete. A lock file keeps two processes from building the same model.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synthlib import provenance
from synthlib.zoo.registry import ZooError, ZooModel, get

ENV_VAR = "SYNTHLIB_ZOO"
MANIFEST = "zoo.json"
PREFIX = "zoo:"
#: Where the code that decides zoo weights lives: the zoo's builders, minicity (the corpus), the label table, the
#: segmenter definitions and the tiny CLIP pieces. The rest of a builder's import closure (profiles, runs, datasets;
#: the zoo's registry, whose entries' configs are in the key themselves, and this cache) is bookkeeping whose edits
#: would rebuild the zoo for nothing.
WEIGHT_CODE = (
    "synthlib/zoo/", "synthlib/minicity/", "synthlib/labels.py", "synthlib/segmenters/model.py",
    "synthlib/tiny_tokenizer.py", "synthlib/tiny_hub.py",  # the prior's vocabulary and text encoder
)  # fmt: skip
_BOOKKEEPING = ("synthlib/zoo/__init__.py", "synthlib/zoo/cache.py", "synthlib/zoo/registry.py")


def root() -> Path:
    """The zoo's folder: ``$SYNTHLIB_ZOO``, else ``$XDG_CACHE_HOME/synthlib/zoo``, else ``~/.cache/synthlib/zoo``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "synthlib" / "zoo"


def builder(kind: str) -> Callable[..., dict[str, Any]]:
    """The function that builds a model of ``kind`` (``build(model, out, checkpoints, requires, progress)``)."""
    # imported by name, so that a kind's code fingerprint follows its own builder's imports and not the others'
    return importlib.import_module(f"synthlib.zoo.{kind}").build


def code_modules(model: ZooModel) -> list[str]:
    """The synthlib source files whose code decides ``model``'s weights: of its builder's imports, those under WEIGHT_CODE."""
    modules = provenance.code_modules(builder(model.kind))
    return [m for m in modules if m.startswith(WEIGHT_CODE) and m not in _BOOKKEEPING]


def key(model: ZooModel) -> str:
    """12 hex digits of the digest of the model's name, kind, config, required models' keys and code fingerprint."""
    record = {
        "name": model.name,
        "kind": model.kind,
        "config": model.config,
        "requires": {r: key(get(r)) for r in model.requires},
        "code": provenance.code_fingerprint(code_modules(model)),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:12]


def folder(name: str) -> Path:
    """Where zoo model ``name`` lives (built or not) with the current config and code."""
    model = get(name)
    return root() / f"{name}-{key(model)}"


def is_built(name: str) -> bool:
    """True when ``name``'s folder for the current config and code holds a complete model."""
    return (folder(name) / MANIFEST).is_file()


def manifest(name: str) -> dict[str, Any]:
    """The manifest of built model ``name``; ZooError when it is not built."""
    path = folder(name) / MANIFEST
    if not path.is_file():
        raise ZooError(f"zoo model {name!r} is not built at {folder(name)}: run `synthlib zoo build {name}`")
    return json.loads(path.read_text())


def verify(name: str) -> list[str]:
    """Files of built model ``name`` that differ from its manifest (changed, added or removed); [] when intact."""
    record = manifest(name)
    return provenance.changed_files(folder(name), record["files"], skip=[MANIFEST])


def build(name: str, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Model ``name``'s folder, built first (with the models it requires) when missing; resumes a partial build."""
    model = get(name)
    for required in model.requires:
        build(required, progress, log)
    final = folder(name)
    if (final / MANIFEST).is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the model built
        if (final / MANIFEST).is_file():
            return final
        partial = final.parent / f".{final.name}.partial"
        out = partial / "model"
        shutil.rmtree(out, ignore_errors=True)  # a model written half before a crash; the checkpoints stay
        log(f"[synthlib] building zoo model {name} ({model.about}) into {final}")
        began = time.perf_counter()
        requires = {r: folder(r) for r in model.requires}
        metrics = builder(model.kind)(model, out, partial / "checkpoints", requires, progress)
        _write_manifest(model, out, metrics, time.perf_counter() - began)
        shutil.rmtree(final, ignore_errors=True)
        out.rename(final)
        shutil.rmtree(partial, ignore_errors=True)
    log(f"[synthlib] zoo model {name} built in {time.perf_counter() - began:.0f} s")
    return final


def resolve(spec: Any, progress: bool = True) -> Any:
    """``zoo:NAME`` -> the folder of zoo model NAME (built when missing); any other spec is returned unchanged."""
    if not is_zoo(spec):
        return spec
    return str(build(spec[len(PREFIX) :], progress))


def is_zoo(spec: object) -> bool:
    """Whether ``spec`` names a zoo model (``zoo:NAME``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def _write_manifest(model: ZooModel, out: Path, metrics: dict[str, Any], seconds: float) -> None:
    modules = code_modules(model)
    record = {
        "name": model.name,
        "kind": model.kind,
        "about": model.about,
        "key": key(model),
        "config": model.config,
        "requires": {r: f"{r}-{key(get(r))}" for r in model.requires},
        "code": {"fingerprint": provenance.code_fingerprint(modules), "modules": modules},
        "git": provenance.git_revision(),
        "versions": provenance.package_versions(),
        "built": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "metrics": metrics,
        "files": provenance.listing(out),
    }
    (out / MANIFEST).write_text(json.dumps(record, indent=1))

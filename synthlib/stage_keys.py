"""What decides whether a stored stage is current, and in words why not.

A stage's key is its parameters (canonical JSON, hashed), the fingerprints of
its input stages, the fingerprint of the code its build ran
(``provenance.code_fingerprint``) and the versions of ``provenance.KEY_PACKAGES``.
``stale_reason`` compares a stored manifest against all four and names the
first difference, so ``RunDir.is_current`` and ``synthlib stages`` say the
same thing. Inside ``planning()`` stages are checked instead of built: how
``synthlib stages`` reads a run's state through the very calls that would
build it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synthlib import provenance

_SHOWN = 4  # changed names listed before "..."


class StageError(RuntimeError):
    """A stage was asked for with bad parameters or missing inputs, or was changed after it was made."""


#: While ``planning()``: every stage asked for, with "current" or why not; stages are checked, never built.
_PLAN: list[tuple[str, str]] | None = None


class PlanStop(Exception):
    """Raised by ``RunDir.stage`` while ``planning()`` at the first stage that would be built."""

    def __init__(self, stage: str, why: str) -> None:
        super().__init__(f"{stage}: {why}")
        self.stage, self.why = stage, why


@contextmanager
def planning() -> Iterator[list[tuple[str, str]]]:
    """Check stages instead of building them: inside, ``RunDir.stage`` records (stage, "current" or why not)
    in the yielded list and raises ``PlanStop`` instead of building a stage that is not current."""
    global _PLAN
    outer, _PLAN = _PLAN, []
    try:
        yield _PLAN
    finally:
        _PLAN = outer


def planned(stage: str, why: str | None) -> None:
    """While ``planning()``: record the stage, and raise ``PlanStop`` when it is not current (``why``)."""
    if _PLAN is not None:
        _PLAN.append((stage, why or "current"))
        if why is not None:
            raise PlanStop(stage, why)


def hash_params(params: Any) -> str:
    """sha256 of the parameters' canonical JSON."""
    return hashlib.sha256(json.dumps(canonical(params, "params"), sort_keys=True).encode()).hexdigest()


def canonical(value: Any, where: str) -> Any:
    """JSON-ready copy: dataclasses to dicts, tuples to lists, paths to strings.

    ``where`` names the stage in the error a value that is not JSON-serialisable raises.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): canonical(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v, where) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StageError(f"stage {where!r}: parameter value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def stale_reason(
    manifest: dict[str, Any] | None,
    params: Any,
    inputs: Mapping[str, str | None],
    versions: Mapping[str, str | None],
) -> str | None:
    """Why a stored stage is not current, or None when it is.

    ``manifest``: the stage's (None: it was never completed); ``params``: the canonical
    parameters asked for now; ``inputs``: each input stage's fingerprint now (None:
    missing); ``versions``: ``provenance.package_versions()``.
    """
    if manifest is None:
        return "missing"
    if "code" not in manifest:
        return "made by a version that did not record its code"
    if manifest["params_hash"] != hash_params(params):
        changed = changed_keys(manifest.get("params", {}), params)
        return f"parameters changed ({_few(changed) or 'their types'})"
    missing = [name for name, fp in inputs.items() if fp is None]
    if missing:
        return f"input stage {_few(missing)} missing"
    if set(manifest["inputs"]) != set(inputs):
        return f"input stages changed (was {_few(sorted(manifest['inputs']))}, now {_few(sorted(inputs))})"
    remade = [name for name, fp in inputs.items() if manifest["inputs"][name] != fp]
    if remade:
        return f"input stage {_few(remade)} made again since"
    code = manifest["code"]
    if code["fingerprint"] != provenance.code_fingerprint(code["modules"]):
        changed = [m for m, digest in code.get("files", {}).items() if provenance.code_fingerprint([m]) != digest]
        if changed:
            return f"its code changed ({_few(changed)})"
        return f"its code changed (one of {len(code['modules'])} modules: {_few(code['modules'])})"
    packages = [f"{p} {manifest['packages'].get(p)} -> {versions[p]}" for p in provenance.KEY_PACKAGES if manifest["packages"].get(p) != versions[p]]
    if packages:
        return f"packages changed ({', '.join(packages)})"
    return None


def code_record(modules: list[str]) -> dict[str, Any]:
    """A manifest's ``code``: the modules' fingerprint (the key) and each module's own (to name what changed)."""
    files = {m: provenance.code_fingerprint([m]) for m in modules}
    return {"fingerprint": provenance.code_fingerprint(modules), "modules": modules, "files": files}


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the parameters that differ between two canonical parameter dicts."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "(all)"]
    out = []
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}.{key}" if prefix else key
        if key not in old or key not in new:
            out.append(name)
        elif old[key] != new[key]:
            out += changed_keys(old[key], new[key], name)
    return out


def _few(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")

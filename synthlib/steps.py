"""Steps: one notebook's stages built without the notebook (``synthlib stage NAME``).

Under ``accelerate launch --num_processes N -m synthlib stage NAME`` every
process makes the same calls and the stages share the work out, which is how
the paper profile trains on several GPUs; ``synthlib reproduce`` with the same
settings then finds the stages current. ``resolve`` turns the command line's
settings into a profile, as ``reproduce`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthlib import graph, profiles, runs

#: Steps ``synthlib stage`` builds, with the notebook whose stages they are (declared in ``synthlib.graph``).
STEPS: dict[str, str] = {name: step.notebook for name, step in graph.STEPS.items()}


def run_step(
    name: str,
    profile: str | None = None,
    run: str | None = None,
    runs_dir: Path | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    roots: dict[str, str] | None = None,
) -> int:
    """Build step ``name``'s stages, after every step it needs, with the calls its notebook makes (tables and figures aside).

    Settings resolve as in ``reproduce``, so the stages are the ones ``reproduce``
    would make and later finds current. Under ``accelerate launch`` every process
    calls this; the stages share the work out (``synthlib.runs``).
    """
    if name not in STEPS:
        raise ValueError(f"no step {name!r}; valid: {', '.join(STEPS)}")
    cfg, source, overrides = resolve(profile, config, overrides, roots)
    run_dir = runs.open(run or (Path(config).stem if config is not None else cfg.name), runs_dir)
    graph.build(run_dir, cfg, name)
    print(f"{name}: the stages of {STEPS[name]} are current in {run_dir.path}", flush=True)
    return 0


def resolve(
    profile: str | None, config: str | Path | None, overrides: dict[str, Any] | None, roots: dict[str, str] | None
) -> tuple[profiles.Profile, str | None, dict[str, Any]]:
    """(profile, what the notebooks are given as ``profile``, their ``overrides``), every setting checked."""
    if config is not None and profile is not None:
        raise ValueError("give --profile or --config, not both: a user profile names its base profile (base: paper)")
    if config is not None and not Path(config).expanduser().is_file():
        raise FileNotFoundError(f"--config {config}: no such file (expected a YAML user profile: base:, roots:, fields)")
    source = str(Path(config).expanduser().resolve()) if config is not None else profile
    overrides = dict(overrides or {})
    if roots:
        overrides["roots"] = {**overrides.get("roots", {}), **roots}
    return profiles.load(source, overrides), source, overrides

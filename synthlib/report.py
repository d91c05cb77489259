"""Tables and figures with provenance: every file names the run, profile and revision it came from.

Stages write into ``runs/<name>/tables/``; ``publish`` copies a run's tables
into the repository's ``results/`` (``synthlib results --run NAME``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from synthlib.profiles import Profile
from synthlib.runs import RunDir, git_revision

TABLES = "tables"


def provenance(run_dir: RunDir, cfg: Profile) -> str:
    """One line naming the run directory, profile and git revision."""
    git = git_revision()
    rev = (git["revision"] or "unknown")[:12] + (" (uncommitted changes)" if git["dirty"] else "")
    return f"run `{run_dir.path.name}` · profile `{cfg.name}` · git {rev}"


def write_table(df: pd.DataFrame, run_dir: RunDir, cfg: Profile, name: str, caption: str, digits: int = 1) -> Path:
    """Write ``<name>.csv`` and ``<name>.md`` (caption, provenance, table) under the run's tables folder."""
    folder = run_dir.path / TABLES
    folder.mkdir(exist_ok=True)
    df.to_csv(folder / f"{name}.csv", float_format=f"%.{digits + 2}f")
    text = f"# {caption}\n\n{provenance(run_dir, cfg)}\n\n{df.round(digits).to_markdown()}\n"
    (folder / f"{name}.md").write_text(text)
    return folder / f"{name}.md"


def write_figure(fig: plt.Figure, run_dir: RunDir, name: str, dpi: int = 120) -> Path:
    """Save a figure as ``<name>.png`` under the run's tables folder."""
    folder = run_dir.path / TABLES
    folder.mkdir(exist_ok=True)
    fig.savefig(folder / f"{name}.png", dpi=dpi, bbox_inches="tight")
    return folder / f"{name}.png"


def publish(run_dir: RunDir, results: Path) -> list[Path]:
    """Copy the run's tables and figures into ``results`` (replacing files of the same name)."""
    source = run_dir.path / TABLES
    if not source.is_dir():
        raise FileNotFoundError(f"run {run_dir.name!r} has no tables yet ({source}); run the notebooks first")
    results.mkdir(parents=True, exist_ok=True)
    copied = []
    for file in sorted(source.iterdir()):
        shutil.copy2(file, results / file.name)
        copied.append(results / file.name)
    return copied

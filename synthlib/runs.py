"""Run directories and cached, atomic, resumable stages.

Everything a run makes lives under ``runs/<name>/``. A *stage* is one named
output folder in it (``data/real``, ``pseudo_labels``, ...), made by a build
function::

    run_dir = runs.open("default")
    path = run_dir.stage("data/real", params={"n": 500}, inputs=(), build=write_it)

``build(ctx)`` writes into ``ctx.out``, a temporary folder; on success the
folder gets a ``manifest.json`` and is renamed into place in one step, so a
killed process never leaves a half-written stage visible. A stage whose
parameters and input stages are unchanged is skipped. A stage that re-runs
gets a new fingerprint, so every stage that used it as an input re-runs when
next asked. Long builds keep checkpoints in ``ctx.checkpoints``, which
survives a crash and is removed when the stage completes.

Under ``accelerate launch`` every process calls ``stage`` with the same
arguments: the processes share one temporary folder (made by the main
process), all of them run ``build`` (a training loop needs every process),
and once all have finished the main process writes the manifest and swaps
the folder in; no process returns before the stage exists. A build writes
the files every process would write (weights after a training loop) on the
main process only, ``if ctx.is_main:``. A build with no work to share (writing
a dataset, an evaluation) may return at once on the other processes, as long
as it makes no other stage itself (that stage would wait for them);
``ctx.process_index`` and ``ctx.num_processes`` let a build share out work.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthlib import provenance, stage_keys
from synthlib.provenance import git_revision, package_versions  # noqa: F401 - public here since runs came first
from synthlib.stage_keys import PlanStop, StageError, hash_params, planning, stale_reason  # noqa: F401 - public here
from synthlib.stage_keys import canonical as _canonical

if TYPE_CHECKING:
    from accelerate import PartialState

RUNS_ENV_VAR = "SYNTHLIB_RUNS_DIR"
MANIFEST = "manifest.json"
LOCK = ".lock"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")


#: (run folder, stage) of every stage this process made, reused or read: what its tables were computed from.
_USED: dict[tuple[str, str], None] = {}


def used_stages() -> list[tuple[Path, str]]:
    """The stages this process has made, found current or read, in first-use order, as (run folder, stage name)."""
    return [(Path(run), name) for run, name in _USED]


@dataclass
class StageContext:
    """What a build function gets: where to write, where to checkpoint, what to record."""

    name: str
    params: dict[str, Any]
    out: Path
    checkpoints: Path
    run_dir: RunDir
    #: Anything JSON-serialisable the build wants in the manifest (metrics, counts); the main process's goes in.
    info: dict[str, Any] = field(default_factory=dict)
    #: This process among those ``accelerate launch`` started (0 of 1 without a launcher).
    process_index: int = 0
    num_processes: int = 1

    @property
    def is_main(self) -> bool:
        """True on the one process that writes the files every process would write (always, without a launcher)."""
        return self.process_index == 0

    def wait_for_everyone(self) -> None:
        """Wait until every process gets here (returns at once with one process)."""
        processes().wait_for_everyone()


def default_root() -> Path:
    """``$SYNTHLIB_RUNS_DIR``, else ``runs/`` in the enclosing project checkout, else ``./runs``."""
    if os.environ.get(RUNS_ENV_VAR):
        return Path(os.environ[RUNS_ENV_VAR])
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and 'name = "synthlib"' in pyproject.read_text(errors="ignore"):
            return folder / "runs"
    return here / "runs"


def processes() -> PartialState:
    """accelerate's ``PartialState``: this process among those ``accelerate launch`` started (alone without one).

    Honours ``ACCELERATE_USE_CPU`` as ``Accelerator`` does, so that stages and the
    training loops inside them agree on the processes whichever asks first. On CPUs
    ``accelerate launch --cpu`` starts several processes only through mpirun;
    ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N`` starts them with torchrun.
    """
    from accelerate import PartialState  # imported here: reading a run needs neither accelerate nor torch
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def open(name: str = "default", root: str | Path | None = None) -> RunDir:  # noqa: A001 - the public name is runs.open
    """Open (creating if needed) the run directory ``<root>/<name>``."""
    if not _NAME.match(name) or "/" in name:
        raise StageError(f"run name {name!r} must be one folder name of letters, digits, '_', '.', '-'")
    return RunDir(Path(root) if root is not None else default_root(), name)


class RunDir:
    """One run's folder: its stages, their manifests and datasets."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.path = Path(root) / name
        self.path.mkdir(parents=True, exist_ok=True)
        self._clean_stale()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def stage_path(self, name: str) -> Path:
        """Where a stage's output lives (it may not exist yet); asking for a completed one counts as using it."""
        _check_name(name)
        path = self.path / name
        if (path / MANIFEST).is_file():
            _USED.setdefault((str(self.path), name), None)
        return path

    def manifest(self, name: str) -> dict[str, Any] | None:
        """The stage's manifest, or None when the stage has not completed."""
        file = self.stage_path(name) / MANIFEST  # a completed stage's is recorded as used
        return json.loads(file.read_text()) if file.is_file() else None

    def stages(self, pattern: str | None = None) -> list[str]:
        """Names of the completed stages: up to three folders deep, or those matching the glob ``pattern``.

        ``pattern`` reaches deeper stages, e.g. ``"eval/models/*/*/*"`` for every model evaluation.
        """
        # Stage names are a few folders deep; rglob would walk every dataset file.
        patterns = [pattern] if pattern else ["/".join(["*"] * depth) for depth in range(1, 4)]
        files = [f for p in patterns for f in self.path.glob(f"{p}/{MANIFEST}")]
        found = [f.parent.relative_to(self.path).as_posix() for f in files]
        return sorted(n for n in found if not n.startswith("."))

    def is_current(self, name: str, params: Any, inputs: Iterable[str] = ()) -> bool:
        """True when the stage exists and was made from the same parameters, input stages, code and packages.

        The code is the files its manifest lists (``provenance.code_modules``), hashed again now;
        the packages are ``provenance.KEY_PACKAGES``. A current stage whose files were
        changed by hand raises ``StageError`` naming them.
        """
        return self.stale_reason(name, params, inputs) is None

    def stale_reason(self, name: str, params: Any, inputs: Iterable[str] = ()) -> str | None:
        """Why the stage is not current (``"missing"``, ``"parameters changed (seg_steps)"``, ...), None when it is."""
        fingerprints = {}
        for dep in inputs:
            manifest = self.manifest(dep)
            fingerprints[dep] = None if manifest is None else manifest["fingerprint"]
        manifest = self.manifest(name)
        why = stale_reason(manifest, _canonical(params, name), fingerprints, package_versions())
        if why is None:
            self.verify(name, manifest)
        return why

    def require(self, name: str, made_by: str) -> Path:
        """The path of a completed stage this one reads; ``StageError`` saying what makes it when it is missing.

        Stages never build what they read (``synthlib.graph`` decides what runs when);
        ``made_by`` names the step or call that does.
        """
        if self.manifest(name) is None:
            raise StageError(f"run {self.name!r} has no completed stage {name!r}: {made_by} makes it (`synthlib stage` builds a step and what it needs)")
        return self.stage_path(name)

    def verify(self, name: str, manifest: dict[str, Any] | None = None) -> None:
        """Raise ``StageError`` when a completed stage's files differ from those its manifest records."""
        manifest = manifest or self.manifest(name)
        if manifest is None or "files" not in manifest:
            return
        changed = provenance.changed_files(self.stage_path(name), manifest["files"], skip=(MANIFEST,))
        if changed:
            shown = "; ".join(changed[:5]) + (f"; and {len(changed) - 5} more" if len(changed) > 5 else "")
            raise StageError(
                f"stage {name!r} of run {self.name!r} was changed after it was made ({shown}) in "
                f"{self.stage_path(name)}: its results can no longer be trusted; delete that folder to make it again"
            )

    def stage(
        self,
        name: str,
        params: Any,
        build: Callable[[StageContext], Any],
        inputs: Iterable[str] = (),
        force: bool = False,
    ) -> Path:
        """Make stage ``name`` with ``build`` unless it is already current; return its path.

        ``params`` (a dict or dataclass, JSON-serialisable) and the manifests of the
        ``inputs`` stages decide whether the stored stage is current. Under
        ``accelerate launch`` every process calls it, and every process runs ``build``.
        """
        inputs = tuple(inputs)
        final = self.stage_path(name)
        canonical = _canonical(params, name)
        params_hash = hash_params(canonical)
        input_fps = self._input_fingerprints(name, inputs)
        modules = provenance.code_modules(build)
        state = processes()
        _USED.setdefault((str(self.path), name), None)
        why = "forced" if force else self.stale_reason(name, canonical, inputs)
        stage_keys.planned(name, why)  # while planning, a stage that is not current stops here
        if why is None:
            if state.is_main_process:
                print(f"[synthlib] {name}: up to date, skipped ({final})")
            return final
        checkpoints = self.path / ".work" / name / params_hash[:16]
        checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = self._new_tmp(name, state)
        ctx = StageContext(
            name=name, params=canonical, out=tmp, checkpoints=checkpoints, run_dir=self,
            process_index=state.process_index, num_processes=state.num_processes,
        )
        started, t0 = _now(), time.perf_counter()
        try:
            build(ctx)
        except BaseException:
            if state.is_main_process:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        state.wait_for_everyone()  # every process has written its part
        if state.is_main_process:
            manifest = {
                "stage": name,
                "params": canonical,
                "params_hash": params_hash,
                "inputs": input_fps,
                "fingerprint": hashlib.sha256(f"{params_hash}{input_fps}{uuid.uuid4()}".encode()).hexdigest(),
                "code": stage_keys.code_record(modules),
                "git": git_revision(),
                "packages": package_versions(),
                "started": started,
                "finished": _now(),
                "seconds": round(time.perf_counter() - t0, 3),
                "info": _canonical(ctx.info, name),
                "files": provenance.listing(tmp, skip=(MANIFEST,)),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            self._swap_in(tmp, final)
            shutil.rmtree(checkpoints.parent, ignore_errors=True)
            print(f"[synthlib] {name}: done in {manifest['seconds']:.1f} s ({final})")
        state.wait_for_everyone()  # no process goes on before the stage exists
        return final

    @contextmanager
    def lock(self, holder: str) -> Iterator[None]:
        """Hold this run directory for one process (``reproduce``); another gets ``StageError`` naming the holder.

        An advisory ``flock`` on ``<run>/.lock``: the system drops it when the process
        ends, however it ends, so a killed run never leaves the folder locked.
        """
        import fcntl

        handle = (self.path / LOCK).open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            other = handle.read().strip() or "another process"
            handle.close()
            raise StageError(
                f"run directory {self.path} is in use by {other}; wait for it to finish, or give this one another --run"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{holder} (pid {os.getpid()}, since {_now()})\n")
            handle.flush()
            yield
        finally:
            handle.close()

    def link_from(self, source: RunDir, stages: Iterable[str], hint: str = "") -> None:
        """Make each of ``source``'s ``stages`` a symbolic link here (stages already here stay).

        Benchmarks vary a few stages on top of another run's without writing into it:
        a linked stage whose parameters no longer match is rebuilt here, replacing the link.
        """
        for stage in dict.fromkeys(stages):
            if source.manifest(stage) is None:
                raise StageError(f"run {source.name!r} lacks stage {stage!r}{hint}")
            link = self.stage_path(stage)
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(source.stage_path(stage).resolve(), link)

    def dataset(self, name: str, split: str, **options: Any):
        """Open a dataset stage (written in the Cityscapes layout) with the cityscapes adapter."""
        from synthlib.datasets import DatasetError, open_dataset

        path = self.stage_path(name)
        if self.manifest(name) is None:
            done = ", ".join(self.stages()) or "none"
            raise DatasetError(f"run {self.name!r} has no completed dataset stage {name!r} (completed: {done})")
        self.verify(name)
        return open_dataset("cityscapes", path, split, **options)

    def _input_fingerprints(self, name: str, inputs: Iterable[str]) -> dict[str, str]:
        out = {}
        for dep in inputs:
            manifest = self.manifest(dep)
            if manifest is None:
                raise StageError(f"stage {name!r} needs stage {dep!r}, which run {self.name!r} has not completed")
            out[dep] = manifest["fingerprint"]
        return out

    def _new_tmp(self, name: str, state: PartialState) -> Path:
        """A new temporary folder for stage ``name``: one for all processes, made by the main one.

        Its name holds the main process's pid, so ``_clean_stale`` removes it only once that process is gone.
        """
        from accelerate.utils import broadcast_object_list

        folder = [f"{name.replace('/', '__')}.{os.getpid()}.{uuid.uuid4().hex[:8]}"]
        broadcast_object_list(folder)  # every process takes the main process's name (a no-op when alone)
        tmp = self.path / ".tmp" / folder[0]
        if state.is_main_process:
            tmp.mkdir(parents=True)
        state.wait_for_everyone()
        return tmp

    def _swap_in(self, tmp: Path, final: Path) -> None:
        # Two renames: the old stage goes to .trash, the new one takes its place. A
        # kill between them leaves no stage at all (it re-runs), never a mixed one.
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            trash = self.path / ".trash" / f"{tmp.name}"
            trash.parent.mkdir(exist_ok=True)
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)

    def _clean_stale(self) -> None:
        """Remove temporary folders of processes that died mid-stage."""
        for folder in (self.path / ".tmp", self.path / ".trash"):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                pid = entry.name.rsplit(".", 2)[-2] if entry.name.count(".") >= 2 else ""
                if not (pid.isdigit() and _alive(int(pid))):
                    shutil.rmtree(entry, ignore_errors=True)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise StageError(f"stage name {name!r}: use folder names of letters, digits, '_', '.', '-' joined by '/'")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

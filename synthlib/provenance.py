"""What code made a stage, and what a finished stage holds: the two halves of a stage's key that are not its parameters.

**Code.** A stage's key includes a fingerprint of the source it ran: the file
that defines its build function and every synthlib module that file imports,
directly or through others, including the imports inside functions and the
packages' ``__init__`` files. Each file counts by its syntax tree without
docstrings, so comments, docstrings and formatting do not re-run stages, while
any change to what the code does does. The manifest keeps the list of files,
so whether a stored stage is still current is decided by hashing the same
files again: a new import can only appear by changing a file on that list.

**Contents.** A finished stage records every file it holds with its size and
sha256; a stage whose files were changed, added or removed by hand afterwards
is refused with the file named, instead of being trusted or silently rebuilt.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import platform
import subprocess
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import synthlib

PACKAGE_DIR = Path(synthlib.__file__).resolve().parent
#: The folder module paths are relative to: the checkout (or site-packages) holding ``synthlib/``.
BASE_DIR = PACKAGE_DIR.parent
#: Packages whose versions are part of every stage's key: they decide what the same code computes.
KEY_PACKAGES = ("torch", "diffusers", "transformers", "accelerate")
#: Packages whose versions every manifest records.
_PACKAGES = ("synthlib", *KEY_PACKAGES, "numpy", "pillow", "pandas")
DIGEST_CHARS = 16
_HASH_CHUNK = 2**20


def code_modules(build: Callable[..., Any]) -> list[str]:
    """The source files a build function runs: its own file and the synthlib modules it reaches by imports.

    Paths are relative to ``BASE_DIR`` (``synthlib/mcoc.py``, ``benchmarks/x.py``).
    A build whose source file cannot be found (defined in a notebook cell) counts
    on every synthlib module.
    """
    file = _source_file(build)
    if file is None:
        return sorted(_relative(p) for p in PACKAGE_DIR.rglob("*.py"))
    seen: set[Path] = set()
    todo = [file]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_imported_files(path))
    return sorted(_relative(p) for p in seen)


def code_fingerprint(modules: Iterable[str]) -> str:
    """A short digest of the given source files' code (docstrings, comments and layout left out).

    A file that no longer exists counts as changed.
    """
    digest = hashlib.sha256()
    for rel in sorted(modules):
        path = BASE_DIR / rel
        digest.update(f"{rel}\0{_code_digest(path, *_stat(path))}\n".encode())
    return digest.hexdigest()[:DIGEST_CHARS]


def loaded_modules() -> list[str]:
    """The synthlib source files this process has imported: whatever computed a table is among them."""
    import sys

    files = {getattr(m, "__file__", None) for name, m in list(sys.modules.items()) if name.split(".")[0] == "synthlib"}
    return sorted(_relative(Path(f).resolve()) for f in files if f and f.endswith(".py"))


def listing(folder: Path, skip: Iterable[str] = ()) -> dict[str, list[Any]]:
    """Every file under ``folder`` (symbolic links followed) as ``relative path -> [size, mtime_ns, sha256]``."""
    skip = set(skip)
    out = {}
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if rel in skip:
                continue
            st = path.stat()
            out[rel] = [st.st_size, st.st_mtime_ns, file_sha256(path)]
    return out


def changed_files(folder: Path, recorded: dict[str, list[Any]], skip: Iterable[str] = ()) -> list[str]:
    """What differs between ``folder`` and its recorded ``listing``: one line per file, empty when nothing.

    Names, sizes and modification times are compared; a file whose time alone
    changed (a copy that did not keep it) is hashed and passes if its contents match.
    """
    skip = set(skip)
    present = {}
    for root, _, files in os.walk(folder, followlinks=True):
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            if rel not in skip:
                present[rel] = path
    problems = [f"{rel} was removed" for rel in sorted(set(recorded) - set(present))]
    problems += [f"{rel} was added" for rel in sorted(set(present) - set(recorded))]
    for rel in sorted(set(recorded) & set(present)):
        size, mtime, sha = recorded[rel]
        st = present[rel].stat()
        if st.st_size != size:
            problems.append(f"{rel} changed size ({size} -> {st.st_size} bytes)")
        elif st.st_mtime_ns != mtime and file_sha256(present[rel]) != sha:
            problems.append(f"{rel} changed contents")
    return problems


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _source_file(build: Callable[..., Any]) -> Path | None:
    while isinstance(build, functools.partial):
        build = build.func
    target = getattr(build, "__func__", build)
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)):
        target = type(build)  # a callable object: its class's file
    try:
        file = inspect.getsourcefile(target)
    except TypeError:
        return None
    if file is None or not Path(file).is_file():
        return None
    return Path(file).resolve()


def _relative(path: Path) -> str:
    try:
        return path.relative_to(BASE_DIR).as_posix()
    except ValueError:
        return path.as_posix()  # a script outside the checkout: its absolute path


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns


@functools.cache
def _code_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a Python file's syntax tree without docstrings; memoised by size and modification time."""
    if size < 0:
        return "missing"
    tree = _parse(path)
    if tree is None:
        return file_sha256(path)  # not Python we can parse: its bytes
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):  # fmt: skip
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return None


@functools.cache
def _module_file(name: str) -> Path | None:
    """The source file of synthlib module ``name`` (``a.b`` -> a/b.py or a/b/__init__.py), None if there is none."""
    parts = name.split(".")
    if parts[0] != "synthlib":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _imported_files(path: Path) -> list[Path]:
    """The synthlib files importing ``path`` runs, parents' ``__init__`` included (any depth in the file)."""
    tree = _parse(path)
    if tree is None:
        return []
    package = _package_of(path)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            if base is None:
                continue
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # a submodule imported by name
    files = []
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            file = _module_file(".".join(parts[:depth]))
            if file is not None:
                files.append(file)
    return files


def _package_of(path: Path) -> str | None:
    try:
        rel = path.relative_to(PACKAGE_DIR)
    except ValueError:
        return None
    parts = ["synthlib", *rel.parent.parts]
    return ".".join(parts)


def _absolute(module: str | None, level: int, package: str | None) -> str | None:
    if level == 0:
        return module
    if package is None:
        return None
    parts = package.split(".")
    if level > 1:
        parts = parts[: -(level - 1)]
    return ".".join([*parts, module] if module else parts)


@functools.cache
def git_revision() -> dict[str, Any]:
    """The git revision of the synthlib source tree and whether it has uncommitted changes.

    Only changes that can alter results count as dirty: the package's own files and the
    notebooks beside it, not the README or tests.
    """
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return {"revision": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", "../notebooks"], cwd=here, capture_output=True, text=True, timeout=10
        )
        return {"revision": rev.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}


@functools.cache
def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages that decide a run's results."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out

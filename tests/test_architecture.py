"""docs/architecture.md's rules hold on every import of synthlib, and it names every module."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "synthlib"
DOC = ROOT / "docs" / "architecture.md"


def _layers() -> dict[str, int]:
    """Top-level module or package name -> its layer (1 foundation ... 4 orchestration), from the document."""
    out, layer = {}, 0
    for line in DOC.read_text().splitlines():
        if m := re.match(r"## (\d)\.", line):
            layer = int(m.group(1))
        elif layer and line.startswith("|") and not line.startswith("|--"):
            cell = re.sub(r"\(.*?\)", "", line.split("|")[1 if layer != 3 else 2])  # "(...)" names a package's parts
            for name in re.findall(r"`([\w/]+)`", cell):
                out[name.rstrip("/")] = layer
    return out


def _stage_order() -> dict[str, int]:
    out = {}
    for line in DOC.read_text().splitlines():
        if m := re.match(r"\| (\d\d)(?:–\d\d)? \| (.+?) \|", line):
            for name in re.findall(r"`([\w/]+)`", m.group(2).split("(")[0]):
                out[name.rstrip("/")] = int(m.group(1))
    return out


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _imports() -> dict[str, set[str]]:
    """Top-level name of each synthlib file -> the top-level synthlib names it imports (anywhere in the file)."""
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthlib"):
                names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "synthlib" else [])
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("synthlib")]
            out.setdefault(own, set()).update(t for t in map(_top, names) if t and t != own)
    return out


def test_the_document_names_every_module_and_package():
    tops = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()}
    tops -= {"__init__"}
    assert sorted(tops - set(_layers())) == []
    assert sorted(set(_layers()) - tops) == []  # and nothing that is gone


def test_no_module_imports_from_a_layer_below_it():
    layers = _layers()
    wrong = [f"{m} (layer {layers[m]}) imports {t} (layer {layers[t]})"
             for m, targets in _imports().items() for t in targets if layers[t] > layers[m]]  # fmt: skip
    assert wrong == []


def test_no_stage_imports_a_later_stage():
    order = _stage_order()
    assert order["data"] == 0 and order["segmentation"] == 6 and order["diffusion"] == 2
    wrong = [f"{m} (stage {order[m]:02}) imports {t} (stage {order[t]:02})"
             for m, targets in _imports().items() if m in order for t in targets if t in order and order[t] > order[m]]  # fmt: skip
    assert wrong == []


def test_no_file_over_400_lines_and_no_function_over_80():
    """One concern per module keeps each file readable in one sitting; the limits make that checkable."""
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 400:
            long_files.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long_files == [] and long_functions == []

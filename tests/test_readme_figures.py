"""Every figure the README's results sections quote is in a committed file under results/, which the README names."""

import re
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: The README's sections that report measurements, each up to the next second-level heading.
RESULT_SECTIONS = ("## Dataset tailoring", "## minicity's domain gap", "## Results of the default run")
#: A measured figure: a decimal number (settings such as "600 steps" or "seed 0" are whole numbers).
FIGURE = re.compile(r"(?<![\w.`/-])[-+−]?\d+\.\d+(?![\w`/]|\.\d)")
NAMED = re.compile(r"results/([\w.-]+\.(?:md|csv))")


def _sections(text: str) -> str:
    out = []
    for heading in RESULT_SECTIONS:
        start = text.index(heading)
        end = text.find("\n## ", start + len(heading))
        out.append(text[start : end if end >= 0 else None])
    return "\n".join(out)


def _quoted(text: str) -> list[str]:
    # code spans hold commands and settings, not measurements
    prose = re.sub(r"`[^`]*`", "", text)
    return [m.group().replace("−", "-").lstrip("+") for m in FIGURE.finditer(prose)]


def _blocks(text: str) -> list[tuple[list[str], list[str]]]:
    """(results files, figures) per paragraph or table: the files it names, else the last ones named before it."""
    out, files = [], []
    for block in re.split(r"\n\s*\n", text):
        named = NAMED.findall(block)
        files = sorted(set(named)) or files
        out.append((files, _quoted(block)))
    return out


def _published(*files: Path) -> set[str]:
    """Every number of the given tables, as written and rounded to one and two decimals."""
    numbers: set[str] = set()
    for file in files:
        for token in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", file.read_text()):
            value = float(token)
            numbers |= {token, f"{value:.1f}", f"{value:.2f}", f"{abs(value):.1f}", f"{abs(value):.2f}"}
    return numbers


def test_every_figure_of_the_readme_results_is_in_the_committed_result_it_names():
    blocks = _blocks(_sections((ROOT / "README.md").read_text()))
    assert sum(len(figures) for _, figures in blocks) > 20  # the sections do quote results
    missing = []
    for files, figures in blocks:
        published = _published(*(ROOT / "results" / f for f in files if (ROOT / "results" / f).is_file()))
        missing += [f"{q} (looked in {', '.join(files) or 'no file named yet'})" for q in figures if q not in published]
    assert missing == [], "README figures not in the results file named beside them:\n" + "\n".join(missing)


def test_the_results_files_the_readme_names_exist_and_are_tables():
    text = (ROOT / "README.md").read_text()
    named = sorted(set(re.findall(r"results/([\w.-]+\.(?:md|csv|png))", text)))
    assert named, "the README names no results file"
    for name in named:
        file = ROOT / "results" / name
        assert file.is_file(), f"README names results/{name}, which is not committed"
        if file.suffix == ".csv":
            assert not pd.read_csv(file).empty


def test_the_check_finds_the_figures_it_should_and_flags_one_that_is_not_published(tmp_path):
    (tmp_path / "t.md").write_text("| a | 18.84 |\n")
    (tmp_path / "t.csv").write_text("row,x\nsource,20.149\n")
    published = _published(tmp_path / "t.md", tmp_path / "t.csv")
    assert {"18.8", "20.1", "20.15"} <= published and "18.9" not in published
    prose = "source only 18.8, ours +20.1 and −0.1; `--steps 2000` and 19.5.\n"
    assert _quoted(prose) == ["18.8", "20.1", "-0.1", "19.5"]
    assert [q for q in _quoted(prose) if q not in published] == ["-0.1", "19.5"]
    readme = "A (`results/t.md`): 18.8.\n\n| x | 20.1 |\n\nB (`results/u.csv`): 20.1.\n"
    assert _blocks(readme) == [(["t.md"], ["18.8"]), (["t.md"], ["20.1"]), (["u.csv"], ["20.1"])]

"""The project's front door stays consistent: README, CI script, conda file, notebooks."""

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_block(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    (command,) = _readme_block("Tests")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci[-1] == command
    assert "pip install --quiet torch==2.13.0" in " ".join(ci)


def test_readme_setup_installs_torch_first_then_the_package():
    lines = [line.split("#")[0].strip() for line in _readme_block("Set-up")]
    assert lines == ["pip install torch==2.13.0", 'pip install -e ".[lab,dev]"']


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    env = (ROOT / "environment.yml").read_text()
    python = re.search(r"-\s*python=(\S+)", env).group(1)
    assert pyproject["project"]["requires-python"] == f">={python}"
    extras = re.search(r'-e\s+"\.\[([a-z,]+)\]"', env).group(1).split(",")
    assert set(extras) <= set(pyproject["project"]["optional-dependencies"])
    assert set(extras) == {"lab", "dev"}


def test_pyproject_pins_nothing_that_would_replace_an_installed_torch():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in deps
    assert not any(d.startswith("torchvision") for d in deps)


@pytest.mark.parametrize("notebook", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_thin_and_committed_without_outputs(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    for c in code:
        for line in "".join(c["source"]).splitlines():
            assert not line.lstrip().startswith(("def ", "class ")), f"{notebook.name} defines {line.strip()}"
    assert notebook.name in (ROOT / "README.md").read_text()


def test_the_design_the_code_cites_is_in_the_project():
    design = (ROOT / "docs" / "design.md").read_text()
    sections = set(re.findall(r"^## (§\d+)", design, re.M))
    cited = set()
    for path in [ROOT / "README.md", *(ROOT / "synthlib").rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "benchmarks").glob("*.py")]:
        text = path.read_text()
        assert not re.search(r"\bDESIGN\b", text), f"{path.name} cites a DESIGN file that is not in the project"
        cited |= set(re.findall(r"docs/design\.md (§\d+)", text))
    assert cited and cited <= sections, f"cited sections missing from docs/design.md: {sorted(cited - sections)}"
    for term in ("MCOC", "Rectification", "Erosion", "ADVENT", "ROAD-Net", "Self-training", "minicity"):
        assert f"**{term}" in design or f"## §4 {term}" in design, f"docs/design.md does not define {term}"

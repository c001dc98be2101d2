"""Notebooks are jupytext py:percent sources: parseable, on the bedrock-lab kernel, parameterized where needed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
PARAMETERIZED = {"cell.py", "analysis.py"}


def test_the_expected_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert names >= PARAMETERIZED, f"missing notebooks: {PARAMETERIZED - names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_py_percent_on_the_project_kernel(path: Path) -> None:
    text = path.read_text()
    assert "format_name: percent" in text, f"{path.name} is not a jupytext py:percent notebook"
    nb = jupytext.reads(text, fmt="py:percent")
    assert nb.metadata["kernelspec"]["name"] == "bedrock-lab"
    assert len(nb.cells) >= 2
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if path.name in PARAMETERIZED:
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


def test_no_ipynb_is_tracked_next_to_the_sources() -> None:
    proc = subprocess.run(["git", "ls-files", "notebooks"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [f for f in proc.stdout.split() if f.endswith(".ipynb")]

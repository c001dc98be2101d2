"""The two dependency lists (pyproject for pip, environment.yml for conda) must not drift apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _norm(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    assert m, requirement
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    spec = ",".join(sorted(s.strip() for s in m.group(2).split(",") if s.strip()))
    return name, spec


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_deps = dict(_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_deps = dict(
        _norm(d) for d in env["dependencies"] if isinstance(d, str) and not d.startswith(("python", "pip"))
    )
    assert conda_deps == pip_deps, {
        "only in pyproject": sorted(set(pip_deps.items()) - set(conda_deps.items())),
        "only in environment.yml": sorted(set(conda_deps.items()) - set(pip_deps.items())),
    }


def test_python_floor_is_the_same() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert project["requires-python"] == ">=3.11"
    assert "python>=3.11" in env["dependencies"]


def test_console_script_points_at_cli_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["bedrock-lab"] == "bedrock_lab.cli:main"


def test_readme_documents_every_runtime_dependency() -> None:
    """README's dependency section says why each dependency is there."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    readme = (ROOT / "README.md").read_text().lower()
    section = readme.split("## dependencies", 1)[1].split("\n## ", 1)[0]
    missing = [n for n, _ in map(_norm, project["dependencies"]) if f"`{n}`" not in section]
    assert not missing, f"README 'Dependencies' section does not explain: {missing}"

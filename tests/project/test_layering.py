"""Data flows one way: params -> plan -> engine -> records -> stats -> charts -> report.

Each top-level part of the package may import only the parts listed here (docs/architecture.md has the same
table). A new module must be added here, which forces a decision about where it sits.

The check sees every import form: ``import bedrock_lab.x``, ``from bedrock_lab.x import y``, relative imports at
any depth, ``from bedrock_lab import name`` (a submodule, or a lazy public name resolved through
``bedrock_lab._LAZY`` to the module that really provides it) and ``importlib.import_module("bedrock_lab.x")``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "bedrock_lab"
BASE = {"errors", "_version", "_files", "_notebooks", "_net", "_money", "paths", "tokens", "_confseq"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "_files": set(),
    "_notebooks": {"_files"},
    "_net": {"errors"},
    "_money": set(),
    "paths": set(),
    "tokens": set(),
    "_confseq": {"errors"},
    "prompts": {"errors"},
    "token_estimate": BASE | {"prompts"},
    "catalog": BASE,
    "cellspec": BASE | {"catalog"},
    "emulator": BASE | {"catalog"},
    "records": BASE,
    "store": BASE | {"records"},
    "params": BASE | {"catalog", "cellspec", "prompts", "token_estimate"},
    "plan": BASE | {"params", "catalog", "cellspec"},
    "engines": BASE | {"catalog", "cellspec", "records", "emulator", "prompts", "token_estimate"},
    "sweep": BASE | {"plan", "params", "catalog", "cellspec", "emulator", "records", "store", "engines"},
    "stats": BASE | {"records", "store", "catalog"},
    "calibrate": BASE | {"records", "store", "catalog", "emulator"},
    "charts": BASE | {"stats", "records", "catalog"},
    "report": BASE | {"charts", "stats", "records", "store", "catalog"},
    "cli": {"*"},
    "__init__": {"*"},
    "__main__": {"*"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _lazy_names() -> dict[str, str]:
    """``bedrock_lab._LAZY``: public name -> module, read from the source (importing would be circular here)."""
    tree = ast.parse((PKG / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            return {str(k.value): str(v.value) for k, v in zip(node.value.keys, node.value.values, strict=True)  # type: ignore[attr-defined, union-attr]
                    if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}  # fmt: skip
    return {}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_parts(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """The top-level parts of bedrock_lab that ``source`` (the text of ``module``) imports, in any form."""
    lazy = _lazy_names()
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def add(name: str, names: list[str] | None = None) -> None:
        if name == "bedrock_lab":
            for n in names or []:
                target = lazy.get(n)
                if target:
                    found.add(target.split(".")[1])
                elif (PKG / n).is_dir() or (PKG / f"{n}.py").is_file():
                    found.add(n)
                else:
                    found.add("errors" if n[0].isupper() or n.endswith("Error") else "__init__")
        elif name.startswith("bedrock_lab."):
            found.add(name.split(".")[1])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            add(name, [a.name for a in node.names])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            add(node.args[0].value)
    return found


def test_every_part_is_placed() -> None:
    parts = {_part(p) for p in PKG.rglob("*.py")}
    unplaced = parts - set(ALLOWED)
    assert not unplaced, f"add {sorted(unplaced)} to ALLOWED here and to docs/architecture.md"


def test_imports_follow_the_data_flow() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        part = _part(path)
        allowed = ALLOWED.get(part, set())
        if "*" in allowed:
            continue
        found = imported_parts(path.read_text(), _module_name(path), is_package=path.name == "__init__.py")
        for imported in found - {part}:
            if imported not in allowed:
                bad.append(f"{path.relative_to(PKG.parent)} imports bedrock_lab.{imported}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("import bedrock_lab.sweep.runner as r", "bedrock_lab.stats.x", {"sweep"}),
    ("from bedrock_lab.engines import Target", "bedrock_lab.stats.x", {"engines"}),
    ("from bedrock_lab import run_sweep", "bedrock_lab.stats.x", {"sweep"}),
    ("from bedrock_lab import charts", "bedrock_lab.stats.x", {"charts"}),
    ("from bedrock_lab import ConfigError", "bedrock_lab.stats.x", {"errors"}),
    ("from ..report import build_report", "bedrock_lab.stats.x", {"report"}),
    ("from . import quantiles", "bedrock_lab.stats.x", {"stats"}),
    ("from ... import _files", "bedrock_lab.sweep.sub.x", {"_files"}),
    ("import importlib\nimportlib.import_module('bedrock_lab.report.export')", "bedrock_lab.stats.x", {"report"}),
])  # fmt: skip
def test_the_check_sees_every_import_form(source: str, module: str, expected: set[str]) -> None:
    assert imported_parts(source, module) == expected

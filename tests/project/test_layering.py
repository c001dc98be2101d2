"""Data flows one way: params -> plan -> engine -> records -> stats -> charts -> report.

Each top-level part of the package may import only the parts listed here (docs/architecture.md has the same
table). A new module must be added here, which forces a decision about where it sits.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "bedrock_lab"
BASE = {"errors", "_version", "_files"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "_files": set(),
    "catalog": BASE,
    "emulator": BASE | {"catalog"},
    "records": BASE,
    "store": BASE | {"records"},
    "params": BASE | {"catalog"},
    "plan": BASE | {"params", "catalog"},
    "engines": BASE | {"catalog", "records", "emulator"},
    "sweep": BASE | {"plan", "params", "catalog", "emulator", "records", "store", "engines"},
    "stats": BASE | {"records", "store"},
    "charts": BASE | {"stats", "records", "catalog"},
    "report": BASE | {"charts", "stats", "records", "store", "catalog"},
    "cli": {"*"},
    "__init__": {"*"},
    "__main__": {"*"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            names = ["bedrock_lab." + (node.module or "")]
        for name in names:
            if name.startswith("bedrock_lab."):
                found.add(name.split(".")[1])
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
        for imported in _imported_parts(path) - {part}:
            if imported not in allowed:
                bad.append(f"{path.relative_to(PKG.parent)} imports bedrock_lab.{imported}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)

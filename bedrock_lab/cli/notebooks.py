"""`bedrock-lab notebooks`: the notebooks, their parameters, and `.ipynb` twins for papermill."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from bedrock_lab._notebooks import write_ipynb

SUMMARY = "list the notebooks and their parameters; write .ipynb twins for papermill (--ipynb)"
DESCRIPTION = """\
The notebooks are jupytext py:percent files (notebooks/*.py): JupyterLab opens them as notebooks, but
papermill reads only .ipynb. This command lists each notebook with its parameters (what `papermill
--help-notebook` shows), and with --ipynb writes an .ipynb twin of each (no outputs, kernel bedrock-lab) to
outputs/notebooks/ (git-ignored; never next to the sources), so that papermill can be called directly.
Relative paths in the parameters are taken from the repository root, wherever papermill runs.

examples:
  bedrock-lab notebooks
  bedrock-lab notebooks --ipynb
  papermill --help-notebook outputs/notebooks/cell.ipynb
  papermill outputs/notebooks/cell.ipynb outputs/manual/cell.ipynb -p users 8 -p duration_s 5
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NOTEBOOK", help="only these notebooks (e.g. cell analysis)")
    parser.add_argument("--ipynb", action="store_true", help="write the .ipynb twins (to outputs/notebooks/)")
    parser.add_argument("--out", default="outputs/notebooks",
                        help="folder of the twins (relative: to the repo root; default outputs/notebooks)")


def sources(names: list[str] | None = None) -> list[Path]:
    """notebooks/*.py, or the named ones (``cell``, ``cell.py`` or a path)."""
    from bedrock_lab.errors import ConfigError
    from bedrock_lab.paths import project_root

    folder = project_root() / "notebooks"
    found = sorted(folder.glob("*.py"))
    if not names:
        return found
    by_name = {p.stem: p for p in found}
    picked = []
    for name in names:
        stem = Path(name).stem
        if stem not in by_name:
            raise ConfigError("unknown notebook", key="NOTEBOOK", value=name, allowed=", ".join(by_name))
        picked.append(by_name[stem])
    return picked


def write_twin(source: Path, folder: Path) -> Path:
    """``folder/<name>.ipynb``: the jupytext notebook as nbformat, without outputs (papermill's input)."""
    return write_ipynb(source, folder / f"{source.stem}.ipynb")


def _title(twin: Path) -> str:
    import nbformat

    nb = nbformat.read(twin, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def parameters(twin: Path) -> dict[str, Any]:
    import papermill as pm

    return dict(pm.inspect_notebook(str(twin)))


def run(args: argparse.Namespace) -> int:
    from bedrock_lab.paths import project_root, resolve

    root = project_root()
    with tempfile.TemporaryDirectory() as tmp:
        folder = resolve(args.out) if args.ipynb else Path(tmp)
        for src in sources(args.names):
            twin = write_twin(src, folder)
            print(f"{src.relative_to(root)}: {_title(twin)}")
            for name, p in parameters(twin).items():
                print(f"  {name}: {p['inferred_type_name']} = {p['default']}    {p['help']}")
            if args.ipynb:
                shown = twin.relative_to(root) if twin.is_relative_to(root) else twin
                print(f"  twin: {shown}  (papermill {shown} OUT.ipynb -p NAME VALUE)")
    return 0

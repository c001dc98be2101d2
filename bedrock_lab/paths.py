"""The project root, and notebook paths resolved against it.

A notebook's working folder depends on who runs it: JupyterLab starts the kernel in ``notebooks/``, a person may
run it from the repository root, papermill runs it in the caller's folder or a cell folder under ``outputs/``.
Relative paths in notebook parameters therefore resolve against the project root, never the working folder, so
``outputs/demo`` means the same folder wherever the notebook was opened.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the file that marks the project root, and the project name it must declare
MARKER = "pyproject.toml"
PROJECT_NAME = "bedrock-lab"


def _is_root(folder: Path) -> bool:
    """A folder holding this project's pyproject.toml (not any Python project's)."""
    try:
        text = (folder / MARKER).read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.replace(" ", "") == f'name="{PROJECT_NAME}"' for line in text.splitlines())


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The bedrock-lab checkout: where ``params/``, ``notebooks/`` and ``outputs/`` live.

    The checkout this package was imported from when it is one (the usual editable install); else the nearest
    folder at or above ``start`` (default: the working folder) whose pyproject.toml names the project; else the
    working folder itself (an installed package used outside any checkout).
    """
    home = Path(__file__).resolve().parents[1]
    if _is_root(home):
        return home
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if _is_root(folder):
            return folder
    return here


def resolve(path: str | os.PathLike[str]) -> Path:
    """An absolute path: ``~`` expanded, a relative path taken from the project root (not the working folder).

    >>> resolve("/tmp/x")
    PosixPath('/tmp/x')
    >>> resolve("outputs/demo") == project_root() / "outputs" / "demo"
    True
    """
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p

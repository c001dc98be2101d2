"""Our notebooks (jupytext py:percent files) as ``.ipynb``: the one conversion that the sweep runner (the cell
notebook papermill executes), the report export (the analysis notebook) and ``bedrock-lab notebooks --ipynb``
(twins for people who call papermill themselves) share, so the three never drift apart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bedrock_lab._files import write_text_atomic


def read_notebook(source: str | os.PathLike[str], *, kernel: str | None = None) -> Any:
    """``source`` (py:percent, or already ``.ipynb``) as an nbformat v4 notebook without outputs; ``kernel``
    names the kernelspec papermill should start (the file's own when None)."""
    import jupytext
    import nbformat

    src = Path(source)
    nb = nbformat.read(src, as_version=4) if src.suffix == ".ipynb" else jupytext.read(src)
    if kernel:
        nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    return nb


def write_ipynb(source: str | os.PathLike[str], target: str | os.PathLike[str], *,
                kernel: str | None = None) -> Path:
    """Write :func:`read_notebook` of ``source`` to ``target`` atomically (folders created); returns ``target``."""
    import nbformat

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(target, nbformat.writes(read_notebook(source, kernel=kernel)))

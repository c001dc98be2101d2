"""Execute the analysis notebook on a sweep with papermill and export it as one self-contained HTML file.

The jupytext ``notebooks/analysis.py`` is the source; it is converted to ``.ipynb`` at run time into the output
folder (executed notebooks never live next to the sources), executed on the ``bedrock-lab`` kernel, then
exported with nbconvert without code (``--no-input``) through a template that loads nothing from a CDN.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bedrock_lab._notebooks import write_ipynb
from bedrock_lab.errors import ReportError

TEMPLATE_NAME = "bedrock_lab_report"
KERNEL_NAME = "bedrock-lab"
REMOVE_TAG = "remove_cell"  #: notebook cells with this tag are for analysts only: not in the HTML


def templates_dir() -> Path:
    """The nbconvert template folder shipped as package data (``bedrock_lab/templates/nbconvert``)."""
    return Path(__file__).resolve().parents[1] / "templates" / "nbconvert"


def notebook_source() -> Path:
    """``notebooks/analysis.py`` of this checkout (override with ``BEDROCK_LAB_ANALYSIS_NOTEBOOK``)."""
    env = os.environ.get("BEDROCK_LAB_ANALYSIS_NOTEBOOK")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "notebooks" / "analysis.py"
    if not path.is_file():
        raise ReportError(f"analysis notebook {path} not found; set BEDROCK_LAB_ANALYSIS_NOTEBOOK to its path")
    return path


def to_ipynb(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Convert a jupytext py:percent notebook to ``.ipynb`` (no outputs)."""
    return write_ipynb(source, target)


@dataclass(frozen=True)
class ReportResult:
    html: Path
    notebook: Path | None  #: the executed analysis notebook (None when no cell succeeded: nothing to analyse)
    seconds: float
    size_bytes: int


def execute_analysis(
    sweep_dir: str | os.PathLike[str],
    work_dir: str | os.PathLike[str],
    parameters: Mapping[str, Any] | None = None,
    *,
    kernel_name: str = KERNEL_NAME,
    timeout_s: float = 600,
    source: str | os.PathLike[str] | None = None,
) -> Path:
    """Run the analysis notebook with papermill; returns the executed notebook (``work_dir/analysis.ipynb``)."""
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    src = to_ipynb(source or notebook_source(), work / "analysis.source.ipynb")
    out = work / "analysis.ipynb"
    params = {"sweep_dir": str(Path(sweep_dir).resolve()), **(parameters or {})}
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=kernel_name,
                            cwd=str(work), progress_bar=False, log_output=False, execution_timeout=timeout_s,
                            extra_arguments=["--HistoryManager.enabled=False"],  # nothing written to ~/.ipython
                            # every cell has run: stop the kernel at once, not after the 2.5 s an interrupted idle
                            # ipykernel makes a graceful shutdown wait (as sweep.runner does for cell kernels)
                            shutdown_kernel="immediate")
    except pm.PapermillExecutionError as exc:
        raise ReportError(f"the analysis notebook failed in cell {exc.cell_index}: {exc.ename}: {exc.evalue} "
                          f"(executed notebook: {out})") from exc
    except CellTimeoutError as exc:
        raise ReportError(f"the analysis notebook took longer than {timeout_s:g} s in one cell "
                          f"(executed notebook: {out})") from exc
    except Exception as exc:  # no such kernel, papermill/nbclient start-up failures
        if "No such kernel" in str(exc) or type(exc).__name__ == "NoSuchKernel":
            raise ReportError(f"Jupyter kernel {kernel_name!r} not found; register it with "
                              f"`python -m ipykernel install --sys-prefix --name {kernel_name}`") from exc
        raise
    finally:
        src.unlink(missing_ok=True)
    return out


def to_html(notebook: str | os.PathLike[str], target: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Export an executed notebook to one self-contained HTML file without code or prompts."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    nb = nbformat.read(notebook, as_version=4)
    if title:
        nb.metadata["title"] = title
    exporter = HTMLExporter(template_name=TEMPLATE_NAME, extra_template_basedirs=[str(templates_dir())])
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.register_preprocessor(TagRemovePreprocessor(remove_cell_tags={REMOVE_TAG}, enabled=True), enabled=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title or Path(notebook).stem}})
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, target)
    return target


def _failed_only_report(swept: Any, target: Path) -> Path:
    """A one-page report for a sweep whose every cell failed: no numbers (there are none to defend), the
    failed-cells table with each reason, and what to do next."""
    import html as _html

    from bedrock_lab._files import write_text_atomic
    from bedrock_lab.report.summary import html_table

    table = swept.failed.rename(columns={"cell_id": "cell", "prompt_size": "prompt size", "requests": "requests sent"})
    table = table[["cell", "model_id", "tier", "prompt size", "users", "rate_rps", "requests sent", "reason"]]
    name = _html.escape(swept.name)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>bedrock-lab report: {name}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>"
            f"</head><body><h1>Load test report: {name}</h1>"
            f"<p><strong>No cell of this sweep succeeded, so this report has no results.</strong> All "
            f"{len(table)} cell(s) that ran failed; the reasons are below (the target's own messages). Fix the "
            "cause, then re-run the sweep with <code>--restart</code>.</p>"
            f"<h2>Failed cells</h2>{html_table(table)}</body></html>\n")  # fmt: skip
    return write_text_atomic(target, page)


def build_report(
    sweep_dir: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    kernel_name: str = KERNEL_NAME,
    timeout_s: float = 600,
) -> ReportResult:
    """``outputs/<sweep>/report.html`` (or ``output``) from a sweep folder; the executed notebook is kept in
    ``outputs/<sweep>/report/analysis.ipynb`` for whoever wants the code."""
    sweep = Path(sweep_dir)
    if not sweep.is_dir():
        raise ReportError(f"sweep folder {sweep} does not exist")
    t0 = time.perf_counter()
    from bedrock_lab.store import read_sweep

    swept = read_sweep(sweep, with_records=False)  # metadata only: the analysis notebook reads the records
    if swept.all_failed:  # every cell failed: say so, and why, instead of no report
        html = _failed_only_report(swept, Path(output) if output else sweep / "report.html")
        return ReportResult(html=html, notebook=None, seconds=time.perf_counter() - t0,
                            size_bytes=html.stat().st_size)  # fmt: skip
    nb = execute_analysis(sweep, sweep / "report", parameters, kernel_name=kernel_name, timeout_s=timeout_s)
    html = to_html(nb, Path(output) if output else sweep / "report.html",
                   title=f"bedrock-lab report: {sweep.resolve().name}")
    return ReportResult(html=html, notebook=nb, seconds=time.perf_counter() - t0, size_bytes=html.stat().st_size)

"""The offline stakeholder report: executive summary, figures, tables and the HTML export of an analysis.

    from bedrock_lab.report import build_report
    build_report("outputs/demo")          # -> outputs/demo/report.html, no network needed to open it

Presentation only: the numbers come from :func:`bedrock_lab.stats.analyze` (load a sweep, run the
statistics), and the pieces here show them: :mod:`.figures` (the charts of an analysis), :mod:`.summary`
(sentences and tables), :mod:`.offline` (the altair renderer that works offline), :mod:`.export`
(papermill + nbconvert).

Names are imported lazily: `bedrock-lab report` only needs papermill and nbconvert in its own process (the
notebook kernel does the charts), so it does not pay for importing altair and scipy.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "ReportResult": "export", "build_report": "export", "execute_analysis": "export", "to_html": "export",
    "report_charts": "figures", "slide_charts": "figures", "write_slide_figures": "figures",
    "RENDERER_NAME": "offline", "enable_offline_renderer": "offline", "offline_renderer": "offline",
    "executive_summary": "summary", "recommendations": "summary",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bedrock_lab.report' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bedrock_lab.report.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

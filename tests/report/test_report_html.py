"""The stakeholder HTML, end to end: `bedrock-lab report` on a synthetic sweep, then a real headless Chromium
with every network request blocked. Every chart must draw, nothing may leave the page, the console stays clean."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from report_browser import inspect_page

from bedrock_lab.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def built_report(synthetic_sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the CLI once for the whole module: papermill + nbconvert take most of this area's time."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["report", str(synthetic_sweep)])
    assert code == 0
    printed = Path(out.getvalue().strip().splitlines()[-1])
    assert printed == synthetic_sweep / "report.html"
    return printed


def test_report_is_one_file_without_code_or_remote_urls(built_report: Path) -> None:
    html = built_report.read_text()
    assert not re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, flags=re.I)
    assert not re.search(r"<script[^>]+\bsrc\s*=", html, flags=re.I)  # everything inline
    assert not re.search(r"<link[^>]+stylesheet[^>]+href", html, flags=re.I)
    assert html.count("data-bl-vega-bundle") == 1  # the 0.9 MB bundle once, not per chart
    for code in ("import warnings", "enable_offline_renderer(", "an.load_sweep_data("):  # --no-input
        assert code not in html
    assert "Sweep analysis and stakeholder report" not in html  # analyst-only cell removed
    for section in ("Executive summary", "Decision", "Methods and caveats", "Environment",
                    "Appendix: every cell"):
        assert f">{section}" in html
    assert "[95% CI" in html and "per 1k requests" in html
    banner = html.find('class="bl-banner"')  # the emulator warning leads, before the executive summary
    assert 0 < banner < html.find(">Executive summary")


def test_outputs_next_to_the_report(built_report: Path) -> None:
    sweep = built_report.parent
    figures = sorted(p.name for p in (sweep / "figures").iterdir())
    assert len([f for f in figures if f.endswith(".png")]) == 5
    assert len([f for f in figures if f.endswith(".svg")]) == 5
    assert (sweep / "tables" / "summary.csv").is_file() and (sweep / "tables" / "comparisons.csv").is_file()
    assert (sweep / "report" / "analysis.ipynb").is_file()  # executed notebook kept, never next to sources
    assert not (Path(__file__).resolve().parents[2] / "notebooks" / "analysis.ipynb").exists()


def test_every_chart_draws_offline_in_chromium(built_report: Path, chromium: str,
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    shot = tmp_path_factory.mktemp("browser") / "report.png"
    page = asyncio.run(inspect_page(chromium, built_report, shot))
    n_containers = built_report.read_text().count('data-bl-chart="1"')
    assert n_containers >= 9
    assert len(page.charts) == n_containers
    not_drawn = [c for c in page.charts if not (c["drawn"] and c["marks"] >= 1 and c["fallback"] == 0)]
    assert not not_drawn, not_drawn
    assert not page.external_requests, page.external_requests
    assert not page.console_errors, page.console_errors
    assert shot.is_file() and shot.read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {shot}")

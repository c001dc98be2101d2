"""What a reader of the report sees and does, in a real headless Chromium with the network blocked: the ECDF
title follows the load menu, the time-series title follows the cell menu, dragging an SLO slider changes the
verdict table, and none of it makes a network request or logs a console error.

One report (a small synthetic sweep through `bedrock-lab report`) is built once for the module."""

from __future__ import annotations

import asyncio
import contextlib
import io
from typing import Any

import pytest
from conftest import write_synthetic_sweep
from report_browser import PageReport, inspect_page

from bedrock_lab.cli import main

pytestmark = pytest.mark.slow

#: JavaScript helpers: the title / text marks of the chart holding a bound input, and a bounded wait for a change
HELPERS = """
const chartOf = (sel) => document.querySelector(sel).closest('div.bl-chart');
const texts = (chart, role) => Array.from(chart.querySelectorAll(`g.${role} text`)).map(t => t.textContent);
const changed = async (read, before) => {
  for (let i = 0; i < 200 && JSON.stringify(read()) === JSON.stringify(before); i++) {
    await new Promise(r => setTimeout(r, 50));
  }
  return read();
};
const pick = (el, value) => {
  el.value = String(value);
  el.dispatchEvent(new Event('input', {bubbles: true}));
  el.dispatchEvent(new Event('change', {bubbles: true}));
};
"""


def _step(body: str) -> str:
    return f"(async () => {{ {HELPERS} {body} }})()"


#: the first ECDF's load menu: pick another load, read the title before and after
ECDF_MENU = _step("""
  const sel = document.querySelector('select[name="users_level"]');
  const chart = sel.closest('div.bl-chart');
  const title = () => texts(chart, 'role-title-text').join(' ');
  const before = title();
  const other = Array.from(sel.options).map(o => o.value).find(v => v !== sel.value);
  pick(sel, other);
  return {before, after: await changed(title, before), picked: other};
""")

#: the time-series cell menu
CELL_MENU = _step("""
  const sel = document.querySelector('select[name="ts_cell"]');
  const chart = sel.closest('div.bl-chart');
  const title = () => texts(chart, 'role-title-text').join(' ');
  const before = title();
  const other = Array.from(sel.options).map(o => o.value).find(v => v !== sel.value);
  pick(sel, other);
  return {before, after: await changed(title, before), picked: other};
""")

#: the SLO explorer: drag the TTFT and end-to-end sliders to their right ends, then the TTFT one to its left end
SLO_SLIDERS = _step("""
  const chart = chartOf('input[name="slo_ttft_s"]');
  const cells = () => texts(chart, 'role-mark').filter(t => /(meets|misses)$/.test(t));
  const ttft = chart.querySelector('input[name="slo_ttft_s"]');
  const e2e = chart.querySelector('input[name="slo_e2e_s"]');
  const start = {ttft: ttft.value, e2e: e2e.value, max: ttft.max};
  const before = cells();
  pick(ttft, ttft.max); pick(e2e, e2e.max);
  const loose = await changed(cells, before);
  pick(ttft, ttft.min);
  const strict = await changed(cells, loose);
  return {start, before, loose, strict};
""")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> tuple[PageReport, str, int]:
    """The page after the reader's steps, its HTML, and how many cells the analysis says meet the SLOs."""
    import warnings

    from bedrock_lab.stats import analyze, load_sweep_data

    sweep = write_synthetic_sweep(tmp_path_factory.mktemp("outputs") / "slo-sweep", requests_per_cell=40)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", str(sweep)]) == 0
    html = sweep / "report.html"
    shot = tmp_path_factory.mktemp("browser") / "report.png"
    report = asyncio.run(inspect_page(chromium, html, shot, steps=[ECDF_MENU, CELL_MENU, SLO_SLIDERS]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meeting = int(analyze(load_sweep_data(sweep), fit=False, compare_metrics=()).summary["meets_target"].sum())
    return report, html.read_text(), meeting


def _meets(cells: list[str]) -> int:
    return sum(c.endswith("meets") for c in cells)


def test_every_chart_draws_with_no_network_and_no_console_error(page: tuple[PageReport, str, int]) -> None:
    report, html, _ = page
    assert len(report.charts) == html.count('data-bl-chart="1"') >= 12
    assert all(c["drawn"] and c["marks"] >= 1 and c["fallback"] == 0 for c in report.charts), report.charts
    assert not report.external_requests, report.external_requests
    assert not report.console_errors, report.console_errors  # also after the menus and sliders were moved


def test_the_ecdf_title_follows_the_load_menu(page: tuple[PageReport, str, int]) -> None:
    ecdf: dict[str, Any] = page[0].results[0]
    assert ecdf["before"].endswith("at 16 concurrent users")
    assert ecdf["after"].endswith(f"at {ecdf['picked']} concurrent user" + ("" if ecdf["picked"] == "1" else "s"))


def test_the_time_series_title_follows_the_cell_menu(page: tuple[PageReport, str, int]) -> None:
    cell: dict[str, Any] = page[0].results[1]
    assert cell["before"].startswith("Throughput and time to first token over time: ")
    assert cell["after"].endswith(cell["picked"]) and not cell["before"].endswith(cell["picked"])


def test_moving_an_slo_slider_changes_the_verdict_table(page: tuple[PageReport, str, int]) -> None:
    slo: dict[str, Any] = page[0].results[2]
    assert (float(slo["start"]["ttft"]), float(slo["start"]["e2e"])) == (1.0, 10.0)  # the sweep file's SLOs
    before, loose, strict = slo["before"], slo["loose"], slo["strict"]
    assert len(before) == len(loose) == len(strict) == 36  # one verdict per configuration and load
    assert _meets(loose) > _meets(before) > _meets(strict) == 0  # a TTFT target of 0 s: no request is good
    # what the page starts with is the analysis' own verdict table (bedrock-lab analyze on the same sweep)
    assert _meets(before) == page[2]


def test_the_page_shows_the_sweeps_slider_starting_values_and_what_it_computes(page: tuple[PageReport, str, int]
                                                                               ) -> None:
    html = page[1]
    assert "SLO explorer: move the targets, the verdicts follow" in html
    assert "the rule of the analysis" in html

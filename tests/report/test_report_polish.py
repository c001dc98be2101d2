"""Issue #17 finishing touches, each read as a budget owner reads the report (every test failed before its fix):

- no quantitative axis repeats a tick label ("0.01 0.01 0.01" on the TPOT ECDF): labels read off the SVG that
  vl-convert draws, the same picture as the report's fallback image;
- a model has one name everywhere: the catalog's display name, in the summary, the decision and the tables;
- the test's own cost prices prompt-cache reads and writes with the catalog's one formula;
- data-quality checks accept old shards without the optional ``retries`` column;
- the production section names an open-loop load in requests/s, not "users".
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import vl_convert as vlc

from bedrock_lab import charts
from bedrock_lab.catalog import load_catalog
from bedrock_lab.report import decision as report_decision
from bedrock_lab.report import production, summary
from bedrock_lab.report.figures import report_charts
from bedrock_lab.stats.analysis import Analysis
from bedrock_lab.stats.decision import sweep_cost_table
from bedrock_lab.stats.labels import short_model
from bedrock_lab.stats.quality import quality_flags

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "us.anthropic.claude-3-haiku-20240307-v1:0"


def axis_labels(spec: dict) -> list[list[str]]:
    """The visible tick labels of every axis of a drawn chart (one list per axis and panel)."""
    svg = vlc.vegalite_to_svg(spec)
    out = []
    for group in re.findall(r'<g class="mark-text role-axis-label"[^>]*>(.*?)</g>', svg, flags=re.S):
        texts = re.findall(r'<text[^>]*?(?:opacity="([0-9.]+)")?[^>]*>([^<]*)</text>', group)
        out.append([t for op, t in texts if op in ("", "1")])
    return [labels for labels in out if labels]


def repeated(labels: list[list[str]]) -> list[list[str]]:
    return [axis for axis in labels if len(set(axis)) < len(axis)]


def tpot_records(n: int = 600, seed: int = 3) -> pd.DataFrame:
    """Successful streamed requests with a time per output token of 8-16 ms (the demo's range), two loads."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "model_id": rng.choice([HAIKU, SONNET], n), "tier_requested": rng.choice(["default", "flex"], n),
        "prompt_size": "small", "users": rng.choice([8, 64], n), "status": "ok",
        "tpot_s": rng.uniform(0.008, 0.016, n), "ttft_s": rng.uniform(0.3, 0.9, n),
    })  # fmt: skip


def test_tpot_ecdf_axis_has_distinct_tick_labels() -> None:
    labels = axis_labels(charts.ecdf_chart(tpot_records(), "tpot_s").to_dict())
    assert labels, "no axis labels drawn"
    assert not repeated(labels), f"repeated tick labels: {repeated(labels)}"
    x = [axis for axis in labels if any("0.0" in t for t in axis)]
    assert x and all(len(axis) >= 3 for axis in x), labels  # the x axis still has a few ticks


def test_tick_format_follows_the_finest_view() -> None:
    # a menu that filters to one load rescales the axis: the narrow level (steps of 0.0005) decides
    values = pd.Series([0.0, 0.5, 0.0100, 0.0120])
    assert charts.tick_format(values, groups=pd.Series([1, 1, 2, 2])) == ".4~f"
    assert charts.tick_format(pd.Series([0.0, 80.0]), zero=True) == ".0~f"
    assert charts.tick_format(pd.Series([0.57, 0.63])) == ".2~f"  # steps of 0.01
    assert charts.tick_format(pd.Series([0.008, 0.016])) == ".3~f"  # steps of 0.001 (the TPOT axis)


def test_every_report_chart_of_the_synthetic_sweep_has_distinct_tick_labels(analysis: Analysis) -> None:
    figures = report_charts(analysis)
    checked = 0
    for name in ("ecdf_tpot_s", "ecdf_itl_mean_s", "ecdf_ttft_s", "p95_ttft_vs_users", "tpot_vs_users", "qq",
                 "throughput_vs_users", "timeseries"):
        if name not in figures:
            continue
        labels = axis_labels(figures[name].to_dict())
        assert not repeated(labels), f"{name}: repeated tick labels {repeated(labels)}"
        assert not any("e+" in t or "e-" in t for axis in labels for t in axis), f"{name}: {labels}"
        checked += 1
    assert checked >= 5, sorted(figures)


def test_load_axes_read_as_numbers_at_the_tested_loads() -> None:
    measured = pd.DataFrame({"model": "m", "tier": "default", "prompt_size": "small", "users": [8, 24, 64],
                             "throughput_rps": [10.0, 28.0, 53.0]})
    labels = axis_labels(charts.throughput_chart(measured).to_dict())
    assert ["8", "24", "64"] in labels, labels  # not "-1e+1 0 1e+1 2e+1 ..."
    rate = measured.assign(users=[2.5, 10.0, 120.0])
    assert ["2.5", "10", "120"] in axis_labels(charts.throughput_chart(rate, load_unit="rate").to_dict())


def test_one_model_name_everywhere(analysis: Analysis) -> None:
    names = {short_model(m): load_catalog().resolve(m).display_name for m in analysis.summary["model_id"].unique()}
    text = " ".join(summary.executive_summary(analysis) + summary.methods_and_caveats(analysis))
    tables = [summary.cell_appendix(analysis), summary.comparison_table(analysis), summary.recommendations(analysis),
              report_decision.sweep_cost_by_config(analysis), report_decision.decision_table(analysis)]
    for short, name in names.items():
        assert name in text, f"{name!r} missing from the summary"
        assert short not in text, f"the summary names {short!r} by its id"
        for t in tables:
            cells = t.astype(str).to_numpy().ravel().tolist()
            assert not any(c == short or c.startswith(short + " /") for c in cells), (short, t.columns.tolist())
    appendix = summary.cell_appendix(analysis)
    assert set(appendix["model"]) == set(names.values())
    assert any(str(r).startswith(tuple(names.values())) for r in summary.recommendations(analysis)["recommendation"])


def test_sweep_cost_prices_cache_tokens_with_the_catalog_formula() -> None:
    spec = load_catalog().resolve(SONNET)
    rec = pd.DataFrame({
        "cell_id": "c1", "model_id": SONNET, "model": short_model(SONNET), "tier": "default", "prompt_size": "small",
        "users": 4, "input_tokens": [100, 120], "output_tokens": [50, 60], "cache_read_tokens": [2000, 0],
        "cache_write_tokens": [0, 2000],
    })  # fmt: skip
    row = sweep_cost_table(rec).iloc[0]
    expected = spec.cost_usd(220, 110, None, cache_read_tokens=2000, cache_write_tokens=2000)
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert row["cost_usd"] > spec.cost_usd(220, 110, None)  # the cache tokens are not free
    assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (2000, 2000)
    # old shards without the columns: no cache tokens, the plain price
    old = sweep_cost_table(rec.drop(columns=["cache_read_tokens", "cache_write_tokens"])).iloc[0]
    assert old["cost_usd"] == pytest.approx(spec.cost_usd(220, 110, None), rel=1e-12)


def test_quality_flags_accept_records_without_optional_columns() -> None:
    rng = np.random.default_rng(5)
    n = 120
    rec = pd.DataFrame({"cell_id": np.repeat(["a", "b"], n // 2), "status": ["ok"] * (n - 3) + ["error"] * 3,
                        "e2e_s": rng.lognormal(0, 0.2, n), "ttft_s": rng.lognormal(-1, 0.2, n),
                        "start": np.arange(n, dtype=float)})  # no retries, error_kind, schedule_lag_s, ...
    flags = quality_flags(rec)
    assert list(flags["cell_id"]) == ["a", "b"]
    assert (flags["retried_share"] == 0).all()
    with_retries = quality_flags(rec.assign(retries=np.r_[np.ones(n // 2), np.zeros(n // 2)]))
    assert with_retries.set_index("cell_id").loc["a", "retried_share"] == 1.0  # the column still counts


def test_production_section_names_open_loop_load_in_requests_per_s(analysis: Analysis) -> None:
    cache = pd.DataFrame([{
        "model": short_model(HAIKU), "tier": "default", "prompt_size": "small", "users": 2.5, "n_ok": 100,
        "n_hit": 60, "hit_rate": 0.6, "hit_rate_lo": 0.5, "hit_rate_hi": 0.7, "ttft_p50_hit_s": 0.2,
        "ttft_p50_miss_s": 0.4, "ttft_ratio": 0.5, "cost_per_1k": 0.5, "cost_per_1k_uncached": 1.0,
        "cost_saving": 0.5,
    }])  # fmt: skip
    open_loop = dataclasses.replace(analysis, load_kind="rate", cache=cache)
    sentence = production.production_sentences(open_loop)[0]
    assert "2.5 requests/s" in sentence and "users" not in sentence, sentence
    assert "Claude 3 Haiku" in sentence, sentence
    assert "(95% CI [95% CI" not in sentence and "[95% CI 50.0%-70.0%]" in sentence, sentence  # said once
    assert "$0.5 per 1,000 requests" in sentence, sentence  # the report's one money format ($0.041, not $0.0410)
    assert production.cache_display(open_loop)["cache hit rate"].iloc[0] == "60.0% [95% CI 50.0%-70.0%]"
    assert production.cache_display(open_loop)["configuration"].iloc[0].endswith("at 2.5 requests/s")
    closed = dataclasses.replace(analysis, cache=cache.assign(users=16))
    assert production.production_sentences(closed)[0].startswith("Prompt cache, Claude 3 Haiku / default / small "
                                                                  "at 16 users")


def test_the_summary_reads_as_sentences(analysis: Analysis) -> None:
    first = summary.executive_summary(analysis)[0]
    assert "(s)" not in first and "to the emulator" in first, first
    assert "2 models x 3 service tiers x 2 prompt sizes) at 3 load levels" in first, first
    capacity = " ".join(summary.capacity_sentences(analysis))
    assert "(s)" not in capacity and not re.search(r"\d+ users to \d+ users", capacity), capacity


@pytest.mark.parametrize("all_qualify", [False, True])
def test_the_runners_up_count_matches_the_table_shown(analysis: Analysis, all_qualify: bool) -> None:
    if all_qualify:  # every configuration meets the SLOs (the demo: 5 runners-up, the table shows 3)
        d = analysis.decision.copy()
        d["role"] = np.where(d["rank"] == 1, "choice", "runner-up")
        d["qualifies"] = True
        d["max_users_meeting_slo"] = d["max_users_meeting_slo"].fillna(1.0)
        analysis = dataclasses.replace(analysis, decision=d)
    table = report_decision.decision_table(analysis)
    checked = 0
    for line in report_decision.decision_sentences(analysis):
        m = re.search(r"For (\w+) prompts.*; (\d+) runners?-up also meet them at a higher cost \(([^)]*)\)", line)
        if not m:
            continue
        checked += 1
        shown = int((table[table["workload"] == f"{m.group(1)} prompts"]["option"] == "runner-up").sum())
        if shown < int(m.group(2)):
            assert f"the table below shows {shown}:" in m.group(3) and "decision.csv" in m.group(3), line
        else:
            assert m.group(3) == "table below", line
    assert checked, report_decision.decision_sentences(analysis)


def test_ttft_vs_tpot_scatter_tells_the_models_apart() -> None:
    spec = charts.ttft_vs_itl_chart(tpot_records()).to_dict()
    assert spec["mark"]["type"] == "point" and spec["encoding"]["shape"]["field"] == "model"  # circles drop shape
    svg = vlc.vegalite_to_svg(spec)
    assert "claude-sonnet-4-5-20250929-v1:0" in svg  # the model legend is drawn, its label not cut off
    assert spec["title"]["subtitle"] == "all 600 successful requests"  # not a "sample" of all of them


def test_heatmap_prompt_sizes_read_upright() -> None:
    table = pd.DataFrame({"model": "m", "tier": ["default", "flex"], "prompt_size": "small", "estimate": [0.6, 0.7]})
    svg = vlc.vegalite_to_svg(charts.heatmap_chart(table).to_dict())
    label = re.search(r'<g class="mark-text role-axis-label"[^>]*>(?:(?!</g>).)*?>small</text>', svg, flags=re.S)
    assert label and "rotate" not in label.group(0), label

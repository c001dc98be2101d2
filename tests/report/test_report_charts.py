"""Charts: every figure builds from small tables, has units on its axes, and the slide set is written."""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import pytest

from bedrock_lab import charts
from bedrock_lab.errors import ReportError
from bedrock_lab.report import figures

EXPECTED = {"ecdf_ttft_s", "ecdf_e2e_s", "ecdf_tpot_s", "ecdf_itl_mean_s", "p95_ttft_vs_users", "heatmap_ttft",
            "throughput_vs_users", "error_rates", "qq", "ttft_vs_itl"}


def _axis_titles(spec: object) -> list[str]:
    """Every x/y axis title in a (nested) Vega-Lite spec."""
    found: list[str] = []
    if isinstance(spec, dict):
        enc = spec.get("encoding", {})
        for ch in ("x", "y"):
            title = enc.get(ch, {}).get("title") if isinstance(enc.get(ch), dict) else None
            if isinstance(title, str):
                found.append(title)
        for v in spec.values():
            found += _axis_titles(v)
    elif isinstance(spec, list):
        for v in spec:
            found += _axis_titles(v)
    return found


def test_report_charts_cover_the_issue(analysis) -> None:  # type: ignore[no-untyped-def]
    built = figures.report_charts(analysis)
    assert set(built) >= EXPECTED


@pytest.mark.parametrize("which", ["report", "slides"])
def test_every_chart_is_small_and_has_units(analysis, which: str) -> None:  # type: ignore[no-untyped-def]
    built = figures.report_charts(analysis) if which == "report" else figures.slide_charts(analysis)
    for name, chart in built.items():
        spec = chart.to_dict()  # raises MaxRowsError if a chart got raw records
        rows = sum(len(v) for v in spec.get("datasets", {}).values())
        assert 0 < rows <= 5000, (name, rows)
        titles = _axis_titles(spec)
        assert titles, name
        quantitative = [t for t in titles if t not in ("prompt size", "service tier", "configuration",
                                                        "configuration @ load")]
        assert all("(" in t and ")" in t for t in quantitative), (name, titles)  # units in brackets


def test_theme_is_registered_and_enabled() -> None:
    assert charts.THEME in alt.theme.names()
    assert alt.theme.active == charts.THEME


def test_too_many_rows_is_refused() -> None:
    df = pd.DataFrame({"model": "m", "tier": "default", "prompt_size": "small", "users": range(6000),
                       "estimate": 1.0, "lo": 0.9, "hi": 1.1})
    with pytest.raises(ReportError, match="aggregate first"):
        charts.percentile_band_chart(df)


def test_labels_are_short_and_tiers_default() -> None:
    df = pd.DataFrame({"model_id": ["us.amazon.nova-lite-v1:0", "arn:aws:bedrock:us-east-1::foundation-model/"
                                    "anthropic.claude-3-haiku-20240307-v1:0"],
                       "tier_requested": [None, "flex"], "tier_served": [None, None], "prompt_size": ["small", None]})
    out = charts.label_records(df)
    assert out["model"].tolist() == ["nova-lite-v1:0", "claude-3-haiku-20240307-v1:0"]
    assert out["tier"].tolist() == ["default", "flex"]
    assert out["config"].iloc[0] == "nova-lite-v1:0 / default / small"


def test_slide_set_is_the_public_examples_set(analysis) -> None:  # type: ignore[no-untyped-def]
    # written as PNG + SVG by the end-to-end report test (test_report_html.py); here: the set itself
    assert set(figures.slide_charts(analysis)) == {
        "average_latency_by_configuration", "p50_vs_p95_by_prompt_size", "latency_by_prompt_size",
        "throughput_comparison", "tier_by_prompt_heatmap"}


def test_save_figures_rejects_unknown_formats(tmp_path: Path) -> None:
    chart = alt.Chart(pd.DataFrame({"x": [1]})).mark_point().encode(x=alt.X("x:Q", title="x (s)"))
    with pytest.raises(ReportError, match="unknown figure format"):
        charts.save_figures({"c": chart}, tmp_path, formats=("bmp",))


# ---------------------------------------------------------------- issue #17: honest, legible charts


def _find(spec: object, key: str) -> list[object]:
    """Every value of ``key`` anywhere in a (nested) Vega-Lite spec."""
    found: list[object] = []
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == key:
                found.append(v)
            found += _find(v, key)
    elif isinstance(spec, list):
        for v in spec:
            found += _find(v, key)
    return found


def _band_table() -> pd.DataFrame:
    return pd.DataFrame({"model": "m", "tier": ["default", "flex"] * 2, "prompt_size": ["small", "large"] * 2,
                         "users": [4, 4, 24, 24], "estimate": [0.57, 0.63, 0.7, 0.8],
                         "lo": [0.5, 0.55, 0.6, 0.7], "hi": [0.6, 0.7, 0.8, 0.9]})


def test_heatmap_colour_scale_starts_at_zero() -> None:
    spec = charts.heatmap_chart(_band_table()).to_dict()
    colours = [e["color"] for e in _find(spec, "encoding") if isinstance(e, dict) and "scale" in e.get("color", {})]
    assert colours and all(c["scale"].get("domainMin") == 0 for c in colours)


def test_throughput_subtitle_names_only_what_is_drawn() -> None:
    measured = _band_table().rename(columns={"estimate": "throughput_rps"})
    without = charts.throughput_chart(measured).to_dict()["title"]["subtitle"]
    assert "Universal Scalability Law" not in without and "USL" not in without
    fit = pd.DataFrame({"model": "m", "tier": "default", "prompt_size": "small", "users": [4.0, 12.0, 24.0],
                        "throughput_rps": [0.5, 0.6, 0.7]})
    with_fit = charts.throughput_chart(measured, fit).to_dict()["title"]["subtitle"]
    assert "Universal Scalability Law" in with_fit
    x_scales = [e["x"]["scale"] for e in _find(charts.throughput_chart(measured).to_dict(), "encoding")
                if isinstance(e, dict) and "scale" in e.get("x", {})]
    assert x_scales and all(s.get("zero") and s.get("padding", 0) > 0 for s in x_scales)  # off the border


def test_percentile_chart_marks_only_tested_loads() -> None:
    spec = charts.percentile_band_chart(_band_table()).to_dict()
    ticks = _find(spec, "values")[0]
    assert isinstance(ticks, list) and [float(v) for v in ticks] == [4.0, 24.0]
    marks = [m["type"] if isinstance(m, dict) else m for m in _find(spec, "mark")]
    assert "area" not in marks and "rule" in marks and "point" in marks  # no band between tested loads


def test_quantitative_axes_avoid_label_overlap_and_charts_are_wide(analysis) -> None:  # type: ignore[no-untyped-def]
    built = figures.report_charts(analysis)
    for name in ("ecdf_ttft_s", "p95_ttft_vs_users", "throughput_vs_users", "qq"):
        spec = built[name].to_dict()
        axes = [e[ch]["axis"] for e in _find(spec, "encoding") if isinstance(e, dict) for ch in ("x", "y")
                if isinstance(e.get(ch), dict) and str(e[ch].get("type", "")) == "quantitative" and "axis" in e[ch]]
        assert axes and all(a.get("labelOverlap") is True and "format" in a for a in axes), name
    for name in ("ecdf_ttft_s", "p95_ttft_vs_users", "heatmap_ttft", "throughput_vs_users", "qq", "ttft_vs_itl",
                 "error_rates"):
        widths = [w for w in _find(built[name].to_dict(), "width") if isinstance(w, int | float)]
        assert widths and min(widths) >= 420, (name, widths)


def test_prompt_sizes_have_distinct_shapes() -> None:
    for chart in (charts.percentile_band_chart(_band_table()),
                  charts.throughput_chart(_band_table().rename(columns={"estimate": "throughput_rps"}))):
        shapes = [e["shape"]["field"] for e in _find(chart.to_dict(), "encoding")
                  if isinstance(e, dict) and isinstance(e.get("shape"), dict) and "field" in e["shape"]]
        assert "prompt_size" in shapes


def test_per_token_latency_is_tpot_and_the_chunk_gap_says_what_it_is(analysis) -> None:  # type: ignore[no-untyped-def]
    built = figures.report_charts(analysis)
    assert "time per output token (s)" in _axis_titles(built["ecdf_tpot_s"].to_dict())
    assert "time per output token (s)" in _axis_titles(built["ttft_vs_itl"].to_dict())
    gap = _axis_titles(built["ecdf_itl_mean_s"].to_dict())
    assert "gap between content chunks (s)" in gap and not any("inter-token" in t for t in gap)


def _titles_drawn(spec: dict[str, object]) -> list[str]:
    """Text marks Vega actually draws for a spec (rendered to SVG by vl-convert, no browser)."""
    import re

    import vl_convert as vlc

    return re.findall(r"<text[^>]*>([^<]*)</text>", vlc.vegalite_to_svg(spec))


def test_ecdf_title_follows_the_load_menu() -> None:
    records = pd.DataFrame({"model": "m", "tier": ["default", "flex"] * 40, "prompt_size": "small",
                            "users": [4] * 40 + [24] * 40, "status": "ok", "ttft_s": [0.01 * i for i in range(80)]})
    spec = charts.ecdf_chart(records).to_dict()
    menu = [p for p in spec["params"] if p["name"] == "users_level"]
    assert menu and menu[0]["value"] == 24 and "bind" in menu[0]
    assert "users_level" in spec["title"]["text"]["expr"]  # an expression on the menu, not a fixed string
    assert "24" not in str(spec["title"]["subtitle"])
    assert any(t.endswith("at 24 concurrent users") for t in _titles_drawn(spec))
    menu[0]["value"] = 4  # what choosing 4 in the menu does to the param
    drawn = _titles_drawn(spec)
    assert any(t.endswith("at 4 concurrent users") for t in drawn) and not any("24 concurrent" in t for t in drawn)


def test_heatmap_numbers_are_white_on_dark_cells() -> None:
    import re

    import vl_convert as vlc

    table = pd.DataFrame({"model": "m", "tier": ["default", "flex"] * 2, "prompt_size": ["small", "large"] * 2,
                          "estimate": [0.1, 0.2, 0.7, 0.8]})
    svg = vlc.vegalite_to_svg(charts.heatmap_chart(table).to_dict())
    fills = dict((v, f) for f, v in re.findall(r'<text[^>]*fill="([^"]*)"[^>]*>(\d\.\d\d)</text>', svg))
    assert fills == {"0.10": "black", "0.20": "black", "0.70": "white", "0.80": "white"}


# ---------------------------------------------------------------- issue #17: over time, output speed, SLO explorer


def _params(spec: dict[str, object]) -> dict[str, dict[str, object]]:
    return {p["name"]: p for p in _find(spec, "params")[0]} if _find(spec, "params") else {}  # type: ignore[index]


def test_report_has_the_new_figures(analysis) -> None:  # type: ignore[no-untyped-def]
    assert {"timeseries", "output_tokens_vs_users", "tpot_vs_users", "slo_explorer"} <= set(
        figures.report_charts(analysis))


def test_timeseries_is_one_chart_with_a_cell_menu_and_the_title_follows_it(analysis) -> None:  # type: ignore[no-untyped-def]
    bins = figures.timeseries_table(analysis)
    chart = charts.timeseries_chart(bins)
    spec = chart.to_dict()
    menu = _params(spec)["ts_cell"]
    options = menu["bind"]["options"]  # type: ignore[index]
    assert len(options) == len(analysis.summary) and menu["value"] in options  # one entry per cell, no panels
    assert all("datum.cell == ts_cell" in str(f) for f in _find(spec, "filter"))
    assert "ts_cell" in spec["title"]["text"]["expr"]
    other = next(o for o in options if o != menu["value"])
    first = _titles_drawn(spec)
    _params(spec)["ts_cell"]["value"] = other  # what picking another cell in the menu does
    assert any(t.endswith(other) for t in _titles_drawn(spec)) and not any(t.endswith(other) for t in first)
    fields = {e["y"]["title"] for e in _find(spec, "encoding") if isinstance(e, dict) and "y" in e}
    assert fields == {"completed requests (requests/s)", "time to first token (s)"}


def test_output_speed_charts_use_the_summary_columns(analysis) -> None:  # type: ignore[no-untyped-def]
    tokens, tpot = figures.output_speed_tables(analysis)
    s = analysis.summary.set_index(["model", "tier", "prompt_size", "users"])
    row = tokens.iloc[0]
    key = (row["model"], row["tier"], row["prompt_size"], row["users"])
    assert row["output_tokens_per_s"] == s.loc[key, "output_tokens_per_s"]
    assert set(tpot["percentile"]) == {"p50", "p95"}
    p95 = tpot[tpot["percentile"] == "p95"].iloc[0]
    assert p95["estimate"] == s.loc[(p95["model"], p95["tier"], p95["prompt_size"], p95["users"]), "tpot_s_p95"]
    spec = charts.percentiles_vs_load_chart(tpot, metric="tpot_s").to_dict()
    assert "time per output token (ms)" in _axis_titles(spec)
    drawn = spec["datasets"][next(iter(spec["datasets"]))]
    assert max(r["estimate"] for r in drawn) == pytest.approx(tpot["estimate"].max() * 1000)  # ms, not s
    for one in (spec, charts.output_tokens_chart(tokens).to_dict()):
        ticks = [v for v in _find(one, "values") if isinstance(v, list)]
        assert ticks and [float(v) for v in ticks[0]] == [1.0, 4.0, 16.0]  # tested loads only


def _verdicts_drawn(spec: dict[str, object]) -> list[tuple[float, str]]:
    import re

    return sorted((float(g), v) for g, v in re.findall(r"(\d+(?:\.\d)?)% (meets|misses)", " ".join(_titles_drawn(spec))))


def test_slo_explorer_starts_at_the_analysis_verdicts_and_the_sliders_change_them(analysis) -> None:  # type: ignore[no-untyped-def]
    from bedrock_lab.stats import SLO, goodput

    spec = figures.report_charts(analysis)["slo_explorer"].to_dict()
    params = _params(spec)
    assert {"slo_ttft_s", "slo_e2e_s", "slo_tpot_s", "slo_goodput"} <= set(params)
    for name in ("slo_ttft_s", "slo_e2e_s", "slo_tpot_s", "slo_goodput"):
        assert params[name]["bind"]["input"] == "range", name  # type: ignore[index]
    assert params["slo_ttft_s"]["value"] == analysis.slo.ttft_s and params["slo_e2e_s"]["value"] == analysis.slo.e2e_s
    assert params["slo_goodput"]["value"] == analysis.slo.goodput_target
    # no TPOT target in the sweep: the slider starts at its right end, past every value (checks nothing)
    assert params["slo_tpot_s"]["value"] == params["slo_tpot_s"]["bind"]["max"]  # type: ignore[index]
    drawn = _verdicts_drawn(spec)
    s = analysis.summary
    assert len(drawn) == len(s)
    assert [v for _, v in drawn].count("meets") == int(s["meets_target"].sum())
    assert [g for g, _ in drawn] == pytest.approx(sorted(s["goodput"] * 100), abs=0.051)
    # the reader drags TTFT and end-to-end to their right ends: only failures count against goodput
    params["slo_ttft_s"]["value"] = params["slo_ttft_s"]["bind"]["max"]  # type: ignore[index]
    params["slo_e2e_s"]["value"] = params["slo_e2e_s"]["bind"]["max"]  # type: ignore[index]
    loose = goodput(analysis.records, SLO(ttft_s=None, e2e_s=None, goodput_target=analysis.slo.goodput_target),
                    by=["model", "tier", "prompt_size", "users"])
    moved = _verdicts_drawn(spec)
    assert [v for _, v in moved].count("meets") == int(loose["meets_target"].sum()) > int(s["meets_target"].sum())
    params["slo_goodput"]["value"] = 1.0  # and asks for every request: only flawless cells meet
    assert [v for _, v in _verdicts_drawn(spec)].count("meets") == int((loose["goodput"] >= 1.0).sum())


def test_slo_explorer_samples_large_sweeps_per_cell_and_says_so(analysis) -> None:  # type: ignore[no-untyped-def]
    full, note = figures.slo_requests(analysis)
    assert len(full) == len(analysis.records) and "sample" not in note
    small, note = figures.slo_requests(analysis, max_rows=360, seed=1)
    per_cell = small.groupby(["config", "users"]).size()
    assert len(per_cell) == len(analysis.summary) and (per_cell == 10).all()  # 360 rows / 36 cells
    assert "seeded sample of 360 of 2880 requests" in note
    again, _ = figures.slo_requests(analysis, max_rows=360, seed=1)
    pd.testing.assert_frame_equal(small, again)  # seeded
    chart = charts.slo_explorer_chart(small, targets={"ttft_s": 1.0}, goodput_target=0.95, note=note)
    assert note in chart.to_dict()["title"]["subtitle"]


def test_fallback_image_of_a_menu_title_has_readable_alt_text() -> None:
    from bedrock_lab.report.offline import _title_of

    records = pd.DataFrame({"model": "m", "tier": "default", "prompt_size": "small", "users": [4] * 20 + [24] * 20,
                            "status": "ok", "ttft_s": [0.01 * i for i in range(40)]})
    assert _title_of(charts.ecdf_chart(records).to_dict()) == "Distribution of time to first token (s) at"


def test_new_figures_for_open_loop_and_non_streaming_sweeps() -> None:
    import warnings

    import numpy as np

    from bedrock_lab.stats import analyze, synthetic_records

    df = synthetic_records(900, seed=2, users=(2, 8), prompt_sizes=("small",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        open_loop = analyze(df.assign(rate_rps=df["users"].astype(float), users=None), fit=False, compare_metrics=())
        plain = analyze(df.assign(ttft_s=np.nan, api="converse"), fit=False, compare_metrics=())
    built = figures.report_charts(open_loop)
    assert "arrival rate (requests/s)" in _axis_titles(built["slo_explorer"].to_dict())
    assert _params(built["timeseries"].to_dict())["ts_cell"]["value"].endswith(" requests/s")  # type: ignore[union-attr]
    built = figures.report_charts(plain)  # no TTFT: latency over time is end-to-end, no TTFT slider
    assert any("end-to-end latency over time" in t for t in _titles_drawn(built["timeseries"].to_dict()))
    assert set(_params(built["slo_explorer"].to_dict())) == {"slo_e2e_s", "slo_goodput"}


def test_ecdf_points_carry_a_curve_number_and_the_labels_are_looked_up_once(analysis) -> None:  # type: ignore[no-untyped-def]
    spec = figures.report_charts(analysis)["ecdf_ttft_s"].to_dict()
    lookup = [t["lookup"] for t in spec["transform"] if "lookup" in t]
    assert lookup == ["g"]
    points = spec["datasets"][spec["data"]["name"]]
    assert set(points[0]) == {"g", "ttft_s", "ecdf_pct"} and len(points) > 1000
    curves = next(v for k, v in spec["datasets"].items() if k != spec["data"]["name"])
    assert len(curves) == len(analysis.summary) and {"model", "tier", "prompt_size", "users", "n"} <= set(curves[0])
    assert len(str(spec)) < 250_000  # was ~680 KB with the labels on every point


def test_slo_sliders_reach_past_every_value_and_hold_the_target_on_their_grid() -> None:
    for values, target in (([0.1, 60.0], 0.25), ([0.1, 4.3], 1.0), ([0.01, 0.03], None), ([0.0123456789], None)):
        top, step, start = charts._slider_range(pd.Series(values), target)
        assert top >= max(values) and top / step <= 100_000
        assert start == (target if target is not None else top)
        if target is not None:
            assert abs(target / step - round(target / step)) < 1e-9

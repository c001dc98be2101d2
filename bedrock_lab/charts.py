"""Altair charts of a sweep, in one theme, with units on every axis.

Charts are presentation only: they take records (and aggregate them to a few hundred rows themselves when the
aggregate is purely visual, like ECDF points or a scatter sample) or tables computed by :mod:`bedrock_lab.stats`
(percentiles with confidence intervals, rates with Wilson intervals, USL fits, QQ data). Altair refuses data of
more than 5,000 rows, so nothing here passes raw records to a chart.

Column conventions of the labelled records (:func:`bedrock_lab.stats.labels.label_records`, re-exported here:
the analysis groups by the same labels): ``model`` (short model name), ``tier`` (service tier, "default" when
none was asked), ``prompt_size``, ``users`` and ``config`` ("model / tier / size").
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

# jsonschema (imported by altair) optionally imports rfc3987_syntax, which compiles a grammar at import time
# (3-5 s on a busy 2-core machine, paid by every kernel that draws a chart) only to check "iri" string formats
# that no Vega-Lite spec uses. Skip it unless someone already imported it or jsonschema's format module.
if "rfc3987_syntax" not in sys.modules and "jsonschema._format" not in sys.modules:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # import now raises ImportError

import altair as alt
import numpy as np
import pandas as pd
import vl_convert as vlc

from bedrock_lab.errors import ReportError
from bedrock_lab.stats.labels import label_records, short_model  # noqa: F401  (re-exported)

THEME = "bedrock_lab"
#: axis titles with units, by column
METRIC_LABELS: dict[str, str] = {
    "ttft_s": "time to first token (s)",
    "e2e_s": "end-to-end latency (s)",
    "tpot_s": "time per output token (s)",
    "itl_mean_s": "gap between content chunks (s)",  # a chunk holds several tokens: not a per-token latency
    "itl_p95_s": "gap between content chunks, p95 (s)",
    "tokens_per_s": "output speed (tokens/s)",
    "throughput_rps": "throughput (requests/s)",
    "users": "concurrent users (count)",
    "rate_rps": "arrival rate (requests/s)",
    "rate": "share of requests (%)",
    "cost_per_1k": "cost per 1k requests (USD)",
}
#: a colour per tier, stable across charts
TIER_COLORS: dict[str, str] = {
    "default": "#4c78a8", "priority": "#f58518", "flex": "#54a24b", "reserved": "#b279a2",
}  # fmt: skip
PROMPT_ORDER = ["tiny", "small", "medium", "large", "xlarge", "chat", "summarise", "summarize", "rag", "code"]
MAX_POINTS = 4000  # per chart; below altair's 5,000-row limit with room for layers


@alt.theme.register(THEME, enable=True)
def _theme() -> alt.theme.ThemeConfig:
    """One look for every chart: readable fonts, light grid, no chart border."""
    font = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
    return {
        "config": {
            "font": font,
            "view": {"continuousWidth": 420, "continuousHeight": 260, "stroke": None},
            "axis": {"labelFontSize": 11, "titleFontSize": 12, "gridColor": "#e6e6e6", "titleFontWeight": "normal"},
            "legend": {"labelFontSize": 11, "titleFontSize": 12, "orient": "right"},
            "title": {"fontSize": 14, "anchor": "start", "subtitleColor": "#555", "subtitleFontSize": 11},
            "header": {"labelFontSize": 12, "titleFontSize": 12},
            "range": {"category": list(TIER_COLORS.values()) + ["#e45756", "#72b7b2", "#eeca3b", "#9d755d"]},
        }
    }


def _label(column: str) -> str:
    return METRIC_LABELS.get(column, column.replace("_", " "))


def _qaxis(fmt: str = ".2~f", *, values: Sequence[float] | None = None, grid: bool = True) -> alt.Axis:
    """A quantitative axis whose labels never overlap (``0.70.8`` read as one number): few ticks, short format."""
    if values is not None:
        return alt.Axis(values=list(values), format=fmt, labelOverlap=True, grid=grid)
    return alt.Axis(format=fmt, labelOverlap=True, tickCount=6, grid=grid)


def _tick_step(span: float, count: int = 6) -> float:
    """The tick step Vega (d3's ``tickIncrement``) picks for ``count`` ticks over ``span``: 1, 2 or 5 x 10^k."""
    raw = span / count
    power = 10.0 ** np.floor(np.log10(raw))
    error = raw / power
    factor = 10 if error >= np.sqrt(50) else 5 if error >= np.sqrt(10) else 2 if error >= np.sqrt(2) else 1
    return float(factor * power)


def tick_format(*columns: pd.Series | Sequence[float], groups: pd.Series | None = None, zero: bool = False,
                count: int = 6) -> str:
    """A d3 format with enough decimals for the finest tick step the axis can show, so no two ticks read alike
    ("0.01 0.01 0.01" for steps of 0.002 s). ``groups`` labels each value with the view it is drawn in (a
    menu that filters the data rescales the axis per group: the finest group decides); ``zero`` when the
    scale includes 0. Trailing zeros are trimmed (``~``): "0.005 0.01 0.015", "0.5 1 1.5"."""
    values = pd.concat([pd.Series(pd.to_numeric(pd.Series(c), errors="coerce").to_numpy(float)) for c in columns],
                       ignore_index=True) if columns else pd.Series(dtype=float)
    keys = (pd.concat([pd.Series(groups.to_numpy())] * len(columns), ignore_index=True)
            if groups is not None and len(columns) else pd.Series(0, index=values.index))
    decimals = 0
    for _, v in values.groupby(keys.to_numpy(), sort=False):
        v = v[np.isfinite(v)]
        if v.empty:
            continue
        lo, hi = (min(float(v.min()), 0.0), max(float(v.max()), 0.0)) if zero else (float(v.min()), float(v.max()))
        span = hi - lo if hi > lo else (abs(hi) or 1.0)
        decimals = max(decimals, int(max(0.0, -np.floor(np.log10(_tick_step(span, count)) + 1e-9))))
    return f".{min(decimals, 9)}~f"


#: tick format of a load axis, closed loop (users) / open loop (requests/s): Vega's bare "~g" draws 10 as "1e+1"
LOAD_FORMAT: dict[bool, str] = {False: "d", True: ".6~g"}


def load_title(load_unit: str = "users") -> str:
    """Axis title of the load column: closed loop ("users") or open loop ("rate", stored in ``users``)."""
    return METRIC_LABELS["rate_rps"] if load_unit == "rate" else METRIC_LABELS["users"]


def load_text(value: float | None, load_unit: str = "users") -> str:
    """"16 concurrent users" / "1 concurrent user" / "2.5 requests/s"."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if load_unit == "rate":
        return f"{value:g} requests/s"
    return f"{int(value)} concurrent user" + ("" if int(value) == 1 else "s")


def _load_text_expr(signal: str, load_unit: str = "users") -> str:
    """The Vega expression twin of ``load_text`` for a load held in a signal (a menu-bound param)."""
    if load_unit == "rate":
        return f"format({signal}, '{LOAD_FORMAT[True]}') + ' requests/s'"
    return f"format({signal}, 'd') + ' concurrent user' + ({signal} == 1 ? '' : 's')"


def _signif(values: pd.Series, digits: int) -> pd.Series:
    """Values rounded to ``digits`` significant digits (0 and NaN unchanged): smaller specs, same picture."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where((v != 0) & np.isfinite(v), 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(v)))), 1.0)
    return pd.Series(np.round(v * scale) / scale, index=values.index)


def prompt_order(values: Sequence[str]) -> list[str]:
    """Prompt sizes in a natural order (small before large), unknown ones last alphabetically."""
    known = [p for p in PROMPT_ORDER if p in set(values)]
    return known + sorted(set(values) - set(known))


def tier_scale(values: Sequence[str]) -> alt.Scale:
    tiers = sorted(set(values), key=lambda t: (list(TIER_COLORS).index(t) if t in TIER_COLORS else 99, t))
    palette = ["#e45756", "#72b7b2", "#eeca3b", "#9d755d"]
    colors = [TIER_COLORS.get(t) or palette[i % len(palette)] for i, t in enumerate(tiers)]
    return alt.Scale(domain=tiers, range=colors)


def _check_rows(df: pd.DataFrame, what: str) -> None:
    if len(df) > 5000:
        raise ReportError(f"{what}: {len(df)} rows reach the chart; aggregate first (altair's limit is 5,000)")
    if df.empty:
        raise ReportError(f"{what}: no data to chart")


# ---------------------------------------------------------------- distributions


def ecdf_points(records: pd.DataFrame, metric: str, by: Sequence[str], points: int = 100) -> pd.DataFrame:
    """ECDF of ``metric`` per group, reduced to ``points`` quantiles each (successful requests only)."""
    df = records[records.get("status", "ok") == "ok"] if "status" in records else records
    df = df[np.isfinite(pd.to_numeric(df[metric], errors="coerce"))] if metric in df else df.iloc[0:0]
    probs = np.linspace(0, 1, points)
    rows = []
    for key, sub in df.groupby(list(by), sort=True, observed=True):
        values = pd.to_numeric(sub[metric], errors="coerce").to_numpy(dtype=float)
        key = key if isinstance(key, tuple) else (key,)
        qs = np.quantile(values, probs)
        for p, v in zip(probs, qs, strict=True):
            rows.append({**dict(zip(by, key, strict=True)), metric: float(v), "ecdf": float(p), "n": len(values)})
    return pd.DataFrame(rows)


def ecdf_chart(records: pd.DataFrame, metric: str = "ttft_s", *, users: float | None = None,
               load_unit: str = "users") -> alt.FacetChart:
    """ECDF of a metric for every configuration, one load level at a time (a menu picks it; default: highest).

    Colour = tier, dash = prompt size, one panel per model; click a legend entry to highlight a tier. Each
    curve is reduced to at most 100 quantiles so the chart stays small whatever the number of requests.
    """
    df = label_records(records)
    df = df[[c for c in ("model", "tier", "prompt_size", "users", "status", metric) if c in df.columns]]
    has_users = "users" in df and df["users"].notna().any()
    if has_users:
        df = df.assign(users=pd.to_numeric(df["users"], errors="coerce").fillna(0))
        if (df["users"] % 1 == 0).all():
            df = df.assign(users=df["users"].astype(int))
    else:
        df = df.assign(users=0)
    levels = sorted(df["users"].unique().tolist()) if has_users else []
    if users is None and levels:
        users = levels[-1]
    n_groups = max(1, len(df.groupby(["model", "tier", "prompt_size", "users"], observed=True)))
    points = int(max(10, min(100, MAX_POINTS // n_groups)))
    if n_groups * 10 > MAX_POINTS and users is not None:  # too many curves even at 10 points: one load only
        df, levels = df[df["users"] == users], [users]
    pts = ecdf_points(df, metric, ["model", "tier", "prompt_size", "users"], points)
    _check_rows(pts, f"ECDF of {metric}")
    # a small page: what the chart shows, to the precision a reader sees (4 significant digits, 0.01%)
    pts = pts.assign(ecdf_pct=(pts["ecdf"] * 100).round(2), **{metric: _signif(pts[metric], 4)}).drop(columns="ecdf")
    # ... and each point names its curve by number; the curve's labels are looked up once per curve in the page
    keys = ["model", "tier", "prompt_size", "users"]
    curves = pts[[*keys, "n"]].drop_duplicates(keys).reset_index(drop=True)
    curves["g"] = np.arange(len(curves))
    compact = pts.merge(curves[[*keys, "g"]], on=keys)[["g", metric, "ecdf_pct"]]
    pick = alt.selection_point(fields=["tier"], bind="legend")
    inner = (
        alt.Chart(compact)
        .mark_line(interpolate="step-after")
        .encode(
            x=alt.X(f"{metric}:Q", title=_label(metric), scale=alt.Scale(zero=False),
                    axis=_qaxis(tick_format(pts[metric], groups=pts["users"]))),
            y=alt.Y("ecdf_pct:Q", title="requests at or below (%)", scale=alt.Scale(domain=[0, 100]),
                    axis=_qaxis("d")),
            color=alt.Color("tier:N", title="service tier", scale=tier_scale(pts["tier"])),
            strokeDash=alt.StrokeDash("prompt_size:N", title="prompt size", sort=prompt_order(pts["prompt_size"])),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
            tooltip=[
                "model:N", "tier:N", "prompt_size:N", alt.Tooltip("users:Q", title=load_title(load_unit)),
                alt.Tooltip(f"{metric}:Q", title=_label(metric), format=".3~r"),
                alt.Tooltip("ecdf_pct:Q", title="percentile (%)", format=".0f"), alt.Tooltip("n:Q", title="requests"),
            ],  # fmt: skip
        )
        .add_params(pick)
        .properties(width=420, height=240)
    )
    heading: str | alt.ExprRef = f"Distribution of {_label(metric)}"
    subtitle = f"at {load_text(users, load_unit)}" if users is not None else ""
    if len(levels) > 1:
        menu = "arrival rate (requests/s): " if load_unit == "rate" else "concurrent users: "
        level = alt.param(name="users_level", value=users, bind=alt.binding_select(options=levels, name=menu))
        inner = inner.transform_filter(f"datum.users == {level.name}")
        # the load shown follows the menu: Vega-Lite's schema allows an expression in the title text only
        heading = alt.ExprRef(f"{json.dumps(str(heading) + ' at ')} + {_load_text_expr(level.name, load_unit)}")
        subtitle = "pick another load in the menu below the chart"
    chart = (inner.facet(column=alt.Column("model:N", title=None))
             .transform_lookup(lookup="g", from_=alt.LookupData(data=curves, key="g", fields=[*keys, "n"]))
             .properties(title=alt.Title(heading, subtitle=subtitle)))
    if len(levels) > 1:
        chart = chart.add_params(level)
    return chart


def percentile_band_chart(table: pd.DataFrame, *, metric: str = "ttft_s", percentile: str = "p95",
                          load_unit: str = "users") -> alt.FacetChart:
    """A percentile vs load with its confidence interval, per tier (colour) and prompt size (shape), a panel per model.

    Only tested loads carry marks (points, and rules for the 95% interval; no band that would suggest values
    between them) and the log axis has its ticks exactly there. ``table`` columns: model, tier, prompt_size,
    users, estimate, lo, hi (seconds).
    """
    _check_rows(table, "percentile vs users")
    loads = sorted({float(u) for u in pd.to_numeric(table["users"], errors="coerce").dropna()})
    fmt = LOAD_FORMAT[load_unit == "rate"]
    sizes = prompt_order(table["prompt_size"])
    base = alt.Chart(table).encode(
        x=alt.X("users:Q", title=load_title(load_unit), scale=alt.Scale(type="log", base=2, nice=False,
                                                                          padding=16),
                axis=_qaxis(fmt, values=loads, grid=False)),
        color=alt.Color("tier:N", title="service tier", scale=tier_scale(table["tier"])),
    )
    y_title, y_scale = f"{percentile} {_label(metric)}", alt.Scale(zero=True, nice=True, padding=8)
    y_axis = _qaxis(tick_format(table["estimate"], table["lo"], table["hi"], zero=True))
    y = alt.Y("estimate:Q", title=y_title, scale=y_scale, axis=y_axis)
    interval = base.mark_rule(strokeWidth=2, opacity=0.6).encode(
        y=alt.Y("lo:Q", title=y_title, scale=y_scale, axis=y_axis), y2="hi:Q", detail="prompt_size:N")
    line = base.mark_line(opacity=0.5, strokeWidth=1).encode(y=y, detail="prompt_size:N")
    points = base.mark_point(filled=True, size=60).encode(
        y=y,
        shape=alt.Shape("prompt_size:N", title="prompt size", sort=sizes),
        tooltip=[
            "model:N", "tier:N", "prompt_size:N", alt.Tooltip("users:Q", title=load_title(load_unit)),
            alt.Tooltip("estimate:Q", title=f"{percentile} (s)", format=".3f"),
            alt.Tooltip("lo:Q", title="95% CI low (s)", format=".3f"),
            alt.Tooltip("hi:Q", title="95% CI high (s)", format=".3f"),
        ],  # fmt: skip
    )
    return (
        alt.layer(interval, line, points, data=table)
        .properties(width=420, height=260)
        .facet(column=alt.Column("model:N", title=None))
        .properties(title=alt.Title(f"{percentile} {_label(metric)} vs load", subtitle=(
            "points: estimate at each tested load; vertical lines: 95% distribution-free confidence interval; "
            "thin lines only join tested loads")))
    )


def heatmap_chart(table: pd.DataFrame, *, value: str = "estimate", metric: str = "ttft_s",
                  percentile: str = "p95", users: float | None = None, load_unit: str = "users") -> alt.FacetChart:
    """Service tier x prompt size, coloured by a percentile, a panel per model. Columns: model, tier, prompt_size."""
    _check_rows(table, "tier x prompt heatmap")
    title = f"{percentile} {_label(metric)}"
    base = alt.Chart(table).encode(
        x=alt.X("prompt_size:N", title="prompt size", sort=prompt_order(table["prompt_size"]),
                axis=alt.Axis(labelAngle=0)),  # "small" read upright, not turned on its side
        y=alt.Y("tier:N", title="service tier", sort=list(TIER_COLORS)),
    )
    rect = base.mark_rect().encode(
        # anchored at zero: shades compare relative sizes (0.57 vs 0.63 s get similar shades, not pale vs dark)
        color=alt.Color(f"{value}:Q", title=title, scale=alt.Scale(scheme="orangered", domainMin=0, zero=True),
                        legend=alt.Legend(format=tick_format(table[value], zero=True, count=5))),
        tooltip=["model:N", "tier:N", "prompt_size:N", alt.Tooltip(f"{value}:Q", title=title, format=".3f")],
    )
    # white numbers on the dark end of the scale (domain 0..max), black on the pale end
    top = pd.to_numeric(table[value], errors="coerce").max()
    dark = f"datum[{json.dumps(value)}] > {0.6 * float(top)}" if pd.notna(top) else "false"
    text = base.mark_text(fontSize=12).encode(
        text=alt.Text(f"{value}:Q", format=".2f"),
        color=alt.condition(dark, alt.value("white"), alt.value("black")),
    )
    sub = f"at {load_text(users, load_unit)}" if users is not None else ""
    return (
        alt.layer(rect, text, data=table)
        .properties(width=420, height=alt.Step(40))
        .facet(column=alt.Column("model:N", title=None))
        .properties(title=alt.Title(f"{title} by service tier and prompt size", subtitle=sub))
    )


# ---------------------------------------------------------------- load


def throughput_chart(measured: pd.DataFrame, fit: pd.DataFrame | None = None, knees: pd.DataFrame | None = None,
                     *, load_unit: str = "users") -> alt.HConcatChart:
    """Throughput vs users (points), the USL fit (lines) and its knee (rules), a panel per model.

    ``measured``: model, tier, prompt_size, users, throughput_rps. ``fit``: same keys with a dense users grid
    and throughput_rps. ``knees``: model, tier, prompt_size, knee_users.
    """
    _check_rows(measured, "throughput vs users")
    color = alt.Color("tier:N", title="service tier", scale=tier_scale(measured["tier"]))
    dash = alt.StrokeDash("prompt_size:N", title="prompt size (fit line)", sort=prompt_order(measured["prompt_size"]))
    # zero-based and padded: no point sits on the plot border; ticks at the tested loads (no "-10" left of 0)
    loads = sorted({float(u) for u in pd.to_numeric(measured["users"], errors="coerce").dropna()})
    x = alt.X("users:Q", title=load_title(load_unit), scale=alt.Scale(zero=True, nice=True, padding=16),
              axis=_qaxis(LOAD_FORMAT[load_unit == "rate"], values=loads, grid=False))
    y = alt.Y("throughput_rps:Q", title=_label("throughput_rps"), scale=alt.Scale(zero=True, nice=True, padding=12),
              axis=_qaxis(tick_format(measured["throughput_rps"], zero=True)))
    layers: list[alt.Chart] = [
        alt.Chart(measured).mark_point(filled=True, size=50).encode(
            x=x, y=y, color=color,
            shape=alt.Shape("prompt_size:N", title="prompt size", sort=prompt_order(measured["prompt_size"])),
            tooltip=["tier:N", "prompt_size:N", "users:Q",
                     alt.Tooltip("throughput_rps:Q", title="requests/s", format=".2f")],
        )
    ]
    drawn = ["points: measured"]
    if fit is not None and not fit.empty:
        drawn.append("lines: Universal Scalability Law fit")
        layers.append(alt.Chart(fit).mark_line(opacity=0.8).encode(x=x, y=y, color=color, strokeDash=dash))
    if knees is not None and not knees.empty:
        drawn.append("dotted: knee")
        layers.append(alt.Chart(knees).mark_rule(strokeDash=[2, 2]).encode(
            x=alt.X("knee_users:Q"), color=color,
            tooltip=["tier:N", "prompt_size:N", alt.Tooltip("knee_users:Q", title="knee", format=".1f")],
        ))
    versus = "arrival rate" if load_unit == "rate" else "concurrent users"
    if len(drawn) == 1:
        drawn.append("no saturation fit (it needs at least three load levels)")
    return _facet_layers(layers, "model", f"Throughput vs {versus}", "; ".join(drawn))


def _facet_layers(layers: list[alt.Chart], column: str, title: str, subtitle: str) -> alt.HConcatChart:
    """Panels per ``column`` value, each a layer of the given charts filtered to that value (data stay small)."""
    values = sorted({v for ly in layers for v in ly.data[column].unique()})
    panels = []
    for v in values:
        sub = [ly.transform_filter(alt.datum[column] == v) for ly in layers]
        panels.append(alt.layer(*sub).properties(width=420 if len(values) > 1 else 600, height=260, title=str(v)))
    return alt.hconcat(*panels).resolve_scale(y="shared").properties(title=alt.Title(title, subtitle=subtitle))


def rates_chart(table: pd.DataFrame, *, load_unit: str = "users") -> alt.LayerChart | alt.FacetChart:
    """Throttle and error rates with Wilson 95% intervals, per configuration.

    ``table`` columns: config, users, kind ("throttled"/"other errors"), rate, lo, hi (fractions 0-1).
    """
    _check_rows(table, "error rates")
    df = table.copy()
    for c in ("rate", "lo", "hi"):
        df[c + "_pct"] = df[c] * 100
    df["row"] = df["config"] + " @ " + df["users"].map(lambda u: load_text(u, load_unit))
    order = df.sort_values(["config", "users"])["row"].drop_duplicates().tolist()
    y = alt.Y("row:N", title=None, sort=order, axis=alt.Axis(labelLimit=400))
    color = alt.Color("kind:N", title="outcome", scale=alt.Scale(domain=["throttled", "other errors"],
                                                                   range=["#e45756", "#9d755d"]))
    offset = {"yOffset": alt.YOffset("kind:N")} if df["kind"].nunique() > 1 else {}
    bars = alt.Chart(df).mark_bar(opacity=0.8).encode(
        x=alt.X("rate_pct:Q", title=_label("rate")), y=y, color=color, **offset,
        tooltip=["row:N", "kind:N", alt.Tooltip("rate_pct:Q", title="rate (%)", format=".1f"),
                 alt.Tooltip("lo_pct:Q", title="95% CI low (%)", format=".1f"),
                 alt.Tooltip("hi_pct:Q", title="95% CI high (%)", format=".1f")],
    )
    err = alt.Chart(df).mark_rule(color="black").encode(x="lo_pct:Q", x2="hi_pct:Q", y=y, **offset)
    return alt.layer(bars, err).properties(
        width=560, height=alt.Step(18 if not offset else 11),
        title=alt.Title("Throttled and failed requests",
                        subtitle="configurations with any failure; bars: observed share, lines: Wilson 95% interval"),
    )


def qq_chart(qq: pd.DataFrame, *, metric: str = "ttft_s", dist: str = "") -> alt.LayerChart | alt.FacetChart:
    """QQ plot of a fitted distribution: ``qq`` columns theoretical, sample (seconds)."""
    _check_rows(qq, "QQ plot")
    lo = float(min(qq["theoretical"].min(), qq["sample"].min()))
    hi = float(max(qq["theoretical"].max(), qq["sample"].max()))
    line = pd.DataFrame({"theoretical": [lo, hi], "sample": [lo, hi]})
    pts = alt.Chart(qq).mark_point(filled=True, size=18, opacity=0.7).encode(
        x=alt.X("theoretical:Q", title=f"fitted {dist} quantile (s)".replace("  ", " "),
                axis=_qaxis(tick_format(qq["theoretical"], qq["sample"]))),
        y=alt.Y("sample:Q", title=f"observed {_label(metric)}", axis=_qaxis(tick_format(qq["theoretical"],
                                                                                        qq["sample"]))),
        tooltip=[alt.Tooltip("theoretical:Q", format=".3f"), alt.Tooltip("sample:Q", format=".3f")],
    )
    ref = alt.Chart(line).mark_line(color="#888", strokeDash=[4, 3]).encode(x="theoretical:Q", y="sample:Q")
    return alt.layer(ref, pts).properties(
        width=420, height=360,
        title=alt.Title(f"QQ plot: {_label(metric)} vs fitted {dist}".strip(),
                        subtitle="points on the dashed line = the fit describes the data"),
    )


def ttft_vs_itl_chart(records: pd.DataFrame, *, max_points: int = 2000, seed: int = 0) -> alt.Chart:
    """Time to first token vs time per output token (the chunk gap when records lack TPOT) of a seeded sample
    of successful requests (log axes)."""
    df = label_records(records)
    per = "tpot_s" if "tpot_s" in df and pd.to_numeric(df["tpot_s"], errors="coerce").gt(0).any() else "itl_mean_s"
    ok = (df["status"] == "ok").to_numpy() if "status" in df else np.ones(len(df), dtype=bool)
    df = df.loc[ok, ["model", "tier", "prompt_size", "users", "ttft_s", per]].dropna()
    df = df[(df["ttft_s"] > 0) & (df[per] > 0)]
    total = len(df)
    if len(df) > max_points:
        df = df.sample(n=max_points, random_state=seed)
    _check_rows(df, "TTFT vs ITL")
    pick = alt.selection_point(fields=["tier"], bind="legend")
    # points, not circles: a circle mark has no shape, and the model legend would be missing; log scales
    # fitted to the data (a nice log domain spans whole decades, most of it empty)
    return (
        alt.Chart(df).mark_point(filled=True, size=16)
        .encode(
            x=alt.X(f"{per}:Q", title=_label(per), scale=alt.Scale(type="log", nice=False, padding=8)),
            y=alt.Y("ttft_s:Q", title=_label("ttft_s"), scale=alt.Scale(type="log", nice=False, padding=8)),
            color=alt.Color("tier:N", title="service tier", scale=tier_scale(df["tier"])),
            shape=alt.Shape("model:N", title="model", legend=alt.Legend(labelLimit=360)),
            opacity=alt.condition(pick, alt.value(0.6), alt.value(0.05)),
            tooltip=["model:N", "tier:N", "prompt_size:N", "users:Q",
                     alt.Tooltip("ttft_s:Q", format=".3f"), alt.Tooltip(f"{per}:Q", format=".4f")],
        )
        .add_params(pick)
        .properties(width=600, height=360, title=alt.Title(
            "Time to first token vs " + _label(per).removesuffix(" (s)"),
            subtitle=(f"seeded sample of {len(df)} of {total} successful requests" if total > len(df)
                      else f"all {total} successful requests")))
    )


def timeline_chart(records: pd.DataFrame, *, max_points: int = MAX_POINTS, seed: int = 0,
                   title: str = "Latency of each request over time") -> alt.Chart:
    """TTFT and end-to-end latency of each request against its start, errors as crosses (zoom and pan).

    Warm-up, drift and bursts of throttling show here and in no distribution. The x axis is seconds since the
    first request (epoch seconds read badly); above ``max_points`` a seeded sample is drawn and the subtitle says so.
    """
    if "start" not in records:
        raise ReportError("timeline: the records have no start column")
    df = records.assign(t_s=pd.to_numeric(records["start"], errors="coerce") - records["start"].min())
    df = df.assign(status=df["status"].astype(str) if "status" in df else "ok",
                   error_kind=df["error_kind"].fillna("").astype(str) if "error_kind" in df else "")  # fmt: skip
    metrics = [m for m in ("ttft_s", "e2e_s") if m in df]
    long = df.melt(id_vars=["t_s", "status", "error_kind"], value_vars=metrics, var_name="metric",
                   value_name="seconds").dropna(subset=["seconds", "t_s"])  # fmt: skip
    long["metric"] = long["metric"].map(_label)
    n = len(long)
    if n > max_points:
        long = long.sample(n=max_points, random_state=seed)
    _check_rows(long, "timeline")
    subtitle = f"{len(df)} requests" + (f"; a sample of {max_points} of {n} points" if n > max_points else "")
    return (
        alt.Chart(long).mark_point(filled=True, size=28, opacity=0.7)
        .encode(
            x=alt.X("t_s:Q", title="time since the first request (s)"),
            y=alt.Y("seconds:Q", title="latency (s)"),
            color=alt.Color("metric:N", title=None),
            shape=alt.Shape("status:N", title="status",
                            scale=alt.Scale(domain=["ok", "error"], range=["circle", "cross"])),
            tooltip=[alt.Tooltip("t_s:Q", title="start (s)", format=".2f"), "metric:N",
                     alt.Tooltip("seconds:Q", title="latency (s)", format=".3f"), "status:N",
                     alt.Tooltip("error_kind:N", title="error")],
        )
        .properties(width=640, height=260, title=alt.Title(title, subtitle=subtitle))
        .interactive()
    )


# ---------------------------------------------------------------- output speed, over time, SLO explorer


def _tested_load_x(table: pd.DataFrame, load_unit: str) -> alt.X:
    """x = load on a log2 axis with ticks exactly at the tested loads (nothing suggests values between them)."""
    loads = sorted({float(u) for u in pd.to_numeric(table["users"], errors="coerce").dropna() if u > 0})
    fmt = LOAD_FORMAT[load_unit == "rate"]
    return alt.X("users:Q", title=load_title(load_unit), scale=alt.Scale(type="log", base=2, nice=False, padding=16),
                 axis=_qaxis(fmt, values=loads, grid=False))


def output_tokens_chart(table: pd.DataFrame, *, load_unit: str = "users") -> alt.FacetChart:
    """Output token throughput of each cell (tokens/s across all its requests) vs load, a panel per model.

    ``table`` columns: model, tier, prompt_size, users, output_tokens_per_s (``stats.summary_table``: output
    tokens of the successes over the cell's wall time). Points at tested loads, thin lines join them.
    """
    _check_rows(table, "output tokens per second vs load")
    sizes = prompt_order(table["prompt_size"])
    y = alt.Y("output_tokens_per_s:Q", title="output token throughput (tokens/s)",
              scale=alt.Scale(zero=True, nice=True), axis=_qaxis("~s"))
    base = alt.Chart(table).encode(x=_tested_load_x(table, load_unit), y=y,
                                   color=alt.Color("tier:N", title="service tier", scale=tier_scale(table["tier"])))
    line = base.mark_line(opacity=0.5, strokeWidth=1).encode(detail="prompt_size:N")
    points = base.mark_point(filled=True, size=60).encode(
        shape=alt.Shape("prompt_size:N", title="prompt size", sort=sizes),
        tooltip=["model:N", "tier:N", "prompt_size:N", alt.Tooltip("users:Q", title=load_title(load_unit)),
                 alt.Tooltip("output_tokens_per_s:Q", title="output tokens/s", format=",.0f")],
    )
    return (
        alt.layer(line, points, data=table).properties(width=420, height=260)
        .facet(column=alt.Column("model:N", title=None))
        .properties(title=alt.Title("Output token throughput vs load", subtitle=(
            "output tokens of the successful requests per second of the cell's run, at each tested load")))
    )


def percentiles_vs_load_chart(table: pd.DataFrame, *, metric: str = "tpot_s",
                              load_unit: str = "users") -> alt.FacetChart:
    """Several percentiles of a metric vs load with their 95% intervals: a row per percentile, a column per model.

    ``table`` columns: model, tier, prompt_size, users, percentile ("p50", "p95"), estimate, lo, hi (seconds).
    Time per output token is drawn in milliseconds (values near 0.01 s read badly).
    """
    _check_rows(table, f"percentiles of {metric} vs load")
    ms = metric == "tpot_s"
    df = table.copy()
    if ms:
        df[["estimate", "lo", "hi"]] = df[["estimate", "lo", "hi"]] * 1000
    unit = "ms" if ms else "s"
    y_title = _label(metric).replace("(s)", f"({unit})")
    y_scale = alt.Scale(zero=True, nice=True)
    base = alt.Chart(df).encode(x=_tested_load_x(df, load_unit),
                                color=alt.Color("tier:N", title="service tier", scale=tier_scale(df["tier"])))
    y_axis = _qaxis(tick_format(df["estimate"], df["lo"], df["hi"], groups=df["percentile"], zero=True))
    interval = base.mark_rule(strokeWidth=2, opacity=0.6).encode(
        y=alt.Y("lo:Q", title=y_title, scale=y_scale, axis=y_axis), y2="hi:Q", detail="prompt_size:N")
    y = alt.Y("estimate:Q", title=y_title, scale=y_scale, axis=y_axis)
    line = base.mark_line(opacity=0.5, strokeWidth=1).encode(y=y, detail="prompt_size:N")
    points = base.mark_point(filled=True, size=60).encode(
        y=y, shape=alt.Shape("prompt_size:N", title="prompt size", sort=prompt_order(df["prompt_size"])),
        tooltip=["model:N", "tier:N", "prompt_size:N", "percentile:N",
                 alt.Tooltip("users:Q", title=load_title(load_unit)),
                 alt.Tooltip("estimate:Q", title=f"estimate ({unit})", format=".3~f"),
                 alt.Tooltip("lo:Q", title=f"95% CI low ({unit})", format=".3~f"),
                 alt.Tooltip("hi:Q", title=f"95% CI high ({unit})", format=".3~f")],
    )
    pcts = sorted(df["percentile"].unique(), key=lambda p: float(str(p).lstrip("p") or 0))
    return (
        alt.layer(interval, line, points, data=df).properties(width=420, height=200)
        .facet(row=alt.Row("percentile:N", title=None, sort=pcts), column=alt.Column("model:N", title=None))
        .resolve_scale(y="independent")
        .properties(title=alt.Title(f"{_label(metric).removesuffix(' (s)').capitalize()} vs load ("
                                    + ", ".join(pcts) + ")", subtitle=(
            "points: estimate at each tested load; vertical lines: 95% distribution-free confidence interval")))
    )


def background_chart(table: pd.DataFrame, *, metric: str = "ttft_s", load_unit: str = "users") -> alt.FacetChart:
    """TTFT p50 and p95 by service tier against other customers' demand (``grid.background_load``): a row per
    percentile, a column per model; one line per tier, prompt size and load, with 95% intervals.

    ``table``: :func:`bedrock_lab.stats.background.background_table` (model, tier, prompt_size, users,
    background_load, percentile, estimate, lo, hi in seconds, n, throttled). Flex rising while priority stays flat
    is the shared queue serving tiers in order (docs/emulator.md, Shared capacity).
    """
    _check_rows(table, f"{metric} vs background load")
    df = table.copy()
    y_title = _label(metric)
    levels = sorted(float(v) for v in df["background_load"].unique())
    x = alt.X("background_load:Q", title="other customers' demand (share of the model's capacity)",
              scale=alt.Scale(zero=True, nice=False),
              axis=_qaxis(tick_format(levels, zero=True), values=levels))  # fmt: skip
    base = alt.Chart(df).encode(x=x, color=alt.Color("tier:N", title="service tier", scale=tier_scale(df["tier"])))
    y_scale = alt.Scale(zero=True, nice=True)
    y_axis = _qaxis(tick_format(df["estimate"], df["lo"], df["hi"], groups=df["percentile"], zero=True))
    detail = ["prompt_size:N", "users:Q"]
    interval = base.mark_rule(strokeWidth=2, opacity=0.5).encode(
        y=alt.Y("lo:Q", title=y_title, scale=y_scale, axis=y_axis), y2="hi:Q", detail=detail)
    y = alt.Y("estimate:Q", title=y_title, scale=y_scale, axis=y_axis)
    line = base.mark_line(strokeWidth=2).encode(y=y, detail=detail)
    points = base.mark_point(filled=True, size=60).encode(
        y=y, tooltip=["model:N", "tier:N", "prompt_size:N", alt.Tooltip("users:Q", title=load_title(load_unit)),
                      alt.Tooltip("background_load:Q", title="background load", format=".2~f"),
                      "percentile:N", alt.Tooltip("estimate:Q", title="estimate (s)", format=".3~f"),
                      alt.Tooltip("lo:Q", title="95% CI low (s)", format=".3~f"),
                      alt.Tooltip("hi:Q", title="95% CI high (s)", format=".3~f"),
                      alt.Tooltip("n:Q", title="successful requests"),
                      alt.Tooltip("throttled:Q", title="throttled share", format=".1%")])  # fmt: skip
    pcts = sorted(df["percentile"].unique(), key=lambda p: float(str(p).lstrip("p") or 0))
    return (
        alt.layer(interval, line, points, data=df).properties(width=420, height=200)
        .facet(row=alt.Row("percentile:N", title=None, sort=pcts), column=alt.Column("model:N", title=None))
        .resolve_scale(y="independent")
        .properties(title=alt.Title("Time to first token by service tier as other customers' demand grows", subtitle=(
            "points: estimate of successful requests at each background level; vertical lines: 95% "
            "distribution-free confidence interval")))
    )  # fmt: skip


def timeseries_chart(bins: pd.DataFrame, *, metric: str = "ttft_s", cell: str | None = None,
                     load_unit: str = "users") -> alt.VConcatChart:
    """Requests/s and latency percentiles in time bins across one cell's run; a menu picks the cell.

    ``bins``: :func:`bedrock_lab.stats.timeseries.time_bins` (model, tier, prompt_size, users, t_s, width_s,
    ok_rps, error_rps, ``<metric>_p50``, ``<metric>_p95``, bin_s). One chart with a menu, not a panel per
    cell. ``cell`` (a "config @ load" label) is shown first; default: the first configuration at its highest load.
    """
    df = label_records(bins) if "config" not in bins else bins
    df = df.assign(cell=df["config"] + " @ " + df["users"].map(lambda u: load_text(u, load_unit)),
                   t_mid=df["t_s"] + df["width_s"] / 2)
    order = (df.sort_values(["config", "users"])["cell"].drop_duplicates().tolist())
    if cell is None:
        first = df.sort_values(["config", "users"]).groupby("config", sort=True)["cell"].last()
        cell = str(first.iloc[0]) if len(first) else ""
    if cell not in order:
        raise ReportError(f"timeseries: unknown cell {cell!r} (allowed: {', '.join(order[:5])}...)")
    rps = df.melt(id_vars=["cell", "t_mid", "t_s", "width_s"], value_vars=["ok_rps", "error_rps"],
                  var_name="series", value_name="value")
    rps["series"] = rps["series"].map({"ok_rps": "successful", "error_rps": "failed"})
    lat = df.melt(id_vars=["cell", "t_mid", "t_s", "width_s"], value_vars=[f"{metric}_p50", f"{metric}_p95"],
                  var_name="series", value_name="value").dropna(subset=["value"])
    lat["series"] = lat["series"].str.rsplit("_", n=1).str[-1]
    _check_rows(pd.concat([rps, lat]), "throughput and latency over time")
    pick = alt.param(name="ts_cell", value=cell, bind=alt.binding_select(options=order, name="cell: "))
    x = alt.X("t_mid:Q", title="time since the cell's first request (s)", scale=alt.Scale(zero=True, nice=True),
              axis=_qaxis(tick_format(df["t_mid"], df["t_s"] + df["width_s"], groups=df["cell"], zero=True)))
    tip = [alt.Tooltip("t_s:Q", title="bin start (s)", format=".1f"), alt.Tooltip("width_s:Q", title="bin (s)",
                                                                                   format=".2~f"), "series:N"]
    top = (alt.Chart(rps).transform_filter(f"datum.cell == {pick.name}")
           .mark_line(point=True, strokeWidth=1.5)
           .encode(x=x, y=alt.Y("value:Q", title="completed requests (requests/s)", scale=alt.Scale(zero=True),
                                axis=_qaxis(tick_format(rps["value"], groups=rps["cell"], zero=True))),
                   color=alt.Color("series:N", title="requests", scale=alt.Scale(
                       domain=["successful", "failed"], range=["#4c78a8", "#e45756"])),
                   tooltip=[*tip, alt.Tooltip("value:Q", title="requests/s", format=".2f")])
           .properties(width=640, height=180))
    bottom = (alt.Chart(lat).transform_filter(f"datum.cell == {pick.name}")
              .mark_line(point=True, strokeWidth=1.5)
              .encode(x=x, y=alt.Y("value:Q", title=_label(metric), scale=alt.Scale(zero=True),
                                   axis=_qaxis(tick_format(lat["value"], groups=lat["cell"], zero=True))),
                      color=alt.Color("series:N", title="percentile", scale=alt.Scale(
                          domain=["p50", "p95"], range=["#54a24b", "#f58518"])),
                      tooltip=[*tip, alt.Tooltip("value:Q", title=_label(metric), format=".3f")])
              .properties(width=640, height=180))
    from bedrock_lab.stats.timeseries import MIN_N_P50, MIN_N_P95

    widths = sorted(pd.to_numeric(df["bin_s"], errors="coerce").dropna().unique()) if "bin_s" in df else []
    span = (f"{widths[0]:g} s" if len(widths) == 1 else f"{widths[0]:g}-{widths[-1]:g} s (per cell, in the tooltip)"
            if widths else "time")
    heading = alt.ExprRef(f"'Throughput and {_label(metric).removesuffix(' (s)')} over time: ' + {pick.name}")
    subtitle = [f"bins of {span}, each request counted in the bin in which it finished (as Locust does)",
                f"p50 drawn with {MIN_N_P50}+ and p95 with {MIN_N_P95}+ requests in a bin; "
                "pick the cell in the menu below the chart"]
    return (alt.vconcat(top, bottom).add_params(pick).resolve_scale(color="independent", x="shared")
            .properties(title=alt.Title(heading, subtitle=subtitle)))


#: SLO metrics the reader can move in the page: (record column, slider label)
SLO_SLIDERS: tuple[tuple[str, str], ...] = (("ttft_s", "TTFT target (s): "), ("e2e_s", "end-to-end target (s): "),
                                            ("tpot_s", "time per output token target (s): "))


def _slider_range(values: pd.Series, target: float | None) -> tuple[float, float, float]:
    """(max, step, start value) of a slider from 0: past the data and the target, a step of ~1/100-1/1000."""
    v = pd.to_numeric(values, errors="coerce")
    top = float(np.nanmax([v.max() if v.notna().any() else 0.0, (target or 0.0) * 2, 1e-3]))
    step = float(10 ** np.floor(np.log10(top / 100)))
    for _ in range(3):  # the target on the slider's grid (a range input snaps its value to the step)
        if target is None or abs(target / step - round(target / step)) < 1e-9:
            break
        step /= 10
    highest = top
    top = round(float(np.ceil(top / step) * step), 10)  # 0.03, not 0.030000000000000002
    if top < highest:  # rounding must not leave a value past the right end ("checks nothing")
        top = round(top + step, 10)
    return top, step, float(target) if target is not None else top


def slo_explorer_chart(requests: pd.DataFrame, *, targets: Mapping[str, float | None], goodput_target: float,
                       load_unit: str = "users", note: str = "") -> alt.LayerChart | alt.FacetChart:
    """Goodput and verdict per configuration and load, recomputed in the page from per-request data as the
    reader moves the SLO sliders (TTFT, end-to-end, time per output token, goodput target).

    ``requests`` columns: config, users, ``fixed_ok`` (1 when the request succeeded and met the thresholds that
    have no slider), ``err_ok`` (1 when the cell's error rate is within the sweep's limit), and the slider
    metrics (seconds, null when the request has none: that criterion then passes, as in ``stats.slo``; embedded
    rounded to the microsecond).
    ``targets``: the analysis' thresholds (None = not checked: the slider starts at its right end, past every
    value). Goodput = share of the cell's requests that are good (failures count against it); verdict =
    goodput >= goodput target, the analysis' rule. ``note`` ends the subtitle (e.g. the sampling).
    """
    _check_rows(requests, "SLO explorer")
    params, checks = [], []
    for metric, name in SLO_SLIDERS:
        if metric not in requests or not pd.to_numeric(requests[metric], errors="coerce").notna().any():
            continue
        top, step, start = _slider_range(requests[metric], targets.get(metric))
        p = alt.param(name=f"slo_{metric}", value=start,
                      bind=alt.binding_range(min=0, max=top, step=step, name=name))
        params.append(p)
        checks.append(f"(datum.{metric} == null || datum.{metric} <= {p.name})")
    lo = float(min(0.5, np.floor(goodput_target * 20) / 20))
    target = alt.param(name="slo_goodput", value=float(goodput_target),
                       bind=alt.binding_range(min=lo, max=1, step=0.01, name="goodput target (share): "))
    good = " && ".join(["datum.fixed_ok == 1", *checks])
    rows = requests.sort_values(["config", "users"])["config"].drop_duplicates().tolist()
    # small page: per request only a cell number, the fixed flag and the metrics to the microsecond; the cell's
    # labels and error-rate flag are looked up once per cell after the aggregate
    cells = requests[["config", "users", "err_ok"]].drop_duplicates(["config", "users"]).reset_index(drop=True)
    cells["c"] = np.arange(len(cells))
    metrics = [m for m, _ in SLO_SLIDERS if m in requests]
    compact = requests.merge(cells[["config", "users", "c"]], on=["config", "users"])[["c", "fixed_ok", *metrics]]
    compact[metrics] = compact[metrics].astype(float).round(6)
    base = (
        alt.Chart(compact)
        .transform_calculate(good=f"({good}) ? 1 : 0")
        .transform_aggregate(n_good="sum(good)", n="count()", groupby=["c"])
        .transform_lookup(lookup="c", from_=alt.LookupData(data=cells, key="c", fields=["config", "users", "err_ok"]))
        .transform_calculate(goodput="datum.n_good / datum.n")  # k / n exactly as stats.slo (no running mean)
        .transform_calculate(verdict=f"datum.goodput >= {target.name} && datum.err_ok == 1 ? 'meets' : 'misses'",
                             label="format(datum.goodput, '.1%') + ' ' + "
                                   f"(datum.goodput >= {target.name} && datum.err_ok == 1 ? 'meets' : 'misses')")
        .encode(x=alt.X("users:O", title=load_title(load_unit), sort="ascending", axis=alt.Axis(labelAngle=0)),
                y=alt.Y("config:N", title=None, sort=rows, axis=alt.Axis(labelLimit=400)))
    )
    rect = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color("verdict:N", title="verdict", scale=alt.Scale(domain=["meets", "misses"],
                                                                      range=["#54a24b", "#e45756"])),
        tooltip=["config:N", alt.Tooltip("users:O", title=load_title(load_unit)),
                 alt.Tooltip("goodput:Q", title="goodput", format=".1%"), alt.Tooltip("n:Q", title="requests"),
                 alt.Tooltip("n_good:Q", title="good requests"), "verdict:N"],
    )
    text = base.mark_text(fontSize=11, color="white").encode(text="label:N")
    drawn = [name.split(" target")[0] for metric, name in SLO_SLIDERS if f"slo_{metric}" in {p.name for p in params}]
    subtitle = [
        f"goodput: share of all requests (failures count) that succeeded with {', '.join(drawn)} within the sliders",
        "meets: goodput >= the goodput target, the rule of the analysis (point estimate, no interval)",
        "sliders start at the analysis' SLOs (" + (" and ".join(
            f"{name.split(' target')[0]} <= {targets[m]:g} s" for m, name in SLO_SLIDERS if targets.get(m)
        ) or "none") + f", goodput target {goodput_target * 100:g}%); one at its right end checks nothing",
        *([note] if note else []),
    ]
    return (
        alt.layer(rect, text).add_params(*params, target)
        .properties(width=max(420, 120 * requests["users"].nunique()), height=alt.Step(22),
                    title=alt.Title("SLO explorer: move the targets, the verdicts follow", subtitle=subtitle))
    )


# ---------------------------------------------------------------- slide set (public examples)


def avg_latency_chart(summary: pd.DataFrame, *, metric: str = "e2e_s") -> alt.Chart:
    """Average latency by configuration (bars). ``summary`` columns: config, mean (s)."""
    _check_rows(summary, "average latency")
    return alt.Chart(summary).mark_bar().encode(
        x=alt.X("mean:Q", title=f"average {_label(metric)}"),
        y=alt.Y("config:N", title="configuration", sort="-x"),
        color=alt.Color("tier:N", title="service tier", scale=tier_scale(summary["tier"])),
        tooltip=["config:N", alt.Tooltip("mean:Q", title="mean (s)", format=".3f"), alt.Tooltip("n:Q")],
    ).properties(width=420, height=alt.Step(16), title=f"Average {_label(metric)} by configuration")


def p50_p95_chart(summary: pd.DataFrame, *, metric: str = "e2e_s") -> alt.Chart:
    """p50 vs p95 by prompt size, per model. ``summary`` columns: model, prompt_size, percentile, value."""
    _check_rows(summary, "p50 vs p95")
    return alt.Chart(summary).mark_bar().encode(
        x=alt.X("prompt_size:N", title="prompt size", sort=prompt_order(summary["prompt_size"])),
        xOffset=alt.XOffset("percentile:N", sort=["p50", "p95"]),
        y=alt.Y("value:Q", title=_label(metric)),
        color=alt.Color("percentile:N", title="percentile", scale=alt.Scale(range=["#4c78a8", "#e45756"])),
        column=alt.Column("model:N", title=None),
        tooltip=["model:N", "prompt_size:N", "percentile:N", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=200, height=220, title=f"p50 vs p95 {_label(metric)} by prompt size")


def latency_by_prompt_chart(summary: pd.DataFrame, *, metric: str = "e2e_s") -> alt.LayerChart | alt.FacetChart:
    """Box-style summary per prompt size and model from precomputed p5/p25/p50/p75/p95 (seconds)."""
    _check_rows(summary, "latency by prompt size")
    x = alt.X("prompt_size:N", title="prompt size", sort=prompt_order(summary["prompt_size"]))
    xo = alt.XOffset("model:N")
    color = alt.Color("model:N", title="model")
    whisker = alt.Chart(summary).mark_rule().encode(
        x=x, xOffset=xo, y=alt.Y("p5:Q", title=_label(metric)), y2="p95:Q", color=color)
    box = alt.Chart(summary).mark_bar(size=18, opacity=0.6).encode(
        x=x, xOffset=xo, y="p25:Q", y2="p75:Q", color=color,
        tooltip=["model:N", "prompt_size:N"] + [alt.Tooltip(f"{c}:Q", format=".3f")
                                                  for c in ("p5", "p25", "p50", "p75", "p95")])
    median = alt.Chart(summary).mark_tick(color="black", size=18, thickness=2).encode(x=x, xOffset=xo, y="p50:Q")
    return alt.layer(whisker, box, median).properties(
        width=360, height=240, title=alt.Title(f"{_label(metric)} by prompt size",
                                               subtitle="box: p25-p75, tick: median, whiskers: p5-p95"))


def throughput_comparison_chart(summary: pd.DataFrame) -> alt.Chart:
    """Throughput by configuration at the highest load. ``summary`` columns: config, tier, throughput_rps."""
    _check_rows(summary, "throughput comparison")
    return alt.Chart(summary).mark_bar().encode(
        x=alt.X("throughput_rps:Q", title=_label("throughput_rps")),
        y=alt.Y("config:N", title="configuration", sort="-x"),
        color=alt.Color("tier:N", title="service tier", scale=tier_scale(summary["tier"])),
        tooltip=["config:N", "users:Q", alt.Tooltip("throughput_rps:Q", format=".2f")],
    ).properties(width=420, height=alt.Step(16), title="Throughput by configuration at the highest load")


def save_figures(charts: Mapping[str, alt.TopLevelMixin], folder: str | os.PathLike[str],
                 formats: Sequence[str] = ("png", "svg"), *, scale: float = 2.0) -> list[Path]:
    """Write each chart as ``<name>.png`` / ``<name>.svg`` (vl-convert, no browser) for slides."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in charts.items():
        spec = chart.to_dict()
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            try:
                if fmt == "png":
                    path.write_bytes(vlc.vegalite_to_png(spec, scale=scale))
                elif fmt == "svg":
                    path.write_text(vlc.vegalite_to_svg(spec))
                else:
                    raise ReportError(f"unknown figure format {fmt!r} (allowed: png, svg)")
            except ReportError:
                raise
            except Exception as exc:
                raise ReportError(f"cannot write figure {path}: {exc}") from exc
            written.append(path)
    return written

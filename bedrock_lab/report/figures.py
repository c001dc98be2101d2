"""The report's figures, built from an :class:`~bedrock_lab.stats.analysis.Analysis` (small tables only)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from bedrock_lab import charts
from bedrock_lab.errors import ReportError, StatsError
from bedrock_lab.stats import SLO, meets_slo, with_metrics
from bedrock_lab.stats.analysis import CONFIG, KEYS, Analysis, error_rate_max
from bedrock_lab.stats.background import background_table as stats_background_table
from bedrock_lab.stats.rates import wilson_interval
from bedrock_lab.stats.saturation import usl
from bedrock_lab.stats.timeseries import NICE_BINS_S, time_bins


def percentile_table(analysis: Analysis, metric: str = "ttft_s", percentile: str = "p95") -> pd.DataFrame:
    """model, tier, prompt_size, users, estimate, lo, hi for one percentile of one metric."""
    s = analysis.summary
    col = f"{metric}_{percentile}"
    if col not in s:
        return pd.DataFrame()
    out = s[[*CONFIG, "users"]].copy()
    out["estimate"] = s[col]
    # no two-sided interval (too few samples): draw the band only where it exists
    out["lo"] = s[f"{col}_lo"].where(np.isfinite(s[f"{col}_lo"]), s[col])
    out["hi"] = s[f"{col}_hi"].where(np.isfinite(s[f"{col}_hi"]), s[col])
    return out.dropna(subset=["estimate"]).reset_index(drop=True)


def at_users(table: pd.DataFrame, users: float | None) -> pd.DataFrame:
    return table if users is None or "users" not in table else table[table["users"] == users]


def throughput_tables(analysis: Analysis) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Measured throughput, the USL curve on a dense users grid, and the knees."""
    load = analysis.load
    if load.empty:
        return pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    measured = load[[*CONFIG, "users", "throughput_rps"]].dropna().reset_index(drop=True)
    fits, knees = [], []
    for _, row in analysis.capacity.iterrows():
        keys = {k: row[k] for k in CONFIG}
        if np.isfinite(row.get("sigma", np.nan)):
            levels = [u for u in row["levels"] if u > 0]
            grid = np.geomspace(max(min(levels), 1), max(levels), 30)
            y = usl(grid, row["sigma"], row["kappa"], row["lam"])
            fits.append(pd.DataFrame({**keys, "users": grid, "throughput_rps": y}))
        if np.isfinite(row.get("knee_users", np.nan)):
            knees.append({**keys, "knee_users": float(row["knee_users"])})
    fit = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame()
    return measured, fit, pd.DataFrame(knees)


def rates_table(analysis: Analysis) -> pd.DataFrame:
    """Throttled and other-error shares with Wilson intervals, only for configurations with any failure."""
    s = analysis.summary
    rows = []
    for _, r in s.iterrows():
        if not r["n_error"]:
            continue
        other = int(r["n_error"] - r["n_throttled"])
        lo, hi = wilson_interval(other, int(r["n_requests"]))
        rows.append({"config": r["config"], "users": r["users"], "kind": "throttled",
                     "rate": r["throttle_rate"], "lo": r["throttle_rate_lo"], "hi": r["throttle_rate_hi"]})
        if other:
            rows.append({"config": r["config"], "users": r["users"], "kind": "other errors",
                         "rate": other / r["n_requests"], "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


def output_speed_tables(analysis: Analysis) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Output token throughput per cell (``output_tokens_per_s`` of the summary) and the TPOT p50/p95 with their
    intervals (``tpot_s_p50`` ...), in the long form of :func:`bedrock_lab.charts.percentiles_vs_load_chart`."""
    s = analysis.summary
    tokens = pd.DataFrame()
    if "output_tokens_per_s" in s:
        tokens = s[[*KEYS, "output_tokens_per_s"]].dropna().reset_index(drop=True)
        tokens = tokens[tokens["output_tokens_per_s"] > 0]
    parts = [percentile_table(analysis, "tpot_s", p).assign(percentile=p) for p in ("p50", "p95")]
    tpot = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(len(p) for p in parts) else \
        pd.DataFrame()
    return tokens, tpot


def background_table(analysis: Analysis, metric: str = "ttft_s") -> pd.DataFrame:
    """The shared-capacity chart's table (:func:`bedrock_lab.stats.background.background_table`) per ``KEYS``."""
    return stats_background_table(analysis.records, KEYS, metric)


def timeseries_metric(analysis: Analysis) -> str:
    """The latency drawn over time: time to first token, or end-to-end latency when no request streamed."""
    rec = analysis.records
    has_ttft = "ttft_s" in rec and pd.to_numeric(rec["ttft_s"], errors="coerce").notna().any()
    return "ttft_s" if has_ttft else "e2e_s"


def timeseries_table(analysis: Analysis, max_rows: int = charts.MAX_POINTS // 4, *,
                     metric: str | None = None) -> pd.DataFrame:
    """Time bins of every cell (:func:`bedrock_lab.stats.timeseries.time_bins`, each cell its own width), with
    fewer requests a bin allowed only as needed to keep the chart's data (4 series a bin) under altair's limit."""
    rec = analysis.records
    metric = metric or timeseries_metric(analysis)
    bins = time_bins(rec, KEYS, metric=metric)
    for w in NICE_BINS_S:  # a sweep of very many cells: one common width, coarsened until it fits
        if len(bins) <= max_rows:
            break
        bins = time_bins(rec, KEYS, bin_s=w, metric=metric)
    return bins.merge(analysis.summary[[*KEYS, "config"]], on=list(KEYS), how="left")


#: per-request rows the SLO explorer embeds at most (a seeded sample per cell above that)
SLO_EXPLORER_MAX_ROWS = charts.MAX_POINTS


def slo_requests(analysis: Analysis, max_rows: int = SLO_EXPLORER_MAX_ROWS, seed: int = 0
                 ) -> tuple[pd.DataFrame, str]:
    """The per-request data the SLO explorer recomputes goodput from, and a note on what it is.

    Columns: config, users, ``fixed_ok`` (succeeded and met the thresholds the page has no slider for: the
    inter-chunk gap and output speed, from :func:`bedrock_lab.stats.meets_slo`), ``err_ok`` (the cell's error rate
    within the sweep file's ``slo.error_rate_max``), and the slider metrics of successful requests. Above
    ``max_rows`` an equal seeded sample of each cell is kept (the note says so: goodput is then estimated)."""
    slo = analysis.slo
    rec = with_metrics(analysis.records)
    fixed = SLO(ttft_s=None, e2e_s=None, itl_s=slo.itl_s, tpot_s=None, tokens_per_s=slo.tokens_per_s,
                goodput_target=slo.goodput_target)
    ok = meets_slo(rec, fixed).to_numpy(bool)
    cols = [m for m, _ in charts.SLO_SLIDERS if m in rec]
    out = rec[["config", "users"]].copy()
    out["fixed_ok"] = ok.astype(int)
    for m in cols:
        out[m] = pd.to_numeric(rec[m], errors="coerce").where(ok)
    limit = error_rate_max(analysis.data)
    s = analysis.summary[["config", "users", "error_rate"]].copy()
    s["err_ok"] = 1 if limit is None else (s["error_rate"] <= limit).astype(int)
    out = out.merge(s[["config", "users", "err_ok"]], on=["config", "users"], how="left")
    out["err_ok"] = out["err_ok"].fillna(1).astype(int)
    notes = []
    if len(out) > max_rows:
        n_cells = out.groupby(["config", "users"]).ngroups
        per_cell = max(1, max_rows // n_cells)
        shuffled = out.sample(frac=1.0, random_state=seed)
        total = len(out)
        out = shuffled.groupby(["config", "users"], sort=False).head(per_cell).reset_index(drop=True)
        notes.append(f"computed from a seeded sample of {len(out)} of {total} requests (at most {per_cell} per "
                     "cell), so goodput near the target may differ from the tables")
    fixed_desc = fixed.describe()
    if fixed_desc != "no thresholds":
        notes.append(f"fixed: {fixed_desc}")
    if limit is not None:
        notes.append(f"cells above the {limit:.1%} error-rate limit miss whatever the sliders")
    return out.reset_index(drop=True), "; ".join(notes)


def report_charts(analysis: Analysis) -> dict[str, alt.TopLevelMixin]:
    """The interactive figures of the report, by name (only those the data supports)."""
    out: dict[str, alt.TopLevelMixin] = {}
    users = analysis.max_users
    unit = analysis.load_kind
    rec = analysis.records
    if "tpot_s" not in rec or rec["tpot_s"].isna().all():  # older records: TPOT from their token counts
        rec = with_metrics(rec)
    for metric in ("ttft_s", "e2e_s", "tpot_s", "itl_mean_s"):
        if metric in rec and pd.to_numeric(rec[metric], errors="coerce").notna().any():
            out[f"ecdf_{metric}"] = charts.ecdf_chart(rec, metric, users=users, load_unit=unit)
    band = percentile_table(analysis, "ttft_s", "p95")
    if not band.empty and band["users"].nunique() > 1:
        out["p95_ttft_vs_users"] = charts.percentile_band_chart(band, metric="ttft_s", percentile="p95",
                                                                load_unit=unit)
    band = percentile_table(analysis, "e2e_s", "p95")
    if not band.empty and band["users"].nunique() > 1:
        out["p95_e2e_vs_users"] = charts.percentile_band_chart(band, metric="e2e_s", percentile="p95",
                                                               load_unit=unit)
    heat = at_users(percentile_table(analysis, "ttft_s", "p95"), users)
    if not heat.empty:
        out["heatmap_ttft"] = charts.heatmap_chart(heat, users=users, load_unit=unit)
    measured, fit, knees = throughput_tables(analysis)
    if not measured.empty:
        out["throughput_vs_users"] = charts.throughput_chart(measured, fit, knees, load_unit=unit)
    tokens, tpot = output_speed_tables(analysis)
    if not tokens.empty:
        out["output_tokens_vs_users"] = charts.output_tokens_chart(tokens, load_unit=unit)
    if not tpot.empty:
        out["tpot_vs_users"] = charts.percentiles_vs_load_chart(tpot, metric="tpot_s", load_unit=unit)
    with contextlib.suppress(StatsError, ReportError):  # no timed requests: no chart over time
        metric = timeseries_metric(analysis)
        out["timeseries"] = charts.timeseries_chart(timeseries_table(analysis, metric=metric), metric=metric,
                                                    load_unit=unit)
    shared = background_table(analysis)
    if not shared.empty:  # the sweep varied other customers' demand (grid.background_load)
        out["ttft_vs_background"] = charts.background_chart(shared, load_unit=unit)
    requests, note = slo_requests(analysis)
    if not requests.empty:
        slo = analysis.slo
        out["slo_explorer"] = charts.slo_explorer_chart(
            requests, targets={"ttft_s": slo.ttft_s, "e2e_s": slo.e2e_s, "tpot_s": slo.tpot_s},
            goodput_target=slo.goodput_target, load_unit=unit, note=note)
    rates = rates_table(analysis)
    if not rates.empty:
        out["error_rates"] = charts.rates_chart(rates, load_unit=unit)
    if not analysis.qq.empty:
        out["qq"] = charts.qq_chart(analysis.qq, metric=analysis.fit_cell.get("metric", "ttft_s"),
                                    dist=analysis.fit_cell.get("name", ""))
    if {"ttft_s", "itl_mean_s"} <= set(rec.columns):
        with contextlib.suppress(ReportError):  # no streaming requests: no such chart
            out["ttft_vs_itl"] = charts.ttft_vs_itl_chart(rec)
    return out


def slide_tables(analysis: Analysis, metric: str = "e2e_s") -> dict[str, pd.DataFrame]:
    """Tables behind the slide figures (the public examples' set), at the highest load."""
    s = at_users(analysis.summary, analysis.max_users)
    avg = s[["config", "tier", f"{metric}_mean", f"{metric}_n"]].rename(
        columns={f"{metric}_mean": "mean", f"{metric}_n": "n"})
    p = s.melt(id_vars=["model", "prompt_size"], value_vars=[f"{metric}_p50", f"{metric}_p95"],
               var_name="percentile", value_name="value")
    p["percentile"] = p["percentile"].str.rsplit("_", n=1).str[-1]
    p = p.groupby(["model", "prompt_size", "percentile"], as_index=False)["value"].median()
    rec = analysis.records
    ok = rec[(rec["status"] == "ok") & (rec["users"] == analysis.max_users if analysis.max_users else True)]
    box = (ok.groupby(["model", "prompt_size"])[metric]
           .quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack())
    box.columns = ["p5", "p25", "p50", "p75", "p95"]
    box = box.reset_index()
    thr = s[["config", "tier", "users", "throughput_rps"]]
    heat = at_users(percentile_table(analysis, "ttft_s", "p95"), analysis.max_users)
    return {"avg": avg.dropna(), "p50_p95": p.dropna(), "box": box.dropna(), "throughput": thr.dropna(),
            "heat": heat}


def slide_charts(analysis: Analysis, metric: str = "e2e_s") -> dict[str, alt.TopLevelMixin]:
    """The public examples' figure set, for slides."""
    t = slide_tables(analysis, metric)
    out: dict[str, alt.TopLevelMixin] = {}
    if not t["avg"].empty:
        out["average_latency_by_configuration"] = charts.avg_latency_chart(t["avg"], metric=metric)
    if not t["p50_p95"].empty:
        out["p50_vs_p95_by_prompt_size"] = charts.p50_p95_chart(t["p50_p95"], metric=metric)
    if not t["box"].empty:
        out["latency_by_prompt_size"] = charts.latency_by_prompt_chart(t["box"], metric=metric)
    if not t["throughput"].empty:
        out["throughput_comparison"] = charts.throughput_comparison_chart(t["throughput"])
    if not t["heat"].empty:
        out["tier_by_prompt_heatmap"] = charts.heatmap_chart(t["heat"], users=analysis.max_users,
                                                             load_unit=analysis.load_kind)
    return out


def write_slide_figures(analysis: Analysis, folder: str | os.PathLike[str] | None = None) -> list[Path]:
    """PNG and SVG of the slide set under ``<sweep>/figures/`` (or ``folder``)."""
    folder = Path(folder) if folder else analysis.data.root / "figures"
    return charts.save_figures(slide_charts(analysis), folder)

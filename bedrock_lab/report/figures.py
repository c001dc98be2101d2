"""The report's figures, built from an :class:`~bedrock_lab.stats.analysis.Analysis` (small tables only)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from bedrock_lab import charts
from bedrock_lab.errors import ReportError
from bedrock_lab.stats import with_metrics
from bedrock_lab.stats.analysis import CONFIG, Analysis
from bedrock_lab.stats.rates import wilson_interval
from bedrock_lab.stats.saturation import usl


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

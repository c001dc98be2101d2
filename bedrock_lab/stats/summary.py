"""One entry point per question: :func:`summarize` (a table) and :func:`analyze` (everything the report needs).

``summarize`` returns one row per group (sweep cell by default) and metric with: request counts, success /
throttle / timeout / error rates with Wilson intervals, throughput, goodput under the SLOs, the mean and
p50/p90/p95/p99 with distribution-free 95% intervals and MLPerf early-stopping upper bounds, and a
``notes`` column that says in words what the data cannot support (too few samples for a percentile,
timeouts that were excluded).

Failures are excluded from latency percentiles by default (``include_failures=True`` keeps any failed
request that has a value for the metric); they always count in the rates and against goodput. Timeouts
are reported as right-censored in :attr:`Analysis.censored` rather than silently dropped.

Example
-------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"cell_id": "c1", "model_id": "m", "tier_requested": None, "prompt_size": "small",
...                    "users": 4, "status": "ok", "error_kind": None, "retries": 0,
...                    "start": np.arange(500) * 0.1, "ttft_s": rng.lognormal(-1, 0.3, 500),
...                    "e2e_s": rng.lognormal(0.5, 0.3, 500), "itl_mean_s": 0.02, "output_tokens": 100})
>>> s = summarize(df)
>>> sorted(s["metric"])
['e2e_s', 'itl_mean_s', 'tokens_per_s', 'ttft_s']
>>> bool(s.set_index("metric").loc["e2e_s", "p99_ok"])
True
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import (
    CONFIG_COLUMNS,
    METRICS,
    config_of,
    default_by,
    groups,
    metric_values,
    ok_mask,
    require_columns,
    with_metrics,
)
from bedrock_lab.stats.censoring import censored_summary
from bedrock_lab.stats.compare import Comparison, compare_grid, verdict, verdict_summary
from bedrock_lab.stats.fits import DEFAULT_DISTS, fit_distributions
from bedrock_lab.stats.multiple import benjamini_hochberg, holm
from bedrock_lab.stats.quality import quality_flags, warmup_trim
from bedrock_lab.stats.quantiles import DEFAULT_QUANTILES, ecdf_points, quantile_table
from bedrock_lab.stats.rates import outcome_rates, rates_row
from bedrock_lab.stats.saturation import saturation
from bedrock_lab.stats.slo import SLO, goodput, goodput_row, meets_slo

_ANALYSIS_COLUMNS = ("cell_id", "rate_rps", "api", "status", "error_kind", "retries", "start", "intended_start",
                     "schedule_lag_s", "ttft_s", "itl_mean_s", "e2e_s", "output_tokens", "tokens_per_s")
#: factors compared by default (each at fixed values of the other configuration columns)
DEFAULT_FACTORS: tuple[str, ...] = ("tier_requested", "model_id", "prompt_size")


def _slo(slo: SLO | dict | None) -> SLO:
    if slo is None or isinstance(slo, SLO):
        return slo or SLO()
    if isinstance(slo, dict):
        return SLO.from_mapping(slo)
    raise StatsError(f"slo must be an SLO, a dict or None, got {type(slo).__name__}")


def summarize(
    df: pd.DataFrame,
    slo: SLO | dict | None = None,
    by: Sequence[str] | None = None,
    *,
    metrics: Sequence[str] = METRICS,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    confidence: float = 0.95,
    include_failures: bool = False,
) -> pd.DataFrame:
    """Per group x metric summary (see the module docstring). Group keys default to ``cell_id``.

    Columns: group keys, configuration columns, ``metric``, ``n`` (values of the metric used),
    ``n_requests``, ``n_ok``, ``n_throttled``, ``n_timeout``, ``n_error``, ``success_rate``/``_lo``/``_hi``,
    ``throttle_rate``..., ``timeout_rate``..., ``error_rate``..., ``duration_s``, ``throughput_rps``,
    ``output_tokens_per_s``, ``goodput``/``_lo``/``_hi``, ``goodput_rps``, ``meets_slo``, ``mean``, and per
    percentile ``p50``, ``p50_lo``, ``p50_hi``, ``p50_ub`` (99% early-stopping upper bound), ``p50_ok``
    (enough samples for a two-sided interval), ...; ``notes``.
    """
    require_columns(df, ["status"])
    slo = _slo(slo)
    by = list(by) if by else default_by(df)
    data = with_metrics(df)
    good_all = meets_slo(data, slo)
    rows = []
    for keys, sub in groups(data, by):
        rate = {**keys, **config_of(sub, exclude=by), **rates_row(sub, confidence)}
        good = goodput_row(sub, good_all.loc[sub.index], slo, confidence)
        base = {**rate, "goodput": good["goodput"], "goodput_lo": good["goodput_lo"],
                "goodput_hi": good["goodput_hi"], "goodput_rps": good["goodput_rps"],
                "meets_slo": bool(good["meets_target"])}
        used = sub if include_failures else sub[ok_mask(sub)]
        for metric in metrics:
            if metric not in data.columns:
                continue
            v = metric_values(used, metric).to_numpy(float)
            qt = quantile_table(v, quantiles, confidence)
            qnote = str(qt.pop("quantile_notes", ""))
            notes = [qnote] if qnote else []
            if qt["n"] == 0:
                notes = [f"no values of {metric}"]
            if not include_failures and rate["n_timeout"]:
                notes.append(f"{rate['n_timeout']} timeout(s) excluded: see the censored table")
            rows.append({**base, "metric": metric, **qt, "notes": "; ".join(notes)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    lead = [*by, *[c for c in (*CONFIG_COLUMNS, "rate_rps", "api") if c in out.columns and c not in by],
            "metric", "n"]
    return out[lead + [c for c in out.columns if c not in lead]]


@dataclass
class Analysis:
    """Every table the report uses. All are DataFrames (possibly empty); see :func:`analyze`."""

    slo: SLO
    by: list[str]
    summary: pd.DataFrame  #: :func:`summarize`
    rates: pd.DataFrame  #: :func:`bedrock_lab.stats.rates.outcome_rates`
    goodput: pd.DataFrame  #: :func:`bedrock_lab.stats.slo.goodput`
    comparisons: pd.DataFrame  #: :func:`bedrock_lab.stats.compare.compare_grid` for every factor, corrected together
    verdicts: pd.DataFrame  #: :func:`bedrock_lab.stats.compare.verdict_summary` of ``comparisons`` (headlines)
    fits: pd.DataFrame  #: per group x metric distribution fits ranked by AIC (bimodal cells skipped)
    load: pd.DataFrame  #: :func:`bedrock_lab.stats.saturation.load_table`
    capacity: pd.DataFrame  #: USL fit, knee, highest users meeting the SLOs per configuration
    quality: pd.DataFrame  #: :func:`bedrock_lab.stats.quality.quality_flags`
    censored: pd.DataFrame  #: Kaplan-Meier percentiles of e2e_s with timeouts right-censored
    warmup: pd.DataFrame  #: MSER warm-up trimmed per group (empty unless ``trim_warmup``)
    ecdf: pd.DataFrame = field(default_factory=pd.DataFrame)  #: :func:`ecdf_points` of ttft_s and e2e_s
    notes: list[str] = field(default_factory=list)

    TABLES = ("summary", "rates", "goodput", "comparisons", "verdicts", "fits", "load", "capacity", "quality", "censored",
              "warmup", "ecdf")

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write every table as ``<name>.csv`` plus ``analysis.json`` (SLO, grouping, notes) into ``folder``."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            getattr(self, name).to_csv(out / f"{name}.csv", index=False)
        meta = {"slo": self.slo.as_dict(), "by": self.by, "notes": self.notes, "tables": list(self.TABLES)}
        (out / "analysis.json").write_text(json.dumps(meta, indent=2))
        return out


def _fits_table(df: pd.DataFrame, by: list[str], metrics: Sequence[str], skip: set[tuple],
                dists: Sequence[str], gof_test: bool | str, seed: int, max_n: int) -> pd.DataFrame:
    parts = []
    for keys, sub in groups(df, by):
        if tuple(keys.values()) in skip:
            continue
        ok = sub[ok_mask(sub)]
        for metric in metrics:
            v = metric_values(ok, metric).to_numpy(float)
            v = v[np.isfinite(v) & (v > 0)]
            if v.size < 50:
                continue
            t = fit_distributions(v, dists, gof_test=gof_test, seed=seed, max_n=max_n)
            for k, val in reversed(list(keys.items())):
                t.insert(0, k, val)
            t.insert(len(keys), "metric", metric)
            parts.append(t)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def analyze(
    df: pd.DataFrame,
    slo: SLO | dict | None = None,
    *,
    by: Sequence[str] | None = None,
    metrics: Sequence[str] = METRICS,
    factors: Sequence[str] = DEFAULT_FACTORS,
    compare_metrics: Sequence[str] = ("ttft_s", "e2e_s"),
    fit_metrics: Sequence[str] = ("e2e_s",),
    dists: Sequence[str] = DEFAULT_DISTS,
    gof_test: bool | str = False,
    fit_max_n: int = 1_000,
    include_failures: bool = False,
    trim_warmup: bool = False,
    alpha: float = 0.05,
    correction: str = "holm",
    seed: int = 0,
) -> Analysis:
    """Run the whole analysis of a records DataFrame (a sweep or one run).

    * ``summary``/``rates``/``goodput``: per group (``by``, default ``cell_id``).
    * ``comparisons``: for each factor with >= 2 levels, every pair at the same other configuration values
      (:func:`compare_grid`), on ``compare_metrics``; Holm and BH are applied across *all* rows together and
      ``verdict`` uses ``correction``.
    * ``fits``: per group and ``fit_metrics`` (cells flagged bimodal are not fitted); ``gof_test`` as in
      :func:`fit_distributions` ("best" tests only the winner: 0.02 s for a log-normal winner, ~1 s for a
      Weibull one, per group; off by default).
    * ``load``/``capacity``: when ``users`` varies (closed loop).
    * ``quality``, ``censored`` (e2e_s with timeouts right-censored), ``warmup`` (when ``trim_warmup``:
      MSER-5 warm-up removed from every group before anything else is computed), ``ecdf`` (~200 points
      per group of ttft_s and e2e_s for distribution charts).
    """
    require_columns(df, ["status"])
    slo = _slo(slo)
    by = list(by) if by else default_by(df)
    notes: list[str] = []
    # only the columns the analysis reads: grouping copies every column, and strings are costly to copy
    keep = [c for c in (*by, *CONFIG_COLUMNS, *_ANALYSIS_COLUMNS) if c in df.columns]
    data = with_metrics(df[list(dict.fromkeys(keep))])
    for col in data.columns:  # grouping copies rows; categorical codes are far cheaper to copy than strings
        if data[col].dtype == object or pd.api.types.is_string_dtype(data[col]):
            data[col] = data[col].astype("category")
    warm = pd.DataFrame()
    if trim_warmup:
        data, warm = warmup_trim(data, by)
        notes.append(f"warm-up trimmed (MSER-5): {int(warm['n_warmup'].sum())} requests dropped")
    summary = summarize(data, slo, by, metrics=metrics, include_failures=include_failures)
    rates = outcome_rates(data, by)
    good = goodput(data, slo, by)
    quality = quality_flags(data, by) if "e2e_s" in data.columns else pd.DataFrame()

    comp_parts = []
    cache: dict = {}
    for factor in factors:
        if factor in data.columns and data[factor].nunique(dropna=False) >= 2:
            t = compare_grid(data, factor, compare_metrics, include_failures=include_failures, alpha=alpha,
                             correction="none", seed=seed, boot_cache=cache)
            if len(t):
                comp_parts.append(t)
    comparisons = pd.concat(comp_parts, ignore_index=True) if comp_parts else pd.DataFrame()
    if len(comparisons):
        p = comparisons["p_value"].to_numpy(float)
        comparisons["p_holm"] = holm(p)
        comparisons["p_bh"] = benjamini_hochberg(p)
        p_col = {"holm": "p_holm", "bh": "p_bh", "none": "p_value"}.get(correction)
        if p_col is None:
            raise StatsError(f"unknown correction {correction!r} (allowed: holm, bh, none)")
        fields = Comparison.__dataclass_fields__
        vs = [verdict(Comparison(**{k: r[k] for k in fields}), r[p_col]) for r in comparisons.to_dict("records")]
        comparisons["verdict"] = [v for v, _ in vs]
        comparisons["winner"] = [w for _, w in vs]
        comparisons["correction"] = correction

    skip: set[tuple] = set()
    if len(quality):
        for r in quality[quality["bimodal"]].to_dict("records"):
            skip.add(tuple(r[k] for k in by))
        if skip:
            notes.append(f"{len(skip)} group(s) flagged bimodal were not fitted")
    fits = (_fits_table(data, by, fit_metrics, skip, dists, gof_test, seed, fit_max_n) if fit_metrics
            else pd.DataFrame())

    load = capacity = pd.DataFrame()
    if "users" in data.columns and data["users"].notna().any() and {"start", "e2e_s"} <= set(data.columns):
        load, capacity = saturation(data, slo)
    censored = censored_summary(data, "e2e_s", by) if "e2e_s" in data.columns else pd.DataFrame()
    ecdf_parts = [ecdf_points(data, m, by, include_failures=include_failures)
                  for m in ("ttft_s", "e2e_s") if m in data.columns]
    ecdf = pd.concat(ecdf_parts, ignore_index=True) if ecdf_parts else pd.DataFrame()
    return Analysis(slo=slo, by=by, summary=summary, rates=rates, goodput=good, comparisons=comparisons,
                    verdicts=verdict_summary(comparisons), fits=fits, load=load, capacity=capacity, quality=quality, censored=censored, warmup=warm,
                    ecdf=ecdf, notes=notes)

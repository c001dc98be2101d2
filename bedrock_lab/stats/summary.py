"""One table per question, any grouping: :func:`summarize` (the whole analysis of a sweep, with the report's
grouping, is :func:`bedrock_lab.stats.analysis.analyze`).

``summarize`` returns one row per group (sweep cell by default) and metric with: request counts, success /
throttle / timeout / error rates with Wilson intervals, throughput, goodput under the SLOs, the mean and
p50/p90/p95/p99 with distribution-free 95% intervals and MLPerf early-stopping upper bounds, and a
``notes`` column that says in words what the data cannot support (too few samples for a percentile,
timeouts that were excluded).

Failures are excluded from latency percentiles by default (``include_failures=True`` keeps any failed
request that has a value for the metric); they always count in the rates and against goodput. Timeouts are
data: time to first token and end-to-end latency count them as right-censored at their elapsed time
(:mod:`bedrock_lab.stats.censoring`), so a percentile they could hide is a lower bound (``p99_bound`` =
"lower", with ``n_censored`` and ``censored_frac``), never a two-sided interval that ignores them.

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

from collections.abc import Sequence

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
from bedrock_lab.stats.censoring import CENSORED_METRICS, censored_quantile_table, censored_sample
from bedrock_lab.stats.quantiles import DEFAULT_QUANTILES, quantile_table
from bedrock_lab.stats.rates import rates_row
from bedrock_lab.stats.slo import SLO, goodput_row, meets_slo


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
    (enough samples for a two-sided interval), ...; for ``ttft_s`` and ``e2e_s`` also ``n_censored``,
    ``censored_frac``, ``p50_bound`` ("lower" where timeouts could hide the percentile) and ``p50_model``;
    ``notes``.
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
            censoring = not include_failures and metric in CENSORED_METRICS
            if censoring:
                qt = censored_quantile_table(*censored_sample(sub, metric), quantiles, confidence)
            else:
                qt = quantile_table(metric_values(used, metric).to_numpy(float), quantiles, confidence)
            qnote = str(qt.pop("quantile_notes", ""))
            notes = [qnote] if qnote else []
            if qt["n"] == 0:
                notes = [f"no values of {metric}"]
            if not include_failures and rate["n_timeout"] and not censoring:
                notes.append(f"{rate['n_timeout']} timeout(s) excluded (a per-token or speed value of a request "
                             "that did not finish is unknown)")
            rows.append({**base, "metric": metric, **qt, "notes": "; ".join(notes)})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    lead = [*by, *[c for c in (*CONFIG_COLUMNS, "rate_rps", "api") if c in out.columns and c not in by],
            "metric", "n"]
    return out[lead + [c for c in out.columns if c not in lead]]

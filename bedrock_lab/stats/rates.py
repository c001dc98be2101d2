"""Proportions with Wilson score intervals, outcome rates and throughput per group.

Wilson (1927) score interval for k successes in n trials, with z the normal quantile::

    centre = (k + z^2/2) / (n + z^2)
    half   = z * sqrt(n) / (n + z^2) * sqrt(p(1-p) + z^2/(4n)),   p = k/n

It stays inside [0, 1] and keeps close to nominal coverage for small n and rates near 0 or 1,
where the textbook Wald interval fails (Newcombe 1998, Statistics in Medicine 17:857-872;
Brown, Cai & DasGupta 2001, Statistical Science 16:101-133).

Example
-------
>>> lo, hi = wilson_interval(81, 263)
>>> round(lo, 4), round(hi, 4)
(0.2553, 0.3662)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import config_of, default_by, error_kind_is, groups, ok_mask, require_columns


def wilson_interval(k: int | np.ndarray, n: int | np.ndarray, confidence: float = 0.95) -> tuple:
    """Wilson score interval ``(lo, hi)`` for the proportion k/n (vectorised; n == 0 gives NaN)."""
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    k_arr = np.asarray(k, dtype=float)
    n_arr = np.asarray(n, dtype=float)
    if np.any(k_arr < 0) or np.any(k_arr > n_arr):
        raise StatsError(f"need 0 <= k <= n, got k={k}, n={n}")
    z = st.norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k_arr / n_arr
        denom = n_arr + z**2
        centre = (k_arr + z**2 / 2) / denom
        half = z * np.sqrt(n_arr) / denom * np.sqrt(p * (1 - p) + z**2 / (4 * n_arr))
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    # exact ends: with k == 0 (k == n) the lower (upper) limit is exactly 0 (1)
    lo = np.where(k_arr == 0, 0.0, lo)
    hi = np.where(k_arr == n_arr, 1.0, hi)
    lo = np.where(n_arr > 0, lo, np.nan)
    hi = np.where(n_arr > 0, hi, np.nan)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi


def proportion(k: int, n: int, confidence: float = 0.95) -> dict[str, float]:
    """``{"rate", "lo", "hi"}`` for k of n (rate NaN when n == 0)."""
    lo, hi = wilson_interval(k, n, confidence)
    return {"rate": (k / n) if n else float("nan"), "lo": lo, "hi": hi}


def wall_span_s(sub: pd.DataFrame) -> float:
    """Seconds from the first request sent to the last one finished (NaN without ``start``)."""
    if "start" not in sub.columns or sub.empty:
        return float("nan")
    start = pd.to_numeric(sub["start"], errors="coerce").to_numpy(float)
    e2e = pd.to_numeric(sub["e2e_s"], errors="coerce").to_numpy(float) if "e2e_s" in sub else start * 0
    end = start + np.nan_to_num(e2e, nan=0.0)
    if not np.isfinite(start).any():
        return float("nan")
    span = float(np.nanmax(end) - np.nanmin(start))
    return span if span > 0 else float("nan")


def completion_rate(sub: pd.DataFrame, mask: pd.Series | np.ndarray | None = None) -> float:
    """Completions per second of the (masked) requests: ``(k - 1) / (last end - first end)``.

    Counting between the first and the last completion avoids the ramp-up and drain at the ends of a
    short run (the first request's latency is not throughput); MLPerf LoadGen uses the same (k - 1)
    convention for its Server QPS. NaN with fewer than 2 completions.
    """
    if "start" not in sub.columns or sub.empty:
        return float("nan")
    start = pd.to_numeric(sub["start"], errors="coerce").to_numpy(float)
    e2e = pd.to_numeric(sub["e2e_s"], errors="coerce").to_numpy(float) if "e2e_s" in sub else np.zeros_like(start)
    end = start + np.nan_to_num(e2e, nan=0.0)
    if mask is not None:
        end = end[np.asarray(mask, dtype=bool)]
    end = end[np.isfinite(end)]
    if end.size < 2:
        return float("nan")
    span = float(end.max() - end.min())
    return (end.size - 1) / span if span > 0 else float("nan")


def outcome_rates(
    df: pd.DataFrame, by: Sequence[str] | None = None, *, confidence: float = 0.95
) -> pd.DataFrame:
    """One row per group: request counts, success/throttle/timeout/error rates with Wilson CIs, throughput.

    Columns: group keys, configuration columns, ``n_requests``, ``n_ok``, ``n_throttled``, ``n_timeout``,
    ``n_error``, ``n_retried``, ``success_rate`` (+``_lo``/``_hi``), ``throttle_rate`` (+CI),
    ``timeout_rate`` (+CI), ``error_rate`` (+CI), ``duration_s`` (first send to last finish),
    ``throughput_rps`` (successful completions per second, :func:`completion_rate`) and
    ``output_tokens_per_s`` (output tokens of successes over ``duration_s``).

    Example
    -------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"cell_id": ["a"] * 4, "status": ["ok", "ok", "ok", "error"],
    ...                    "error_kind": [None, None, None, "throttled"], "start": [0.0, 1, 2, 2.5],
    ...                    "e2e_s": [1.0, 1, 1, 0.1], "output_tokens": [10, 10, 10, 0], "retries": [0, 0, 1, 2]})
    >>> row = outcome_rates(df).iloc[0]
    >>> int(row["n_requests"]), float(row["success_rate"]), float(row["throttle_rate"]), float(row["throughput_rps"])
    (4, 0.75, 0.25, 1.0)
    """
    require_columns(df, ["status"])
    by = list(by) if by else default_by(df)
    rows = [{**keys, **config_of(sub, exclude=by), **rates_row(sub, confidence)} for keys, sub in groups(df, by)]
    return pd.DataFrame(rows)


def rates_row(sub: pd.DataFrame, confidence: float = 0.95) -> dict[str, object]:
    """The rate and throughput columns of :func:`outcome_rates` for one group of records."""
    ok = ok_mask(sub)
    n = int(len(sub))
    n_ok = int(ok.sum())
    n_thr = int(error_kind_is(sub, "throttled").sum())
    n_to = int(error_kind_is(sub, "timeout").sum())
    n_err = n - n_ok
    retries = pd.to_numeric(sub["retries"], errors="coerce").fillna(0) if "retries" in sub else pd.Series(0)
    span = wall_span_s(sub)
    tokens = pd.to_numeric(sub["output_tokens"], errors="coerce")[ok].sum() if "output_tokens" in sub else np.nan
    row: dict[str, object] = {"n_requests": n, "n_ok": n_ok, "n_throttled": n_thr, "n_timeout": n_to,
                              "n_error": n_err, "n_retried": int((retries > 0).sum())}
    for name, k in (("success", n_ok), ("throttle", n_thr), ("timeout", n_to), ("error", n_err)):
        p = proportion(k, n, confidence)
        row[f"{name}_rate"] = p["rate"]
        row[f"{name}_rate_lo"] = p["lo"]
        row[f"{name}_rate_hi"] = p["hi"]
    row["duration_s"] = span
    row["throughput_rps"] = completion_rate(sub, ok)
    row["output_tokens_per_s"] = float(tokens) / span if span == span else float("nan")
    return row

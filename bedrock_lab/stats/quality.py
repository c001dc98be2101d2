"""Data quality of a cell: warm-up, drift, coordinated omission, and mixtures that should not be fitted.

* Warm-up: MSER-5 truncation (White 1997, Simulation 69:323-334; White, Cobb & Spratt 2000). With batch
  means ``Y_1..Y_m`` of 5 consecutive requests (in send order), drop the first d batches where d < m/2
  minimises ``MSER(d) = sum_{j>d} (Y_j - mean_{j>d} Y)^2 / (m - d)^2``. O(n) with cumulative sums.
  MSER cuts a batch or two of stationary noise too, so the flag needs >= 10 requests and >= 2% of the cell.
* Drift: Spearman rank correlation of the metric with send order, plus the ratio of the medians of the
  last and first thirds. Flagged when the correlation is significant (p < 0.001) and the medians differ by
  more than 10% (large runs make tiny drifts significant; the effect size keeps the flag meaningful).
* Coordinated omission (Tene 2013, "How NOT to measure latency"): in an open-loop run ``schedule_lag_s``
  is how late the client sent each request. Latencies are measured from the intended start, but a lag
  that is large against the latency itself means the generator was the bottleneck. Flagged when the p99
  lag exceeds both 50 ms and 10% of the median end-to-end latency.
* Mixtures: retries (``retries > 0``) and throttling produce a second mode of latencies; a cell with at
  least 5% of either, or with Sarle's bimodality coefficient on log TTFT above 5/9 (n >= 100), is
  flagged "bimodal" and :func:`bedrock_lab.stats.analysis.analyze` does not fit a single distribution to it.
  ``BC = (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3)))`` with g the skewness and k the excess kurtosis
  (SAS Institute 1990; Pfister et al. 2013, Front. Psychol. 4:700).
* Client overhead: against the emulator every response carries its intended time to first token
  (``server_ttft_s``, ground truth); the median of ``ttft_s - server_ttft_s`` over successful requests is what
  the client (and loopback) add. A fixed overhead of a few ms cancels in a ratio of two tiers but moves every
  absolute percentile: when it exceeds 2% of the median TTFT (e.g. a short TTFT at ``--time-scale 0.2``), the
  cell's absolute quantiles are flagged as distorted. Against AWS there is no ground truth and no flag.

Example
-------
>>> import numpy as np
>>> x = np.r_[np.linspace(5, 1, 50), np.ones(950)]   # slow first 50 requests
>>> 40 <= mser_truncation(x) <= 60
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import default_by, error_kind_is, groups, metric_values, ok_mask

RETRY_SHARE_FLAG = 0.05
THROTTLE_SHARE_FLAG = 0.05
BIMODALITY_COEF_FLAG = 5 / 9
DRIFT_P = 1e-3
DRIFT_RATIO = 0.10
LAG_MIN_S = 0.05
LAG_REL = 0.10
DRIFT_MAX_N = 20_000
WARMUP_MIN_N = 10
WARMUP_MIN_SHARE = 0.02
#: client overhead (measured minus ground-truth TTFT) above this share of the median TTFT distorts absolute quantiles
OVERHEAD_SHARE_FLAG = 0.02


def mser_truncation(x: Sequence[float] | np.ndarray, batch: int = 5) -> int:
    """Number of leading observations to drop as warm-up (MSER-``batch``); 0 for short series."""
    arr = np.asarray(x, dtype=float)
    arr = arr[np.isfinite(arr)]
    m = arr.size // batch
    if m < 4:
        return 0
    y = arr[: m * batch].reshape(m, batch).mean(axis=1)
    # suffix sums: for each d, stats of y[d:]
    s1 = np.cumsum(y[::-1])[::-1]
    s2 = np.cumsum((y**2)[::-1])[::-1]
    cnt = m - np.arange(m)
    sse = s2 - s1**2 / cnt
    mser = sse / cnt**2
    half = m // 2
    d = int(np.argmin(mser[:half]))
    return d * batch


def bimodality_coefficient(x: Sequence[float] | np.ndarray) -> float:
    """Sarle's bimodality coefficient (sample-size corrected); > 5/9 suggests two modes. NaN if n < 4.

    >>> bimodality_coefficient(np.r_[np.zeros(100), np.ones(100)]) > 5 / 9
    True
    """
    arr = np.asarray(x, dtype=float)
    arr = arr[np.isfinite(arr)]
    n = arr.size
    if n < 4 or np.ptp(arr) == 0:
        return float("nan")
    g = st.skew(arr, bias=False)
    k = st.kurtosis(arr, bias=False)
    return float((g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def drift(x: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """``(spearman_rho, p_value, last_third_median / first_third_median)`` of a series in send order."""
    arr = np.asarray(x, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 30:
        return float("nan"), float("nan"), float("nan")
    if arr.size > DRIFT_MAX_N:  # evenly spaced thinning keeps the order and bounds the cost
        arr = arr[np.linspace(0, arr.size - 1, DRIFT_MAX_N).astype(int)]
    third = arr.size // 3
    first, last = np.median(arr[:third]), np.median(arr[-third:])
    ratio = float(last / first) if first else float("nan")
    if np.ptp(arr) == 0:
        return 0.0, 1.0, ratio
    res = st.spearmanr(np.arange(arr.size), arr)
    return float(res.statistic), float(res.pvalue), ratio


def _order(sub: pd.DataFrame) -> pd.DataFrame:
    col = "intended_start" if "intended_start" in sub and sub["intended_start"].notna().all() else "start"
    return sub.sort_values(col, kind="stable") if col in sub else sub


def warmup_trim(df: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "e2e_s",
                *, batch: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(trimmed records, report)``: drop each group's MSER warm-up (in send order, on ``metric``).

    The report has one row per group: ``n``, ``n_warmup`` and ``warmup_s`` (seconds of run dropped).
    Failures stay in the data but are not used to locate the warm-up.
    """
    by = list(by) if by else default_by(df)
    keep_idx = []
    rows = []
    for keys, sub in groups(df, by):
        sub = _order(sub)
        ok_sub = sub[ok_mask(sub)]
        v = metric_values(ok_sub, metric).to_numpy(float)
        d = mser_truncation(v, batch)
        if d > 0 and "start" in sub:
            cutoff = float(pd.to_numeric(ok_sub["start"]).iloc[d])
            kept = sub[pd.to_numeric(sub["start"]) >= cutoff]
            warm_s = cutoff - float(pd.to_numeric(sub["start"]).min())
        else:
            kept, warm_s = sub, 0.0
        keep_idx.append(kept.index)
        rows.append({**keys, "n": len(sub), "n_warmup": len(sub) - len(kept), "warmup_s": warm_s})
    if not keep_idx:
        return df.iloc[0:0], pd.DataFrame(rows)
    idx = keep_idx[0].append(keep_idx[1:]) if len(keep_idx) > 1 else keep_idx[0]
    return df.loc[idx], pd.DataFrame(rows)


def client_overhead(df: pd.DataFrame) -> tuple[float, float]:
    """``(median overhead s, overhead / median TTFT)`` of successful requests with ground truth; NaN without it."""
    if not {"ttft_s", "server_ttft_s"} <= set(df.columns):
        return float("nan"), float("nan")
    ok = ok_mask(df).to_numpy(bool)
    measured = pd.to_numeric(df["ttft_s"], errors="coerce").to_numpy(float)[ok]
    truth = pd.to_numeric(df["server_ttft_s"], errors="coerce").to_numpy(float)[ok]
    both = np.isfinite(measured) & np.isfinite(truth)
    if not both.any():
        return float("nan"), float("nan")
    over = float(np.median(measured[both] - truth[both]))
    med = float(np.median(measured[both]))
    return over, (over / med if med > 0 else float("nan"))


def quality_flags(df: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "e2e_s",
                  *, bimodality_metric: str = "ttft_s") -> pd.DataFrame:
    """One row per group with the checks of this module and a readable ``flags`` string.

    Warm-up, drift and the lag comparison use ``metric``; the bimodality coefficient uses
    ``bimodality_metric`` (log scale) when the records have it, else ``metric``.

    Columns: ``n``, ``n_warmup`` (MSER), ``drift_rho``, ``drift_p``, ``drift_ratio``, ``drift``,
    ``lag_p99_s``, ``coordinated_omission``, ``retried_share``, ``throttled_share``, ``bimodality_coef``,
    ``bimodal``, ``client_overhead_s``, ``overhead_share`` (of the median TTFT), ``overhead_distorts``
    (absolute quantiles flagged: overhead > 2% of the median TTFT), ``flags``.
    """
    if metric not in df.columns and metric != "tokens_per_s":
        raise StatsError(f"records lack column {metric!r}")
    by = list(by) if by else default_by(df)
    rows = []
    for keys, sub in groups(df, by):
        sub = _order(sub)
        ok = ok_mask(sub)
        v = metric_values(sub[ok], metric).to_numpy(float)
        n = len(sub)
        flags = []
        n_warm = mser_truncation(v)
        rho, p, ratio = drift(v)
        drift_flag = bool(np.isfinite(p) and p < DRIFT_P and abs(ratio - 1) > DRIFT_RATIO)
        if drift_flag:
            flags.append(f"drift: last third median x{ratio:.2f} of first third")
        lag = pd.to_numeric(sub["schedule_lag_s"], errors="coerce").dropna() if "schedule_lag_s" in sub else pd.Series()
        lag_p99 = float(np.quantile(lag, 0.99)) if len(lag) else float("nan")
        med = float(np.nanmedian(v)) if v.size else float("nan")
        co = bool(np.isfinite(lag_p99) and lag_p99 > LAG_MIN_S and (not np.isfinite(med) or lag_p99 > LAG_REL * med))
        if co:
            flags.append(f"coordinated omission risk: p99 schedule lag {lag_p99:.3g} s")
        # optional columns (old shards have no retries): absent means none, aligned with the cell's rows
        retries = (pd.to_numeric(sub["retries"], errors="coerce").fillna(0) if "retries" in sub
                   else pd.Series(0.0, index=sub.index))
        retried = float((retries[ok] > 0).mean()) if ok.any() else 0.0
        throttled = float(error_kind_is(sub, "throttled").mean()) if n else 0.0
        # bimodality on TTFT when there is one: it carries retry back-offs but not the spread of output
        # lengths, which makes end-to-end latency broad and flat (a uniform has BC = 5/9 exactly)
        bm = metric_values(sub[ok], bimodality_metric).to_numpy(float) if bimodality_metric in sub else v
        pos = bm[np.isfinite(bm) & (bm > 0)]
        if pos.size < 100 and bm is not v:
            pos = v[v > 0]
        bc = bimodality_coefficient(np.log(pos)) if pos.size >= 100 else float("nan")
        bimodal = bool(retried >= RETRY_SHARE_FLAG or throttled >= THROTTLE_SHARE_FLAG
                       or (np.isfinite(bc) and bc > BIMODALITY_COEF_FLAG))
        if bimodal:
            why = []
            if retried >= RETRY_SHARE_FLAG:
                why.append(f"{retried:.0%} of successes were retried")
            if throttled >= THROTTLE_SHARE_FLAG:
                why.append(f"{throttled:.0%} throttled")
            if np.isfinite(bc) and bc > BIMODALITY_COEF_FLAG:
                why.append(f"bimodality coefficient {bc:.2f} > 0.555")
            flags.append("bimodal (not fitted): " + ", ".join(why))
        if n_warm >= max(WARMUP_MIN_N, WARMUP_MIN_SHARE * v.size):  # MSER trims a few batches of pure noise too
            flags.append(f"warm-up: first {n_warm} requests differ (MSER-5)")
        over, share = client_overhead(sub)
        distorts = bool(np.isfinite(share) and share > OVERHEAD_SHARE_FLAG)
        if distorts:
            flags.append(f"client overhead {over * 1000:.1f} ms = {share:.1%} of median TTFT: absolute "
                         "percentiles overstated (comparisons unaffected)")
        rows.append({**keys, "n": n, "n_warmup": n_warm, "drift_rho": rho, "drift_p": p, "drift_ratio": ratio,
                     "drift": drift_flag, "lag_p99_s": lag_p99, "coordinated_omission": co,
                     "retried_share": retried, "throttled_share": throttled, "bimodality_coef": bc,
                     "bimodal": bimodal, "client_overhead_s": over, "overhead_share": share,
                     "overhead_distorts": distorts, "flags": "; ".join(flags)})
    return pd.DataFrame(rows)

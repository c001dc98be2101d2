"""Percentiles with distribution-free confidence intervals, and MLPerf-style early-stopping bounds.

Order-statistic interval (e.g. Conover 1999, *Practical Nonparametric Statistics*, sec. 3.2; the same
interval as ``scipy.stats.quantile_test(...).confidence_interval()``). With ``B ~ Binomial(n, q)``
the number of observations below the true q-quantile ``xi_q``::

    P(x_(r) <= xi_q < x_(s)) = P(r <= B <= s - 1)

so ``r = binom.ppf(alpha/2, n, q)`` and ``s = binom.ppf(1 - alpha/2, n, q) + 1`` give coverage
>= 1 - alpha with no assumption on the latency distribution. The interval exists only when
``1 <= r`` and ``s <= n``: a two-sided 95% interval needs ``q^n <= 0.025`` and
``(1-q)^n <= 0.025``, i.e. n >= 6 for the median, 36 for p90, 72 for p95 and **368 for p99**
(:func:`min_samples_for_ci`). Below that we say so instead of printing a number.

Early stopping (MLPerf LoadGen, ``loadgen/early_stopping.cc`` and ``results.cc``; Reddi et al. 2020,
"MLPerf Inference Benchmark", arXiv:1911.02549): with ``t`` the largest count such that::

    binom.cdf(t, n, 1 - q) < 1 - c          (c = 0.99)

the t-th largest latency is an upper bound of the q-quantile with confidence c. LoadGen needs at
least ``t = 1``, which takes 64 queries for p90 and 662 for p99 (:func:`early_stopping_min_queries`).

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).lognormal(0, 0.5, 1000)
>>> est = quantile_ci(x, 0.99)
>>> est.enough, est.lo <= est.estimate <= est.hi
(True, True)
>>> quantile_ci(x[:100], 0.99).enough   # 100 < 368
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import as_float_array

#: percentiles every summary reports
DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class QuantileEstimate:
    """One percentile: point estimate, distribution-free CI and early-stopping upper bound.

    ``enough`` is False when n is too small for a two-sided interval (``lo``/``hi`` are then NaN on
    the side that cannot be bounded); ``note`` says so in words.
    """

    q: float
    n: int
    estimate: float
    lo: float
    hi: float
    confidence: float
    upper_bound: float  #: MLPerf early-stopping upper bound (99% confidence); NaN if n too small
    enough: bool
    note: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def label(q: float) -> str:
    """Column label of a percentile: 0.5 -> "p50", 0.999 -> "p99.9"."""
    pct = q * 100
    return f"p{pct:.0f}" if abs(pct - round(pct)) < 1e-9 else f"p{pct:g}"


def _check_q(q: float) -> None:
    if not 0 < q < 1:
        raise StatsError(f"quantile must be in (0, 1), got {q}")


def min_samples_for_ci(q: float, confidence: float = 0.95) -> int:
    """Smallest n for which the two-sided order-statistic interval of the q-quantile exists.

    Both tails need probability <= alpha/2: ``n >= log(alpha/2) / log(max(q, 1-q))``.

    >>> [min_samples_for_ci(q) for q in (0.5, 0.9, 0.95, 0.99)]
    [6, 36, 72, 368]
    """
    _check_q(q)
    alpha = 1 - confidence
    return int(math.ceil(math.log(alpha / 2) / math.log(max(q, 1 - q)) - 1e-12))


def order_statistic_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int]:
    """1-based ranks ``(r, s)`` of the interval ``[x_(r), x_(s)]``; 0 or n+1 when a side is unbounded."""
    _check_q(q)
    alpha = 1 - confidence
    r = int(st.binom.ppf(alpha / 2, n, q))
    s = int(st.binom.ppf(1 - alpha / 2, n, q)) + 1
    # P(B <= r-1) must be <= alpha/2; ppf gives the smallest k with cdf(k) >= alpha/2, so r = k works
    # unless cdf(k) == alpha/2 exactly, in which case k+1 is also fine; keep the conservative k.
    return max(r, 0), min(s, n + 1)


def early_stopping_overlatency(n: int, q: float, confidence: float = 0.99) -> int:
    """Largest t with ``binom.cdf(t, n, 1-q) < 1 - confidence`` (0 when even t=1 fails), as in LoadGen.

    >>> early_stopping_overlatency(64, 0.90), early_stopping_overlatency(63, 0.90)
    (1, 0)
    """
    _check_q(q)
    if n <= 0:
        return 0
    k = int(st.binom.ppf(1 - confidence, n, 1 - q))  # smallest k with cdf(k) >= 1 - c
    t = k - 1
    # guard against floating ties at the boundary
    while t >= 1 and st.binom.cdf(t, n, 1 - q) >= 1 - confidence:
        t -= 1
    return max(t, 0)


def early_stopping_min_passing(t: int, q: float, confidence: float = 0.99) -> int:
    """LoadGen's ``MinPassingQueriesFinder``: the fewest under-latency queries h such that
    ``binom.cdf(t, h + t, 1 - q) < 1 - confidence`` given t over-latency queries.

    >>> early_stopping_min_passing(0, 0.99)   # LoadGen reference value
    459
    """
    _check_q(q)
    if t < 0:
        raise StatsError(f"t must be >= 0, got {t}")

    def passes(h: int) -> bool:
        return bool(st.binom.cdf(t, h + t, 1 - q) < 1 - confidence)

    lo, hi = 0, max(1, int(math.ceil(math.log(1 - confidence) / math.log(q))))
    while not passes(hi):
        lo, hi = hi, hi * 2
    while lo < hi:  # smallest passing h in [lo, hi]
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def early_stopping_min_queries(q: float, confidence: float = 0.99) -> int:
    """Queries LoadGen needs before it reports an early-stopping estimate (t = 1): 64 for p90, 662 for p99."""
    return early_stopping_min_passing(1, q, confidence) + 1


def _sorted_quantile(xs: np.ndarray, q: float) -> float:
    """numpy's default (linear, Hyndman-Fan type 7) quantile of an ascending array, without re-partitioning."""
    pos = q * (xs.size - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, xs.size - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def quantile_ci(
    x: Sequence[float] | np.ndarray,
    q: float,
    confidence: float = 0.95,
    *,
    es_confidence: float = 0.99,
    presorted: bool = False,
) -> QuantileEstimate:
    """Percentile q of x with its order-statistic CI and early-stopping upper bound.

    The point estimate is the linear-interpolation sample quantile (Hyndman & Fan type 7, numpy's
    default). NaN values are dropped. Raises :class:`StatsError` for an empty sample.
    """
    _check_q(q)
    if not 0 < confidence < 1:
        raise StatsError(f"confidence must be in (0, 1), got {confidence}")
    if presorted:  # trusted internal path: finite and ascending already
        xs = np.asarray(x, dtype=float)
        if xs.size == 0:
            raise StatsError("sample has 0 usable value(s); at least 1 needed")
    else:
        xs = np.sort(as_float_array(x, "sample"))
    n = xs.size
    est = _sorted_quantile(xs, q)
    r, s = order_statistic_ranks(n, q, confidence)
    lo = float(xs[r - 1]) if r >= 1 else float("nan")
    hi = float(xs[s - 1]) if s <= n else float("nan")
    t = early_stopping_overlatency(n, q, es_confidence)
    ub = float(xs[n - t]) if t >= 1 else float("nan")
    need = min_samples_for_ci(q, confidence)
    enough = r >= 1 and s <= n
    if enough:
        note = ""
    else:
        note = (f"too few samples for {label(q)}: {n} < {need} needed for a two-sided "
                f"{confidence:.0%} interval")
    return QuantileEstimate(q=q, n=n, estimate=est, lo=lo, hi=hi, confidence=confidence,
                            upper_bound=ub, enough=enough, note=note)


def quantile_table(
    x: Sequence[float] | np.ndarray,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    confidence: float = 0.95,
) -> dict[str, object]:
    """Flat dict ``{"n", "mean", "p50", "p50_lo", "p50_hi", "p50_ub", "p50_ok", ...}`` for one sample.

    One sort for all percentiles; an empty sample gives n = 0 and NaN everywhere.
    """
    xs = np.asarray(x, dtype=float).ravel()
    xs = np.sort(xs[np.isfinite(xs)])
    out: dict[str, object] = {"n": int(xs.size), "mean": float(xs.mean()) if xs.size else float("nan")}
    # the sort above is the only O(n log n) step; every percentile below indexes into it
    notes = []
    for q in quantiles:
        lab = label(q)
        if xs.size == 0:
            out.update({lab: np.nan, f"{lab}_lo": np.nan, f"{lab}_hi": np.nan, f"{lab}_ub": np.nan,
                        f"{lab}_ok": False})
            continue
        e = quantile_ci(xs, q, confidence, presorted=True)
        out.update({lab: e.estimate, f"{lab}_lo": e.lo, f"{lab}_hi": e.hi, f"{lab}_ub": e.upper_bound,
                    f"{lab}_ok": e.enough})
        if e.note:
            notes.append(e.note)
    out["quantile_notes"] = "; ".join(notes)
    return out


def ecdf_points(
    df: pd.DataFrame,
    metric: str = "e2e_s",
    by: Sequence[str] | None = None,
    *,
    points: int = 200,
    include_failures: bool = False,
) -> pd.DataFrame:
    """Empirical CDF of a metric per group, thinned to at most ``points`` rows per group, for charts.

    Columns: group keys, ``metric``, ``prob`` (plotting positions ``(i - 0.5) / points``, plus 0.999 and
    1.0 so the tail is visible) and ``value`` (the inverted-CDF sample quantile at ``prob``).
    """
    from bedrock_lab.stats._data import default_by, groups, metric_values, ok_mask

    by = list(by) if by else default_by(df)
    probs = np.unique(np.r_[(np.arange(1, points + 1) - 0.5) / points, 0.999, 1.0])
    parts = []
    for keys, sub in groups(df, by):
        used = sub if include_failures else sub[ok_mask(sub)]
        v = metric_values(used, metric).to_numpy(float)
        v = np.sort(v[np.isfinite(v)])
        if v.size == 0:
            continue
        idx = np.clip(np.ceil(probs * v.size).astype(int) - 1, 0, v.size - 1)
        part = pd.DataFrame({"metric": metric, "prob": probs, "value": v[idx]})
        for k, val in reversed(list(keys.items())):
            part.insert(0, k, val)
        parts.append(part)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*by, "metric", "prob", "value"])

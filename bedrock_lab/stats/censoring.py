"""Timeouts as right-censored observations: Kaplan-Meier percentiles and censored MLE.

A request that timed out after 30 s did not have a 30 s latency and must not be dropped either: its
latency is only known to be *at least* 30 s (right-censored). Dropping timeouts biases every upper
percentile down; keeping them at 30 s biases it the other way.

Kaplan-Meier (Kaplan & Meier 1958) product-limit estimate of the survival function, via
``scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=..., right=...))``::

    S(t) = prod_{t_i <= t} (1 - d_i / r_i)         d_i events at t_i, r_i at risk just before t_i

The q-quantile is the smallest t with ``1 - S(t) >= q``; it is undefined (NaN, flagged) when censoring
keeps ``1 - S`` below q, e.g. p99 when more than 1% of requests timed out. Parametric fits with censoring
use ``rv_continuous.fit(CensoredData)``.

Example
-------
>>> import numpy as np
>>> lat = np.array([1.0, 2.0, 3.0, 4.0, 30.0, 30.0])
>>> cen = np.array([False, False, False, False, True, True])
>>> km_quantiles(lat, cen, (0.5, 0.9))
{0.5: 3.0, 0.9: nan}

Bounds where censoring could hide a percentile (:func:`censored_quantile`). A value censored at c only says
"latency > c". Censoring need not be independent of latency: a read timeout fires after a silence between
bytes, so a stalled request is censored at a time far below what its latency would have been, and below other
requests' latencies; Kaplan-Meier then redistributes its mass to later *observed* values, which for an upper
percentile is the same as dropping it. The rule here assumes nothing about why a request timed out. Every
sample quantile is non-decreasing in every value, so for the true (unseen) latencies::

    best case  (censored at c)    <=  true sample  <=  worst case (censored at +inf)

order statistic by order statistic. A percentile is **identified** when the two cases give the same point
estimate and the worst case still has a finite upper confidence limit: then ``[x_best_(r), x_worst_(s)]`` (the
order-statistic ranks of :mod:`.quantiles`) covers the true quantile with at least the nominal confidence, because
it contains the interval of the true sample. Otherwise it is reported as a **lower bound** only: the best-case
estimate ("p99 >= 2.1 s") with the best case's one-sided lower confidence limit and no upper limit.

>>> c = np.r_[np.zeros(95, bool), np.ones(5, bool)]                  # 5 of 100 requests timed out ...
>>> late = np.r_[np.linspace(1.0, 2.0, 95), np.full(5, 2.5)]          # ... after every other one ended
>>> censored_quantile(late, c, 0.5).bound, censored_quantile(late, c, 0.99).bound
('', 'lower')
>>> early = np.r_[np.linspace(1.0, 2.0, 95), np.full(5, 0.5)]         # ... stalled, censored early
>>> e = censored_quantile(early, c, 0.5)
>>> e.bound, round(e.estimate, 3), round(e.worst, 3)                  # the median is 1.47 s to 1.53 s
('lower', 1.473, 1.527)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import default_by, error_kind_is, groups, metric_values, ok_mask, require_columns
from bedrock_lab.stats.quantiles import (
    DEFAULT_QUANTILES,
    _sorted_quantile,
    early_stopping_overlatency,
    label,
    min_samples_for_ci,
    order_statistic_ranks,
)

#: metrics a timeout censors: it says "at least this long" about time to first token (when no token came) and
#: end-to-end latency. Per-token and per-chunk times of a timed-out request are unknown (its length is), so
#: they stay conditional on completion.
CENSORED_METRICS: tuple[str, ...] = ("ttft_s", "e2e_s")
#: the parametric family of the model-based percentiles shown next to a bound
MODEL_DIST = "lognorm"


def censored_sample(df: pd.DataFrame, metric: str = "e2e_s", *, timeout_s: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(values, censored)`` from records: successes are exact, timeouts right-censored at their elapsed time.

    ``e2e_s`` of a timeout is the time from its start to the moment the timeout fired (what the engines record),
    so that is where it is censored. For ``ttft_s`` a timeout that received a token has an exact TTFT; a
    streaming one (``api`` ending in "-stream") that did not is censored at its elapsed time (``e2e_s``): its
    first token would have come later. Without either,
    ``timeout_s`` (if given) is the censoring time, else the timeout is dropped (no time to censor at). Other
    failures are not latency observations and are left out.
    """
    require_columns(df, [metric, "status"])
    ok = ok_mask(df).to_numpy(bool)
    timeout = error_kind_is(df, "timeout")
    v = metric_values(df, metric).to_numpy(float)
    censored = timeout.copy()
    if metric == "ttft_s":  # only a streaming request has a first token to wait for
        if "api" in df.columns:
            streaming = df["api"].astype(str).str.endswith("-stream").to_numpy(bool)
        else:
            streaming = np.full(len(df), bool(np.isfinite(v).any()))
        got_token = timeout & np.isfinite(v)
        censored = timeout & ~got_token & streaming
        timeout = timeout & (got_token | streaming)
        if "e2e_s" in df.columns:
            elapsed = pd.to_numeric(df["e2e_s"], errors="coerce").to_numpy(float)
            v = np.where(censored, elapsed, v)
    if timeout_s is not None:
        v = np.where(censored & ~np.isfinite(v), float(timeout_s), v)
    keep = (ok | timeout) & np.isfinite(v)
    return v[keep], censored[keep]


@dataclass(frozen=True, slots=True)
class CensoredQuantile:
    """One percentile of a sample with right-censored values, by the bound rule of the module docstring.

    ``bound`` is "" when the percentile is identified (``estimate`` with a two-sided interval ``lo``-``hi``) and
    "lower" when censoring could hide it (``estimate`` is a lower bound, ``lo`` its one-sided lower confidence
    limit, ``hi`` NaN). ``worst`` is the estimate with every censored value at +inf (inf when it lands there).
    """

    q: float
    n: int
    n_censored: int
    estimate: float
    lo: float
    hi: float
    upper_bound: float  #: MLPerf early-stopping upper bound of the worst case (NaN when censoring hides it)
    worst: float
    bound: str
    enough: bool  #: a two-sided interval exists (identified and enough samples)
    note: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _rank_value(xs: np.ndarray, rank: int) -> float:
    """The 1-based order statistic ``rank`` of an ascending array (NaN outside 1..n)."""
    return float(xs[rank - 1]) if 1 <= rank <= xs.size else float("nan")


def _quantile_with_inf(xs: np.ndarray, q: float) -> float:
    """:func:`bedrock_lab.stats.quantiles._sorted_quantile` of an ascending array whose top may be +inf."""
    pos = q * (xs.size - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, xs.size - 1)
    if not np.isfinite(xs[lo]):
        return math.inf
    if not np.isfinite(xs[hi]):
        return float(xs[lo]) if pos == lo else math.inf
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def censored_quantile(values: Sequence[float] | np.ndarray, censored: Sequence[bool] | np.ndarray, q: float,
                      confidence: float = 0.95, *, es_confidence: float = 0.99) -> CensoredQuantile:
    """Percentile q of a right-censored sample: an estimate with its interval where identified, else a bound."""
    v = np.asarray(values, dtype=float).ravel()
    c = np.asarray(censored, dtype=bool).ravel()
    if v.shape != c.shape:
        raise StatsError("values and censored must have the same length")
    keep = np.isfinite(v)
    v, c = v[keep], c[keep]
    n, k = int(v.size), int(c.sum())
    if n == 0:
        raise StatsError("sample has 0 usable value(s); at least 1 needed")
    best = np.sort(v)
    worst = np.sort(np.where(c, np.inf, v))
    est_best, est_worst = _sorted_quantile(best, q), _quantile_with_inf(worst, q)
    r, s = order_statistic_ranks(n, q, confidence)
    lo, hi = _rank_value(best, r), _rank_value(worst, s)
    t = early_stopping_overlatency(n, q, es_confidence)
    ub = _rank_value(worst, n - t + 1) if t >= 1 else float("nan")
    ub = ub if np.isfinite(ub) else float("nan")
    enough = r >= 1 and s <= n
    # identified: censoring moves neither the estimate nor the upper confidence limit (when there is one)
    identified = est_best == est_worst and (s > n or bool(np.isfinite(hi)))
    if identified:
        note = "" if enough else (f"too few samples for {label(q)}: {n} < {min_samples_for_ci(q, confidence)} "
                                  f"needed for a two-sided {confidence:.0%} interval")
        return CensoredQuantile(q, n, k, est_best, lo, hi if np.isfinite(hi) else float("nan"), ub, est_worst, "",
                                enough, note)
    r1 = int(st.binom.ppf(1 - confidence, n, q))  # one-sided: P(B <= r1 - 1) <= 1 - confidence
    lo1 = _rank_value(best, r1)
    note = (f"{label(q)} is a lower bound: {k} of {n} requests ({k / n:.1%}) timed out and could lie above it")
    return CensoredQuantile(q, n, k, est_best, lo1, float("nan"), ub, est_worst, "lower", False, note)


def censored_quantile_table(values: Sequence[float] | np.ndarray, censored: Sequence[bool] | np.ndarray,
                            quantiles: Sequence[float] = DEFAULT_QUANTILES, confidence: float = 0.95,
                            *, model: bool = True) -> dict[str, object]:
    """:func:`bedrock_lab.stats.quantiles.quantile_table` for a censored sample, plus per percentile
    ``pXX_bound`` ("" or "lower") and ``pXX_model`` (the censored log-normal fit's percentile, model-based, only
    where the percentile is a bound and ``model``, and NaN where it falls below the bound: the data rule it out), and ``n_censored``, ``censored_frac`` and ``mean`` (of the
    exact values only: a mean is not identified under censoring)."""
    v = np.asarray(values, dtype=float).ravel()
    c = np.asarray(censored, dtype=bool).ravel()
    keep = np.isfinite(v)
    v, c = v[keep], c[keep]
    n, k = int(v.size), int(c.sum())
    exact = v[~c]
    out: dict[str, object] = {"n": n, "mean": float(exact.mean()) if exact.size else float("nan"),
                              "n_censored": k, "censored_frac": k / n if n else float("nan")}
    notes: list[str] = []
    fitted: tuple[float, ...] | None = None
    for q in quantiles:
        lab = label(q)
        if n == 0:
            out.update({lab: np.nan, f"{lab}_lo": np.nan, f"{lab}_hi": np.nan, f"{lab}_ub": np.nan,
                        f"{lab}_ok": False, f"{lab}_bound": "", f"{lab}_model": np.nan})
            continue
        e = censored_quantile(v, c, q, confidence)
        out.update({lab: e.estimate, f"{lab}_lo": e.lo, f"{lab}_hi": e.hi, f"{lab}_ub": e.upper_bound,
                    f"{lab}_ok": e.enough, f"{lab}_bound": e.bound, f"{lab}_model": np.nan})
        if e.bound and model:
            if fitted is None:
                try:
                    fitted = censored_fit(v, c, MODEL_DIST)
                except StatsError:
                    fitted = ()
            value = float(getattr(st, MODEL_DIST).ppf(q, *fitted)) if fitted else float("nan")
            if value >= e.estimate:  # below the bound the data rule the model out (the timeouts are unlike the rest)
                out[f"{lab}_model"] = value
        if e.note:
            notes.append(e.note)
    out["quantile_notes"] = "; ".join(notes)
    return out


def km_quantiles(
    values: Sequence[float] | np.ndarray,
    censored: Sequence[bool] | np.ndarray,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[float, float]:
    """Kaplan-Meier percentiles ``{q: value}``; NaN where censoring leaves the percentile unidentified."""
    v = np.asarray(values, dtype=float)
    c = np.asarray(censored, dtype=bool)
    if v.shape != c.shape:
        raise StatsError("values and censored must have the same length")
    keep = np.isfinite(v)
    v, c = v[keep], c[keep]
    if (~c).sum() == 0:
        return {q: float("nan") for q in quantiles}
    if not c.any():
        # no censoring: KM is the plain ECDF; its quantile is the smallest x with F(x) >= q
        xs = np.sort(v)
        return {q: float(xs[int(np.ceil(q * xs.size)) - 1]) for q in quantiles}
    res = st.ecdf(st.CensoredData(uncensored=v[~c], right=v[c]))
    t = res.cdf.quantiles
    f = res.cdf.probabilities
    out = {}
    for q in quantiles:
        idx = int(np.searchsorted(f, q - 1e-12, side="left"))
        out[q] = float(t[idx]) if idx < t.size else float("nan")
    return out


def censored_fit(values: Sequence[float] | np.ndarray, censored: Sequence[bool] | np.ndarray,
                 dist: str = "lognorm") -> tuple[float, ...]:
    """MLE parameters of ``dist`` (location fixed at 0) treating censored values as lower bounds."""
    d = getattr(st, dist, None)
    if not isinstance(d, st.rv_continuous):
        raise StatsError(f"unknown distribution {dist!r}")
    v = np.asarray(values, dtype=float)
    c = np.asarray(censored, dtype=bool)
    if (~c).sum() < 3:
        raise StatsError("a censored fit needs at least 3 uncensored values")
    data = st.CensoredData(uncensored=v[~c & (v > 0)], right=v[c & (v > 0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return tuple(float(p) for p in d.fit(data, floc=0))
        except Exception as exc:
            raise StatsError(f"censored {dist} fit failed: {exc}") from exc


def censored_summary(
    df: pd.DataFrame,
    metric: str = "e2e_s",
    by: Sequence[str] | None = None,
    *,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    timeout_s: float | None = None,
    confidence: float = 0.95,
    model: bool = True,
) -> pd.DataFrame:
    """Per group: ``n``, ``n_censored``, ``censored_frac`` and per percentile: ``pXX_naive`` (timeouts
    dropped), ``pXX_km`` (Kaplan-Meier), ``pXX`` with ``pXX_bound`` (the bound rule: the estimate, or "lower"
    and a lower bound), ``pXX_worst`` (every timeout at +inf), ``pXX_model`` (censored log-normal fit,
    model-based, where the percentile is a bound); ``note`` in words.

    Naive and Kaplan-Meier percentiles use one definition (the smallest value with F >= q), so only censoring
    makes them differ. Kaplan-Meier assumes a timed-out request is like the ones still running at its censoring
    time; a read timeout (silence between bytes) is not, so where the bound rule says "lower" the Kaplan-Meier
    value is not an estimate either, and the note says so.
    """
    by = list(by) if by else default_by(df)
    rows = []
    for keys, sub in groups(df, by):
        v, c = censored_sample(sub, metric, timeout_s=timeout_s)
        row: dict[str, object] = {**keys, "metric": metric, "n": int(v.size), "n_censored": int(c.sum()),
                                  "censored_frac": float(c.mean()) if v.size else float("nan")}
        km = km_quantiles(v, c, quantiles) if v.size else {q: float("nan") for q in quantiles}
        exact = np.sort(v[~c])
        table = censored_quantile_table(v, c, quantiles, confidence, model=model) if v.size else {}
        missing, bounds, km_hidden = [], [], []
        for q in quantiles:
            lab = label(q)
            row[f"{lab}_naive"] = float(np.quantile(exact, q, method="inverted_cdf")) if exact.size else float("nan")
            row[f"{lab}_km"] = km[q]
            row[lab] = table.get(lab, float("nan"))
            row[f"{lab}_bound"] = table.get(f"{lab}_bound", "")
            row[f"{lab}_worst"] = censored_quantile(v, c, q, confidence).worst if v.size else float("nan")
            row[f"{lab}_model"] = table.get(f"{lab}_model", float("nan"))
            if exact.size and not np.isfinite(km[q]):
                missing.append(lab)
            if row[f"{lab}_bound"]:
                bounds.append(lab)
                if np.isfinite(km[q]):
                    km_hidden.append(lab)
        notes = []
        if bounds:
            notes.append(f"{', '.join(bounds)} only a lower bound: {int(c.sum())} timeout(s) could lie above")
        if km_hidden:
            notes.append(f"Kaplan-Meier {', '.join(km_hidden)} assumes timeouts are like requests still running "
                         "(a read timeout is not): not an estimate")
        if missing:
            notes.append(f"Kaplan-Meier {', '.join(missing)} not identified: more requests timed out than lie "
                         "above it")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)

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
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import default_by, error_kind_is, groups, ok_mask, require_columns
from bedrock_lab.stats.quantiles import DEFAULT_QUANTILES, label


def censored_sample(df: pd.DataFrame, metric: str = "e2e_s", *, timeout_s: float | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(values, censored)`` from records: successes are exact, timeouts right-censored.

    A timeout is censored at its recorded ``metric`` value, else at ``timeout_s``; a timeout with neither
    is dropped (there is no time to censor at). Other failures are not latency observations and are left out.
    """
    require_columns(df, [metric, "status"])
    ok = ok_mask(df).to_numpy(bool)
    timeout = error_kind_is(df, "timeout")
    v = pd.to_numeric(df[metric], errors="coerce").to_numpy(float)
    if timeout_s is not None:
        v = np.where(timeout & ~np.isfinite(v), float(timeout_s), v)
    keep = (ok | timeout) & np.isfinite(v)
    return v[keep], timeout[keep]


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
) -> pd.DataFrame:
    """Per group: ``n``, ``n_censored``, naive percentiles (timeouts dropped) and Kaplan-Meier ones.

    Columns ``p50_naive`` (timeouts dropped) / ``p50_km``... (both the smallest value with F >= q), and ``note`` (which percentiles censoring leaves unidentified).
    """
    by = list(by) if by else default_by(df)
    rows = []
    for keys, sub in groups(df, by):
        v, c = censored_sample(sub, metric, timeout_s=timeout_s)
        row: dict[str, object] = {**keys, "metric": metric, "n": int(v.size), "n_censored": int(c.sum())}
        km = km_quantiles(v, c, quantiles) if v.size else {q: float("nan") for q in quantiles}
        exact = np.sort(v[~c])
        missing = []
        for q in quantiles:
            lab = label(q)
            # same (inverted-CDF) definition as the KM quantile, so only censoring makes them differ
            row[f"{lab}_naive"] = float(np.quantile(exact, q, method="inverted_cdf")) if exact.size else float("nan")
            row[f"{lab}_km"] = km[q]
            if exact.size and not np.isfinite(km[q]):
                missing.append(lab)
        row["note"] = (f"{', '.join(missing)} not identified: more requests timed out than lie above it"
                       if missing else "")
        rows.append(row)
    return pd.DataFrame(rows)

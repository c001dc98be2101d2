"""Parametric fits of latency distributions: maximum likelihood, AIC/BIC ranking, parametric-bootstrap GOF.

Candidates (``scipy.stats`` names): ``lognorm``, ``gamma``, ``weibull_min``, ``fisk`` (log-logistic),
``invgauss`` with the location fixed at 0 (latencies are positive and a free location makes the MLE
unstable), and ``exponnorm`` (exponentially modified Gaussian: a normal service time plus an exponential
queueing delay) with free location. For k free parameters and maximised log-likelihood l::

    AIC = 2k - 2 l        BIC = k ln(n) - 2 l        (Akaike 1974; Schwarz 1978)

``delta_aic`` is AIC minus the smallest AIC; differences above ~10 rule a model out (Burnham & Anderson
2002, *Model Selection and Multimodel Inference*, sec. 2.6).

Goodness of fit uses ``scipy.stats.goodness_of_fit`` (Anderson-Darling statistic, p-value by parametric
bootstrap that refits on every simulated sample). Plugging fitted parameters into a plain KS test
ignores the fitting and is far too lenient (Lilliefors 1967). With thousands of requests every model is
rejected; read the p-value together with the QQ plot (:func:`qq_data`).

Samples are subsampled (seeded) to ``max_n`` (default 5,000) for fitting and ``gof_max_n`` (default 500)
for the bootstrap, with ``n_mc`` (default 99) simulations, so cost does not grow with run size.

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(1).lognormal(mean=-0.5, sigma=0.4, size=2000)
>>> table = fit_distributions(x, dists=("lognorm", "gamma", "weibull_min"))
>>> table.iloc[0]["dist"]
'lognorm'
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import as_float_array, subsample

#: candidate distributions, in the order they are tried
DEFAULT_DISTS: tuple[str, ...] = ("lognorm", "gamma", "weibull_min", "exponnorm", "fisk", "invgauss")
#: human names for tables and charts
DIST_NAMES: dict[str, str] = {
    "lognorm": "log-normal", "gamma": "gamma", "weibull_min": "Weibull", "exponnorm": "ex-Gaussian",
    "fisk": "log-logistic", "invgauss": "inverse Gaussian",
}
_FIXED_LOC0 = {"lognorm", "gamma", "weibull_min", "fisk", "invgauss"}
FIT_MAX_N = 5_000
GOF_MAX_N = 500
GOF_N_MC = 99
#: distributions whose bootstrap refits are too slow for a default analysis
SLOW_GOF = frozenset({"exponnorm"})


@dataclass(frozen=True, slots=True)
class Fit:
    """One fitted distribution: scipy name, parameters (shape..., loc, scale) and information criteria."""

    dist: str
    params: tuple[float, ...]
    k: int
    loglik: float
    aic: float
    bic: float
    n: int

    def frozen(self) -> st.rv_continuous:
        return getattr(st, self.dist)(*self.params)


def _dist(name: str) -> st.rv_continuous:
    d = getattr(st, name, None)
    if not isinstance(d, st.rv_continuous):
        raise StatsError(f"unknown continuous distribution {name!r} (e.g. {', '.join(DEFAULT_DISTS)})")
    return d


def _start(name: str, x: np.ndarray) -> tuple[float, ...]:
    """Moment-based starting values ``(shape..., [loc, scale])`` for the generic optimisers."""
    if name == "exponnorm":
        m, s = float(np.mean(x)), float(np.std(x))
        skew = max(float(st.skew(x)), 0.05)
        tau = s * (skew / 2) ** (1 / 3)
        sig = math.sqrt(max(s**2 - tau**2, (0.05 * s) ** 2))
        return (tau / sig, m - tau, sig)
    if name == "fisk":
        lx = np.log(x)
        return (max(math.pi / (math.sqrt(3) * float(np.std(lx))), 0.5),)
    return ()


def fit_one(x: Sequence[float] | np.ndarray, dist: str) -> Fit:
    """Maximum-likelihood fit of one distribution (location fixed at 0 except for exponnorm)."""
    d = _dist(dist)
    data = as_float_array(x, "sample", min_n=3, positive=dist in _FIXED_LOC0)
    kwargs: dict[str, float] = {"floc": 0.0} if dist in _FIXED_LOC0 else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            start = _start(dist, data)
            if dist == "fisk":
                # log X is logistic(log scale, 1/c): scipy's logistic MLE solves the score equations
                # directly, ~8x faster than the generic optimiser on fisk, same maximum
                mu, s = st.logistic.fit(np.log(data))
                params = (1.0 / s, 0.0, math.exp(mu))
            elif dist == "exponnorm":
                params = d.fit(data, start[0], loc=start[1], scale=start[2])
            else:
                params = d.fit(data, *start, **kwargs)
        except Exception as exc:  # scipy raises several types from its optimisers
            raise StatsError(f"{dist} fit failed: {exc}") from exc
        loglik = float(np.sum(d.logpdf(data, *params)))
    k = len(params) - (1 if dist in _FIXED_LOC0 else 0)
    n = data.size
    return Fit(dist=dist, params=tuple(float(p) for p in params), k=k, loglik=loglik,
               aic=2 * k - 2 * loglik, bic=k * math.log(n) - 2 * loglik, n=n)


def gof(x: Sequence[float] | np.ndarray, dist: str, *, n_mc: int = GOF_N_MC, max_n: int = GOF_MAX_N,
        seed: int = 0, allow_slow: bool = False) -> tuple[float, float]:
    """``(statistic, p_value)`` of the Anderson-Darling parametric-bootstrap test (``goodness_of_fit``).

    ``exponnorm`` is refused unless ``allow_slow`` (about 2 minutes at the defaults)."""
    d = _dist(dist)
    if dist in SLOW_GOF and not allow_slow:
        raise StatsError(f"parametric-bootstrap GOF for {dist} refits a 3-parameter model by generic "
                         "optimisation n_mc times (minutes); pass allow_slow=True or read the QQ plot")
    rng = np.random.default_rng(seed)
    data = subsample(as_float_array(x, "sample", min_n=5, positive=dist in _FIXED_LOC0), max_n, rng)
    known = {"loc": 0.0} if dist in _FIXED_LOC0 else None
    guessed = None
    if dist == "exponnorm":
        k0, loc0, s0 = _start(dist, data)
        guessed = {"K": k0, "loc": loc0, "scale": s0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = st.goodness_of_fit(d, data, known_params=known, guessed_params=guessed, statistic="ad",
                                     n_mc_samples=n_mc, rng=rng)
        except Exception as exc:
            raise StatsError(f"goodness of fit for {dist} failed: {exc}") from exc
    return float(res.statistic), float(res.pvalue)


def fit_distributions(
    x: Sequence[float] | np.ndarray,
    dists: Sequence[str] = DEFAULT_DISTS,
    *,
    gof_test: bool | str = False,
    n_mc: int = GOF_N_MC,
    max_n: int = FIT_MAX_N,
    gof_max_n: int = GOF_MAX_N,
    seed: int = 0,
) -> pd.DataFrame:
    """Fit every candidate and rank by AIC.

    Columns: ``rank``, ``dist``, ``name``, ``params`` (tuple), ``k``, ``loglik``, ``aic``, ``bic``,
    ``delta_aic``, ``delta_bic``, ``n``, ``gof_stat``, ``gof_p`` (NaN unless tested), ``error``.
    ``gof_test`` is False, True (every candidate) or "best" (the top-ranked only).
    """
    rng = np.random.default_rng(seed)
    data = subsample(as_float_array(x, "sample", min_n=10), max_n, rng)
    rows = []
    for name in dists:
        try:
            f = fit_one(data, name)
            rows.append({"dist": name, "name": DIST_NAMES.get(name, name), "params": f.params, "k": f.k,
                         "loglik": f.loglik, "aic": f.aic, "bic": f.bic, "n": f.n, "error": ""})
        except StatsError as exc:
            rows.append({"dist": name, "name": DIST_NAMES.get(name, name), "params": (), "k": 0,
                         "loglik": np.nan, "aic": np.nan, "bic": np.nan, "n": data.size, "error": str(exc)})
    table = pd.DataFrame(rows)
    table.loc[~np.isfinite(table["aic"].astype(float)), "aic"] = np.nan
    table = table.sort_values("aic", na_position="last", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["delta_aic"] = table["aic"] - table["aic"].min()
    table["delta_bic"] = table["bic"] - table["bic"].min()
    table["gof_stat"] = np.nan
    table["gof_p"] = np.nan
    if gof_test:
        todo = table.index[:1] if gof_test == "best" else table.index
        for i in todo:
            if table.at[i, "error"] or table.at[i, "dist"] in SLOW_GOF:
                continue
            try:
                stat, p = gof(data, table.at[i, "dist"], n_mc=n_mc, max_n=gof_max_n, seed=seed)
            except StatsError as exc:
                table.at[i, "error"] = str(exc)
                continue
            table.at[i, "gof_stat"] = stat
            table.at[i, "gof_p"] = p
    return table


def qq_data(x: Sequence[float] | np.ndarray, dist: str, params: Sequence[float], *, points: int = 200
            ) -> pd.DataFrame:
    """Quantile-quantile points for a chart: ``prob``, ``theoretical`` and ``sample`` quantiles.

    ``points`` evenly spaced plotting positions ``(i - 0.5) / points`` keep the chart small for any n.
    """
    d = _dist(dist)
    data = as_float_array(x, "sample", min_n=2)
    m = int(min(points, data.size))
    probs = (np.arange(1, m + 1) - 0.5) / m
    return pd.DataFrame({"prob": probs, "theoretical": d.ppf(probs, *params),
                         "sample": np.quantile(data, probs)})

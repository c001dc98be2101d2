"""Always-valid confidence sequences for a percentile, so a cell may stop as soon as its answer is settled.

A base module (numpy/scipy only) so both the engines' stop controller (:mod:`bedrock_lab.engines.stopping`) and
the analysis (:mod:`bedrock_lab.stats.sequential`, which re-exports it) use the one implementation.

An ordinary 95% interval of a percentile is valid at one sample size fixed in advance; looking at it every
few seconds and stopping when it clears the SLO target makes false verdicts far more common than 5%. A
*confidence sequence* holds at every sample size at once, ``P(for all t: q in CI_t) >= 1 - alpha``, so it
stays valid however often we look and whenever we stop (Howard & Ramdas, "Sequential estimation of
quantiles with applications to A/B-testing and best-arm identification", Bernoulli 28(3), 2022; the
fixed-quantile confidence sequence of their Theorem 1, with a beta-binomial mixture boundary).

Method. Let ``q`` be the true p-quantile and ``N_t = #{i <= t: U_i <= p}`` for i.i.d. uniforms, a
Binomial(t, p) random walk. Its exact likelihood-ratio mixture over a ``Beta(w p, w (1-p))`` prior::

    M_t(N) = B(w p + N, w (1-p) + t - N) / B(w p, w (1-p)) / (p^N (1-p)^(t-N))

is a nonnegative martingale with ``M_0 = 1``, so by Ville's inequality ``P(exists t: M_t(N_t) >= 1/alpha)
<= alpha``. ``log M_t`` is convex in N and below 0 at ``N = t p``, hence the accepted counts
``{N: M_t(N) < 1/alpha}`` are an integer range ``[a_t, b_t]`` (:func:`quantile_cs_band`). Coupling
``X_i = F^-1(U_i)``, ``#{X_i <= q} >= N_t >= a_t`` and ``#{X_i < q} <= N_t <= b_t`` on that event, so for
every t at once, with any distribution (ties and atoms included)::

    X_(a_t) <= q <= X_(b_t + 1)          (X_(0) = -inf, X_(t+1) = +inf)

with probability >= 1 - alpha. ``w`` only tunes where the band is tightest (near ``t_opt`` observations,
by a normal-mixture approximation, :func:`prior_weight`; after Howard et al. 2021, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Annals of Statistics 49(2)); the guarantee holds for any ``w > 0``. The authors' ``confseq`` package is not used (no wheels; it needs a C++
toolchain and Boost).

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).lognormal(0, 0.5, 2000)
>>> cs = quantile_cs(x, 0.9)
>>> bool(cs.lo <= np.exp(0.5 * 1.2816) <= cs.hi), cs.n
(True, 2000)
>>> w = SloWatcher(0.9, target=1.0)
>>> w.update(x[:300]); w.status()
'above'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import betaln

from bedrock_lab.errors import StatsError

#: what a watcher can say: the percentile is settled above / below the target, known to the requested
#: relative precision, or not yet decided
Status = Literal["above", "below", "precise", "undecided"]

#: sample size at which the default band is tightest (a few hundred requests is a typical short cell)
DEFAULT_T_OPT = 500

_BISECT_STEPS = 64


def _finite_array(x: object, name: str) -> np.ndarray:
    """1-D float array without NaN/inf; raises when empty (like ``bedrock_lab.stats._data.as_float_array``, which
    this base module cannot import: the engines' stop controller uses it too)."""
    try:
        arr = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise StatsError(f"{name} is not numeric: {exc}") from exc
    arr = arr[np.isfinite(arr)]
    if arr.size < 1:
        raise StatsError(f"{name} has 0 usable value(s); at least 1 needed")
    return arr


def _check(p: float, alpha: float, t_opt: float) -> None:
    if not 0 < p < 1:
        raise StatsError(f"quantile p must be in (0, 1), got {p}")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if not (t_opt >= 1 and math.isfinite(t_opt)):
        raise StatsError(f"t_opt must be a finite number >= 1, got {t_opt}")


def prior_weight(alpha: float, t_opt: float) -> float:
    """Concentration ``w`` of the Beta prior that makes the band tightest near ``t_opt`` observations.

    Normal-mixture approximation: the boundary ``sqrt((V + rho) (log(1 + V/rho) + 2 log(1/alpha)))`` in
    variance units is near-minimal at ``V = m`` for ``rho = m / (2 log(1/alpha) + log(1 + 2 log(1/alpha)))``;
    a ``Beta(w p, w (1-p))`` prior acts like ``rho`` with ``w = rho / (p (1-p))`` in count units, i.e.
    ``w = t_opt / (...)``. Validity does not depend on it.
    """
    ell = 2.0 * math.log(1.0 / alpha)
    return max(t_opt / (ell + math.log1p(ell)), 1e-3)


def _log_mixture(n: np.ndarray, t: np.ndarray, p: float, w: float) -> np.ndarray:
    """``log M_t(N)``: the beta-binomial mixture of Bernoulli likelihood ratios (module docstring)."""
    a, b = w * p, w * (1.0 - p)
    return np.asarray(
        betaln(a + n, b + t - n) - betaln(a, b) - n * math.log(p) - (t - n) * math.log1p(-p), dtype=float
    )


def quantile_cs_band(
    p: float, t: int | Sequence[int] | np.ndarray, alpha: float = 0.05, *, t_opt: float = DEFAULT_T_OPT
) -> tuple[np.ndarray, np.ndarray]:
    """Accepted count range ``[a_t, b_t]`` of the Binomial(t, p) walk, for each sample size t.

    ``P(for all t: a_t <= N_t <= b_t) >= 1 - alpha``; the p-quantile's interval after t observations is
    ``[X_(a_t), X_(b_t + 1)]`` (1-based order statistics, ``a_t = 0`` meaning unbounded below and
    ``b_t = t`` unbounded above). Vectorised bisection on the convex ``log M_t``: O(len(t)) per step.
    """
    _check(p, alpha, t_opt)
    ts = np.atleast_1d(np.asarray(t))
    if ts.size == 0 or ts.dtype.kind not in "iu" or np.any(ts < 1):
        raise StatsError("sample sizes t must be integers >= 1")
    tf = ts.astype(float)
    w = prior_weight(alpha, t_opt)
    level = math.log(1.0 / alpha)

    def f(n: np.ndarray) -> np.ndarray:
        return _log_mixture(n, tf, p, w) - level

    mid = tf * p  # f(mid) < 0: the mixture never exceeds the maximum likelihood ratio, which is 1 here
    lo_open = f(np.zeros_like(tf)) < 0  # no lower constraint at all
    hi_open = f(tf) < 0
    # lower root in (0, mid): keep f(left) >= 0 > f(right)
    left, right = np.zeros_like(tf), mid.copy()
    up_left, up_right = mid.copy(), tf.copy()  # upper root in (mid, t): f(up_left) < 0 <= f(up_right)
    for _ in range(_BISECT_STEPS):
        m = (left + right) / 2
        neg = f(m) < 0
        right, left = np.where(neg, m, right), np.where(neg, left, m)
        m = (up_left + up_right) / 2
        neg = f(m) < 0
        up_left, up_right = np.where(neg, m, up_left), np.where(neg, up_right, m)
    a = np.ceil(left)
    b = np.floor(up_right)
    for _ in range(3):  # integer fix-up at the roots: accepted means f < 0 strictly
        a = np.where(f(a) >= 0, a + 1, a)
        b = np.where(f(b) >= 0, b - 1, b)
    a = np.where(lo_open, 0.0, a)
    b = np.where(hi_open, tf, b)
    return a.astype(np.int64), b.astype(np.int64)


@dataclass(frozen=True, slots=True)
class SequentialInterval:
    """Always-valid interval of the p-quantile after ``n`` observations (bounds may be +-inf).

    ``lo_rank``/``hi_rank`` are the 1-based order statistics used (0 and n+1 mean unbounded).
    """

    p: float
    n: int
    alpha: float
    estimate: float
    lo: float
    hi: float
    lo_rank: int
    hi_rank: int

    @property
    def bounded(self) -> bool:
        """True once both sides are finite."""
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def relative_half_width(self) -> float:
        """``(hi - lo) / (2 |estimate|)``: the precision in relative terms (inf while unbounded)."""
        if not self.bounded or self.estimate == 0:
            return math.inf
        return (self.hi - self.lo) / (2.0 * abs(self.estimate))


def _interval_from_sorted(xs: np.ndarray, p: float, alpha: float, a: int, b: int) -> SequentialInterval:
    n = xs.size
    lo = float(xs[a - 1]) if a >= 1 else -math.inf
    hi = float(xs[b]) if b + 1 <= n else math.inf
    return SequentialInterval(p, n, alpha, float(np.quantile(xs, p)), lo, hi, int(a), int(b + 1))


def quantile_cs(
    x: Sequence[float] | np.ndarray, p: float, alpha: float = 0.05, *, t_opt: float = DEFAULT_T_OPT
) -> SequentialInterval:
    """Always-valid (1 - alpha) interval of the p-quantile from all of ``x`` (in arrival order or not).

    Valid at a data-dependent stopping time, unlike :func:`bedrock_lab.stats.quantile_ci`. NaN/inf values
    are dropped; raises :class:`StatsError` for an empty sample or bad parameters.
    """
    xs = np.sort(_finite_array(x, "sample"))
    a, b = quantile_cs_band(p, xs.size, alpha, t_opt=t_opt)
    return _interval_from_sorted(xs, p, alpha, int(a[0]), int(b[0]))


def quantile_cs_path(
    x: Sequence[float] | np.ndarray,
    p: float,
    looks: Sequence[int] | np.ndarray,
    alpha: float = 0.05,
    *,
    t_opt: float = DEFAULT_T_OPT,
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds after the first ``t`` values of ``x`` (arrival order), for each t in ``looks``.

    All bounds hold simultaneously with probability >= 1 - alpha: this is what a watcher looking at those
    sample sizes sees. ``x`` must be finite (it is a stream: dropping values would shift the looks).
    """
    arr = np.asarray(x, dtype=float).ravel()
    if not np.all(np.isfinite(arr)):
        raise StatsError("the stream must be finite: drop failed requests before, not inside, the path")
    ts = np.asarray(looks)
    if ts.size == 0 or ts.dtype.kind not in "iu" or np.any(ts < 1) or np.any(ts > arr.size):
        raise StatsError(f"looks must be integers in [1, {arr.size}]")
    a, b = quantile_cs_band(p, ts, alpha, t_opt=t_opt)
    lo = np.full(ts.size, -np.inf)
    hi = np.full(ts.size, np.inf)
    for i, (t, ai, bi) in enumerate(zip(ts.tolist(), a.tolist(), b.tolist(), strict=True)):
        ks = [k for k in (ai - 1, bi) if 0 <= k < t]
        if not ks:
            continue
        part = np.partition(arr[:t], ks)
        if ai >= 1:
            lo[i] = part[ai - 1]
        if bi + 1 <= t:
            hi[i] = part[bi]
    return lo, hi


class SloWatcher:
    """Fed latencies as they arrive, says whether the p-quantile is settled against a target.

    ``status()`` is ``"above"`` when the always-valid interval lies wholly above ``target`` (the SLO is
    missed), ``"below"`` when wholly below (met), ``"precise"`` when its relative half-width is at most
    ``rel_precision``, else ``"undecided"``. Because the interval is a confidence sequence, calling
    ``status()`` after every update and stopping at the first settled answer keeps the error rate at or
    below ``alpha``. Warm-up exclusion and minimum/maximum durations belong to the caller.
    """

    def __init__(
        self,
        p: float,
        *,
        target: float | None = None,
        rel_precision: float | None = None,
        alpha: float = 0.05,
        t_opt: float = DEFAULT_T_OPT,
    ) -> None:
        _check(p, alpha, t_opt)
        if target is None and rel_precision is None:
            raise StatsError("a watcher needs a target, a rel_precision, or both")
        if target is not None and not math.isfinite(target):
            raise StatsError(f"target must be finite, got {target}")
        if rel_precision is not None and not (rel_precision > 0 and math.isfinite(rel_precision)):
            raise StatsError(f"rel_precision must be a positive number, got {rel_precision}")
        self.p, self.target, self.rel_precision, self.alpha, self.t_opt = p, target, rel_precision, alpha, t_opt
        self._values: list[float] = []

    @property
    def n(self) -> int:
        """Observations seen so far."""
        return len(self._values)

    def update(self, values: float | Iterable[float]) -> None:
        """Add one value or several; non-finite values raise (a failed request is not a latency)."""
        new = [float(values)] if isinstance(values, int | float) else [float(v) for v in values]
        if not all(math.isfinite(v) for v in new):
            raise StatsError("latencies must be finite; count failed requests separately")
        self._values.extend(new)

    def interval(self) -> SequentialInterval:
        """The always-valid interval now; raises :class:`StatsError` before the first value."""
        if not self._values:
            raise StatsError("no observations yet")
        return quantile_cs(self._values, self.p, self.alpha, t_opt=self.t_opt)

    def status(self) -> Status:
        """The settled answer, if any (``"undecided"`` before the first value)."""
        if not self._values:
            return "undecided"
        ci = self.interval()
        if self.target is not None:
            if ci.lo > self.target:
                return "above"
            if ci.hi < self.target:
                return "below"
        if self.rel_precision is not None and ci.relative_half_width() <= self.rel_precision:
            return "precise"
        return "undecided"

"""Two-sample and many-sample comparisons of latency distributions, with verdicts a stakeholder can read.

One decision rule: the verdict is read off the confidence interval of the ratio of medians, and nothing else.

* Effect: ``ratio = median(A) / median(B)``. Its interval is a Wald interval on the log scale::

      log(ratio) +- z_{(1 + level) / 2} * sqrt(se_A^2 + se_B^2)

  where ``se^2`` is the *exact* bootstrap variance of the log sample median (Maritz & Jarrett 1978, J. Am.
  Stat. Assoc. 73:194-196; computed from the order-statistic probabilities of Hutson & Ernst 2000, so no
  Monte-Carlo noise at any level, e.g. the 99.8% of a Bonferroni-adjusted grid).
* Verdict: ``"<A> faster"`` when the whole interval lies on A's better side of 1 (below 1 for latencies,
  above 1 for ``tokens_per_s``), ``"<B> faster"`` when it lies on B's side, else ``"no difference detected
  (smallest detectable effect: x1.05 in median)"``; ``"not enough data to compare"`` without an interval
  (:func:`interval_verdict`). ``p_value = 2 Phi(-|log ratio| / se)`` is the inversion of the same interval
  (``p < 1 - level`` exactly when the interval excludes 1): secondary information, never a second rule.
* In a grid (:func:`compare_grid`) the level of every interval is multiplicity-adjusted
  (:func:`bedrock_lab.stats.multiple.interval_levels`): Bonferroni's ``1 - alpha / m`` by default, so the
  intervals hold simultaneously with probability >= 1 - alpha and so do the verdicts (family-wise error
  <= alpha); or the FCR-adjusted level of Benjamini & Yekutieli (2005) with ``correction="bh"``.
* Smallest detectable effect: the ratio whose interval excludes 1 with probability ``power`` at this
  standard error, ``exp((z_{(1 + level) / 2} + z_power) se)``; ``mde_vda`` is the same effect as
  Vargha-Delaney's A under a log-normal shift with the pooled log-scale sd s, ``Phi(log(ratio) / (sqrt(2) s))``.

Secondary, descriptive (they answer other questions and never make a verdict): Vargha & Delaney's A (2000,
J. Educ. Behav. Stat. 25:101-132) ``A = P(a > b) + 0.5 P(a = b)`` (0.56 / 0.64 / 0.71: small / medium / large);
``rank_p`` of Brunner-Munzel (Brunner & Munzel 2000, Biometrical Journal 42:17-25; ``scipy.stats.brunnermunzel``),
which tests ``A = 1/2`` (``test="mann-whitney"`` is available), unadjusted; the bootstrap 95% intervals of
p95(A) - p95(B) and p99(A) - p99(B), unadjusted, when both groups have enough samples for those percentiles
(:func:`bedrock_lab.stats.quantiles.min_samples_for_ci`).

Large groups are subsampled (seeded) to ``max_n`` values for the rank test (``capped`` says so); the median
interval and the tail bootstrap use every value (:func:`bootstrap_quantiles`, :func:`log_median_se`).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> c = compare_two(rng.lognormal(0, 0.3, 300), rng.lognormal(0.2, 0.3, 300))
>>> c.verdict, c.winner, bool(c.ratio_hi < 1)
('A faster', 'A', True)
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import (
    CONFIG_COLUMNS,
    HIGHER_IS_BETTER,
    as_float_array,
    metric_values,
    ok_mask,
    require_columns,
    subsample,
)
from bedrock_lab.stats.multiple import INTERVAL_CORRECTIONS, adjust, interval_levels
from bedrock_lab.stats.quantiles import min_samples_for_ci

#: test subsample cap per group (keeps rank tests O(cap log cap)) and bootstrap replicates
MAX_TEST_N = 5_000
N_BOOT = 1_000
_BOOT_QS = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of :func:`compare_two`. ``ratio`` is median(A) / median(B) and ``[ratio_lo, ratio_hi]`` its interval
    at ``level``, from which (alone) ``verdict`` and ``winner`` are read; ``vda`` is P(A > B) + ties/2."""

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float
    ratio_lo: float
    ratio_hi: float
    level: float  #: confidence level of the ratio interval (1 - alpha, or multiplicity-adjusted in a grid)
    log_ratio_se: float  #: standard error of log(ratio)
    p_value: float  #: the interval inverted: 2 Phi(-|log ratio| / se); < 1 - level iff the interval excludes 1
    vda: float
    rank_p: float  #: rank test of P(A > B) = 1/2 (secondary, unadjusted)
    rank_test: str  #: "brunner-munzel" or "mann-whitney"
    diff_p95: float  #: p95(A) - p95(B); NaN when too few samples
    diff_p95_lo: float
    diff_p95_hi: float
    diff_p99: float
    diff_p99_lo: float
    diff_p99_hi: float
    mde_vda: float  #: the smallest detectable effect as Vargha-Delaney A (log-normal shift)
    mde_ratio: float  #: smallest ratio of medians (>= 1) detectable with the requested power at ``level``
    lower_is_better: bool
    alpha: float
    power: float
    log_sd: float  #: pooled sd of the log values (translates the detectable ratio to an A)
    verdict: str
    winner: str  #: "A", "B" or "none"
    capped: bool  #: True when a group was subsampled for the rank test

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def vargha_delaney_a(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Vargha-Delaney A = P(a > b) + 0.5 P(a = b), counted by binary search, O((n + m) log m).

    >>> vargha_delaney_a([1, 2, 3], [1, 2, 3])
    0.5
    >>> vargha_delaney_a([4, 5], [1, 2])
    1.0
    """
    x = np.sort(as_float_array(a, "a"))  # sorted needles keep the binary searches cache-friendly
    y = np.sort(as_float_array(b, "b"))
    below = np.searchsorted(y, x, side="left")  # b values smaller than each a value
    upto = np.searchsorted(y, x, side="right")
    u = below.sum() + 0.5 * (upto - below).sum()
    return float(u / (x.size * y.size))


def _order_stat_window(n: int, q: float) -> tuple[int, int, int]:
    """``(k, lo, hi)``: the rank of the q-quantile (``ceil(q n)``) and the 1-based ranks holding its bootstrap mass."""
    k = min(max(int(math.ceil(q * n)), 1), n)
    spread = 10 * math.sqrt(n * q * (1 - q)) + 2  # mass beyond 10 sd is negligible
    return k, max(1, int(k - spread)), min(n, int(k + spread) + 1)


def log_median_se(x: Sequence[float] | np.ndarray) -> float:
    """Standard error of the log of the sample median: the square root of its exact bootstrap variance.

    The bootstrap median (rank ``k = ceil(n / 2)``) equals ``x_(j)`` with probability
    ``P(Binom(n, j/n) >= k) - P(Binom(n, (j-1)/n) >= k)`` (Maritz & Jarrett 1978; Hutson & Ernst 2000), so its
    variance is a short weighted sum over the ranks near k. On the log scale when those values are positive,
    else by the delta method ``sd(median) / median``; NaN for fewer than 2 values or a non-positive median.

    >>> round(log_median_se(np.random.default_rng(0).lognormal(0, 0.5, 400)), 3)  # asymptotic: sqrt(pi/2) 0.5 / 20 = 0.031
    0.038
    """
    xs = np.sort(as_float_array(x, "sample"))
    n = xs.size
    if n < 2:
        return float("nan")
    k, lo, hi = _order_stat_window(n, 0.5)
    cdf = st.binom.sf(k - 1, n, np.arange(lo - 1, hi + 1) / n)  # P(median* <= x_(j)), j = lo-1 .. hi
    cdf[-1] = 1.0
    w = np.diff(cdf)
    w = w / w.sum()
    vals = xs[lo - 1:hi]
    med = float(np.median(xs))
    if vals[0] > 0:
        v = np.log(vals)
        scale = 1.0
    elif med > 0:
        v, scale = vals, med
    else:
        return float("nan")
    mean = float(w @ v)
    return float(math.sqrt(max(float(w @ (v - mean) ** 2), 0.0)) / scale)


def _z(level: float) -> float:
    return float(st.norm.ppf(0.5 + level / 2))


def smallest_detectable_effect(
    n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8, log_sd: float | None = None
) -> tuple[float, float]:
    """``(A_min, ratio_min)``: before any data, the effect the median-ratio rule detects with ``power`` at
    ``alpha`` for log-normal groups of these sizes (log-scale sd ``log_sd``; ``ratio_min`` NaN without it).

    The log sample median has standard error ``sqrt(pi / 2) s / sqrt(n)`` for normal log values, so
    ``ratio_min = exp((z_{1 - alpha/2} + z_power) sqrt(pi / 2) s sqrt(1/n_a + 1/n_b))`` and
    ``A_min = Phi(log(ratio_min) / (sqrt(2) s))``, which does not depend on s.

    >>> round(smallest_detectable_effect(100, 100)[0], 3)
    0.637
    """
    if n_a < 1 or n_b < 1:
        return float("nan"), float("nan")
    shift = (_z(1 - alpha) + float(st.norm.ppf(power))) * math.sqrt(math.pi / 2) * math.sqrt(1 / n_a + 1 / n_b)
    a_min = float(st.norm.cdf(shift / math.sqrt(2)))
    if log_sd is None or not np.isfinite(log_sd):
        return a_min, float("nan")
    return a_min, float(math.exp(shift * log_sd))


def interval_verdict(lo: float, hi: float, *, lower_is_better: bool = True, name_a: str = "A", name_b: str = "B",
                     mde_ratio: float = float("nan")) -> tuple[str, str]:
    """``(verdict, winner)`` from the interval ``[lo, hi]`` of median(A) / median(B), and from nothing else.

    >>> interval_verdict(0.82, 0.97, name_a="priority", name_b="default")
    ('priority faster', 'A')
    >>> interval_verdict(0.97, 1.10, mde_ratio=1.08)[0]
    'no difference detected (smallest detectable effect: x1.08 in median)'
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not enough data to compare", "none"
    if hi < 1 or lo > 1:
        a_wins = (hi < 1) == lower_is_better
        return (f"{name_a} faster", "A") if a_wins else (f"{name_b} faster", "B")
    effect = f"x{mde_ratio:.3g} in median" if np.isfinite(mde_ratio) else "unknown"
    return f"no difference detected (smallest detectable effect: {effect})", "none"


def decide(c: Comparison, level: float) -> Comparison:
    """``c`` with its ratio interval, p-value, smallest detectable effect and verdict at confidence ``level``
    (e.g. a multiplicity-adjusted one): the one decision rule of the module docstring."""
    lo = hi = mde = float("nan")
    p = float("nan")
    se = c.log_ratio_se
    if np.isfinite(se) and np.isfinite(level) and 0 < level < 1 and c.ratio > 0 and np.isfinite(c.ratio):
        z = _z(level)
        log_r = math.log(c.ratio)
        # min/max: exp(log(r)) may round below r when the interval has zero width
        lo, hi = min(math.exp(log_r - z * se), c.ratio), max(math.exp(log_r + z * se), c.ratio)
        p = float(2 * st.norm.sf(abs(log_r) / se)) if se > 0 else float(log_r == 0)
        mde = math.exp((z + float(st.norm.ppf(c.power))) * se)
    mde_vda = (float(st.norm.cdf(math.log(mde) / (math.sqrt(2) * c.log_sd)))
               if np.isfinite(mde) and np.isfinite(c.log_sd) and c.log_sd > 0 else float("nan"))
    text, winner = interval_verdict(lo, hi, lower_is_better=c.lower_is_better, name_a=c.name_a, name_b=c.name_b,
                                    mde_ratio=mde)
    return replace(c, ratio_lo=lo, ratio_hi=hi, level=level, p_value=p, mde_ratio=mde, mde_vda=mde_vda,
                   verdict=text, winner=winner)


def bootstrap_quantiles(x: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0,
                        qs: Sequence[float] = _BOOT_QS) -> np.ndarray:
    """Bootstrap replicates of the p50, p95 and p99 of one group, shape (len(qs), n_boot), on **all** values.

    Drawn from the exact bootstrap distribution of an order statistic instead of resampling: with
    ``x_(1) <= ... <= x_(n)`` and k the rank of the q-quantile (``ceil(q n)``), the k-th smallest of a
    resample of size n is ``<= x_(j)`` iff at least k of the n draws are ``<= x_(j)``::

        P(X*_(k) <= x_(j)) = P(Binomial(n, j / n) >= k)

    (Hutson & Ernst 2000, J. R. Stat. Soc. B 62:89-94). Inverting this CDF at uniform draws gives replicates
    with the same distribution as Monte-Carlo resampling for O(n log n + n_boot) work, so no subsample cap is
    needed. Groups are resampled independently in a two-sample bootstrap, so one group's replicates can
    serve every comparison it takes part in (``compare_two(..., boot_a=..., boot_b=...)``).
    """
    xs = np.sort(as_float_array(x, "sample"))
    n = xs.size
    rng = np.random.default_rng(seed)
    out = np.empty((len(qs), n_boot))
    for i, q in enumerate(qs):
        k, lo, hi = _order_stat_window(n, q)
        j = np.arange(lo, hi + 1)
        cdf = st.binom.sf(k - 1, n, j / n)
        cdf[-1] = 1.0
        pick = np.searchsorted(cdf, rng.random(n_boot), side="left")
        out[i] = xs[lo - 1 + np.minimum(pick, j.size - 1)]
    return out


def compare_two(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    name_a: str = "A",
    name_b: str = "B",
    lower_is_better: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    test: str = "brunner-munzel",
    confidence: float = 0.95,
    n_boot: int = N_BOOT,
    max_n: int = MAX_TEST_N,
    seed: int = 0,
    boot_a: np.ndarray | None = None,
    boot_b: np.ndarray | None = None,
) -> Comparison:
    """Compare two samples of one metric (NaN dropped); see the module docstring for the method.

    The ratio interval and the verdict are at level ``1 - alpha``; ``test`` is the secondary rank test;
    ``confidence`` is the level of the (descriptive) tail-difference intervals. ``boot_a``/``boot_b`` are
    optional precomputed :func:`bootstrap_quantiles` of each group.
    """
    if test not in ("brunner-munzel", "mann-whitney"):
        raise StatsError(f"unknown test {test!r} (allowed: brunner-munzel, mann-whitney)")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise StatsError(f"power must be in (0, 1), got {power}")
    x_full = as_float_array(a, name_a)
    y_full = as_float_array(b, name_b)
    rng = np.random.default_rng(seed)
    x = subsample(x_full, max_n, rng)
    y = subsample(y_full, max_n, rng)
    capped = x.size < x_full.size or y.size < y_full.size
    med_a, med_b = float(np.median(x_full)), float(np.median(y_full))
    vda = vargha_delaney_a(x_full, y_full)  # binary search: cheap on every value

    rank_p, test_used = float("nan"), test
    if x.size >= 2 and y.size >= 2:
        if test == "brunner-munzel":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                rank_p = float(st.brunnermunzel(x, y).pvalue)
        if not np.isfinite(rank_p):  # chosen, or BM undefined because a group has no spread
            test_used = "mann-whitney"
            rank_p = float(st.mannwhitneyu(x, y, alternative="two-sided").pvalue)

    # descriptive bootstrap intervals of the tail differences (groups resampled independently)
    nb_a, nb_b = x_full.size, y_full.size
    tails = [q for q in (0.95, 0.99) if min(nb_a, nb_b) >= min_samples_for_ci(q, confidence)]
    lo_pct, hi_pct = 50 * (1 - confidence), 50 * (1 + confidence)
    diffs: dict[float, tuple[float, float, float]] = {}
    if tails and n_boot > 0:
        bx = boot_a if boot_a is not None else bootstrap_quantiles(x_full, n_boot=n_boot, seed=seed + 1)
        by = boot_b if boot_b is not None else bootstrap_quantiles(y_full, n_boot=n_boot, seed=seed + 2)
        for q in tails:
            i = _BOOT_QS.index(q)
            point = float(np.quantile(x_full, q) - np.quantile(y_full, q))
            dlo, dhi = np.percentile(bx[i] - by[i], [lo_pct, hi_pct])
            diffs[q] = (point, float(dlo), float(dhi))
    nan3 = (float("nan"),) * 3

    pos = np.concatenate([x[x > 0], y[y > 0]])
    log_sd = float(np.std(np.log(pos), ddof=1)) if pos.size > 2 else float("nan")
    se = math.hypot(log_median_se(x_full), log_median_se(y_full))
    d95, d99 = diffs.get(0.95, nan3), diffs.get(0.99, nan3)
    undecided = Comparison(
        name_a=name_a, name_b=name_b, n_a=int(x_full.size), n_b=int(y_full.size), median_a=med_a,
        median_b=med_b, ratio=med_a / med_b if med_b else float("nan"), ratio_lo=float("nan"),
        ratio_hi=float("nan"), level=1 - alpha, log_ratio_se=se, p_value=float("nan"), vda=vda, rank_p=rank_p,
        rank_test=test_used, diff_p95=d95[0], diff_p95_lo=d95[1], diff_p95_hi=d95[2], diff_p99=d99[0],
        diff_p99_lo=d99[1], diff_p99_hi=d99[2], mde_vda=float("nan"), mde_ratio=float("nan"),
        lower_is_better=lower_is_better, alpha=alpha, power=power, log_sd=log_sd, verdict="", winner="none",
        capped=capped,
    )
    return decide(undecided, 1 - alpha)


def compare_many(samples: Mapping[str, Sequence[float] | np.ndarray], *, max_n: int = MAX_TEST_N,
                 seed: int = 0) -> dict[str, float]:
    """Kruskal-Wallis H test across k >= 2 groups: ``{"statistic", "p_value", "k", "n"}``.

    >>> import numpy as np
    >>> r = compare_many({"a": np.arange(10.0), "b": np.arange(10.0) + 100})
    >>> r["p_value"] < 0.001
    True
    """
    rng = np.random.default_rng(seed)
    arrays = [subsample(as_float_array(v, str(k)), max_n, rng) for k, v in samples.items()]
    if len(arrays) < 2:
        raise StatsError(f"Kruskal-Wallis needs at least 2 groups, got {len(arrays)}")
    all_x = np.concatenate(arrays)
    if np.ptp(all_x) == 0:
        return {"statistic": 0.0, "p_value": 1.0, "k": len(arrays), "n": int(all_x.size)}
    res = st.kruskal(*arrays)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue), "k": len(arrays),
            "n": int(all_x.size)}


def compare_grid(
    df: pd.DataFrame,
    factor: str,
    metrics: Sequence[str] = ("ttft_s", "e2e_s"),
    *,
    within: Sequence[str] | None = None,
    include_failures: bool = False,
    alpha: float = 0.05,
    correction: str = "bonferroni",
    min_n: int = 5,
    seed: int = 0,
    boot_cache: dict | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Every pair of levels of ``factor`` (e.g. ``tier_requested``, ``run_id``) at the same values of the other
    configuration columns (``within``, default: model_id, tier_requested, prompt_size, users, rate_rps and
    api, minus ``factor``), per metric.

    Columns: the ``within`` keys, ``factor``, ``a``, ``b``, ``metric``, the :class:`Comparison` fields with the
    ratio interval, ``level``, ``p_value``, ``mde_*``, ``verdict`` and ``winner`` at the multiplicity-adjusted
    level of ``correction`` over every row of the table (:func:`bedrock_lab.stats.multiple.interval_levels`:
    "bonferroni", "bh" or "none"), ``p_adjusted`` (<= alpha exactly when the verdict names a winner, up to
    ties at the boundary), ``correction``, and ``kruskal_p`` (all levels of the stratum, secondary).
    Strata where a level has fewer than ``min_n`` values are skipped. Each group is bootstrapped once
    (``boot_cache`` shares the replicates across calls, e.g. factors). A missing level is named "(not set)".
    """
    if correction not in INTERVAL_CORRECTIONS:
        interval_levels([0.5], alpha, correction)  # raises the explanation (e.g. for Holm)
    cache: dict = boot_cache if boot_cache is not None else {}
    require_columns(df, [factor])
    default_within = (*CONFIG_COLUMNS, "rate_rps", "api")
    within = [c for c in (within if within is not None else default_within) if c in df.columns and c != factor]
    cols = list(dict.fromkeys([*within, factor, *[m for m in metrics if m in df.columns],
                               *[c for c in ("output_tokens", "e2e_s", "ttft_s") if c in df.columns]]))
    data = df[cols] if include_failures else df[cols][ok_mask(df).to_numpy()]
    rows: list[tuple[dict[str, Any], str, float, Comparison]] = []  # stratum keys, metric, Kruskal p, result
    strata = data.groupby(within, dropna=False, sort=True) if within else [((), data)]
    for key, sub in strata:
        keys = dict(zip(within, key if isinstance(key, tuple) else (key,), strict=True))
        levels = {("(not set)" if pd.isna(lv) else str(lv)): g
                  for lv, g in sub.groupby(factor, dropna=False, sort=True, observed=True)}
        if len(levels) < 2:
            continue
        for metric in metrics:
            vals = {lv: metric_values(g, metric).dropna().to_numpy(float) for lv, g in levels.items()}
            vals = {lv: v for lv, v in vals.items() if v.size >= min_n}
            if len(vals) < 2:
                continue
            kw_p = float(compare_many(vals, seed=seed)["p_value"]) if len(vals) > 2 else float("nan")
            boots = {}
            for lv, v in vals.items():
                # one identity per group whatever the factor: NaN keys would never compare equal, so use text
                cfg = {k: ("" if pd.isna(val) else str(val)) for k, val in {**keys, factor: lv}.items()}
                ident = f"{metric}|{sorted(cfg.items())}"
                if ident not in cache:
                    cache[ident] = bootstrap_quantiles(v, seed=seed + zlib.crc32(ident.encode()) % 10_000)
                boots[lv] = cache[ident]
            for la, lb in itertools.combinations(sorted(vals), 2):
                c = compare_two(vals[la], vals[lb], name_a=la, name_b=lb,
                                lower_is_better=metric not in HIGHER_IS_BETTER, alpha=alpha, seed=seed,
                                boot_a=boots[la], boot_b=boots[lb], **kwargs)
                rows.append((keys, metric, kw_p, c))
    if not rows:
        return pd.DataFrame(columns=[*within, "factor", "a", "b", "metric", "ratio", "ratio_lo", "ratio_hi",
                                     "level", "p_value", "p_adjusted", "verdict", "winner", "correction"])
    p = np.array([c.p_value for *_, c in rows], dtype=float)
    levels_adj = interval_levels(p, alpha, correction)
    p_adj = adjust(p, correction)
    return pd.DataFrame([
        {**keys, "factor": factor, "a": c.name_a, "b": c.name_b, "metric": metric, **decide(c, float(lvl)).as_dict(),
         "kruskal_p": kw_p, "p_adjusted": float(pa), "correction": correction}
        for (keys, metric, kw_p, c), lvl, pa in zip(rows, levels_adj, p_adj, strict=True)
    ])


def verdict_summary(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Roll a :func:`compare_grid` table up to one line per (factor, a, b, metric) for a report headline.

    Columns: ``factor``, ``a``, ``b``, ``metric``, ``strata`` (grid points compared), ``a_faster``,
    ``b_faster``, ``no_difference`` (counts of verdicts), ``median_ratio`` (median over strata of
    median(a) / median(b)), ``min_ratio``, ``max_ratio`` and ``headline``, e.g.
    "priority faster than default at 9 of 9 grid points (median priority/default = 0.8)"; the ratio is of
    medians, winner over loser.

    >>> t = pd.DataFrame({"factor": "tier", "a": "x", "b": "y", "metric": "e2e_s", "winner": ["A", "A", "none"],
    ...                   "ratio": [0.8, 0.9, 1.0], "lower_is_better": True})
    >>> verdict_summary(t)["headline"].iloc[0]
    'x faster than y at 2 of 3 grid points (median x/y = 0.9)'
    """
    cols = ["factor", "a", "b", "metric", "strata", "a_faster", "b_faster", "no_difference", "median_ratio",
            "min_ratio", "max_ratio", "headline"]
    if comparisons is None or comparisons.empty:
        return pd.DataFrame(columns=cols)
    require_columns(comparisons, ["factor", "a", "b", "metric", "winner", "ratio"], "comparisons")
    rows = []
    for (factor, a, b, metric), g in comparisons.groupby(["factor", "a", "b", "metric"], sort=True):
        n = len(g)
        wa, wb = int((g["winner"] == "A").sum()), int((g["winner"] == "B").sum())
        ratio = g["ratio"].astype(float)
        med = float(ratio.median())
        if wa > wb:
            head = f"{a} faster than {b} at {wa} of {n} grid points (median {a}/{b} = {med:.3g})"
        elif wb > wa:
            head = f"{b} faster than {a} at {wb} of {n} grid points (median {b}/{a} = {1 / med:.3g})"
        else:
            head = f"no consistent difference between {a} and {b} over {n} grid points (median {a}/{b} = {med:.3g})"
        rows.append({"factor": factor, "a": a, "b": b, "metric": metric, "strata": n, "a_faster": wa,
                     "b_faster": wb, "no_difference": n - wa - wb, "median_ratio": med,
                     "min_ratio": float(ratio.min()), "max_ratio": float(ratio.max()), "headline": head})
    return pd.DataFrame(rows, columns=cols)

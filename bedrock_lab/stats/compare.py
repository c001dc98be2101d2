"""Two-sample and many-sample comparisons of latency distributions, with verdicts a stakeholder can read.

* Test: Brunner-Munzel (Brunner & Munzel 2000, Biometrical Journal 42:17-25; ``scipy.stats.brunnermunzel``),
  which tests ``P(A > B) + P(A = B)/2 = 1/2`` without assuming equal shapes or variances (Mann-Whitney
  assumes both under its null; ``test="mann-whitney"`` is available). Kruskal-Wallis for k groups.
* Effect size: Vargha & Delaney's A (2000, J. Educ. Behav. Stat. 25:101-132)::

      A = P(a > b) + 0.5 P(a = b) = U_a / (n_a n_b),   U_a = R_a - n_a (n_a + 1) / 2

  0.5 is no effect; 0.56 / 0.64 / 0.71 are the authors' small / medium / large thresholds.
* Ratio of medians ``median(a) / median(b)`` with a percentile-bootstrap CI, and the bootstrap CI of the
  difference in p95 / p99 when both groups have enough samples for those percentiles
  (:func:`bedrock_lab.stats.quantiles.min_samples_for_ci`).
* Verdict: ``"A faster"`` / ``"B faster"`` when the (corrected) p-value is <= alpha, else
  ``"no difference detected (smallest detectable effect: ...)"``. The smallest detectable effect is the A
  that the test detects with 80% power, from the null standard error of A (no ties)::

      SE_0 = sqrt((n_a + n_b + 1) / (12 n_a n_b)),   A_min = 1/2 + (z_{1-alpha/2} + z_{power}) SE_0

  translated to a ratio of medians under a log-normal shift with the pooled log-scale sd s:
  ``exp(sqrt(2) s Phi^{-1}(A_min))``.

Large groups are subsampled (seeded) to ``max_n`` values for the rank test (``capped`` says so); the bootstrap
uses every value through the exact distribution of bootstrap order statistics (:func:`bootstrap_quantiles`).

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> c = compare_two(rng.lognormal(0, 0.3, 300), rng.lognormal(0.2, 0.3, 300))
>>> c.verdict, c.winner
('A faster', 'A')
"""

from __future__ import annotations

import itertools
import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
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
from bedrock_lab.stats.multiple import benjamini_hochberg, holm
from bedrock_lab.stats.quantiles import min_samples_for_ci

#: test subsample cap per group (keeps rank tests O(cap log cap)) and bootstrap replicates
MAX_TEST_N = 5_000
N_BOOT = 1_000
_BOOT_QS = (0.5, 0.95, 0.99)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Result of :func:`compare_two`. ``ratio`` is median(A) / median(B); ``vda`` is P(A > B) + ties/2."""

    name_a: str
    name_b: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    ratio: float
    ratio_lo: float
    ratio_hi: float
    vda: float
    p_value: float
    test: str
    diff_p95: float  #: p95(A) - p95(B); NaN when too few samples
    diff_p95_lo: float
    diff_p95_hi: float
    diff_p99: float
    diff_p99_lo: float
    diff_p99_hi: float
    mde_vda: float  #: smallest A (>= 0.5) detectable with the requested power
    mde_ratio: float  #: the same effect as a ratio of medians (>= 1)
    lower_is_better: bool
    alpha: float
    verdict: str
    winner: str  #: "A", "B" or "none"
    capped: bool  #: True when a group was subsampled

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


def smallest_detectable_effect(
    n_a: int, n_b: int, alpha: float = 0.05, power: float = 0.8, log_sd: float | None = None
) -> tuple[float, float]:
    """``(A_min, ratio_min)``: the effect a two-sided rank test of these sizes detects with ``power``.

    ``ratio_min`` is NaN when ``log_sd`` (sd of log values) is not given.

    >>> round(smallest_detectable_effect(100, 100)[0], 3)
    0.615
    """
    if n_a < 1 or n_b < 1:
        return float("nan"), float("nan")
    se0 = math.sqrt((n_a + n_b + 1) / (12 * n_a * n_b))
    a_min = min(0.5 + (st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)) * se0, 1.0)
    if log_sd is None or not np.isfinite(log_sd) or a_min >= 1:
        ratio = float("nan") if log_sd is None or a_min < 1 else float("inf")
    else:
        ratio = math.exp(math.sqrt(2) * log_sd * st.norm.ppf(a_min))
    return float(a_min), float(ratio)


def _verdict(p: float, alpha: float, vda: float, lower_is_better: bool, mde_vda: float,
             mde_ratio: float, name_a: str, name_b: str) -> tuple[str, str]:
    if not np.isfinite(p):
        return "not enough data to compare", "none"
    if p <= alpha and vda != 0.5:
        a_smaller = vda < 0.5
        a_wins = a_smaller if lower_is_better else not a_smaller
        return (f"{name_a} faster", "A") if a_wins else (f"{name_b} faster", "B")
    effect = f"A={mde_vda:.3f}"
    if np.isfinite(mde_ratio):
        effect += f", about x{mde_ratio:.3g} in median"
    return f"no difference detected (smallest detectable effect: {effect})", "none"


def verdict(c: Comparison, p_value: float | None = None, alpha: float | None = None) -> tuple[str, str]:
    """Re-derive ``(verdict, winner)`` of a comparison with another (e.g. corrected) p-value."""
    return _verdict(c.p_value if p_value is None else p_value, c.alpha if alpha is None else alpha, c.vda,
                    c.lower_is_better, c.mde_vda, c.mde_ratio, c.name_a, c.name_b)


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
        k = min(max(int(math.ceil(q * n)), 1), n)
        spread = 10 * math.sqrt(n * q * (1 - q)) + 2  # mass beyond 10 sd is negligible
        lo, hi = max(1, int(k - spread)), min(n, int(k + spread) + 1)
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

    ``boot_a``/``boot_b`` are optional precomputed :func:`bootstrap_quantiles` of each group.
    """
    if test not in ("brunner-munzel", "mann-whitney"):
        raise StatsError(f"unknown test {test!r} (allowed: brunner-munzel, mann-whitney)")
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    x_full = as_float_array(a, name_a)
    y_full = as_float_array(b, name_b)
    rng = np.random.default_rng(seed)
    x = subsample(x_full, max_n, rng)
    y = subsample(y_full, max_n, rng)
    capped = x.size < x_full.size or y.size < y_full.size
    med_a, med_b = float(np.median(x_full)), float(np.median(y_full))
    vda = vargha_delaney_a(x_full, y_full)  # binary search: cheap on every value

    p, test_used = float("nan"), test
    if x.size >= 2 and y.size >= 2:
        if test == "brunner-munzel":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                p = float(st.brunnermunzel(x, y).pvalue)
        if not np.isfinite(p):  # chosen, or BM undefined because a group has no spread
            test_used = "mann-whitney"
            p = float(st.mannwhitneyu(x, y, alternative="two-sided").pvalue)

    # bootstrap: ratio of medians and tail differences (groups resampled independently)
    nb_a, nb_b = x_full.size, y_full.size
    tails = [q for q in (0.95, 0.99) if min(nb_a, nb_b) >= min_samples_for_ci(q, confidence)]
    lo_pct, hi_pct = 50 * (1 - confidence), 50 * (1 + confidence)
    ratio_lo = ratio_hi = float("nan")
    diffs: dict[float, tuple[float, float, float]] = {}
    if nb_a >= 2 and nb_b >= 2 and n_boot > 0:
        bx = boot_a if boot_a is not None else bootstrap_quantiles(x_full, n_boot=n_boot, seed=seed + 1)
        by = boot_b if boot_b is not None else bootstrap_quantiles(y_full, n_boot=n_boot, seed=seed + 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = bx[0] / by[0]
        ratio_lo, ratio_hi = (float(v) for v in np.nanpercentile(ratios, [lo_pct, hi_pct]))
        for q in tails:
            i = _BOOT_QS.index(q)
            d = bx[i] - by[i]
            point = float(np.quantile(x_full, q) - np.quantile(y_full, q))
            dlo, dhi = np.percentile(d, [lo_pct, hi_pct])
            diffs[q] = (point, float(dlo), float(dhi))
    nan3 = (float("nan"),) * 3

    pos = np.concatenate([x[x > 0], y[y > 0]])
    log_sd = float(np.std(np.log(pos), ddof=1)) if pos.size > 2 else None
    mde_vda, mde_ratio = smallest_detectable_effect(x.size, y.size, alpha, power, log_sd)
    text, winner = _verdict(p, alpha, vda, lower_is_better, mde_vda, mde_ratio, name_a, name_b)
    d95, d99 = diffs.get(0.95, nan3), diffs.get(0.99, nan3)
    return Comparison(
        name_a=name_a, name_b=name_b, n_a=int(x_full.size), n_b=int(y_full.size), median_a=med_a,
        median_b=med_b, ratio=med_a / med_b if med_b else float("nan"), ratio_lo=ratio_lo, ratio_hi=ratio_hi,
        vda=vda, p_value=p, test=test_used, diff_p95=d95[0], diff_p95_lo=d95[1], diff_p95_hi=d95[2],
        diff_p99=d99[0], diff_p99_lo=d99[1], diff_p99_hi=d99[2], mde_vda=mde_vda, mde_ratio=mde_ratio,
        lower_is_better=lower_is_better, alpha=alpha, verdict=text, winner=winner, capped=capped,
    )


def compare_many(samples: Mapping[str, Sequence[float] | np.ndarray], *, max_n: int = MAX_TEST_N,
                 seed: int = 0) -> dict[str, object]:
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
    correction: str = "holm",
    min_n: int = 5,
    seed: int = 0,
    boot_cache: dict | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """Every pair of levels of ``factor`` (e.g. ``tier_requested``) at the same values of the other
    configuration columns (``within``, default: model_id, tier_requested, prompt_size, users, rate_rps and
    api, minus ``factor``), per metric.

    Columns: the ``within`` keys, ``factor``, ``a``, ``b``, ``metric``, the :class:`Comparison` fields,
    ``p_holm``, ``p_bh`` (corrected across every row of the table), ``kruskal_p`` (all levels of the
    stratum) and ``verdict``/``winner`` recomputed from the p-value of ``correction``
    ("holm", "bh" or "none"). Strata where a level has fewer than ``min_n`` values are skipped.
    Each group is bootstrapped once (``boot_cache`` shares the replicates across calls, e.g. factors).
    A missing level (e.g. no service tier sent) is named "(not set)".
    """
    cache: dict = boot_cache if boot_cache is not None else {}
    require_columns(df, [factor])
    default_within = (*CONFIG_COLUMNS, "rate_rps", "api")
    within = [c for c in (within if within is not None else default_within) if c in df.columns and c != factor]
    cols = list(dict.fromkeys([*within, factor, *[m for m in metrics if m in df.columns],
                               *[c for c in ("output_tokens", "e2e_s", "ttft_s") if c in df.columns]]))
    data = df[cols] if include_failures else df[cols][ok_mask(df).to_numpy()]
    rows = []
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
            kw_p = compare_many(vals, seed=seed)["p_value"] if len(vals) > 2 else float("nan")
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
                rows.append({**keys, "factor": factor, "a": la, "b": lb, "metric": metric, **c.as_dict(),
                             "kruskal_p": kw_p, "_c": c})
    if not rows:
        return pd.DataFrame(columns=[*within, "factor", "a", "b", "metric", "p_value", "p_holm", "p_bh",
                                     "verdict", "winner"])
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy(float))
    out["p_bh"] = benjamini_hochberg(out["p_value"].to_numpy(float))
    if correction not in ("holm", "bh", "none"):
        raise StatsError(f"unknown correction {correction!r} (allowed: holm, bh, none)")
    p_col = {"holm": "p_holm", "bh": "p_bh", "none": "p_value"}[correction]
    verdicts = [verdict(c, p) for c, p in zip(out["_c"], out[p_col], strict=True)]
    out["verdict"] = [v for v, _ in verdicts]
    out["winner"] = [w for _, w in verdicts]
    out["correction"] = correction
    return out.drop(columns="_c")


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

"""Multiple-comparison corrections across a sweep grid, as adjusted p-values and as interval levels.

Bonferroni (Dunn 1961, J. Am. Stat. Assoc. 56:52-64): ``adj = min(1, m p)``; intervals at level ``1 - alpha / m``
each hold *simultaneously* with probability >= 1 - alpha (Bonferroni's inequality), whatever the dependence.

Holm (1979) step-down, controls the family-wise error rate. With sorted p-values p_(1) <= ... <= p_(m)::

    adj_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))

Benjamini & Hochberg (1995) step-up, controls the false discovery rate (``scipy.stats.false_discovery_control``)::

    adj_(i) = min_{j >= i} min(1, m * p_(j) / j)

A hypothesis is rejected at level alpha when its adjusted p-value is <= alpha. NaN p-values (tests that
could not be run) are kept as NaN and do not count in m.

:func:`interval_levels` gives, per hypothesis, the confidence level of the interval whose exclusion of the null
is exactly the correction's rejection, so a verdict read off the interval is the correction's decision:

* ``bonferroni``: ``1 - alpha / m`` for every hypothesis (simultaneous intervals).
* ``bh``: ``1 - R alpha / m`` with R the number BH rejects (``1 - alpha / m`` when R = 0): the false coverage-
  statement rate adjusted intervals of Benjamini & Yekutieli (2005, J. Am. Stat. Assoc. 100:71-81). BH rejects
  ``p_(i) <= i alpha / m`` for i <= R and ``p_(j) > j alpha / m > R alpha / m`` for j > R, so exactly the rejected
  intervals exclude the null.
* ``none``: ``1 - alpha``.

Holm has no such intervals: its compatible simultaneous bounds (Strassburger & Bretz 2008, Stat. Med.
27:4914-4927) say nothing beyond the null for a rejected hypothesis, so the comparisons use Bonferroni and
keep Holm for p-values only.

Example (the 15 p-values of Benjamini & Hochberg 1995, section 4.1: BH rejects 4 at q = 0.05, Holm 3)
-------
>>> p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
...      0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]
>>> int((benjamini_hochberg(p) <= 0.05).sum()), int((holm(p) <= 0.05).sum())
(4, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as st

from bedrock_lab.errors import StatsError


def _prepare(p: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(p, dtype=float).ravel()
    finite = np.isfinite(arr)
    if np.any((arr[finite] < 0) | (arr[finite] > 1)):
        raise StatsError("p-values must lie in [0, 1]")
    return arr, finite


def bonferroni(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Bonferroni-adjusted p-values ``min(1, m p)`` (same order as the input).

    >>> bonferroni([0.01, 0.04, float("nan")]).tolist()
    [0.02, 0.08, nan]
    """
    arr, finite = _prepare(p)
    out = np.full(arr.shape, np.nan)
    out[finite] = np.minimum(arr[finite] * int(finite.sum()), 1.0)
    return out


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values (same order as the input)."""
    arr, finite = _prepare(p)
    out = np.full(arr.shape, np.nan)
    vals = arr[finite]
    m = vals.size
    if m == 0:
        return out
    order = np.argsort(vals, kind="stable")
    scaled = (m - np.arange(m)) * vals[order]
    adj = np.minimum(np.maximum.accumulate(scaled), 1.0)
    res = np.empty(m)
    res[order] = adj
    out[finite] = res
    return out


def benjamini_hochberg(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values), via ``scipy.stats.false_discovery_control``."""
    arr, finite = _prepare(p)
    out = np.full(arr.shape, np.nan)
    if finite.any():
        out[finite] = st.false_discovery_control(arr[finite], method="bh")
    return out


#: corrections that have intervals matching their decisions (:func:`interval_levels`)
INTERVAL_CORRECTIONS: tuple[str, ...] = ("bonferroni", "bh", "none")


def adjust(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values by ``method`` in {"holm", "bonferroni", "bh", "none"}."""
    if method == "holm":
        return holm(p)
    if method == "bonferroni":
        return bonferroni(p)
    if method in ("bh", "fdr_bh", "benjamini-hochberg"):
        return benjamini_hochberg(p)
    if method == "none":
        return _prepare(p)[0].copy()
    raise StatsError(f"unknown correction {method!r} (allowed: holm, bonferroni, bh, none)")


def interval_levels(p: Sequence[float] | np.ndarray, alpha: float = 0.05, method: str = "bonferroni") -> np.ndarray:
    """Per hypothesis, the confidence level of the interval that excludes the null exactly when ``method``
    rejects at ``alpha`` (see the module docstring); NaN where the p-value is NaN.

    >>> interval_levels([0.001, 0.02, 0.3, float("nan")], 0.05).round(4).tolist()
    [0.9833, 0.9833, 0.9833, nan]
    >>> interval_levels([0.001, 0.02, 0.3], 0.05, "bh").round(4).tolist()  # BH rejects 2 of 3
    [0.9667, 0.9667, 0.9667]
    """
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    arr, finite = _prepare(p)
    out = np.full(arr.shape, np.nan)
    m = int(finite.sum())
    if m == 0:
        return out
    if method == "bonferroni":
        out[finite] = 1 - alpha / m
    elif method in ("bh", "fdr_bh", "benjamini-hochberg"):
        rejected = int((benjamini_hochberg(arr[finite]) <= alpha).sum())
        out[finite] = 1 - max(rejected, 1) * alpha / m
    elif method == "none":
        out[finite] = 1 - alpha
    elif method == "holm":
        raise StatsError("Holm's step-down has no confidence intervals that match its decisions; use "
                         "'bonferroni' (simultaneous intervals), 'bh' (FCR-adjusted intervals) or 'none'")
    else:
        raise StatsError(f"unknown correction {method!r} (allowed: {', '.join(INTERVAL_CORRECTIONS)})")
    return out

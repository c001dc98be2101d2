"""Multiple-comparison corrections across a sweep grid.

Holm (1979) step-down, controls the family-wise error rate. With sorted p-values p_(1) <= ... <= p_(m)::

    adj_(i) = max_{j <= i} min(1, (m - j + 1) * p_(j))

Benjamini & Hochberg (1995) step-up, controls the false discovery rate (``scipy.stats.false_discovery_control``)::

    adj_(i) = min_{j >= i} min(1, m * p_(j) / j)

A hypothesis is rejected at level alpha when its adjusted p-value is <= alpha. NaN p-values (tests that
could not be run) are kept as NaN and do not count in m.

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


def adjust(p: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values by ``method`` in {"holm", "bh", "none"}."""
    if method == "holm":
        return holm(p)
    if method in ("bh", "fdr_bh", "benjamini-hochberg"):
        return benjamini_hochberg(p)
    if method == "none":
        return _prepare(p)[0].copy()
    raise StatsError(f"unknown correction {method!r} (allowed: holm, bh, none)")

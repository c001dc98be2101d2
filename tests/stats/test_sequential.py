"""Confidence sequences for a percentile: valid at every look, stop early when clear, not when borderline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bedrock_lab.errors import StatsError
from bedrock_lab.stats.quantiles import order_statistic_ranks
from bedrock_lab.stats.sequential import SloWatcher, quantile_cs, quantile_cs_band, quantile_cs_path

P = 0.9
SIGMA = 0.5
TRUE_Q = math.exp(SIGMA * 1.2815515655446004)  # p90 of lognormal(0, 0.5)
N_MAX = 1500
LOOKS = np.arange(15, N_MAX + 1, 15)  # 100 looks per run
RUNS = 300


def _streams(seed: int, runs: int = RUNS, n: int = N_MAX) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(0.0, SIGMA, size=(runs, n))


def test_covers_the_true_quantile_at_every_look_where_a_naive_interval_does_not() -> None:
    streams = _streams(14)
    cs_miss = 0
    naive_miss = 0
    ranks = [order_statistic_ranks(int(t), P, 0.95) for t in LOOKS]  # the fixed-n interval of quantile_ci
    for x in streams:
        lo, hi = quantile_cs_path(x, P, LOOKS)
        cs_miss += bool(np.any((lo > TRUE_Q) | (hi < TRUE_Q)))
        missed = False
        for t, (r, s) in zip(LOOKS.tolist(), ranks, strict=True):
            if r >= 1 and s <= t:
                xs = np.sort(x[:t])
                if xs[r - 1] > TRUE_Q or xs[s - 1] < TRUE_Q:
                    missed = True
                    break
        naive_miss += missed
    assert cs_miss / RUNS <= 0.05, cs_miss
    assert naive_miss / RUNS > 0.10, naive_miss  # repeated looks at a 95% fixed-n interval: far above 5%


def test_coverage_holds_with_ties() -> None:
    """Integer-valued data (atoms at the quantile): the bound uses #{X <= q} and #{X < q} separately."""
    rng = np.random.default_rng(7)
    true_q = 14.0  # p90 of Poisson(10): P(X <= 13) = 0.864, P(X <= 14) = 0.917
    looks = np.arange(10, 801, 10)
    miss = 0
    for _ in range(200):
        lo, hi = quantile_cs_path(rng.poisson(10, 800).astype(float), P, looks)
        miss += bool(np.any((lo > true_q) | (hi < true_q)))
    assert miss / 200 <= 0.05


def test_band_is_nested_in_counts_and_wider_than_a_fixed_n_interval() -> None:
    t = np.array([100, 500, 2000])
    a, b = quantile_cs_band(P, t)
    for ti, ai, bi in zip(t.tolist(), a.tolist(), b.tolist(), strict=True):
        r, s = order_statistic_ranks(ti, P, 0.95)
        assert 0 <= ai <= r and s - 1 <= bi <= ti  # always-valid costs some width
        assert ai < P * ti < bi
    assert np.all(np.diff(a) > 0)


def test_path_agrees_with_the_one_shot_interval() -> None:
    x = _streams(3, runs=1)[0]
    lo, hi = quantile_cs_path(x, P, [N_MAX])
    cs = quantile_cs(x, P)
    assert (cs.lo, cs.hi) == (lo[0], hi[0])
    assert cs.lo <= cs.estimate <= cs.hi and cs.bounded and cs.n == N_MAX


@pytest.mark.parametrize(("target", "expected"), [(1.0, "above"), (4.0, "below")])
def test_watcher_stops_early_on_a_clear_case(target: float, expected: str) -> None:
    x = _streams(21, runs=1)[0]
    w = SloWatcher(P, target=target)
    for start in range(0, N_MAX, 10):
        w.update(x[start : start + 10])
        if w.status() != "undecided":
            break
    assert w.status() == expected
    assert w.n <= 300  # p90 is 1.90: a target of 1.0 or 4.0 is settled within a few hundred requests


def test_borderline_target_is_rarely_settled() -> None:
    streams = _streams(5, runs=200, n=1000)
    looks = np.arange(20, 1001, 20)
    settled = 0
    for x in streams:
        lo, hi = quantile_cs_path(x, P, looks)
        settled += bool(np.any((lo > TRUE_Q) | (hi < TRUE_Q)))
    assert settled / 200 <= 0.05
    w = SloWatcher(P, target=TRUE_Q)  # the watcher sees the same: runs to the maximum undecided
    for start in range(0, 1000, 100):
        w.update(streams[0][start : start + 100])
    assert w.status() == "undecided"


def test_watcher_reports_precision() -> None:
    x = _streams(8, runs=1, n=6000)[0]
    w = SloWatcher(P, rel_precision=0.05)
    n_at = None
    for start in range(0, x.size, 250):
        w.update(x[start : start + 250])
        if w.status() == "precise":
            n_at = w.n
            break
    assert n_at is not None
    ci = w.interval()
    assert ci.relative_half_width() <= 0.05 and ci.lo <= TRUE_Q <= ci.hi


def test_bad_input_raises_stats_error() -> None:
    with pytest.raises(StatsError):
        quantile_cs([1.0, 2.0], 1.0)
    with pytest.raises(StatsError):
        quantile_cs([1.0, 2.0], 0.5, alpha=0.0)
    with pytest.raises(StatsError):
        quantile_cs([], 0.5)
    with pytest.raises(StatsError):
        quantile_cs_band(0.5, [0])
    with pytest.raises(StatsError):
        quantile_cs_path([1.0, 2.0], 0.5, [3])
    with pytest.raises(StatsError):
        quantile_cs_path([1.0, float("nan")], 0.5, [2])
    with pytest.raises(StatsError):
        SloWatcher(0.9)
    with pytest.raises(StatsError):
        SloWatcher(0.9, rel_precision=-1.0)
    w = SloWatcher(0.9, target=1.0)
    assert w.status() == "undecided"
    with pytest.raises(StatsError):
        w.interval()
    with pytest.raises(StatsError):
        w.update([1.0, float("inf")])

"""Two-sample verdicts: error rates by seeded simulation, effect sizes, grid comparisons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bedrock_lab.errors import StatsError
from bedrock_lab.stats import (
    compare_grid,
    compare_many,
    compare_two,
    smallest_detectable_effect,
    synthetic_records,
    vargha_delaney_a,
)


def _verdict_rate(n: int, ratio: float, reps: int, seed: int, sigma: float = 0.5) -> tuple[float, float]:
    """Share of runs with a 'faster' verdict, and share where it named the truly faster side (A)."""
    rng = np.random.default_rng(seed)
    any_win = a_win = 0
    for _ in range(reps):
        a = rng.lognormal(0.0, sigma, n)
        b = rng.lognormal(math.log(ratio), sigma, n)
        c = compare_two(a, b, n_boot=0)
        any_win += c.winner != "none"
        a_win += c.winner == "A"
    return any_win / reps, a_win / reps


def test_false_positive_rate_is_nominal() -> None:
    """Same distribution on both sides: a 'faster' verdict is a false positive; at alpha = 0.05 the rate over
    400 seeded runs must be within binomial noise of 5% (sd 1.1%)."""
    rate, _ = _verdict_rate(n=40, ratio=1.0, reps=400, seed=1)
    assert 0.02 <= rate <= 0.085


def test_power_against_a_real_difference() -> None:
    """B 25% slower in median (log-normal, sigma 0.5, n = 200 each): the log median ratio has standard error
    sqrt(pi/2) 0.5 sqrt(2/200) = 0.063, so power ~ Phi(ln 1.25 / 0.063 - 1.96) = 0.94. The verdict must say
    'A faster' in most runs and 'B faster' ~never."""
    rate, a_rate = _verdict_rate(n=200, ratio=1.25, reps=200, seed=2)
    assert a_rate >= 0.8
    assert rate - a_rate <= 0.01


def test_smallest_detectable_effect_is_honest() -> None:
    """At the effect the 'no difference' verdict quotes as detectable (from the data), and at the planning
    formula's, power must be close to the 80% claimed."""
    n, sigma = 80, 0.5
    rng = np.random.default_rng(30)
    quoted = compare_two(rng.lognormal(0, sigma, n), rng.lognormal(0, sigma, n), n_boot=0)
    assert quoted.winner == "none" and f"x{quoted.mde_ratio:.3g} in median" in quoted.verdict
    _, planned = smallest_detectable_effect(n, n, log_sd=sigma)
    assert planned == pytest.approx(quoted.mde_ratio, rel=0.1)
    for ratio, seed in ((quoted.mde_ratio, 3), (planned, 4)):
        _, power = _verdict_rate(n=n, ratio=ratio, reps=300, seed=seed, sigma=sigma)
        assert 0.66 <= power <= 0.92


def test_vargha_delaney_known_values() -> None:
    """A = P(a > b) + P(a = b)/2 (Vargha & Delaney 2000): hand-counted pairs."""
    assert vargha_delaney_a([1, 2, 3], [1, 2, 3]) == 0.5
    assert vargha_delaney_a([4, 5], [1, 2]) == 1.0
    # pairs (a, b): 2>1, 2=2, 2<3, 3>1, 3>2, 3=3 -> (3 + 2 * 0.5) / 6
    assert vargha_delaney_a([2, 3], [1, 2, 3]) == pytest.approx(4 / 6)


def test_verdict_texts_and_direction() -> None:
    rng = np.random.default_rng(4)
    fast, slow = rng.lognormal(0, 0.3, 400), rng.lognormal(0.3, 0.3, 400)
    c = compare_two(fast, slow, name_a="priority", name_b="default")
    assert c.verdict == "priority faster" and c.winner == "A"
    assert c.ratio < 1 and c.ratio_lo < c.ratio < c.ratio_hi
    assert c.diff_p95_lo <= c.diff_p95 <= c.diff_p95_hi and c.diff_p95 < 0
    assert compare_two(slow, fast).verdict == "B faster"
    # throughput: higher is better, so the larger sample wins
    assert compare_two(slow, fast, lower_is_better=False).verdict == "A faster"
    assert compare_two(fast, slow, test="mann-whitney").rank_test == "mann-whitney"
    same = compare_two(fast[:200], fast[200:])
    assert same.verdict.startswith("no difference detected (smallest detectable effect: x")
    assert same.ratio_lo <= 1 <= same.ratio_hi and same.mde_ratio > 1 and 0.5 < same.mde_vda < 1


def test_tail_differences_need_enough_samples() -> None:
    rng = np.random.default_rng(5)
    c = compare_two(rng.lognormal(0, 0.3, 100), rng.lognormal(0, 0.3, 100))
    assert not math.isnan(c.diff_p95)  # 100 >= 72
    assert math.isnan(c.diff_p99)  # 100 < 368


def test_degenerate_and_invalid_inputs() -> None:
    c = compare_two([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], n_boot=0)
    assert c.winner == "none"
    with pytest.raises(StatsError):
        compare_two([], [1.0, 2.0])
    with pytest.raises(StatsError):
        compare_two([1.0, 2.0], [1.0, 2.0], test="t-test")
    with pytest.raises(StatsError):
        compare_many({"only": [1.0, 2.0]})


def test_kruskal_wallis_many_groups() -> None:
    rng = np.random.default_rng(6)
    same = compare_many({k: rng.normal(0, 1, 100) for k in "abc"})
    diff = compare_many({"a": rng.normal(0, 1, 100), "b": rng.normal(0, 1, 100), "c": rng.normal(1, 1, 100)})
    assert same["p_value"] > 0.001 and diff["p_value"] < 1e-6 and diff["k"] == 3


def test_compare_grid_on_a_sweep() -> None:
    """Synthetic sweep where priority TTFT is 20% faster and flex 30% slower than default at every grid point."""
    df = synthetic_records(9 * 3 * 150, users=(1, 8, 32), seed=7)
    t = compare_grid(df, "tier_requested", ("ttft_s",))
    assert len(t) == 9 * 3  # 9 strata (users x prompt size) x 3 tier pairs
    assert {"p_value", "p_adjusted", "level", "verdict", "winner", "ratio", "ratio_lo", "ratio_hi", "vda",
            "users", "prompt_size", "correction"} <= set(t.columns)
    assert (t["p_adjusted"] >= t["p_value"]).all() and (t["correction"] == "bonferroni").all()
    np.testing.assert_allclose(t["level"], 1 - 0.05 / len(t))  # Bonferroni: simultaneous 95%
    pri = t[(t["a"] == "default") & (t["b"] == "priority")]
    assert (pri["verdict"] == "priority faster").all() and (pri["ratio_lo"] > 1).all()
    # the adjusted interval is wider than the single comparison's, around the same ratio
    one = t.iloc[0]
    single = compare_two(*[df[(df["tier_requested"] == lv) & (df["users"] == one["users"])
                              & (df["prompt_size"] == one["prompt_size"]) & (df["status"] == "ok")]["ttft_s"]
                           for lv in (one["a"], one["b"])])
    assert single.ratio == pytest.approx(one["ratio"])
    assert one["ratio_lo"] < single.ratio_lo < single.ratio_hi < one["ratio_hi"]
    assert compare_grid(df[df["tier_requested"] == "flex"], "tier_requested").empty
    bh = compare_grid(df, "tier_requested", ("ttft_s",), correction="bh")
    assert (bh["level"] >= 1 - 0.05).all() and (bh["level"] <= t["level"] + 1e-12).all()  # between none and Bonf.
    with pytest.raises(StatsError, match="Holm"):
        compare_grid(df, "tier_requested", ("ttft_s",), correction="holm")
    with pytest.raises(StatsError, match="unknown correction"):
        compare_grid(df, "tier_requested", ("ttft_s",), correction="sidak")


def test_exact_order_statistic_bootstrap_matches_resampling() -> None:
    """bootstrap_quantiles draws from P(X*_(k) <= x_(j)) = P(Binom(n, j/n) >= k) (Hutson & Ernst 2000);
    its percentiles must agree with plain Monte-Carlo resampling of the same sample."""
    from bedrock_lab.stats.compare import bootstrap_quantiles

    x = np.random.default_rng(21).lognormal(0, 1, 400)
    exact = bootstrap_quantiles(x, n_boot=20_000, seed=1)
    resamples = np.sort(x[np.random.default_rng(2).integers(0, x.size, size=(3000, x.size))], axis=1)
    for i, q in enumerate((0.5, 0.95, 0.99)):
        mc = resamples[:, int(np.ceil(q * x.size)) - 1]
        for pct in (5, 50, 95):
            e, m = np.percentile(exact[i], pct), np.percentile(mc, pct)
            # same order statistic, or a neighbour: compare ranks, not values
            assert abs(np.searchsorted(np.sort(x), e) - np.searchsorted(np.sort(x), m)) <= 2

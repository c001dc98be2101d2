"""Published numbers the statistics must reproduce. Each test names its source."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from bedrock_lab.errors import StatsError
from bedrock_lab.stats import (
    benjamini_hochberg,
    censored_fit,
    early_stopping_min_passing,
    early_stopping_min_queries,
    early_stopping_overlatency,
    fit_distributions,
    fit_one,
    fit_usl,
    holm,
    km_quantiles,
    min_samples_for_ci,
    quantile_ci,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
     (29, 29, 0.8830, 1.0)],
)
def test_wilson_interval_matches_newcombe_1998(k: int, n: int, lo: float, hi: float) -> None:
    """Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven
    methods", Statistics in Medicine 17:857-872, Table II, method 3 (Wilson score, no continuity correction)."""
    got_lo, got_hi = wilson_interval(k, n)
    assert got_lo == pytest.approx(lo, abs=6e-5)
    assert got_hi == pytest.approx(hi, abs=6e-5)


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(StatsError):
        wilson_interval(5, 3)


def test_min_samples_for_two_sided_95_interval() -> None:
    """A two-sided 95% order-statistic interval on the q-quantile exists iff max(q, 1-q)^n <= 0.025:
    n >= ln(0.025)/ln(0.99) = 367.04 -> 368 for p99 (the number quoted in issue 6); 6, 36, 72 for p50/p90/p95."""
    assert min_samples_for_ci(0.99) == 368
    assert [min_samples_for_ci(q) for q in (0.5, 0.9, 0.95)] == [6, 36, 72]
    rng = np.random.default_rng(3)
    assert not quantile_ci(rng.random(367), 0.99).enough
    assert quantile_ci(rng.random(368), 0.99).enough
    assert "368" in quantile_ci(rng.random(100), 0.99).note


@pytest.mark.parametrize("n", [20, 60, 368, 1000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_quantile_ci_equals_scipy_quantile_test(n: int, q: float) -> None:
    """The order-statistic interval is the one of scipy.stats.quantile_test (Conover 1999, sec. 3.2)."""
    x = np.random.default_rng(n).lognormal(0, 1, n)
    mine = quantile_ci(x, q)
    ref = st.quantile_test(x, q=float(np.quantile(x, q)), p=q).confidence_interval(0.95)
    assert (mine.lo == ref.low) or (math.isnan(mine.lo) and math.isnan(ref.low))
    assert (mine.hi == ref.high) or (math.isnan(mine.hi) and math.isnan(ref.high))


def test_quantile_ci_coverage_by_simulation() -> None:
    """Distribution-free: the 95% interval of p90 covers the true p90 of an exponential ~95% of the time."""
    rng = np.random.default_rng(11)
    true = -math.log(0.1)
    hits = 0
    for _ in range(400):
        e = quantile_ci(rng.exponential(1, 200), 0.9)
        hits += e.lo <= true <= e.hi
    assert 0.92 <= hits / 400 <= 0.99


def test_mlperf_loadgen_early_stopping_counts() -> None:
    """MLPerf LoadGen (mlcommons/inference loadgen/early_stopping.cc, results.cc; 99% confidence, no
    tolerance): MinPassingQueriesFinder gives h_min(t=0, p99) = 459, and SingleStream/MultiStream need at
    least 64 queries for a p90 and 662 for a p99 early-stopping estimate. These reference values are also
    the ones mlcommons/endpoints PR #417 validates its port against."""
    assert early_stopping_min_passing(0, 0.99) == 459
    assert early_stopping_min_queries(0.90) == 64
    assert early_stopping_min_queries(0.99) == 662
    assert early_stopping_overlatency(63, 0.90) == 0
    assert early_stopping_overlatency(64, 0.90) == 1


@pytest.mark.parametrize("n", [64, 200, 662, 3000])
def test_early_stopping_estimate_is_the_t_th_largest(n: int) -> None:
    """results.cc: t = largest over-latency count with P(Binom(n, 1-p) <= t) < 1 - c; estimate = x_sorted[n - t]."""
    x = np.random.default_rng(n).lognormal(0, 1, n)
    for q in (0.9, 0.99):
        t = max([0] + [k for k in range(1, n + 1) if st.binom.cdf(k, n, 1 - q) < 0.01])
        assert early_stopping_overlatency(n, q) == t
        est = quantile_ci(x, q).upper_bound
        if t >= 1:
            assert est == np.sort(x)[n - t]
            assert est >= np.quantile(x, q)
        else:
            assert math.isnan(est)


BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459,
           0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000]


def test_benjamini_hochberg_1995_example() -> None:
    """Benjamini & Hochberg (1995), J. R. Stat. Soc. B 57:289-300, section 4.1: of these 15 p-values the
    FDR procedure at q = 0.05 rejects the 4 smallest, while Bonferroni-type FWER control rejects 3."""
    bh = benjamini_hochberg(BH_1995)
    assert int((bh <= 0.05).sum()) == 4
    assert bh[3] == pytest.approx(15 * 0.0095 / 4)
    ho = holm(BH_1995)
    assert int((ho <= 0.05).sum()) == 3
    assert ho[0] == pytest.approx(15 * 0.0001)
    # Holm adjusted values are monotone in the order of the raw p-values and capped at 1
    assert np.all(np.diff(ho) >= 0) and ho.max() <= 1


def test_corrections_keep_nan_and_order() -> None:
    p = [0.04, float("nan"), 0.01]
    out = holm(p)
    assert math.isnan(out[1]) and out[2] == pytest.approx(0.02) and out[0] == pytest.approx(0.04)


CISCO = [955.16, 1878.91, 2688.01, 3548.68, 4315.54, 5130.43, 5931.37, 6531.08, 7219.8, 7867.61, 8278.71,
         8646.7, 9047.84, 9426.55, 9645.37, 9897.24, 10097.6, 10240.5, 10532.39, 10798.52, 11151.43, 11518.63,
         11806, 12089.37, 12075.41, 12177.29, 12211.41, 12158.93, 12155.27, 12118.04, 12140.4, 12074.39]


def test_usl_fit_matches_practical_scalability_book() -> None:
    """Cisco benchmark of Baron Schwartz, *Practical Scalability Analysis with the Universal Scalability
    Law* (VividCortex 2015), as used by codahale/usl4j ModelTest.java: sigma = 0.02671591,
    kappa = 7.690945e-4, lambda = 995.6486, N_max = 35, X_max = 12341, "within 0.02%"."""
    fit = fit_usl(np.arange(1, 33), CISCO)
    assert fit.sigma == pytest.approx(0.02671591, rel=2e-4)
    assert fit.kappa == pytest.approx(7.690945e-4, rel=2e-4)
    assert fit.lam == pytest.approx(995.6486, rel=2e-4)
    assert math.floor(fit.n_max) == 35
    assert float(fit.throughput(35)) == pytest.approx(12341, rel=2e-4)


def test_usl_needs_three_levels() -> None:
    with pytest.raises(StatsError):
        fit_usl([1, 2], [10, 20])


def test_lognormal_parameters_recovered() -> None:
    """Seeded log-normal(mu=-0.5, sigma=0.4): the MLE recovers sigma and exp(mu) within a few standard
    errors (se(sigma) = sigma/sqrt(2n) ~ 0.004 at n = 5000) and AIC ranks log-normal first."""
    x = np.random.default_rng(7).lognormal(mean=-0.5, sigma=0.4, size=5000)
    f = fit_one(x, "lognorm")
    shape, loc, scale = f.params
    assert loc == 0
    assert shape == pytest.approx(0.4, abs=0.015)
    assert scale == pytest.approx(math.exp(-0.5), rel=0.02)
    table = fit_distributions(x, dists=("lognorm", "gamma", "weibull_min", "fisk", "invgauss"))
    assert table.iloc[0]["dist"] == "lognorm"
    assert table.iloc[0]["delta_aic"] == 0


def test_fisk_shortcut_is_the_mle() -> None:
    """The log-logistic fit through logistic(log x) reaches the generic optimiser's maximum likelihood."""
    x = st.fisk(3.0, scale=2.0).rvs(size=2000, random_state=5)
    mine = fit_one(x, "fisk")
    generic = st.fisk.fit(x, floc=0)
    assert mine.loglik >= np.sum(st.fisk.logpdf(x, *generic)) - 1e-6


def test_censored_lognormal_fit_recovers_truth() -> None:
    """Censoring the slowest 10% at the cut-off (timeouts) still recovers the parameters; dropping them does not."""
    x = np.random.default_rng(9).lognormal(mean=0.0, sigma=0.5, size=4000)
    cut = float(np.quantile(x, 0.9))
    cen = x > cut
    v = np.where(cen, cut, x)
    shape, _, scale = censored_fit(v, cen, "lognorm")
    assert shape == pytest.approx(0.5, abs=0.03)
    assert scale == pytest.approx(1.0, rel=0.04)
    dropped = fit_one(x[~cen], "lognorm").params
    assert dropped[0] < 0.45  # the bias censoring avoids


def test_kaplan_meier_by_hand() -> None:
    """Product-limit estimate (Kaplan & Meier 1958) of 1, 2, 3+, 4, 5 (3 censored): S(1) = 4/5,
    S(2) = 4/5 * 3/4 = 3/5, S(4) = 3/5 * 1/2 = 3/10, S(5) = 0; so F(2) = 0.4, F(4) = 0.7, F(5) = 1:
    p40 is 2, the median 4 and p90 5."""
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c = np.array([False, False, True, False, False])
    assert km_quantiles(v, c, (0.4, 0.5, 0.9)) == {0.4: 2.0, 0.5: 4.0, 0.9: 5.0}


def test_parametric_bootstrap_gof_tells_right_from_wrong() -> None:
    """goodness_of_fit (Anderson-Darling, refitting per simulated sample) keeps the true family and rejects a
    wrong one that AIC alone would merely rank lower."""
    x = np.random.default_rng(12).lognormal(0.0, 0.6, 1000)
    table = fit_distributions(x, dists=("lognorm", "gamma"), gof_test=True, n_mc=49, gof_max_n=1000)
    p = dict(zip(table["dist"], table["gof_p"], strict=True))
    assert p["lognorm"] > 0.05
    assert p["gamma"] < 0.05

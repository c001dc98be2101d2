"""The bound rule for censored percentiles, the client-overhead flag and USL's N_max interval (issue 11)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from bedrock_lab.errors import StatsError
from bedrock_lab.report import summary as report
from bedrock_lab.stats import analyze, fit_usl, quality_flags, synthetic_records
from bedrock_lab.stats.censoring import (
    censored_quantile,
    censored_quantile_table,
    censored_sample,
    km_quantiles,
)
from bedrock_lab.stats.quality import OVERHEAD_SHARE_FLAG
from bedrock_lab.stats.saturation import USL_NMAX_OVERSTATES, usl


@settings(max_examples=150, deadline=None)
@given(hs.lists(hs.tuples(hs.floats(0.01, 10.0), hs.booleans(), hs.floats(0.0, 1.0)), min_size=1, max_size=60),
       hs.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_bounds_sandwich_the_true_sample_quantile(rows: list[tuple[float, bool, float]], q: float) -> None:
    """Whatever the timed-out requests' true latencies (anywhere above their censoring times), the best case is
    below the true sample quantile and the worst case above it; an identified percentile *is* the true one."""
    true = np.array([t for t, _, _ in rows])
    cen = np.array([c for _, c, _ in rows])
    observed = np.where(cen, true * np.array([f for _, _, f in rows]), true)  # censored at or below the truth
    e = censored_quantile(observed, cen, q)
    sample_q = float(np.quantile(true, q))
    assert e.estimate <= sample_q * (1 + 1e-12) and sample_q <= e.worst * (1 + 1e-12)
    if e.bound == "":
        assert e.estimate == pytest.approx(sample_q, rel=1e-12)
        assert math.isnan(e.hi) or e.hi >= sample_q * (1 - 1e-12)
    else:
        assert e.bound == "lower" and math.isnan(e.hi) and not e.enough and e.n_censored > 0


def test_no_censoring_is_the_plain_order_statistic_interval() -> None:
    from bedrock_lab.stats import quantile_ci

    x = np.random.default_rng(4).lognormal(0, 0.5, 500)
    for q in (0.5, 0.9, 0.99):
        e, plain = censored_quantile(x, np.zeros(x.size, bool), q), quantile_ci(x, q)
        assert (e.estimate, e.lo, e.hi, e.enough, e.bound) == (plain.estimate, plain.lo, plain.hi, plain.enough, "")


def test_coverage_under_informative_censoring() -> None:
    """Seeded: 4% of requests stall (latency x5) and time out early, at a read timeout far below what their
    latency would have been. The interval (or bound) covers the population quantile at least ~95% of the time,
    where dropping the timeouts almost never does for p99."""
    rng = np.random.default_rng(498)
    reps, n = 300, 600
    pop = np.r_[rng.lognormal(0, 0.3, 400_000), 5 * rng.lognormal(0, 0.3, 16_667)]  # 4% stalled
    truth = {q: float(np.quantile(pop, q)) for q in (0.5, 0.95, 0.99)}
    hits = dict.fromkeys(truth, 0)
    naive_hits = 0
    for _ in range(reps):
        stalled = rng.random(n) < 0.04
        lat = rng.lognormal(0, 0.3, n) * np.where(stalled, 5.0, 1.0)
        observed = np.where(stalled, rng.uniform(0.3, 1.5, n), lat)  # the timeout fired mid-stream
        for q, t in truth.items():
            e = censored_quantile(observed, stalled, q)
            hits[q] += (e.lo <= t) and (e.bound == "lower" or e.hi >= t)
        ok = np.sort(lat[~stalled])
        from bedrock_lab.stats import quantile_ci

        est = quantile_ci(ok, 0.99)
        naive_hits += est.lo <= truth[0.99] <= est.hi
    for q in truth:
        assert hits[q] / reps >= 0.93, (q, hits[q] / reps)
    assert naive_hits / reps < 0.2


def test_kaplan_meier_equals_dropping_under_early_censoring_but_the_bound_does_not() -> None:
    x = np.r_[np.linspace(1.0, 2.0, 990), np.full(10, 0.9)]  # 1% censored before every finished request
    c = np.r_[np.zeros(990, bool), np.ones(10, bool)]
    km = km_quantiles(x, c, (0.99,))[0.99]
    assert km == pytest.approx(float(np.quantile(x[~c], 0.99, method="inverted_cdf")))  # Kaplan-Meier: dropped
    e = censored_quantile(x, c, 0.99)
    assert e.bound == "lower" and math.isinf(e.worst)


def test_model_based_percentile_beside_a_bound_and_never_below_it() -> None:
    """Non-informative type-I censoring at a fixed cut (timeouts of a log-normal): the censored log-normal fit's
    p99 is close to the truth; where the data rule the model out (it lands below the bound) it is left out."""
    rng = np.random.default_rng(9)
    x = rng.lognormal(0.0, 0.5, 2000)
    cut = float(np.quantile(x, 0.98))
    cen = x > cut
    table = censored_quantile_table(np.where(cen, cut, x), cen)
    assert table["p99_bound"] == "lower" and table["p50_bound"] == ""
    truth99 = float(np.exp(0.5 * 2.3263))
    assert table["p99_model"] == pytest.approx(truth99, rel=0.08) and table["p99_model"] >= table["p99"]
    assert np.isnan(table["p50_model"])  # only where the percentile is a bound
    early = np.r_[np.linspace(1.0, 2.0, 980), np.full(20, 3.0)]  # 2% censored above the rest, yet 'slow'
    flags = np.r_[np.zeros(980, bool), np.ones(20, bool)]
    t2 = censored_quantile_table(early, flags)
    assert t2["p99_bound"] == "lower" and (np.isnan(t2["p99_model"]) or t2["p99_model"] >= t2["p99"])


def test_ttft_of_a_timeout_is_censored_only_without_a_token_and_only_when_streaming() -> None:
    df = pd.DataFrame({
        "status": ["ok", "error", "error", "error", "error"],
        "error_kind": [None, "timeout", "timeout", "throttled", "timeout"],
        "api": ["converse-stream"] * 4 + ["converse"],
        "ttft_s": [0.2, 0.3, None, None, None], "e2e_s": [1.0, 0.8, 0.45, 0.1, 5.0],
    })
    v, c = censored_sample(df, "ttft_s")
    assert v.tolist() == [0.2, 0.3, 0.45] and c.tolist() == [False, False, True]  # no TTFT to wait for: dropped
    v, c = censored_sample(df, "e2e_s")
    assert v.tolist() == [1.0, 0.8, 0.45, 5.0] and c.tolist() == [False, True, True, True]


def test_censored_quantile_validates() -> None:
    with pytest.raises(StatsError):
        censored_quantile([], [], 0.5)
    with pytest.raises(StatsError):
        censored_quantile([1.0, 2.0], [True], 0.5)


def _overhead_records(overhead_s: float) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    truth = rng.lognormal(np.log(0.1), 0.2, 400)
    return pd.DataFrame({"cell_id": "c", "status": "ok", "error_kind": None, "start": np.arange(400.0),
                         "e2e_s": truth + 0.5, "ttft_s": truth + overhead_s, "server_ttft_s": truth})


def test_client_overhead_flags_absolute_quantiles() -> None:
    """A median TTFT of 100 ms: 3 ms of client overhead (3%) distorts absolute percentiles, 1 ms (1%) does not;
    without ground truth (AWS) there is no flag."""
    flagged = quality_flags(_overhead_records(0.003)).iloc[0]
    assert flagged["overhead_distorts"] and flagged["client_overhead_s"] == pytest.approx(0.003)
    assert flagged["overhead_share"] > OVERHEAD_SHARE_FLAG and "client overhead 3.0 ms" in flagged["flags"]
    fine = quality_flags(_overhead_records(0.001)).iloc[0]
    assert not fine["overhead_distorts"] and "client overhead" not in fine["flags"]
    aws = quality_flags(_overhead_records(0.003).drop(columns="server_ttft_s")).iloc[0]
    assert not aws["overhead_distorts"] and math.isnan(aws["client_overhead_s"])


def test_overhead_flag_reaches_the_report_methods() -> None:
    df = _overhead_records(0.004).assign(model_id="amazon.nova-lite-v1:0", tier_requested=None, prompt_size="small",
                                         users=4, output_tokens=100, api="converse-stream")
    a = analyze(df, fit=False, compare_metrics=())
    assert bool(a.quality["overhead_distorts"].iloc[0])
    methods = " ".join(report.methods_and_caveats(a))
    assert "Absolute percentiles are distorted in 1 of 1 cells" in methods and "unaffected" in methods


def test_usl_n_max_interval_agrees_with_a_seeded_residual_bootstrap() -> None:
    """The delta-method interval of N_max on the Cisco data (Schwartz 2015) against a seeded residual bootstrap
    of the same least-squares fit: both ends within 5%."""
    from tests.stats.test_known_answers import CISCO

    n, x = np.arange(1, 33), np.array(CISCO)
    fit = fit_usl(n, x)
    assert fit.n_max_lo < fit.n_max < fit.n_max_hi
    fitted = usl(n, fit.sigma, fit.kappa, fit.lam)
    resid = x - fitted
    rng = np.random.default_rng(0)
    boot = [fit_usl(n, fitted + rng.choice(resid, resid.size)).n_max for _ in range(200)]
    lo, hi = np.quantile(boot, [0.025, 0.975])
    assert fit.n_max_lo == pytest.approx(lo, rel=0.05) and fit.n_max_hi == pytest.approx(hi, rel=0.05)
    three = fit_usl([1, 2, 4], [10, 19, 30])  # no degrees of freedom left: no interval
    assert math.isnan(three.n_max_lo) and math.isnan(three.n_max_hi)


def test_capacity_summary_leads_with_the_measured_knee_then_usl_with_its_bias() -> None:
    a = analyze(synthetic_records(27 * 120, seed=3), fit=False, compare_metrics=())
    text = report.executive_summary(a)
    at = next(i for i, t in enumerate(text) if t.startswith("Capacity, as measured: throughput's knee is at"))
    usl_at = next(i for i, t in enumerate(text) if t.startswith("The Universal Scalability Law puts peak"))
    assert at < usl_at and "highest load meeting the SLOs" in text[at]
    lo, hi = USL_NMAX_OVERSTATES
    assert f"overstated a hard capacity by {lo:g}-{hi:g}x" in text[usl_at] and "upper estimate" in text[usl_at]
    assert {"n_max_lo", "n_max_hi"} <= set(a.capacity.columns)

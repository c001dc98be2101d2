"""summarize and the topic tables under it: their columns, and what they refuse (analyze: test_analysis.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bedrock_lab.errors import StatsError
from bedrock_lab.records import COLUMNS
from bedrock_lab.stats import (
    SLO,
    censored_summary,
    goodput,
    meets_slo,
    outcome_rates,
    summarize,
    tokens_per_second,
)


def test_synthetic_records_follow_the_schema(sweep: pd.DataFrame) -> None:
    assert set(sweep.columns) <= set(COLUMNS)
    assert sweep["cell_id"].nunique() == 27


def test_summarize_columns_and_flags(sweep: pd.DataFrame) -> None:
    s = summarize(sweep, SLO(ttft_s=1.0, e2e_s=10.0))
    assert len(s) == 27 * 4
    for col in ("cell_id", "model_id", "tier_requested", "prompt_size", "users", "metric", "n", "n_requests",
                "success_rate", "success_rate_lo", "success_rate_hi", "throttle_rate", "throughput_rps",
                "goodput", "goodput_lo", "goodput_hi", "meets_slo", "mean", "p50", "p50_lo", "p50_hi", "p50_ub",
                "p99", "p99_ok", "notes"):
        assert col in s.columns, col
    e2e = s[s["metric"] == "e2e_s"]
    # ~115 successes per cell: enough for p95 (72) but not p99 (368) -> flagged, NaN upper bound, a note
    # timeouts are censored: a cell whose timeouts could hide p95 reports it as a lower bound (no interval)
    est = e2e["p95_bound"] == ""
    assert est.sum() > len(e2e) / 2 and e2e.loc[est, "p95_ok"].all() and not e2e.loc[~est, "p95_ok"].any()
    assert not e2e["p99_ok"].any()
    assert e2e["p99_hi"].isna().all()
    assert e2e["notes"].str.contains("too few samples for p99|p99 is a lower bound").all()
    assert (e2e["p50_lo"] <= e2e["p50"]).all() and (e2e["p50"] <= e2e["p50_hi"]).all()
    assert ((e2e["success_rate_lo"] <= e2e["success_rate"]) & (e2e["success_rate"] <= e2e["success_rate_hi"])).all()


def test_failures_excluded_by_default_but_switchable() -> None:
    df = pd.DataFrame({"cell_id": "c", "status": ["ok"] * 9 + ["error"], "error_kind": [None] * 9 + ["timeout"],
                       "e2e_s": [1.0] * 9 + [60.0], "start": np.arange(10.0)})
    default = summarize(df, metrics=("e2e_s",)).iloc[0]
    # the timeout is data: right-censored at 60 s, so p50 stays 1.0 and p99 is only a lower bound
    assert default["n"] == 10 and default["n_censored"] == 1 and default["p50"] == 1.0
    assert default["p50_bound"] == "" and default["p99_bound"] == "lower" and "p99 is a lower bound" in default["notes"]
    both = summarize(df, metrics=("e2e_s",), include_failures=True).iloc[0]
    assert both["n"] == 10 and both["mean"] == pytest.approx(6.9)
    assert default["n_requests"] == both["n_requests"] == 10


def test_rates_and_goodput_count_failures() -> None:
    df = pd.DataFrame({"cell_id": "c", "status": ["ok", "ok", "ok", "error"],
                       "error_kind": [None, None, None, "throttled"], "ttft_s": [0.5, 1.5, 0.2, None],
                       "e2e_s": [2.0, 3.0, 12.0, 0.1], "start": [0.0, 1.0, 2.0, 3.0]})
    r = outcome_rates(df).iloc[0]
    assert (r["n_ok"], r["n_throttled"], r["success_rate"]) == (3, 1, 0.75)
    good = meets_slo(df, SLO(ttft_s=1.0, e2e_s=10.0))
    assert good.tolist() == [True, False, False, False]
    g = goodput(df, SLO(ttft_s=1.0, e2e_s=10.0)).iloc[0]
    assert g["n_good"] == 1 and g["goodput"] == 0.25 and 0 < g["goodput_lo"] < 0.25 < g["goodput_hi"]


def test_tokens_per_second_guards() -> None:
    df = pd.DataFrame({"output_tokens": [100, 100, None, 100], "e2e_s": [2.0, 1.0, 1.0, 4.0],
                       "ttft_s": [1.0, 1.0, 0.5, None]})
    tps = tokens_per_second(df)
    assert tps[0] == 100.0 and math.isnan(tps[1]) and math.isnan(tps[2]) and tps[3] == 25.0


def test_slo_validation() -> None:
    with pytest.raises(StatsError):
        SLO(ttft_s=-1)
    with pytest.raises(StatsError):
        SLO.from_mapping({"ttft": 1})
    assert SLO.from_mapping({"ttft_s": 2, "e2e_s": None}).describe() == "TTFT <= 2 s"


def test_bad_input_raises_stats_error() -> None:
    with pytest.raises(StatsError):
        summarize(pd.DataFrame({"x": [1]}))
    with pytest.raises(StatsError):
        summarize([1, 2, 3])  # type: ignore[arg-type]


def test_censored_summary_keeps_timeouts(sweep: pd.DataFrame) -> None:
    c = censored_summary(sweep)
    assert (c["n_censored"] > 0).any()
    assert (c["p50_km"] >= c["p50_naive"] - 1e-12).all()


def test_ecdf_points_are_bounded_and_monotone(sweep: pd.DataFrame) -> None:
    from bedrock_lab.stats import ecdf_points

    e = ecdf_points(sweep, "ttft_s", points=50)
    assert e.groupby("cell_id").size().max() <= 52
    assert (e.groupby("cell_id")["value"].diff().dropna() >= 0).all()
    last = e[e["prob"] == 1.0].set_index("cell_id")["value"]
    assert (last == sweep[sweep["status"] == "ok"].groupby("cell_id")["ttft_s"].max()).all()

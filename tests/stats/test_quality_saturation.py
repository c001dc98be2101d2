"""Data-quality flags and saturation analysis on records built to trigger (or not) each check."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bedrock_lab.stats import (
    SLO,
    bimodality_coefficient,
    knee,
    load_table,
    mser_truncation,
    quality_flags,
    saturation,
    warmup_trim,
)


def _cell(n: int = 600, seed: int = 0, **cols: object) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"cell_id": "c", "status": "ok", "error_kind": None, "retries": 0,
                       "start": np.cumsum(rng.exponential(0.1, n)), "e2e_s": rng.lognormal(0, 0.2, n),
                       "schedule_lag_s": np.nan})
    for k, v in cols.items():
        df[k] = v
    return df


def test_clean_cell_has_no_flags() -> None:
    q = quality_flags(_cell()).iloc[0]
    assert not q["drift"] and not q["coordinated_omission"] and not q["bimodal"]
    assert q["n_warmup"] <= 10


def test_mser_finds_the_warm_up() -> None:
    """White (1997) MSER-5: a slow first 10% of requests is cut, a stationary series is not."""
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(5, 0.2, 100), rng.normal(1, 0.2, 900)]
    assert 95 <= mser_truncation(x) <= 105
    df = _cell(1000)
    df["e2e_s"] = x
    trimmed, report = warmup_trim(df)
    assert len(trimmed) == 1000 - report["n_warmup"].iloc[0] and report["n_warmup"].iloc[0] >= 95
    assert report["warmup_s"].iloc[0] > 0


def test_drift_is_flagged() -> None:
    df = _cell(900)
    df["e2e_s"] = df["e2e_s"] * np.linspace(1.0, 1.6, 900)
    q = quality_flags(df).iloc[0]
    assert q["drift"] and q["drift_ratio"] > 1.3 and "drift" in q["flags"]


def test_coordinated_omission_is_flagged() -> None:
    lag = np.r_[np.zeros(580), np.full(20, 0.5)]
    q = quality_flags(_cell(600, schedule_lag_s=lag)).iloc[0]
    assert q["coordinated_omission"] and "schedule lag" in q["flags"]
    assert not quality_flags(_cell(600, schedule_lag_s=0.001)).iloc[0]["coordinated_omission"]


def test_retries_make_a_cell_bimodal() -> None:
    n = 600
    df = _cell(n)
    retried = np.arange(n) % 10 == 0  # 10% retried after a ~2 s back-off
    df.loc[retried, "retries"] = 1
    df.loc[retried, "e2e_s"] += 2.0
    q = quality_flags(df).iloc[0]
    assert q["bimodal"] and "retried" in q["flags"]
    assert bimodality_coefficient(np.log(df["e2e_s"])) > 5 / 9


def test_knee_and_usl_capacity() -> None:
    """Throughput from a known USL curve (sigma 0.05, kappa 0.001, lambda 10): the fit gets it back."""
    users = np.array([1, 2, 4, 8, 16, 32, 64])
    x = 10 * users / (1 + 0.05 * (users - 1) + 0.001 * users * (users - 1))
    rows = []
    for u, thr in zip(users, x, strict=True):
        n = 400
        w = u / thr  # Little: mean latency that makes in-flight == users
        rows.append(pd.DataFrame({"model_id": "m", "tier_requested": "default", "prompt_size": "small",
                                  "users": u, "status": "ok", "ttft_s": 0.1, "e2e_s": w,
                                  "start": np.arange(n) / thr}))
    df = pd.concat(rows, ignore_index=True)
    table, cap = saturation(df, SLO(ttft_s=1.0, e2e_s=3.0))
    c = cap.iloc[0]
    assert c["sigma"] == pytest.approx(0.05, rel=0.05) and c["kappa"] == pytest.approx(0.001, rel=0.1)
    assert c["n_max"] == pytest.approx(math.sqrt(0.95 / 0.001), rel=0.05)
    assert c["knee_users"] in (8, 16)
    # latency u / X(u) grows with users; the SLO (3 s) holds up to the largest u with w <= 3
    w = users / x
    assert c["max_users_meeting_slo"] == users[w <= 3].max()
    assert not table["client_bottleneck"].any()
    assert knee([1, 2, 3], [5, 5, 5]) != knee([1, 2, 3], [5, 5, 5])  # flat curve: NaN, no knee


def test_littles_law_flags_a_client_bottleneck() -> None:
    """20 users configured, but requests of 1 s each arrive at 5/s: L = X W = 5 << 20, the client was the limit."""
    n = 500
    df = pd.DataFrame({"model_id": "m", "users": 20, "status": "ok", "e2e_s": 1.0, "start": np.arange(n) / 5.0})
    t = load_table(df)
    assert t["in_flight"].iloc[0] == pytest.approx(5.0, rel=0.02)
    assert bool(t["client_bottleneck"].iloc[0])


def test_usl_interval_of_a_near_linear_curve_is_unbounded_not_an_overflow() -> None:
    """A near-zero kappa (the fit of an open-loop search's few, still linear levels: kappa ~ 2e-29) puts the
    interval's upper bound of N_max past any float: it is infinite, and the analysis goes on."""
    from bedrock_lab.stats.saturation import _n_max_interval

    cov = np.array([[4.9e-06, -1.2e-07, 4.3e-05], [-1.2e-07, 3.0e-09, -1.0e-06], [4.3e-05, -1.0e-06, 3.9e-04]])
    lo, hi = _n_max_interval(1.08e-26, 1.99e-29, cov, dof=1)
    assert hi == math.inf and lo == 0.0  # exp of a huge negative log: no lower limit either

"""Time bins of a cell's run (stats.timeseries): requests land in the bin in which they finished, empty bins stay,
percentiles of too few values are withheld, and a stall or a burst of throttling shows where it happened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bedrock_lab.errors import StatsError
from bedrock_lab.stats.timeseries import MIN_N_P95, NICE_BINS_S, bin_width, time_bins


def _cell(n: int = 200, *, seed: int = 3, stall: tuple[float, float] | None = None,
          throttle_after: float | None = None) -> pd.DataFrame:
    """One cell of ``n`` requests, one starting every 0.1 s, latency ~0.3 s; optional stall or throttling."""
    rng = np.random.default_rng(seed)
    start = np.arange(n) * 0.1
    if stall:
        start = start[(start < stall[0]) | (start >= stall[1])]
    e2e = rng.lognormal(np.log(0.3), 0.2, start.size)
    status = np.where((start >= throttle_after) if throttle_after is not None else False, "error", "ok")
    return pd.DataFrame({"cell_id": "c", "status": status, "start": 1_700_000_000.0 + start, "e2e_s": e2e,
                         "ttft_s": np.where(status == "ok", e2e / 3, np.nan)})


def test_counts_by_completion_time_and_rates_per_second() -> None:
    df = pd.DataFrame({"cell_id": "c", "status": ["ok", "ok", "ok", "error"], "start": [0.0, 0.2, 0.9, 1.0],
                       "e2e_s": [0.5, 1.0, 0.05, 1.5], "ttft_s": [0.1, 0.2, 0.01, None]})
    t = time_bins(df, by=["cell_id"], bin_s=1.0)
    # ends 0.5, 1.2, 0.95, 2.5: bins 0, 1, 0, 2 (the request sent at 0.2 s counts when it finished)
    assert t["n_ok"].tolist() == [2, 1, 0] and t["n_error"].tolist() == [0, 0, 1]
    assert t["width_s"].tolist() == [1.0, 1.0, 0.5]  # the last bin: only its covered half second
    assert t["ok_rps"].tolist() == [2.0, 1.0, 0.0] and t["error_rps"].tolist() == [0.0, 0.0, 2.0]


def test_a_stall_shows_as_empty_bins_and_throttling_where_it_began() -> None:
    t = time_bins(_cell(stall=(8.0, 12.0)), by=["cell_id"], bin_s=1.0)
    quiet = t[(t["t_s"] >= 9) & (t["t_s"] < 12)]
    assert len(quiet) == 3 and (quiet["ok_rps"] == 0).all()  # kept as zeros, not dropped
    assert t[t["t_s"] < 7]["ok_rps"].between(8, 12).all()  # ~10 requests/s before it
    t = time_bins(_cell(throttle_after=12.0), by=["cell_id"], bin_s=1.0)
    assert (t[t["t_s"] < 11]["error_rps"] == 0).all() and (t[t["t_s"] >= 13]["ok_rps"] == 0).all()
    assert t[(t["t_s"] >= 13) & (t["t_s"] < 19)]["error_rps"].between(8, 12).all()


def test_percentiles_need_enough_values_in_a_bin() -> None:
    t = time_bins(_cell(), by=["cell_id"], bin_s=0.5)  # ~5 requests a bin: a median, no p95
    full = t[t["ttft_s_n"] >= 3]
    assert full["ttft_s_p50"].notna().all() and t["ttft_s_p95"].isna().all()
    t = time_bins(_cell(), by=["cell_id"], bin_s=2.0)  # ~20 a bin
    enough = t[t["ttft_s_n"] >= MIN_N_P95]
    assert len(enough) >= 5 and (enough["ttft_s_p95"] >= enough["ttft_s_p50"]).all()
    assert enough["ttft_s_p50"].between(0.08, 0.12).all()  # the true median is 0.1 s


def test_each_cell_gets_a_readable_width_of_about_twenty_requests() -> None:
    slow = _cell(40).assign(cell_id="slow", start=lambda d: d["start"] * 10)  # 40 requests over 40 s
    fast = _cell(400).assign(cell_id="fast")  # 400 requests over 40 s
    assert bin_width(slow) in NICE_BINS_S and bin_width(fast) in NICE_BINS_S
    assert bin_width(slow) == 10 and bin_width(fast) == 3  # 40.2 s / 20 bins, rounded up
    t = time_bins(pd.concat([slow, fast]), by=["cell_id"])
    assert set(t.groupby("cell_id")["bin_s"].first().items()) == {("slow", 10.0), ("fast", 3.0)}


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(StatsError, match="bin_s must be a positive"):
        time_bins(_cell(), by=["cell_id"], bin_s=0)
    with pytest.raises(StatsError, match="lack column"):
        time_bins(_cell().drop(columns=["start"]), by=["cell_id"])
    with pytest.raises(StatsError, match="two or more timed requests"):
        time_bins(_cell(1), by=["cell_id"])

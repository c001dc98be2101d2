"""Sequential cells (issue #14): a run ends when its SLO answer is settled, and runs to its maximum when it is not.

Real engines against a real emulator over HTTP. TTFT is log-normal around 100 ms (sigma 0.3: true p95 ~ 165 ms)
plus the client's own overhead, so targets are chosen far from it (clear verdicts) or at it (borderline).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.engines.stopping import (
    MAX_DURATION,
    PRECISE,
    SETTLED_ABOVE,
    SETTLED_BELOW,
    StopController,
    StopRule,
    watched_value,
)
from bedrock_lab.errors import ConfigError

MODEL = "amazon.nova-lite-v1:0"
LATENCY = dict(ttft_ms=100.0, prefill_ms_per_1k=0.0, ttft_sigma=0.3, tokens_per_s=2000.0, jitter=0.1,
               chunk_tokens=4, contention=0.0, output_median_tokens=16, output_sigma=0.2)  # fmt: skip


@pytest.fixture(scope="module")
def seq_target() -> Iterator[Target]:
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=LATENCY, capacity=512) as emu:
        yield Target.emulator(emu.url)


def _spec(**kw: Any) -> BurstSpec:
    base: dict[str, Any] = dict(users=8, duration_s=20.0, max_tokens=16, sequential="verdict", check_every_s=0.5)
    return BurstSpec(MODEL, **{**base, **kw})


def test_a_clear_pass_stops_early_with_the_met_verdict(seq_target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(_spec(slo_target_s=1.0), seq_target, tmp_path, progress=False)
    assert res.valid and res.stop_reason == SETTLED_BELOW
    assert res.stopped_at_s is not None and res.stopped_at_s < 15.0, "a 20 s maximum: it should settle in seconds"
    seq = res.sequential or {}
    assert seq["status"] == "below" and seq["hi"] < 1.0 and seq["interval"].startswith("always-valid")
    # every request the run sent is a record (the in-flight ones at the stop finished)
    assert len(res.records()) == res.n_requests >= seq["n"] > 100
    assert "stopped settled_below" in res.summary()


def test_a_clear_miss_stops_at_the_first_looks(seq_target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(_spec(slo_target_s=0.02), seq_target, tmp_path, progress=False)
    assert res.stop_reason == SETTLED_ABOVE
    assert (res.sequential or {})["lo"] > 0.02
    assert res.stopped_at_s is not None and res.stopped_at_s < 10.0


def test_a_borderline_cell_runs_to_its_maximum(seq_target: Target, tmp_path: Path) -> None:
    """Target at the true p95 (~165 ms): the always-valid interval straddles it for the whole 3 s run."""
    res = run_burst_sync(_spec(slo_target_s=0.165, duration_s=3.0), seq_target, tmp_path, progress=False)
    seq = res.sequential or {}
    assert res.stop_reason == MAX_DURATION and res.stopped_at_s is None
    assert seq["status"] == "undecided" and seq["lo"] <= 0.165 <= seq["hi"], seq
    assert seq["looks"] >= 3


def test_min_duration_warmup_and_precision(seq_target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(_spec(sequential="precision", precision=0.25, min_duration_s=2.0, warmup_s=1.0),
                         seq_target, tmp_path, progress=False)  # fmt: skip
    seq = res.sequential or {}
    assert res.stop_reason == PRECISE and res.stopped_at_s is not None and res.stopped_at_s >= 2.0
    df = res.records()
    t0 = df["start"].min()
    assert seq["n"] <= int((df["start"] >= t0 + 0.9).sum()), "warm-up requests were used"
    assert (seq["hi"] - seq["lo"]) / (2 * seq["estimate"]) <= 0.25


def test_an_open_loop_cell_stops_too(seq_target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(_spec(users=None, rate_rps=80.0, slo_target_s=1.0), seq_target, tmp_path, progress=False)
    assert res.stop_reason == SETTLED_BELOW and res.n_requests < 80 * 20 / 2


def test_a_fixed_cell_says_it_ran_to_its_bound(seq_target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(BurstSpec(MODEL, users=2, requests=6, max_tokens=8), seq_target, tmp_path, progress=False)
    assert res.stop_reason == "max_requests" and res.sequential is None


def test_a_verdict_cell_needs_a_target() -> None:
    with pytest.raises(ConfigError, match="slo_target_s"):
        BurstSpec(MODEL, users=2, duration_s=1.0, sequential="verdict")
    with pytest.raises(ConfigError, match="sequential"):
        BurstSpec(MODEL, users=2, duration_s=1.0, sequential="sometimes")


def test_the_controller_honours_min_requests_and_counts_timeouts_as_waits() -> None:
    rule = StopRule.from_spec(_spec(slo_target_s=0.5, min_requests=50))
    assert rule is not None
    ctl = StopController(rule, t0=0.0)
    ctl.add_many((1.0, 2.0) for _ in range(40))  # 40 values far above: settled, but fewer than min_requests
    assert ctl.look(now=100.0) is None and ctl.status == "above"
    ctl.add_many((1.0, 2.0) for _ in range(10))
    assert ctl.look(now=101.0) == SETTLED_ABOVE and ctl.stopped_at_s == 101.0
    # a timeout adds the time it waited (a lower bound); throttles add nothing
    assert watched_value("ttft_s", "error", "timeout", None, 30.0, None) == 30.0
    assert watched_value("ttft_s", "error", "throttled", None, 0.01, None) is None
    assert watched_value("tpot_s", "error", "timeout", None, 30.0, None) is None


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_locust_cell_is_stopped_by_its_runner(seq_target: Target, tmp_path: Path, workers: int) -> None:
    """The parent reads the flushed shards, settles, and every Locust process quits the ordinary way (its HTML
    report written), long before the 60 s bound."""
    spec = _spec(users=4, duration_s=60.0, slo_target_s=0.02, check_every_s=1.0)
    res = run_locust(spec, seq_target, tmp_path, workers=workers)
    assert res.stop_reason == SETTLED_ABOVE and res.wall_s < 40, (res.stop_reason, res.wall_s, res.warnings)
    assert set(res.returncodes) <= {0, 1} and res.valid and not res.warnings, (res.returncodes, res.warnings)
    assert res.html is not None and res.json is not None
    assert (res.sequential or {})["n"] == int((res.records()["status"] == "ok").sum()) > 0
    assert "sequential (verdict): stopped settled_above" in res.summary()


def test_the_locust_watcher_reads_each_shard_once(tmp_path: Path) -> None:
    """The parent of a sequential Locust cell feeds one controller with the shards published since its last look
    (it re-read every shard at every look); another run's shards in the folder are not counted."""
    from bedrock_lab.engines.locust_runner import _RecordFeed
    from bedrock_lab.records import RecordWriter, RequestRecord

    def shard(run_id: str, first: int, n: int) -> None:
        with RecordWriter(tmp_path, worker=f"w{first}") as w:
            for i in range(first, first + n):
                w.add(RequestRecord(run_id=run_id, cell_id="", engine="locust", worker="w", seq=i, api="converse",
                                    model_id="m", tier_requested=None, tier_served=None, prompt_id="p",
                                    prompt_size="small", users=1, rate_rps=None, intended_start=None,
                                    start=1000.0 + i, schedule_lag_s=None, ttft_s=0.3, e2e_s=1.0))  # fmt: skip

    rule = StopRule.from_spec(_spec(slo_target_s=0.5))
    assert rule is not None
    feed = _RecordFeed(rule, "this", tmp_path)
    assert feed.read_new() is None  # nothing published yet
    shard("this", 0, 30)
    shard("stale", 100, 50)
    ctl = feed.read_new()
    assert ctl is not None and ctl.n == 30 and len(feed.seen) == 2 and ctl.t0 == 1000.0
    assert feed.read_new() is ctl and ctl.n == 30  # no new shard: nothing read, nothing added twice
    shard("this", 30, 20)
    assert feed.read_new() is ctl and ctl.n == 50 and len(feed.seen) == 3

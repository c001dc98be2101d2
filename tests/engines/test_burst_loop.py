"""The burst engine's own loop: saturation warnings, the collector's tuning, the progress bar."""

from __future__ import annotations

import asyncio
import gc
import random
import time
from pathlib import Path
from typing import Any

import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst, run_burst_sync
from bedrock_lab.engines.burst import STALL_MS, _saturation

MODEL = "amazon.nova-lite-v1:0"


def test_isolated_pauses_are_not_saturation() -> None:
    # a 10 s run at 50 probes/s with two 100 ms pauses (a full collection, a slow write) and jitter below a stall
    rng = random.Random(1)
    lags = [rng.uniform(0.0, STALL_MS) for _ in range(500)] + [100.0, 100.0]
    assert _saturation(lags, 10.0, busy_pct=60.0) == []


def test_a_busy_or_stalled_loop_is_saturation() -> None:
    assert any("busy 95%" in w for w in _saturation([0.5] * 100, 2.0, busy_pct=95.0))
    stalled = _saturation([60.0] * 6 + [0.1] * 40, 1.2, busy_pct=5.0)  # 360 ms of 1.2 s waiting for the loop
    assert len(stalled) == 1 and "stalled 30%" in stalled[0] and "6 stalls" in stalled[0]


def test_an_idle_run_has_no_saturation_warning(target: Target, tmp_path: Path) -> None:
    res = run_burst_sync(BurstSpec(MODEL, users=4, duration_s=1.0, max_tokens=8), target, tmp_path, progress=False)
    assert res.n_ok > 4 and res.loop_lag_p50_ms is not None
    assert res.warnings == [] and not res.saturated


def test_collector_is_tuned_during_the_run_and_restored_after(target: Target, tmp_path: Path) -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen: list[tuple[tuple[int, int, int], int]] = []

    async def main() -> Any:
        async def watch() -> None:  # reads the collector's settings while the run is in flight
            while True:
                seen.append((gc.get_threshold(), gc.get_freeze_count()))
                await asyncio.sleep(0.05)

        w = asyncio.create_task(watch())
        await asyncio.sleep(0)
        try:
            return await run_burst(BurstSpec(MODEL, users=2, requests=20, max_tokens=8), target, tmp_path,
                                   progress=False)  # fmt: skip
        finally:
            w.cancel()

    assert asyncio.run(main()).n_ok == 20
    during = seen[1:]
    assert during and all(t[2] > 100 * before[2] and t[:2] == before[:2] for t, _ in during)
    assert all(n > 0 for _, n in during)  # start-up objects frozen out of the collector's view
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_collector_is_restored_after_a_failed_run(tmp_path: Path) -> None:
    before = gc.get_threshold()
    target = Target.emulator("http://127.0.0.1:9")  # nothing listens: every request is a connection error
    res = run_burst_sync(BurstSpec(MODEL, users=1, requests=3, max_tokens=8), target, tmp_path, progress=False)
    assert res.n_ok == 0 and gc.get_threshold() == before


def test_progress_bar_is_redrawn_a_few_times_a_second_not_per_request(target: Target, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import tqdm.auto

    bars: list[Any] = []

    class Bar:
        def __init__(self, **_: Any) -> None:
            self.n, self.updates = 0, 0
            bars.append(self)

        def update(self, k: int) -> None:
            self.n += k
            self.updates += 1

        def close(self) -> None:
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    t0 = time.monotonic()
    res = run_burst_sync(BurstSpec(MODEL, users=8, duration_s=1.0, max_tokens=8), target, tmp_path, progress=True)
    wall = time.monotonic() - t0
    (bar,) = bars
    assert bar.n == res.n_requests and res.n_requests > 20
    assert bar.updates <= wall / 0.5 + 2 < res.n_requests

"""The burst engine's read timeout is botocore's: the longest silence between bytes, not the total time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

MODEL = "amazon.nova-lite-v1:0"
#: ~0.1 s between 4-token chunks, ~24 tokens: each gap well under the 0.35 s limit, the answer well over it
SLOW = dict(ttft_ms=50.0, prefill_ms_per_1k=0.0, ttft_sigma=0.05, tokens_per_s=40.0, jitter=0.05, chunk_tokens=4,
            contention=0.0, output_median_tokens=24, output_sigma=0.05)  # fmt: skip
LIMIT_S = 0.35


@pytest.fixture(scope="module")
def slow() -> Iterator[Target]:
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=SLOW, capacity=64) as emu:
        yield Target.emulator(emu.url)


def test_a_stream_longer_than_the_read_timeout_succeeds_when_no_gap_is(slow: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, users=3, requests=6, max_tokens=32, read_timeout_s=LIMIT_S, max_attempts=1)
    df = run_burst_sync(spec, slow, tmp_path, progress=False).records()
    assert len(df) == 6 and (df["status"] == "ok").all(), df[["status", "error_kind", "error_code"]]
    assert (df["e2e_s"] > LIMIT_S).all()  # the timeout is per silence: a total-time rule would have failed these


def test_a_whole_answer_later_than_the_read_timeout_is_a_read_timeout(slow: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, users=2, requests=4, max_tokens=32, read_timeout_s=LIMIT_S, max_attempts=1,
                     api="converse")  # fmt: skip
    df: Any = run_burst_sync(spec, slow, tmp_path, progress=False).records()
    assert len(df) == 4 and (df["status"] == "error").all()
    assert set(zip(df["error_kind"], df["error_code"], strict=True)) == {("timeout", "ReadTimeout")}
    # it fired at the limit (the answer would have come at ~0.65 s), not at the end of the answer
    assert (df["e2e_s"] < 0.6).all() and (df["e2e_s"] >= LIMIT_S * 0.95).all()


def test_bytes_that_arrived_during_a_loop_stall_are_not_a_timeout(slow: Target, tmp_path: Path) -> None:
    """A stall of the client's own loop (a blocking notebook cell, a busy machine) is not the server's silence:
    the bytes waiting in the socket when the loop wakes win over the expired timer, as with a socket timeout."""
    import asyncio
    import time

    from bedrock_lab.engines import run_burst

    async def main() -> Any:
        # the stall under test: the loop is blocked for longer than the read timeout while the answers stream in
        # (from 0.1 s to 0.52 s: past the limit, while the ~0.65 s answers have more to send after it)
        asyncio.get_running_loop().call_later(0.1, time.sleep, LIMIT_S * 1.2)
        spec = BurstSpec(MODEL, users=3, requests=3, max_tokens=32, read_timeout_s=LIMIT_S, max_attempts=1)
        return await run_burst(spec, slow, tmp_path, progress=False)

    df = asyncio.run(main()).records()
    assert len(df) == 3 and (df["status"] == "ok").all(), df[["status", "error_kind", "error_code"]]

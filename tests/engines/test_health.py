"""Run validity (bedrock_lab.engines.health): the breaker replayed on records, the success floor, throttling as a
result, and messages that never carry secrets. Plus the burst CLI failing fast against the real emulator."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.cli import main
from bedrock_lab.engines.health import CircuitBreaker, HealthPolicy, assess, clean_message
from bedrock_lab.errors import ConfigError


def _records(kinds: list[str | None], code: str = "X", message: str = "boom") -> pd.DataFrame:
    return pd.DataFrame({
        "start": [float(i) for i in range(len(kinds))], "e2e_s": 0.01,
        "status": ["ok" if k is None else "error" for k in kinds], "error_kind": kinds,
        "error_code": [None if k is None else code for k in kinds],
        "error_message": [None if k is None else message for k in kinds],
    })  # fmt: skip


def test_consecutive_fatal_failures_trip_the_breaker_and_any_other_outcome_resets_it() -> None:
    b = CircuitBreaker(HealthPolicy(breaker_after=3))
    for kind in ("connection", "validation", "throttled", "connection", "client"):
        assert not b.observe(kind)
    assert b.observe("connection")  # third fatal in a row after the throttle
    assert b.tripped


def test_a_healthy_run_with_some_errors_is_valid() -> None:
    h = assess(_records([None] * 90 + ["server"] * 5 + ["connection"] * 5))
    assert h.valid and h.reason is None and h.n_ok == 90


def test_all_throttled_is_invalid_but_throttling_alone_does_not_count_against_the_floor() -> None:
    assert not assess(_records(["throttled"] * 50)).valid
    # 10 ok and 90 throttled: every request that was not throttled succeeded
    mostly_throttled = assess(_records([None] * 10 + ["throttled"] * 90))
    assert mostly_throttled.valid and mostly_throttled.n_throttled == 90


def test_below_the_success_floor_is_invalid_with_the_first_message_and_its_count() -> None:
    kinds: list[str | None] = [None, "server"] * 10 + ["server"] * 10  # 10 ok of 30
    h = assess(_records(kinds, code="InternalServerException", message="try later"), HealthPolicy(min_success_rate=0.5))
    assert not h.valid and not h.breaker_tripped
    assert h.first_error == "InternalServerException: try later" and h.first_error_count == 20
    assert "only 10 of 30" in str(h.reason) and "(20x)" in str(h.reason)


def test_the_breaker_is_replayed_in_the_order_requests_ended() -> None:
    df = _records(["validation"] * 25 + [None] * 25)
    assert assess(df, HealthPolicy(breaker_after=20)).breaker_tripped
    # the same requests interleaved: never 20 failures in a row
    mixed = _records(["validation", None] * 25)
    h = assess(mixed, HealthPolicy(breaker_after=20, min_success_rate=0.4))
    assert h.valid and not h.breaker_tripped
    assert not assess(df, HealthPolicy(breaker_after=0, min_success_rate=0.4)).breaker_tripped


def test_policy_values_are_checked() -> None:
    with pytest.raises(ConfigError, match="min_success_rate"):
        HealthPolicy(min_success_rate=1.5)
    with pytest.raises(ConfigError, match="breaker_after"):
        HealthPolicy(breaker_after=-1)


def test_messages_are_one_line_short_and_without_key_ids_or_signatures() -> None:
    key_id = "AKIA" + "Q" * 16  # shaped like an access key id, built here so no key-like literal is tracked
    msg = clean_message(f"Credential={key_id}/2026\n Signature=" + "ab" * 32 + " " + "x" * 500)
    assert msg is not None and "\n" not in msg and len(msg) <= 300
    assert key_id not in msg and "abab" not in msg
    assert clean_message("") is None and clean_message(None) is None


@pytest.mark.parametrize(("args", "expected"), [
    (["--model", "not-a-model"], "ValidationException: The provided model identifier is invalid"),
    (["--max-tokens", "1000000"], "ValidationException: The maximum tokens you requested exceeds"),
])  # fmt: skip
def test_burst_with_a_request_the_service_rejects_exits_non_zero_in_seconds(
    emu: Any, capsys: pytest.CaptureFixture[str], tmp_path: Any, args: list[str], expected: str
) -> None:
    t0 = time.monotonic()
    rc = main(["burst", "--endpoint", emu.url, "--users", "8", "--duration", "60", "--no-progress",
               "--out", str(tmp_path / "b"), *args])  # fmt: skip
    assert rc == 1
    assert time.monotonic() - t0 < 30  # stopped by the breaker, not by the 60 s bound
    err = capsys.readouterr().err
    assert "run is invalid" in err and expected in err and "consecutive validation errors" in err


def test_burst_against_a_closed_port_exits_non_zero_naming_the_connection_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    rc = main(["burst", "--endpoint", "http://127.0.0.1:9", "--users", "4", "--duration", "60", "--no-progress",
               "--out", str(tmp_path / "b")])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "consecutive connection errors" in err and "127.0.0.1:9" in err
    records = pd.read_parquet(tmp_path / "b")
    assert len(records) < 200 and records["error_message"].notna().all()


def test_time_per_output_token_follows_the_emulators_schedule(tmp_path: Any) -> None:
    """TPOT from the service's token counts matches the emulator's intended decode time per token (ground truth
    headers) within 3%, while the chunk gap (itl_mean_s) is several tokens long. Decode runs at 400 tokens/s
    (2.5 ms a token), slow enough that the client's own fraction of a millisecond per request stays in the noise."""
    from bedrock_lab.emulator import run_emulator
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

    latency = dict(ttft_ms=15.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=400.0, jitter=0.1,
                   chunk_tokens=4, contention=0.0, output_median_tokens=32, output_sigma=0.2)  # fmt: skip
    with run_emulator(seed=3, mode="thread", latency=latency, capacity=512) as emu:
        res = run_burst_sync(BurstSpec(model_id="amazon.nova-lite-v1:0", users=4, requests=120, max_tokens=64,
                                       seed=5), Target.emulator(emu.url), tmp_path / "r", progress=False)  # fmt: skip
    df = res.records()
    ok = df[(df["status"] == "ok") & (df["output_tokens"] >= 8)]
    assert len(ok) > 100
    truth = (ok["server_decode_s"] / (ok["output_tokens"] - 1)).median()
    measured = ok["tpot_s"].median()
    assert abs(measured / truth - 1) < 0.03, (measured, truth)
    assert ok["itl_mean_s"].median() > 2.5 * measured  # 4 tokens a chunk: the gap is not per token

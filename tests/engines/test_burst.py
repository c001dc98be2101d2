"""The async burst engine against a real emulator: counts, schema, values, faults, open loop, retries."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst, run_burst_sync
from bedrock_lab.records import COLUMNS, ERROR_KINDS, load_records

MODEL = "amazon.nova-lite-v1:0"


def _run(spec: BurstSpec, target: Any, out: Path) -> Any:
    return run_burst_sync(spec, target, out, progress=False)


def test_closed_loop_counts_schema_and_values(target: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, users=6, requests=30, max_tokens=32, run_id="r1", cell_id="c1")
    res = _run(spec, target, tmp_path)
    assert res.n_requests == 30 and res.n_ok == 30, res.summary()
    df = res.records(keep_chunk_times=True)
    assert len(df) == 30 and list(df.columns) == list(COLUMNS)
    assert set(df["engine"]) == {"burst"} and set(df["run_id"]) == {"r1"} and set(df["cell_id"]) == {"c1"}
    assert set(df["api"]) == {"converse-stream"} and set(df["users"]) == {6}
    assert df["worker"].nunique() == 6 and not df.duplicated(["worker", "seq"]).any()
    assert df["intended_start"].isna().all() and df["schedule_lag_s"].isna().all()
    assert (df["ttft_s"] > 0).all() and (df["e2e_s"] >= df["ttft_s"]).all()
    assert (df["n_chunks"] >= 1).all() and (df["output_tokens"] >= 1).all() and (df["input_tokens"] >= 1).all()
    multi = df[df["n_chunks"] >= 2]
    assert len(multi) and (multi["itl_max_s"] >= multi["itl_p50_s"]).all()
    assert (df["chunk_times"].map(len) == df["n_chunks"]).all()
    assert df["server_ttft_s"].notna().all() and df["server_request_id"].notna().all()
    assert df["server_latency_s"].notna().all() and (df["retries"] == 0).all()
    assert (df["http_status"] == 200).all() and df["error_kind"].isna().all()
    # the client can only see the first token after the server produced it
    assert (df["ttft_s"] + 0.002 >= df["server_ttft_s"]).mean() > 0.9
    assert res.loop_lag_p99_ms is not None and res.cpu_mean_pct is not None


@pytest.mark.parametrize("api", ["converse", "invoke", "invoke-stream"])
@pytest.mark.parametrize("model", ["anthropic.claude-3-haiku-20240307-v1:0", "meta.llama3-1-70b-instruct-v1:0",
                                   "amazon.titan-text-express-v1", "us.amazon.nova-micro-v1:0"])  # fmt: skip
def test_every_api_and_format(target: Target, tmp_path: Path, api: str, model: str) -> None:
    res = _run(BurstSpec(model, api=api, users=2, requests=4, max_tokens=16), target, tmp_path)
    df = res.records()
    assert res.n_ok == 4, df[["error_kind", "error_code", "http_status"]]
    assert (df["output_tokens"] > 0).all() and (df["input_tokens"] > 0).all()
    if api == "invoke-stream":
        assert (df["ttft_s"] > 0).all() and (df["n_chunks"] >= 1).all()
    else:
        assert df["ttft_s"].isna().all() and (df["e2e_s"] > 0).all()


def test_workloads_run(target: Target, tmp_path: Path) -> None:
    for name in ("chat", "mix", "summarise"):
        res = _run(BurstSpec(MODEL, workload=name, users=2, requests=6, max_tokens=24), target, tmp_path / name)
        df = res.records()
        assert res.n_ok == 6, df[["error_kind", "error_code"]]
    chat = load_records(tmp_path / "chat")
    assert set(chat["prompt_id"]) >= {"chat-turn1", "chat-turn2", "chat-turn3"}
    assert chat.groupby("worker")["input_tokens"].is_monotonic_increasing.all()  # history grows


def test_open_loop_constant_schedule(target: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, rate_rps=40.0, arrival="constant", requests=40, max_tokens=16)
    res = _run(spec, target, tmp_path)
    df = res.records().sort_values("intended_start")
    assert len(df) == 40 and res.n_ok == 40
    gaps = df["intended_start"].diff().dropna()
    assert gaps.between(0.025 - 1e-3, 0.025 + 1e-3).all()  # exactly the schedule (clock arithmetic)
    assert (df["schedule_lag_s"] >= 0).all() and (df["start"] - df["intended_start"] >= -1e-3).all()
    assert set(df["rate_rps"]) == {40.0} and df["users"].isna().all()
    # latency measured from the intended start includes the lag
    assert (df["e2e_s"] >= df["schedule_lag_s"]).all()
    assert res.schedule_misses is not None and res.schedule_misses == int((df["schedule_lag_s"] > 0.010).sum())


def test_open_loop_poisson_is_seeded_and_bounded_by_duration(target: Target, tmp_path: Path) -> None:
    a = BurstSpec(MODEL, rate_rps=30.0, duration_s=1.0, max_tokens=8, seed=3)
    res = _run(a, target, tmp_path / "a")
    df = res.records()
    offsets = sorted(df["intended_start"] - df["intended_start"].min())
    from bedrock_lab.engines.burst import _Runner

    sched = _Runner.schedule(type("R", (), {"spec": BurstSpec(MODEL, rate_rps=30.0, duration_s=1.0, seed=3)})())
    assert len(df) == len(sched) and 10 <= len(df) <= 60
    assert offsets == pytest.approx([s - sched[0] for s in sched], abs=2e-3)


def test_saturation_is_reported_not_hidden(target: Target, tmp_path: Path) -> None:
    async def main() -> Any:
        async def hog() -> None:  # blocks the event loop like a heavy notebook cell would
            import time

            for _ in range(6):
                time.sleep(0.06)
                await asyncio.sleep(0)

        h = asyncio.create_task(hog())
        res = await run_burst(BurstSpec(MODEL, users=2, duration_s=1.0, max_tokens=8), target, tmp_path,
                              progress=False)  # fmt: skip
        await h
        return res

    res = asyncio.run(main())
    assert res.loop_lag_max_ms is not None and res.loop_lag_max_ms >= 30
    assert res.warnings and res.saturated


FAULT_CASES = [
    ({"error_500": 0.3}, "server", "InternalServerException"),
    ({"error_503": 0.3}, "server", "ServiceUnavailableException"),
    ({"error_408": 0.3}, "timeout", "ModelTimeoutException"),
    ({"model_not_ready": 0.3}, "throttled", "ModelNotReadyException"),
    ({"stream_throttle": 0.3}, "throttled", "throttlingException"),
    ({"stream_error": 0.3}, "stream", "modelStreamErrorException"),
    ({"drop": 0.3}, None, None),
]


@pytest.mark.parametrize(("faults", "kind", "code"), FAULT_CASES)
def test_injected_faults_land_in_the_right_kind(make_emulator: Any, tmp_path: Path, faults: dict[str, float], kind: str | None,
                                                code: str | None) -> None:  # fmt: skip
    with make_emulator(**faults) as emu:
        res = _run(BurstSpec(MODEL, users=4, requests=40, max_tokens=16), Target.emulator(emu.url), tmp_path)
    df = res.records()
    assert len(df) == 40  # the run goes on
    errors = df[df["status"] == "error"]
    assert 3 <= len(errors) <= 30 and (df["status"] == "ok").sum() >= 10
    assert set(errors["error_kind"]) <= set(ERROR_KINDS)
    if kind is None:  # dropped connections: before the response or mid-stream
        assert set(errors["error_kind"]) <= {"connection", "stream"}
    else:
        assert set(errors["error_kind"]) == {kind}, errors[["error_kind", "error_code"]]
        assert set(errors["error_code"]) == {code}


def test_retries_are_recorded(make_emulator: Any, tmp_path: Path) -> None:
    with make_emulator(error_503=0.3) as emu:
        spec = BurstSpec(MODEL, users=8, requests=24, max_tokens=8, max_attempts=3)
        res = _run(spec, Target.emulator(emu.url), tmp_path)
    df = res.records()
    assert len(df) == 24 and df["retries"].max() >= 1
    assert (df.loc[df["retries"] > 0, "status"] == "ok").any()


def test_bounded_by_duration(target: Target, tmp_path: Path) -> None:
    res = _run(BurstSpec(MODEL, users=3, duration_s=0.8, max_tokens=8), target, tmp_path)
    assert res.n_requests > 3 and res.wall_s < 10
    df: pd.DataFrame = res.records()
    assert (df["start"] - df["start"].min()).max() < 0.8 + 0.5


def test_sigv4_signatures_verify_strictly(tmp_path: Path) -> None:
    """The emulator in strict mode recomputes SigV4: our botocore-signed aiohttp requests must match."""
    from bedrock_lab.emulator import run_emulator

    for secret, kind in (("testing", None), ("another-secret", "validation")):
        with run_emulator(seed=0, mode="thread", strict_auth=True, credentials={"testing": secret},
                          latency={"ttft_ms": 5.0, "tokens_per_s": 4000.0, "output_median_tokens": 8}) as emu:  # fmt: skip
            for api in ("converse-stream", "invoke"):
                res = _run(BurstSpec("us.anthropic.claude-3-haiku-20240307-v1:0", api=api, users=1, requests=2,
                                     max_tokens=8), Target.emulator(emu.url), tmp_path / f"{secret}-{api}")  # fmt: skip
                df = res.records()
                assert set(df["error_kind"].fillna("ok")) == {kind or "ok"}, df[["error_code", "http_status"]]


def test_cancel_flushes_what_was_measured(target: Target, tmp_path: Path) -> None:
    """A cancelled burst (Jupyter interrupt, Ctrl-C) still writes every finished request."""
    spec = BurstSpec(MODEL, users=3, duration_s=60, max_tokens=8, flush_rows=10_000, flush_seconds=600)

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run_burst(spec, target, tmp_path, progress=False), timeout=1.5)

    asyncio.run(main())
    df = load_records(tmp_path)
    assert len(df) >= 3 and df["e2e_s"].notna().all()


def test_run_burst_sync_inside_a_running_loop(target: Target, tmp_path: Path) -> None:
    async def main() -> Any:  # like a notebook cell that calls the blocking API
        return run_burst_sync(BurstSpec(MODEL, users=2, requests=4, max_tokens=8), target, tmp_path, progress=False)

    assert asyncio.run(main()).n_ok == 4


@pytest.mark.parametrize("api", ["converse-stream", "invoke"])
def test_service_tier_requested_and_served(target: Target, tmp_path: Path, api: str) -> None:
    res = _run(BurstSpec("us.amazon.nova-pro-v1:0", api=api, tier="flex", users=1, requests=2, max_tokens=8),
               target, tmp_path)  # fmt: skip
    df = res.records()
    assert set(df["tier_requested"]) == {"flex"} and set(df["tier_served"]) == {"flex"}


def test_read_timeout_is_a_timeout(make_emulator: Any, tmp_path: Path) -> None:
    with make_emulator(stall=0.3, stall_ms=1500.0) as emu:
        spec = BurstSpec(MODEL, users=4, requests=16, max_tokens=16, read_timeout_s=0.4)
        res = _run(spec, Target.emulator(emu.url), tmp_path)
    df = res.records()
    errors = df[df["status"] == "error"]
    assert len(df) == 16 and len(errors) >= 1 and (df["status"] == "ok").sum() >= 4
    assert set(zip(errors["error_kind"], errors["error_code"], strict=True)) == {("timeout", "ReadTimeout")}

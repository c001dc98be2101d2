"""The Locust user (real boto3, or the direct client) and runner: records, Locust CSV, faults, distributed master + 2 workers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.engines import BurstSpec, Target, run_locust
from bedrock_lab.records import COLUMNS

MODEL = "amazon.nova-lite-v1:0"

pytestmark = pytest.mark.slow


def test_locust_single_process(target: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, users=4, duration_s=2, max_tokens=16, run_id="loc1", cell_id="c")
    res = run_locust(spec, target, tmp_path)
    assert "locust" not in sys.modules and "gevent" not in sys.modules  # never in the caller
    df = res.records(keep_chunk_times=True)
    assert len(df) >= 8 and list(df.columns) == list(COLUMNS)
    assert (df["status"] == "ok").all(), df[["error_kind", "error_code"]].value_counts()
    assert set(df["engine"]) == {"locust"} and set(df["run_id"]) == {"loc1"} and set(df["users"]) == {4}
    assert (df["ttft_s"] > 0).all() and (df["e2e_s"] >= df["ttft_s"]).all() and (df["retries"] == 0).all()
    assert df["server_ttft_s"].notna().all() and (df["output_tokens"] > 0).all()
    stats = pd.read_csv(res.csv["stats"])
    # one row per request name (model, tier, prompt size) plus Aggregated: no extra rows for TTFT
    assert list(zip(stats["Type"].fillna(""), stats["Name"], strict=True)) == [
        ("converse-stream", f"{MODEL} [no tier] small"), ("", "Aggregated")]  # fmt: skip
    # every Locust request event has its record (final totals; the CSV is a 1 s snapshot)
    assert res.totals() == {f"converse-stream {MODEL} [no tier] small": len(df)}
    (llm,) = res.llm_stats()  # the plugin's TTFT/TPOT/tokens/s, one row per request name
    assert llm["requests"] == len(df) and llm["ttft_p50_ms"] > 0 and llm["tpot_p50_ms"] > 0
    assert res.html is not None and res.html.exists()
    assert res.valid and res.health is not None and res.health.n_requests == len(df)
    assert "INVALID" not in res.summary() and str(res.html) in res.summary()


ALL_FAULTS = dict(error_500=0.05, error_503=0.05, error_408=0.05, model_not_ready=0.05, stream_throttle=0.05,
                  stream_error=0.05, drop=0.05)  # fmt: skip
EXPECTED = {"InternalServerException": "server", "ServiceUnavailableException": "server",
            "ModelTimeoutException": "timeout", "ModelNotReadyException": "throttled",
            "throttlingException": "throttled", "modelStreamErrorException": "stream"}  # fmt: skip


@pytest.mark.parametrize(("api", "client"), [("converse-stream", "boto3"), ("invoke-stream", "boto3"),
                                             ("converse-stream", "direct"), ("invoke-stream", "direct")])  # fmt: skip
def test_locust_faults_land_in_the_right_kind(make_emulator: Any, tmp_path: Path, api: str, client: str) -> None:
    with make_emulator(**ALL_FAULTS) as emu:
        spec = BurstSpec("anthropic.claude-3-haiku-20240307-v1:0", api=api, users=4, duration_s=2, max_tokens=16)
        res = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False, client=client)  # type: ignore[arg-type]
    df = res.records()
    errors = df[df["status"] == "error"]
    assert (df["status"] == "ok").sum() >= 10 and len(errors) >= 5  # the run goes on
    for kind, code in zip(errors["error_kind"], errors["error_code"], strict=True):
        # dropped connections surface from urllib3/botocore under several names (one set for both clients)
        assert kind == EXPECTED.get(code, "stream" if kind == "stream" else "connection"), (kind, code)
    assert len(set(errors["error_code"]) & set(EXPECTED)) >= 3
    # the service's message travels with each error it sent (ClientError and in-stream exception frames)
    sent = errors[errors["error_code"].isin(list(EXPECTED))]
    assert len(sent) and sent["error_message"].notna().all(), sent[["error_code", "error_message"]]
    assert res.json is not None  # Locust's own final stats count the same failures
    entries = json.loads(res.json.read_text())
    assert sum(e["num_failures"] for e in entries) == len(errors)


@pytest.mark.parametrize("mode", ["workers"])  # "processes" (Locust --processes) works too; kept out for time
def test_locust_distributed_collects_all_workers(target: Target, tmp_path: Path, mode: str) -> None:
    spec = BurstSpec(MODEL, users=4, duration_s=3, max_tokens=16, run_id="dist")
    res = run_locust(spec, target, tmp_path, workers=2, distributed=mode, html=False)
    df = res.records()
    pids = {w.split("-u")[0] for w in df["worker"]}
    assert len(pids) == 2, df["worker"].unique()
    assert len({p.name.split("-")[-2] for p in res.records_dir.glob("*.parquet")}) == 2
    # the master's totals can miss what workers finished after their last stats report; records have it all
    assert 0 <= len(df) - sum(res.totals().values()) <= spec.users * 2 and len(df) >= 8


#: what both clients must record alike for the same answers (the rest is timing, worker and request ids)
SAME = ["status", "api", "model_id", "tier_served", "output_tokens", "stop_reason", "http_status", "retries",
        "answered_model"]  # fmt: skip


@pytest.mark.parametrize("api", ["converse", "invoke"])  # the streamed APIs: test_locust_faults_land_in_the_right_kind
def test_direct_client_records_what_boto3_records(make_emulator: Any, tmp_path: Path, api: str) -> None:
    """The direct client (urllib3 + the burst engine's decoders) is a drop-in: same records from the same answers."""
    frames, prompts = [], []
    for client in ("boto3", "direct"):
        with make_emulator() as emu:  # a fresh emulator each: the same seeded answers
            spec = BurstSpec("anthropic.claude-3-haiku-20240307-v1:0", api=api, users=1, requests=6, max_tokens=16,
                             tier="priority", run_id=client)  # fmt: skip
            res = run_locust(spec, Target.emulator(emu.url), tmp_path / client, html=False, client=client)
        df = res.records().sort_values("seq").reset_index(drop=True)
        assert len(df) == 6 and (df["status"] == "ok").all(), df[["error_kind", "error_code", "error_message"]]
        assert df["server_request_id"].notna().all() and df["server_latency_s"].notna().all()
        frames.append(df[SAME])
        prompts.append(dict(zip(df["prompt_id"], df["input_tokens"], strict=True)))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    # a user's prompts are drawn per process (seeded with its pid): the same prompt counts the same input tokens
    common = prompts[0].keys() & prompts[1].keys()
    assert common and {k: prompts[0][k] for k in common} == {k: prompts[1][k] for k in common}


def test_direct_client_retries_like_botocore(make_emulator: Any, tmp_path: Path) -> None:
    with make_emulator(error_503=0.3) as emu:
        spec = BurstSpec(MODEL, users=4, requests=24, max_tokens=8, max_attempts=3)
        res = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False, client="direct")
    df = res.records()
    assert len(df) == 24 and df["retries"].max() >= 1 and df["retries"].max() <= 2
    assert (df.loc[df["retries"] > 0, "status"] == "ok").any()
    # only what the last attempt got is an error: a 503 after 2 retries
    assert set(df.loc[df["status"] == "error", "error_code"]) <= {"ServiceUnavailableException"}


def test_run_locust_rejects_an_unknown_client(target: Target, tmp_path: Path) -> None:
    from bedrock_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="client.*lean.*boto3, direct"):
        run_locust(BurstSpec(MODEL, users=1, requests=1), target, tmp_path, client="lean")  # type: ignore[arg-type]


def test_direct_client_over_tls_trusts_the_given_ca_only(tmp_path: Path) -> None:
    from conftest import FAST

    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, latency=FAST, tls=True) as emu:
        spec = BurstSpec(MODEL, users=2, requests=4, max_tokens=8)
        ok = run_locust(spec, Target.emulator(emu.url, ca_bundle=emu.ca_bundle), tmp_path / "ca", html=False,
                        client="direct").records()  # fmt: skip
        # without the emulator's CA its certificate is not trusted (botocore's default bundle): no request gets through
        bad = run_locust(spec, Target.emulator(emu.url), tmp_path / "none", html=False, client="direct").records()
    assert len(ok) == 4 and (ok["status"] == "ok").all(), ok[["error_code", "error_message"]]
    assert len(bad) == 4 and set(bad["error_kind"]) == {"connection"} and set(bad["error_code"]) == {"SSLError"}
    assert bad["error_message"].str.contains("CERTIFICATE_VERIFY_FAILED").all()

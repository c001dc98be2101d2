"""The Locust user (real boto3) and runner: records, Locust CSV, faults, distributed master + 2 workers."""

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


@pytest.mark.parametrize("api", ["converse-stream", "invoke-stream"])
def test_locust_faults_land_in_the_right_kind(make_emulator: Any, tmp_path: Path, api: str) -> None:
    with make_emulator(**ALL_FAULTS) as emu:
        spec = BurstSpec("anthropic.claude-3-haiku-20240307-v1:0", api=api, users=4, duration_s=2, max_tokens=16)
        res = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False)
    df = res.records()
    errors = df[df["status"] == "error"]
    assert (df["status"] == "ok").sum() >= 10 and len(errors) >= 5  # the run goes on
    for kind, code in zip(errors["error_kind"], errors["error_code"], strict=True):
        # dropped connections surface from urllib3/botocore under several names
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

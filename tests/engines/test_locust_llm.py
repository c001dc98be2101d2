"""Locust that speaks LLM: TTFT, TPOT and tokens/s in Locust's web UI (its data endpoint and report), aggregated
from workers to the master, without a second request row; the tier in the request name; the --bl-* options in
--help and in the web UI's start form. Real Locust processes against the embedded emulator over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bedrock_lab.cellspec import CLI_FIELDS
from bedrock_lab.cli import main
from bedrock_lab.engines import LOCUSTFILE, BurstSpec, Target, run_locust
from bedrock_lab.engines.llm_stats import RESOLUTION, LlmStats
from bedrock_lab.engines.locust_runner import free_port
from bedrock_lab.records import load_records
from bedrock_lab.stats import tokens_per_second

MODEL = "amazon.nova-lite-v1:0"
REPO = Path(__file__).resolve().parents[2]
NAME = f"converse-stream {MODEL} [priority] small"  #: "<type> <name>": the LLM stats key

pytestmark = pytest.mark.slow


def _nearest_rank(values: Any, q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q, method="inverted_cdf"))


def _assert_close_to_records(row: dict[str, Any], ok: pd.DataFrame) -> None:
    """Each percentile of the plugin is the records' nearest-rank percentile within the histogram's resolution."""
    metrics = {"ttft": ok["ttft_s"] * 1000.0, "tpot": ok["tpot_s"] * 1000.0, "tps": tokens_per_second(ok)}
    for key, values in metrics.items():
        suffix = "tok_s" if key == "tps" else "ms"
        for q in (0.5, 0.95, 0.99):
            got, want = row[f"{key}_p{round(q * 100)}_{suffix}"], _nearest_rank(values.dropna(), q)
            assert got is not None and abs(got - want) <= want * RESOLUTION, (key, q, got, want)
    assert row["output_tokens"] == int(ok["output_tokens"].sum())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:  # loopback only
        body = resp.read().decode()
        return json.loads(body) if resp.headers.get_content_type() == "application/json" else body


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10).close()


def _poll(cond: Callable[[], Any], timeout: float, proc: subprocess.Popen[bytes], what: str) -> Any:
    """Poll ``cond`` until it returns something truthy; fail if Locust exited or the deadline passed."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"Locust exited (rc {proc.returncode}) while waiting for {what}"
        try:
            value = cond()
        except OSError:  # the web UI is not listening yet
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling a condition, not synchronising by sleep


def test_web_ui_serves_llm_stats_close_to_the_records(emu: Any, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    records = tmp_path / "records"
    env = {**os.environ, "PYTHONPATH": str(REPO), "BEDROCK_LAB_PARENT_PID": str(os.getpid())}
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", emu.url, "--web-host", "127.0.0.1",
           "--web-port", str(port), "--autostart", "-u", "4", "-r", "4", "--loglevel", "WARNING",
           "--bl-tier", "priority", "--bl-max-tokens", "16", "--bl-out", str(records), "--bl-run-id", "ui"]  # fmt: skip
    log = tmp_path / "locust.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    try:
        # the LLM stats grow while the test runs (served live by the data endpoint)
        _poll(lambda: any(r["requests"] >= 60 for r in _get(base + "/bedrock-lab/stats")["stats"]), 90, proc,
              "60 requests in the LLM stats")  # fmt: skip
        page = _get(base + "/")
        args = json.loads(re.search(r"window\.templateArgs = (\{.*?\})\s*\n", page).group(1))  # type: ignore[union-attr]
        # the --bl-* options are in the start form, with their current values
        assert {"bl_" + f.replace("-", "_") for f in CLI_FIELDS.values()} <= set(args["extra_options"])
        assert args["extra_options"]["bl_tier"]["default_value"] == "priority"
        assert args["extended_tabs"] == [{"title": "LLM", "key": "bedrock-lab-llm"}]
        _post(base + "/stop")
        _poll(lambda: _get(base + "/stats/requests")["state"] == "stopped", 30, proc, "the test to stop")
        live = _get(base + "/stats/requests")
        report = _get(base + "/stats/report")
        llm = _get(base + "/bedrock-lab/stats")
        csv = _get(base + "/bedrock-lab/stats.csv")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # one request row per request name, the tier in it, no "ttft" row
    assert [(s["method"], s["name"]) for s in live["stats"]] == [("converse-stream", f"{MODEL} [priority] small"),
                                                                  ("", "Aggregated")]  # fmt: skip
    assert live["extended_stats"][0]["key"] == "bedrock-lab-llm" and live["extended_stats"][0]["data"]
    df = load_records(records)
    ok = df[df["status"] == "ok"]
    assert len(ok) >= 60 and set(ok["tier_requested"]) == {"priority"}
    (row,) = llm["stats"]
    assert row["name"] == NAME
    # stopped, flushed: every request event has its record and vice versa (a user killed at stop has neither)
    assert row["requests"] == len(ok) == live["stats"][0]["num_requests"] - live["stats"][0]["num_failures"]
    _assert_close_to_records(row, ok)
    assert 'id="bedrock-lab-llm"' in report and NAME in report
    assert csv.splitlines()[0].startswith('"Name","# requests","TTFT p50 (ms)"') and NAME in csv


def test_distributed_llm_stats_are_merged_on_the_master(target: Target, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, tier="priority", users=4, duration_s=3, max_tokens=16, run_id="llm")
    res = run_locust(spec, target, tmp_path, workers=2)
    df = res.records()
    assert len({w.split("-u")[0] for w in df["worker"]}) == 2  # both workers sent requests
    stats = pd.read_csv(res.csv["stats"])
    assert list(stats["Name"]) == [f"{MODEL} [priority] small", "Aggregated"] and "ttft" not in set(stats["Type"])
    (row,) = res.llm_stats()
    # the plugin's counts travel in the same worker report as Locust's own: they agree exactly
    (entry,) = json.loads(res.json.read_text())  # type: ignore[union-attr]
    assert row["name"] == NAME and row["requests"] == entry["num_requests"] - entry["num_failures"] > 0
    ok = df[df["status"] == "ok"]
    assert row["requests"] <= len(ok)  # records can hold what finished after the last report
    if row["requests"] == len(ok):
        _assert_close_to_records(row, ok)
    assert res.html is not None and NAME in res.html.read_text() and 'id="bedrock-lab-llm"' in res.html.read_text()
    assert str(res.llm_json) in res.summary()


def test_locust_help_lists_the_bl_options(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["locust", "--locust-help"]) == 0
    out = capfd.readouterr().out
    assert "bedrock-lab options" in out and "--headless" in out  # Locust's help, with our group
    for flag in [*CLI_FIELDS.values(), "out", "run-id", "aws-region", "llm-json"]:
        assert f"--bl-{flag} " in out or f"--bl-{flag}\n" in out, flag
    assert "--bl-ttft-events" not in out and "[BEDROCK_LAB_MODEL]" in out


def test_cli_prints_percentiles_and_paths(emu: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["locust", "--endpoint", emu.url, "--users", "2", "--requests", "20", "--max-tokens", "16",
               "--tier", "flex", "--out", str(tmp_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"records: {tmp_path / 'records'}" in out and f"Locust HTML report: {tmp_path / 'locust.html'}" in out
    assert f"Locust CSV: {tmp_path / 'locust_stats.csv'}" in out and str(tmp_path / "locust_llm.json") in out
    assert f"{MODEL} [flex] small: 20 requests" in out
    ttft = load_records(tmp_path / "records")["ttft_s"] * 1000.0
    line = next(x for x in out.splitlines() if x.strip().startswith("TTFT"))
    p50, p95, p99 = (float(v) for v in re.findall(r"[\d.]+", line.split("TTFT", 1)[1])[:3])
    assert p50 == pytest.approx(float(np.quantile(ttft, 0.5)), abs=0.01)  # bedrock_lab.stats: linear quantiles
    assert p50 <= p95 <= p99
    for title in ("end-to-end", "time per output token", "output tokens/s"):
        assert title in out


def test_histogram_merge_equals_one_process() -> None:
    """Workers' partial reports merged on the master give the stats of all requests in one process."""
    rng = np.random.default_rng(0)
    values = rng.lognormal(3, 0.5, 3000)
    whole, master = LlmStats(), LlmStats()
    parts = [LlmStats() for _ in range(3)]
    for i, v in enumerate(values):
        for s in (whole, parts[i % 3]):
            s.add("n", ttft_ms=v, tpot_ms=v / 10, tokens_per_s=1000 / v, output_tokens=5, t=float(i))
        if i % 500 == 499:  # a worker report every so often
            master.merge(json.loads(json.dumps(parts[i % 3].take())))
    for p in parts:
        master.merge(p.take())
    assert master.rows() == whole.rows()
    (row,) = whole.rows()
    for q in (0.5, 0.95, 0.99):
        want = _nearest_rank(values, q)
        assert abs(row[f"ttft_p{round(q * 100)}_ms"] - want) <= want * RESOLUTION
    assert row["requests"] == 3000 and row["output_tokens"] == 15000
    assert row["output_tokens_per_s"] == pytest.approx(15000 / 2999, rel=1e-3)

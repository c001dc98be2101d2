"""Failures fail: an unreachable target fails every cell with its connection error and stops the sweep; the
sweep's own emulator is restarted when it dies; and a failed cell (or a killed attempt's stray records) reaches
no consumer: load_sweep, results.csv, the analysis, the report's tables and the report notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pytest
from _sweep_helpers import base_sweep

from bedrock_lab.cli import main
from bedrock_lab.errors import StatsError
from bedrock_lab.params import parse_sweep
from bedrock_lab.records import RecordWriter, RequestRecord
from bedrock_lab.report import summary
from bedrock_lab.stats import analysis as an
from bedrock_lab.store import read_sweep
from bedrock_lab.sweep import STOP_AFTER_SAME_FAILURES, failed_table, load_sweep, results_table, run_sweep


@pytest.mark.slow
def test_an_unreachable_endpoint_fails_each_cell_in_seconds_and_stops_the_sweep(tmp_path: Path) -> None:
    data = base_sweep(target={"kind": "emulator", "endpoint_url": "http://127.0.0.1:9"}, order={"randomize": False})
    data["grid"]["tiers"] = ["default", "flex", "priority"]
    data["grid"]["users"] = [2, 3]
    data["cell"]["duration_s"] = 60.0
    path = tmp_path / "t.yaml"
    path.write_text(json.dumps(data))
    rc = main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"])
    assert rc == 1
    cells = json.loads((tmp_path / "out" / "t" / "manifest.json").read_text())["cells"]
    failed = [c for c in cells.values() if c["status"] == "failed"]
    skipped = [c for c in cells.values() if c["status"] == "skipped"]
    assert len(failed) == STOP_AFTER_SAME_FAILURES and len(skipped) == 6 - STOP_AFTER_SAME_FAILURES
    for c in failed:
        assert c["error"]["kind"] == "invalid_run"
        assert "Cannot connect to host 127.0.0.1:9" in c["error"]["reason"]
        assert c["duration_s"] < 45  # the breaker ended it; the cell asked for 60 s of load
        assert c["requests"] >= 20 and c["ok"] == 0
    assert all("same error" in c["error"]["evalue"] for c in skipped)
    assert results_table(tmp_path / "out" / "t").empty
    assert len(failed_table(tmp_path / "out" / "t")) == STOP_AFTER_SAME_FAILURES
    with pytest.raises(StatsError, match="every cell .* failed .*Cannot connect"):
        an.load_sweep_data(tmp_path / "out" / "t")
    from bedrock_lab.report import build_report

    html = build_report(tmp_path / "out" / "t").html.read_text()  # no numbers, but the failed cells and why
    assert "No cell of this sweep succeeded" in html and "Failed cells" in html
    assert html.count("Cannot connect to host 127.0.0.1:9") == STOP_AFTER_SAME_FAILURES


def _emulator_children() -> list[psutil.Process]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "emulator" in " ".join(p.cmdline()) and "bedrock_lab" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.mark.slow
def test_the_sweeps_emulator_is_restarted_when_it_dies_between_cells(tmp_path: Path) -> None:
    data = base_sweep(order={"randomize": False})
    data["cell"]["duration_s"] = 1.0
    cfg = parse_sweep(data, source=str(tmp_path / "t.yaml"), env={})
    lines: list[str] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("[1/2]"):  # the first cell has finished: kill the emulator the sweep started
            for p in _emulator_children():
                p.kill()
                p.wait(timeout=10)

    res = run_sweep(cfg, out=tmp_path / "out", progress=False, echo=echo)
    assert res.ok, "\n".join(lines)
    assert any("died" in s and "restarting" in s for s in lines)
    assert any(s.startswith("emulator restarted at") for s in lines)
    assert len(res.ran) == 2


# ------------------------------------------------------------------------------------- one good, one failed


def _write_cell(root: Path, cell_id: str, run_id: str, tier: str, n: int, ok: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with RecordWriter(root / "cells" / cell_id / "records", worker=run_id) as w:
        for i in range(n):
            ttft = float(rng.lognormal(np.log(0.3), 0.3))
            common: dict[str, Any] = dict(
                run_id=run_id, cell_id=cell_id, engine="burst", worker="w", seq=i, api="converse-stream",
                model_id="us.amazon.nova-lite-v1:0", tier_requested=tier, tier_served=tier, prompt_id="p",
                prompt_size="small", users=2, rate_rps=None, intended_start=None, start=1.7e9 + i * 0.1,
                schedule_lag_s=None)  # fmt: skip
            if ok:
                w.add(RequestRecord(**common, ttft_s=ttft, e2e_s=ttft + 0.5, itl_mean_s=0.01, input_tokens=10,
                                    output_tokens=50, http_status=200))  # fmt: skip
            else:
                w.add(RequestRecord(**common, ttft_s=None, e2e_s=0.001, status="error", error_kind="connection",
                                    error_code="ClientConnectorError", error_message="Cannot connect"))  # fmt: skip


def _good_and_failed_sweep(root: Path) -> Path:
    _write_cell(root, "good", "run-good-2", "default", 120, True, 1)
    _write_cell(root, "good", "run-good-1", "default", 40, False, 2)  # a killed attempt's late shards
    _write_cell(root, "bad", "run-bad-1", "flex", 60, False, 3)
    plan = {"cells": [
        {"cell_id": "good", "model_id": "us.amazon.nova-lite-v1:0", "tier": "default", "prompt_size": "small",
         "users": 2, "rate_rps": None, "region_prefix": "us.", "base_model": "amazon.nova-lite-v1:0", "repeat": 1,
         "grid_index": 0, "est_cost_usd": 0.0},
        {"cell_id": "bad", "model_id": "us.amazon.nova-lite-v1:0", "tier": "flex", "prompt_size": "small",
         "users": 2, "rate_rps": None, "region_prefix": "us.", "base_model": "amazon.nova-lite-v1:0", "repeat": 1,
         "grid_index": 1, "est_cost_usd": 0.0},
    ]}  # fmt: skip
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "cells" / "good" / "summary.json").write_text(json.dumps({"stats": {"requests": 120, "ok": 120}}))
    reason = "0 of 60 requests succeeded; first error (60x): ClientConnectorError: Cannot connect"
    (root / "manifest.json").write_text(json.dumps({"version": 1, "sweep": "mixed", "order": ["good", "bad"], "cells": {
        "good": {"status": "done", "run_id": "run-good-2"},
        "bad": {"status": "failed", "run_id": "run-bad-1", "requests": 60, "ok": 0,
                "error": {"kind": "invalid_run", "ename": "RunInvalidError", "evalue": f"cell bad is invalid: {reason}",
                          "reason": reason}},
    }}))  # fmt: skip
    (root / "sweep.yaml").write_text("name: mixed\n")
    return root


def test_every_consumer_sees_only_the_good_cell_and_only_its_run(tmp_path: Path) -> None:
    root = _good_and_failed_sweep(tmp_path / "mixed")
    df = load_sweep(root)
    assert set(df["cell_id"]) == {"good"} and set(df["run_id"]) == {"run-good-2"} and len(df) == 120
    assert any("earlier, killed attempts" in n for n in read_sweep(root).notes)
    from bedrock_lab.sweep import write_results_csv

    write_results_csv(root)
    assert list(pd.read_csv(root / "results.csv")["cell_id"]) == ["good"]
    failed = pd.read_csv(root / "failed.csv")
    assert list(failed["cell_id"]) == ["bad"] and failed["requests"].iloc[0] == 60
    assert "Cannot connect" in failed["reason"].iloc[0]

    result = an.analyze(an.load_sweep_data(root), fit=False)
    assert set(result.summary["tier"]) == {"default"} and int(result.summary["n_requests"].sum()) == 120
    assert result.comparisons.empty and set(result.costs["tier"]) == {"default"}
    table = summary.failed_cells(result)
    assert list(table["cell"]) == ["bad"] and table["requests sent"].iloc[0] == "60"
    assert "1 cell(s) of this sweep failed" in summary.executive_summary(result)[0]


@pytest.mark.slow
def test_the_report_lists_the_failed_cell_and_charts_only_the_good_one(tmp_path: Path) -> None:
    from bedrock_lab.report import build_report

    root = _good_and_failed_sweep(tmp_path / "mixed")
    html = build_report(root).html.read_text()
    failed_section = html[html.index("Failed cells"):html.index("Latency distributions")]
    assert "bad" in failed_section and "Cannot connect" in failed_section
    assert "run-bad-1" not in html and "run-good-1" not in html  # neither the failed cell nor the stray run
    assert '"tier":"flex"' not in html and '"tier": "flex"' not in html  # in no chart's data

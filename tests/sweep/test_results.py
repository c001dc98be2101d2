"""Per-cell summaries and sweep-folder readers, on hand-made records (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_lab.errors import SweepError
from bedrock_lab.records import RequestRecord, write_shard
from bedrock_lab.sweep import load_sweep, summarize_records, write_json_atomic


def _rec(i: int, *, ok: bool = True, ttft: float = 0.5, e2e: float = 1.0) -> RequestRecord:
    return RequestRecord(
        run_id="r", cell_id="c", engine="burst", worker="w0", seq=i, api="converse-stream", model_id="m",
        tier_requested="flex", tier_served="flex" if ok else None, prompt_id="p", prompt_size="small", users=2,
        rate_rps=None, intended_start=None, start=1000.0 + i, schedule_lag_s=None,
        ttft_s=ttft if ok else None, e2e_s=e2e if ok else 0.2, input_tokens=10 if ok else None,
        output_tokens=100 if ok else None, status="ok" if ok else "error",
        error_kind=None if ok else "throttled", error_code=None if ok else "ThrottlingException",
    )  # fmt: skip


def test_summary_numbers(tmp_path: Path) -> None:
    import pandas as pd

    rows = [_rec(0, ttft=0.1, e2e=1.0), _rec(1, ttft=0.2, e2e=2.0), _rec(2, ttft=0.3, e2e=3.0), _rec(3, ok=False)]
    df = pd.DataFrame([r.to_row() for r in rows])
    s = summarize_records(df)
    assert (s["requests"], s["ok"], s["errors"], s["throttled"]) == (4, 3, 1, 1)
    assert s["error_rate"] == pytest.approx(0.25)
    assert s["errors_by_kind"] == {"throttled": 1}
    assert s["ttft_p50_s"] == pytest.approx(0.2)
    assert s["e2e_mean_s"] == pytest.approx(2.0)
    assert s["input_tokens"] == 30 and s["output_tokens"] == 300
    # span: first start 1000 to last end max(1001+2, 1002+3, 1003+0.2) = 1005 -> 5 s
    assert s["wall_s"] == pytest.approx(5.0)
    assert s["rps"] == pytest.approx(3 / 5)
    assert s["tiers_served"] == {"flex": 3}
    empty = summarize_records(df.iloc[0:0])
    assert empty["requests"] == 0 and empty["error_rate"] is None and empty["ttft_p50_s"] is None


def test_load_sweep_reads_done_cells_only(tmp_path: Path) -> None:
    sweep = tmp_path / "s"
    write_json_atomic(sweep / "manifest.json", {"version": 1, "cells": {"a": {"status": "done"},
                                                                        "b": {"status": "failed"}}})  # fmt: skip
    write_json_atomic(sweep / "plan.json", {"cells": [{"cell_id": "a", "region_prefix": "us.", "repeat": 1},
                                                      {"cell_id": "b", "region_prefix": "eu.", "repeat": 1}]})  # fmt: skip
    write_shard([_rec(0), _rec(1)], sweep / "cells" / "a" / "records" / "x.parquet")
    write_shard([_rec(2)], sweep / "cells" / "b" / "records" / "x.parquet")
    df = load_sweep(sweep)
    assert len(df) == 2 and set(df["region_prefix"]) == {"us."} and set(df["cell_status"]) == {"done"}
    assert len(load_sweep(sweep, include_failed=True)) == 3
    assert not list(sweep.rglob("*.tmp"))  # atomic writes leave no temp files behind
    with pytest.raises(SweepError, match="not a sweep output folder"):
        load_sweep(tmp_path)

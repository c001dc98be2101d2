"""What the sweep runner counts as spent (its budget cap's running total): billed input, output and prompt-cache
tokens at the cell's prices, the catalog's formula; a failed attempt's records count even without a summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_lab.catalog import load_catalog
from bedrock_lab.params import parse_sweep
from bedrock_lab.plan import Cell, build_plan
from bedrock_lab.records import RecordWriter, RequestRecord
from bedrock_lab.sweep.runner import _actual_cost, _failed_cost

MODEL = "amazon.nova-lite-v1:0"  # prompt caching: reads 0.25x, writes 1x the input price


def _cell(workload: str = "cached") -> Cell:
    data = {"name": "spend", "target": {"kind": "emulator"},
            "grid": {"models": [MODEL], "tiers": ["default"], "users": [2]},
            "cell": {"workload": workload, "requests": 10, "duration_s": None, "max_tokens": 8}}  # fmt: skip
    return build_plan(parse_sweep(data, source="spend.yaml", env={})).cells[0]


def test_cache_tokens_are_spent_at_the_catalogs_cache_prices() -> None:
    cell = _cell()
    stats = {"input_tokens": 1_200, "output_tokens": 400, "cache_read_tokens": 90_000, "cache_write_tokens": 10_000}
    spent = _actual_cost(cell, {"stats": stats})
    truth = load_catalog().resolve(MODEL).cost_usd(1_200, 400, None, cache_read_tokens=90_000, cache_write_tokens=10_000)
    assert spent == pytest.approx(truth, rel=1e-9)
    # the cache tokens are most of it here: leaving them out (as before) counted under a fifth of the spend
    plain = _actual_cost(cell, {"stats": {"input_tokens": 1_200, "output_tokens": 400}})
    assert plain < 0.2 * spent


def _record(run_id: str, seq: int) -> RequestRecord:
    return RequestRecord(run_id=run_id, cell_id="c", engine="burst", worker="w", seq=seq, api="converse",
                         model_id=MODEL, tier_requested=None, tier_served="default", prompt_id="p",
                         prompt_size="small", users=2, rate_rps=None, intended_start=None, start=1000.0 + seq,
                         schedule_lag_s=None, ttft_s=None, e2e_s=0.5, input_tokens=100, output_tokens=20,
                         cache_read_tokens=1_000)  # fmt: skip


def test_a_failed_attempt_without_a_summary_is_charged_its_records(tmp_path: Path) -> None:
    cell = _cell()
    with RecordWriter(tmp_path / "records") as w:
        for i in range(6):
            w.add(_record("attempt-2", i))
        w.add(_record("attempt-1", 99))  # another attempt's shard: not this one's spend
    spent = _failed_cost(cell, tmp_path, "attempt-2", {})
    assert spent == pytest.approx(_actual_cost(cell, {"stats": {"input_tokens": 600, "output_tokens": 120,
                                                                "cache_read_tokens": 6_000}}))  # fmt: skip
    assert spent is not None and spent > 0
    assert _failed_cost(cell, tmp_path / "nothing-here", "attempt-2", {}) is None  # no records: nothing sent
    # a summary, when the notebook wrote one before failing, is what counts
    assert _failed_cost(cell, tmp_path, "attempt-2", {"stats": {"input_tokens": 1, "output_tokens": 0}}) == \
        pytest.approx(_actual_cost(cell, {"stats": {"input_tokens": 1}}))  # fmt: skip

"""stats.production: known answers on small hand-made record sets, the tables on Analysis and in write_tables,
and the analysis of real burst records made with a fallback under a tight quota (emulator over HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.catalog import CacheProfile, load_catalog
from bedrock_lab.stats import production as prod
from bedrock_lab.stats.analysis import analyze, cost_table, write_tables
from bedrock_lab.stats.slo import SLO


def _rows(n: int, **cols: Any) -> pd.DataFrame:
    base = {"run_id": "r", "cell_id": "c", "model": "Nova Lite", "model_id": "amazon.nova-lite-v1:0",
            "tier": "default", "tier_requested": None, "prompt_size": "cached", "users": 2, "status": "ok",
            "error_kind": None, "start": [float(i) for i in range(n)], "ttft_s": 0.5, "e2e_s": 1.0,
            "input_tokens": 20, "output_tokens": 50}  # fmt: skip
    base.update(cols)
    return pd.DataFrame({k: (v if isinstance(v, list) else [v] * n) for k, v in base.items()})


def test_cache_table_hit_rate_ttft_ratio_and_cost_with_cache_prices() -> None:
    # 1 write (miss) + 9 reads (hits) of a 1,600-token prefix; hits answer in 0.2 s, the miss in 0.8 s
    rec = _rows(10, cache_read_tokens=[0] + [1600] * 9, cache_write_tokens=[1600] + [0] * 9,
                ttft_s=[0.8] + [0.2] * 9)  # fmt: skip
    t = prod.cache_table(rec)
    row = t.iloc[0]
    assert (row["n_ok"], row["n_hit"], row["n_write"]) == (10, 9, 1)
    assert row["hit_rate"] == pytest.approx(0.9) and row["hit_rate_lo"] < 0.9 < row["hit_rate_hi"]
    assert row["ttft_p50_hit_s"] == pytest.approx(0.2) and row["ttft_ratio"] == pytest.approx(0.25)
    spec = load_catalog().resolve("amazon.nova-lite-v1:0")
    per_in = spec.cost_usd(1000.0, 0.0)
    cache = spec.cache or CacheProfile()
    read_m, write_m = cache.read_multiplier, cache.write_multiplier
    expected = spec.cost_usd(20.0, 50.0) + (1440.0 * read_m + 160.0 * write_m) / 1000.0 * per_in
    assert row["cost_per_1k"] == pytest.approx(1000 * expected)
    assert row["cost_per_1k_uncached"] == pytest.approx(1000 * spec.cost_usd(1620.0, 50.0))
    assert 0 < row["cost_saving"] < 1
    # the analysis' cost per 1k requests (what the decision ranks by) prices the cache the same way
    costs = cost_table(rec.assign(tier_requested=None), load_catalog())
    assert costs.iloc[0]["cost_per_1k"] == pytest.approx(row["cost_per_1k"])


def test_no_feature_no_table() -> None:
    rec = _rows(5)
    assert prod.cache_table(rec).empty and prod.agent_table(rec).empty and prod.fallback_table(rec).empty
    assert prod.turn_table(rec).empty
    old = _rows(5, cache_read_tokens=None, fallback=None, task_id=None)  # older shards: null columns
    assert not (prod.has_cache(old) or prod.has_fallback(old) or prod.has_agent(old))


def test_agent_task_latency_is_first_start_to_last_end_and_a_failed_turn_fails_the_task() -> None:
    rec = _rows(5, prompt_size="agent", task_id=["a", "a", "b", "b", "c"], turn=[1, 2, 1, 2, 1],
                start=[0.0, 1.5, 10.0, 11.0, 20.0], e2e_s=[1.0, 0.5, 1.0, 2.0, 0.25],
                stop_reason=["tool_use", "end_turn", "tool_use", None, "end_turn"],
                status=["ok", "ok", "ok", "error", "ok"])  # fmt: skip
    tasks = prod.agent_tasks(rec).set_index("task_id")
    assert tasks.loc["a", "task_s"] == pytest.approx(2.0) and tasks.loc["a", "sum_turn_s"] == pytest.approx(1.5)
    assert tasks.loc["a", "tool_turns"] == 1 and bool(tasks.loc["a", "ok"]) and not bool(tasks.loc["b", "ok"])
    t = prod.agent_table(rec).iloc[0]
    assert t["n_tasks"] == 3 and t["task_success"] == pytest.approx(2 / 3)
    assert t["turns_mean"] == pytest.approx(5 / 3)
    assert t["task_s_p50"] == pytest.approx((2.0 + 0.25) / 2)  # successful tasks only
    turns = prod.turn_table(rec).set_index("turn")
    assert turns.loc[1, "n"] == 3 and turns.loc[2, "ok_rate"] == pytest.approx(0.5)
    assert turns.loc[1, "tool_use_share"] == pytest.approx(2 / 3)


def test_fallback_goodput_gain_counts_its_answers() -> None:
    # 10 requests: 6 answered first time, 3 by the fallback, 1 failed on both; one fallback answer is too slow
    rec = _rows(10, fallback=[False] * 6 + [True] * 4, status=["ok"] * 9 + ["error"],
                error_kind=[None] * 9 + ["throttled"], e2e_s=[1.0] * 8 + [30.0, 1.0],
                answered_model=["amazon.nova-lite-v1:0"] * 6 + ["amazon.nova-micro-v1:0"] * 3 + [None])  # fmt: skip
    row = prod.fallback_table(rec, SLO(ttft_s=1.0, e2e_s=10.0)).iloc[0]
    assert row["fallback_share"] == pytest.approx(0.4)
    assert row["fallback_answer_share"] == pytest.approx(3 / 9) and row["fallback_ok_rate"] == pytest.approx(0.75)
    assert row["goodput"] == pytest.approx(0.8) and row["goodput_without"] == pytest.approx(0.6)
    assert row["goodput_gain"] == pytest.approx(0.2) and row["fallback_model"] == "amazon.nova-micro-v1:0"


def test_the_tables_are_on_the_analysis_and_written(tmp_path: Path) -> None:
    rec = _rows(12, prompt_size="agent", task_id=[f"t{i // 2}" for i in range(12)], turn=[1, 2] * 6,
                cache_read_tokens=[0] + [100] * 11, fallback=[False] * 12, tier_served="default")  # fmt: skip
    a = analyze(rec, fit=False, compare_metrics=())
    assert len(a.cache) == 1 and len(a.agent) == 1 and len(a.turns) == 2 and len(a.fallback) == 1
    names = {p.stem for p in write_tables(a, tmp_path)}
    assert {"cache", "agent", "turns", "fallback"} <= names
    plain = analyze(_rows(12), fit=False, compare_metrics=())
    assert plain.cache.empty and plain.agent.empty and plain.fallback.empty


def test_analysis_of_a_real_fallback_run_shows_the_gain(tmp_path: Path) -> None:
    from bedrock_lab.emulator import run_emulator
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

    fast = dict(ttft_ms=10.0, prefill_ms_per_1k=0.0, ttft_sigma=0.1, tokens_per_s=4000.0, jitter=0.1,
                chunk_tokens=4, contention=0.0, output_median_tokens=16, output_sigma=0.2)  # fmt: skip
    spec = BurstSpec("amazon.nova-lite-v1:0", users=4, requests=120, max_tokens=32, seed=2,
                     fallback_model="amazon.nova-micro-v1:0")  # fmt: skip
    with run_emulator(seed=0, mode="thread", latency=fast, capacity=512, tpm_quota=1000) as emu:
        df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records()
    a = analyze(df, fit=False, compare_metrics=())
    row = a.fallback.iloc[0]
    assert row["fallback_share"] > 0.2 and row["goodput_gain"] > 0.1
    assert row["goodput"] == pytest.approx(a.summary.iloc[0]["goodput"])  # the same goodput as the summary


def test_the_report_section_says_what_the_tables_hold() -> None:
    from bedrock_lab.report import production as rp

    rec = _rows(12, prompt_size="agent", task_id=[f"t{i // 2}" for i in range(12)], turn=[1, 2] * 6,
                cache_read_tokens=[0] + [100] * 11, ttft_s=[0.8] + [0.2] * 11,
                fallback=[False] * 10 + [True] * 2, answered_model="amazon.nova-micro-v1:0")  # fmt: skip
    a = analyze(rec, fit=False, compare_metrics=())
    assert rp.has_production(a)
    text = " ".join(rp.production_sentences(a))
    assert "92% of answers read the cache" in text or "91.7% of answers read the cache" in text
    assert "6 tasks succeeded" in text and "16.7% of requests went to the fallback" in text
    for table in (rp.cache_display(a), rp.agent_display(a), rp.turns_display(a), rp.fallback_display(a)):
        assert len(table) >= 1
    charts = rp.production_charts(a)
    assert set(charts) == {"cache_ttft", "agent_tasks", "fallback_goodput"}
    assert all(c.to_dict()["data"] for c in charts.values())
    assert not rp.has_production(analyze(_rows(6), fit=False, compare_metrics=()))


def test_shards_written_before_the_new_columns_read_them_as_nulls(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from bedrock_lab.records import RequestRecord, load_records, records_table

    new = ("cache_read_tokens", "cache_write_tokens", "stop_reason", "answered_model", "fallback", "task_id", "turn")
    rec = RequestRecord(run_id="r", cell_id="", engine="burst", worker="w", seq=0, api="converse", model_id="m",
                        tier_requested=None, tier_served=None, prompt_id="p", prompt_size="small", users=1,
                        rate_rps=None, intended_start=None, start=1.0, schedule_lag_s=None, ttft_s=None, e2e_s=0.5,
                        cache_read_tokens=5, fallback=True, task_id="t", turn=2)  # fmt: skip
    table = records_table([rec])
    pq.write_table(table.drop_columns(list(new)), tmp_path / "old.parquet")
    pq.write_table(table, tmp_path / "new.parquet")
    df = load_records(tmp_path).sort_values("cache_read_tokens", na_position="first")
    assert df[list(new)].iloc[0].isna().all()
    assert df.iloc[1][["cache_read_tokens", "fallback", "task_id", "turn"]].tolist() == [5, True, "t", 2]

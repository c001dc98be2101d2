"""The plan prices every workload as the engines run it: real burst runs against the emulator, the records' billed
tokens compared with the plan's cell for the same settings. ``cached``: input, cache-read and cache-write tokens
as billed (exact: the emulator writes once per run, on the first request's arrival) and priced below the same
tokens as plain input; ``agent``: every turn (tool specs on each, the tool round's call and result), within 5% of
the billed mean per request (the tool call's input is the model's, stood in for before the run) and above its first
turn. Wall time: the sweep's own emulator's ``time_scale`` scales seconds per request, not a cell's duration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.catalog import load_catalog
from bedrock_lab.params import estimate_request_tokens, parse_sweep
from bedrock_lab.plan import Cell, build_plan

MODEL = "amazon.nova-lite-v1:0"  # prompt caching (reads 0.25x, writes 1x the input price) and tools


def _cell(workload: str, *, users: int, requests: int, max_tokens: int, model: str = MODEL,
          target: dict[str, Any] | None = None) -> Cell:  # fmt: skip
    data = {"name": f"plan-{workload}", "target": target or {"kind": "emulator"},
            "grid": {"models": [model], "tiers": ["default"], "users": [users]},
            "cell": {"workload": workload, "requests": requests, "duration_s": None, "max_tokens": max_tokens}}  # fmt: skip
    plan = build_plan(parse_sweep(data, source=f"{workload}.yaml", env={}))
    assert len(plan.cells) == 1
    return plan.cells[0]


def _burst(emu: Any, tmp: Path, workload: str, *, users: int, requests: int, max_tokens: int) -> pd.DataFrame:
    from bedrock_lab.engines import BurstSpec, Target, run_burst_sync

    spec = BurstSpec(MODEL, workload=workload, users=users, requests=requests, max_tokens=max_tokens, seed=5)
    df = run_burst_sync(spec, Target.emulator(emu.url), tmp, progress=False).records()
    ok = df[df["status"] == "ok"]
    assert len(ok) == requests, df["error_code"].value_counts()
    return ok


def _input_cost(model: str, df: pd.DataFrame) -> float:
    """The records' input-side cost by the stats' formula (``ModelSpec.cost_usd`` on billed tokens)."""
    spec = load_catalog().resolve(model)
    return float(spec.cost_usd(df["input_tokens"].sum(), 0, None, cache_read_tokens=df["cache_read_tokens"].sum(),
                               cache_write_tokens=df["cache_write_tokens"].sum()))  # fmt: skip


def test_cached_is_priced_by_its_cache_reads_and_one_write_as_billed(emu: Any, tmp_path: Path) -> None:
    cell = _cell("cached", users=4, requests=24, max_tokens=4)
    ok = _burst(emu, tmp_path, "cached", users=4, requests=24, max_tokens=4)
    assert int((ok["cache_write_tokens"] > 0).sum()) == 1, "the emulator writes the prefix once"
    read, write = cell.expected_cache_tokens
    assert write == ok["cache_write_tokens"].sum() and read == ok["cache_read_tokens"].sum()
    # uncached input: the question of each request (uniform over the questions, as the engine draws them)
    per_question = ok.groupby("prompt_id")["input_tokens"].agg(["min", "max"])
    assert (per_question["min"] == per_question["max"]).all()
    local = estimate_request_tokens("cached", "small")
    assert local is not None and local.cache_prefix > 1000
    assert cell.input_tokens_per_request == pytest.approx(local.total - local.cache_prefix)
    from bedrock_lab.engines.workloads import load_workload

    assert set(per_question.index) == {item.prompt_id for item in load_workload("cached")._items}
    assert abs(per_question["min"].mean() / cell.input_tokens_per_request - 1) <= 0.01
    # the same formula as the stats, on the same tokens: the input side of the cost agrees within 1%
    planned = cell.cost_of(cell.expected_requests) - cell.expected_requests * cell.output_tokens_per_request \
        * cell.price_output_per_1k / 1000  # fmt: skip
    assert abs(planned / _input_cost(MODEL, ok) - 1) <= 0.01
    # cheaper than the same prompt billed as plain input, which a model without a cache pays
    spec = load_catalog().resolve(MODEL)
    plain = spec.cost_usd(cell.expected_requests * local.total, cell.expected_output_tokens)
    assert cell.est_cost_usd < 0.5 * plain
    haiku = _cell("cached", users=4, requests=24, max_tokens=4, model="anthropic.claude-3-haiku-20240307-v1:0")
    assert haiku.expected_cache_tokens == (0.0, 0.0) and haiku.input_tokens_per_request == pytest.approx(local.total)


def test_cached_on_aws_counts_a_write_per_concurrent_first_request() -> None:
    """On AWS the first wave of concurrent requests misses the cache (none has written it yet)."""
    cell = _cell("cached", users=4, requests=24, max_tokens=4, target={"kind": "aws"})
    local = estimate_request_tokens("cached", "small")
    assert local is not None
    assert cell.expected_cache_tokens == pytest.approx((20 * local.cache_prefix, 4 * local.cache_prefix))


def test_agent_is_priced_by_every_turn_of_its_tasks(emu: Any, tmp_path: Path) -> None:
    cell = _cell("agent", users=3, requests=24, max_tokens=64)
    ok = _burst(emu, tmp_path, "agent", users=3, requests=24, max_tokens=64)
    assert set(ok["turn"]) == {1, 2}, "one tool round, then the answer (the emulator's rule)"
    # the billed mean per request, each task prompt and turn weighted alike (the engine draws tasks uniformly)
    billed = float(ok.groupby(["prompt_id", "turn"])["input_tokens"].mean().groupby("prompt_id").mean().mean())
    assert abs(cell.input_tokens_per_request / billed - 1) <= 0.05, (cell.input_tokens_per_request, billed)
    first = float(ok[ok["turn"] == 1].groupby("prompt_id")["input_tokens"].mean().mean())
    assert cell.input_tokens_per_request > first
    local = estimate_request_tokens("agent", "small")
    assert local is not None and local.turns_per_task == 2 and local.counted < first  # the tool specs are billed
    first_turn_cost = cell.cost_of(cell.expected_requests, first)
    assert cell.est_cost_usd > first_turn_cost


def test_wall_time_scales_seconds_per_request_with_the_own_emulators_time_scale() -> None:
    def cell(target: dict[str, Any], **settings: Any) -> Cell:
        data = {"name": "ts", "target": target, "grid": {"models": [MODEL], "tiers": ["default"], "users": [2]},
                "cell": {"max_tokens": 64, **settings}, "estimates": {"cell_overhead_s": 0}}  # fmt: skip
        return build_plan(parse_sweep(data, source="ts.yaml", env={})).cells[0]

    fast = {"kind": "emulator", "emulator_overrides": {"time_scale": 0.1}}
    real, scaled = cell({"kind": "emulator"}, requests=40, duration_s=None), cell(fast, requests=40, duration_s=None)
    assert scaled.est_wall_s == pytest.approx(0.1 * real.est_wall_s)  # request-bound: 20 rounds of e2e each
    # duration-bound: the duration is wall-clock either way; the scaled emulator answers 10x as many requests
    real_d, scaled_d = cell({"kind": "emulator"}, duration_s=30), cell(fast, duration_s=30)
    assert real_d.est_wall_s == scaled_d.est_wall_s == 30
    assert scaled_d.expected_requests == pytest.approx(10 * real_d.expected_requests)
    assert scaled_d.est_cost_usd == pytest.approx(10 * real_d.est_cost_usd)
    # only the emulator the runner starts with these overrides: a running one (endpoint_url) and AWS are unscaled
    running = {**fast, "endpoint_url": "http://127.0.0.1:8788"}
    assert cell(running, requests=40, duration_s=None).est_wall_s == real.est_wall_s
    # the emulator's latency knobs apply too: a 10x TTFT with no decode time
    knobs = {"kind": "emulator", "emulator_overrides": {"latency": {"ttft_ms": 4000.0, "prefill_ms_per_1k": 0.0,
                                                                    "tokens_per_s": 1e9}}}  # fmt: skip
    assert cell(knobs, requests=40, duration_s=None).est_wall_s == pytest.approx(20 * 4.0, rel=1e-6)


def test_the_plan_text_says_what_the_prices_assume() -> None:
    data = {"name": "notes", "target": {"kind": "emulator", "emulator_overrides": {"time_scale": 0.1}},
            "grid": {"models": [MODEL, "anthropic.claude-3-haiku-20240307-v1:0"], "users": [2]},
            "cell": {"workload": "cached", "duration_s": 10, "max_tokens": 16}}  # fmt: skip
    text = build_plan(parse_sweep(data, source="notes.yaml", env={})).describe()
    assert "+ 1,638 cached on amazon.nova-lite-v1:0" in text and "written once per cell, by the first request" in text
    assert "anthropic.claude-3-haiku-20240307-v1:0 caches no ~1,638-token prefix" in text
    assert "time_scale 0.1" in text and "cache read" in text
    agent = build_plan(parse_sweep({**data, "cell": {**data["cell"], "workload": "agent"}}, env={})).describe()
    assert "agent tasks priced as 2 turns each" in agent and "cached" not in agent


def test_a_sequential_cached_cells_fewest_requests_carry_the_whole_write() -> None:
    data = {"name": "seq", "target": {"kind": "aws"}, "grid": {"models": [MODEL], "users": [8]},
            "cell": {"workload": "cached", "duration_s": 120, "max_tokens": 16, "sequential": "verdict"},
            "slo": {"ttft_p95_s": 1.0}}  # fmt: skip
    cell = build_plan(parse_sweep(data, source="seq.yaml", env={})).cells[0]
    assert cell.min_requests_expected is not None and cell.min_requests_expected < cell.expected_requests
    # eight first-wave writes over the fewest requests: dearer per request than over the maximum's
    assert cell.est_cost_min_usd is not None and cell.est_cost_min_usd > cell.cost_of(cell.min_requests_expected)


def test_sparse_open_loop_arrivals_write_the_cache_again_after_its_ttl() -> None:
    """Poisson arrivals at 1 per 10 minutes mostly find the 5-minute entry expired: P(gap > TTL) = e^-0.5."""
    import math

    def cell(rate: float) -> Cell:
        data = {"name": "sparse", "target": {"kind": "emulator"}, "grid": {"models": [MODEL], "rates_rps": [rate]},
                "cell": {"workload": "cached", "requests": 11, "duration_s": None, "max_tokens": 16}}  # fmt: skip
        return build_plan(parse_sweep(data, source="sparse.yaml", env={})).cells[0]

    local = estimate_request_tokens("cached", "small")
    assert local is not None
    _, write = cell(1 / 600).expected_cache_tokens
    assert write == pytest.approx(local.cache_prefix * (1 + 10 * math.exp(-0.5)))
    assert cell(5.0).expected_cache_tokens[1] == pytest.approx(local.cache_prefix)  # steady: one write

"""The ``agent`` workload on InvokeModel and InvokeModelWithResponseStream (issue #13): the Anthropic Messages body
(``tools``, ``tool_choice``, ``tool_use`` / ``tool_result`` blocks, ``input_json_delta`` stream events) and the
Nova messages-v1 body (``toolConfig``, Converse's blocks and events), in both engines, against a real emulator.
Each task is a tool call, then the final answer after the tool's result; the tool input satisfies its schema. Also on
InvokeModel: the guardrail cell option (recorded as guardrail_intervened) and the cached workload's cache reads."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.engines.formats import ResponseParser, build_request
from bedrock_lab.engines.workloads import load_workload
from bedrock_lab.errors import ConfigError

LATENCY = dict(ttft_ms=20.0, ttft_sigma=0.05, tokens_per_s=4000.0, jitter=0.1, chunk_tokens=4, contention=0.0,
               output_median_tokens=16, output_sigma=0.2)  # fmt: skip
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-lite-v1:0"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=LATENCY, capacity=512) as e:
        yield e


def _check_tasks(df: pd.DataFrame) -> None:
    assert (df["status"] == "ok").all(), df[["error_kind", "error_code", "error_message"]].dropna().head()
    assert df["task_id"].notna().all() and set(df["turn"]) == {1, 2}
    complete = 0
    for _, task in df.groupby("task_id"):
        task = task.sort_values("turn")
        if len(task) < 2:  # the run's bound fell between a task's turns
            continue
        complete += 1
        assert task["stop_reason"].tolist() == ["tool_use", "end_turn"]
        assert task["input_tokens"].iloc[1] > task["input_tokens"].iloc[0], "turn 2 carries the tool call + result"
    assert complete >= 3


@pytest.mark.parametrize("api", ["invoke", "invoke-stream"])
@pytest.mark.parametrize("model", [CLAUDE, NOVA])
def test_agent_on_invoke_in_the_burst_engine(emu: Any, tmp_path: Path, api: str, model: str) -> None:
    spec = BurstSpec(model, api=api, workload="agent", users=2, requests=12, max_tokens=32, seed=4)
    df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records()
    assert len(df) == 12
    _check_tasks(df)
    assert (df["api"] == api).all()


def test_agent_on_anthropic_invoke_stream_in_locust(emu: Any, tmp_path: Path) -> None:
    spec = BurstSpec(CLAUDE, api="invoke-stream", workload="agent", users=2, requests=8, max_tokens=32, seed=4)
    df = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False).records()
    assert len(df) == 8
    _check_tasks(df)


def test_second_turn_is_an_anthropic_body_with_tool_use_and_tool_result() -> None:
    agent = load_workload("agent").conversation(random.Random(0))
    first = agent.next()
    body1 = json.loads(build_request("invoke", CLAUDE, first.turns, system=first.system, options=first.options).body)
    assert body1["tool_choice"] == {"type": "any"}
    assert {t["name"] for t in body1["tools"]} == {"get_weather", "find_opening_hours"}
    assert all("input_schema" in t and "toolSpec" not in t for t in body1["tools"])
    agent.observe(first, "", True, [{"toolUseId": "toolu_bdrk_1", "name": "get_weather", "input": {"city": "Oslo"}}])
    second = agent.next()
    body2 = json.loads(build_request("invoke-stream", CLAUDE, second.turns, system=second.system,
                                     options=second.options).body)  # fmt: skip
    assert [m["role"] for m in body2["messages"]] == ["user", "assistant", "user"]
    assert body2["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_bdrk_1", "name": "get_weather",
                                                "input": {"city": "Oslo"}}]  # fmt: skip
    (result,) = body2["messages"][2]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_bdrk_1"
    assert "Oslo" in result["content"][0]["text"]
    assert "tool_choice" not in body2


def test_a_body_format_without_tools_is_a_config_error() -> None:
    item = load_workload("agent").conversation(random.Random(0)).next()
    with pytest.raises(ConfigError, match="body format with tools"):
        build_request("invoke", "amazon.titan-text-express-v1", item.turns, options=item.options)


def test_parser_reads_anthropic_tool_use_from_stream_chunks_and_bodies() -> None:
    p = ResponseParser("invoke-stream", "anthropic")
    chunks = [{"type": "message_start", "message": {"usage": {"input_tokens": 12, "output_tokens": 1}}},
              {"type": "content_block_start", "index": 0,
               "content_block": {"type": "tool_use", "id": "toolu_bdrk_9", "name": "get_weather", "input": {}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"ci'}},
              {"type": "content_block_delta", "index": 0,
               "delta": {"type": "input_json_delta", "partial_json": 'ty": "Oslo"}'}},
              {"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
              {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 12,
                                                                             "outputTokenCount": 7}}]  # fmt: skip
    content = [p.feed_invoke_chunk(c) for c in chunks]
    assert content[2] == '{"ci', "the first input fragment is the answer's first content"
    assert p.tool_uses == [{"toolUseId": "toolu_bdrk_9", "name": "get_weather", "input": {"city": "Oslo"}}]
    assert p.text == "" and p.stop_reason == "tool_use" and p.output_tokens == 7
    whole = ResponseParser("invoke", "anthropic")
    whole.feed_invoke_body({"content": [{"type": "text", "text": "Looking."},
                                        {"type": "tool_use", "id": "t2", "name": "x", "input": {"a": 1}}],
                            "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 4}})  # fmt: skip
    assert whole.text == "Looking." and whole.tool_uses == [{"toolUseId": "t2", "name": "x", "input": {"a": 1}}]


@pytest.mark.parametrize("api", ["invoke", "invoke-stream"])
def test_guardrail_cell_option_on_invoke_records_guardrail_intervened(emu: Any, tmp_path: Path, api: str) -> None:
    """The guardrail goes in InvokeModel's headers; the body's amazon-bedrock-guardrailAction becomes the record's
    stop reason, as Converse names it (the anthropic body alone would say end_turn)."""
    block = BurstSpec(CLAUDE, api=api, users=2, requests=6, max_tokens=32, seed=3, guardrail="labguardblock:1")
    df = run_burst_sync(block, Target.emulator(emu.url), tmp_path / "block", progress=False).records()
    assert (df["status"] == "ok").all() and (df["stop_reason"] == "guardrail_intervened").all()
    passing = BurstSpec(CLAUDE, api=api, users=2, requests=6, max_tokens=32, seed=3, guardrail="labguardpass:DRAFT")
    df = run_burst_sync(passing, Target.emulator(emu.url), tmp_path / "pass", progress=False).records()
    assert (df["status"] == "ok").all() and set(df["stop_reason"]) <= {"end_turn", "max_tokens"}


@pytest.mark.parametrize("api", ["invoke", "invoke-stream"])
@pytest.mark.parametrize("model", ["anthropic.claude-sonnet-4-5-20250929-v1:0", NOVA])
def test_cached_workload_on_invoke_reads_the_cache(emu: Any, tmp_path: Path, api: str, model: str) -> None:
    """The cached workload's cache point in the InvokeModel body (anthropic cache_control, nova cachePoint): the
    first request writes the shared prefix, the later ones read it."""
    spec = BurstSpec(model, api=api, workload="cached", users=1, requests=4, max_tokens=16, seed=5)
    df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records().sort_values("start")
    assert (df["status"] == "ok").all(), df[["error_code", "error_message"]].dropna().head()
    reads, writes = df["cache_read_tokens"].tolist(), df["cache_write_tokens"].tolist()
    assert reads[0] + writes[0] >= 1000, "the first request writes (or reads what an earlier test on this emulator wrote)"
    assert all(r >= 1000 for r in reads[1:]) and not any(writes[1:]), (reads, writes)

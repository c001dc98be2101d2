"""Production workloads and request options (issue 13) in both engines, against a real emulator over HTTP.

- Request shapes: every request the builders make with the new options passes botocore's own parameter
  validation of the bedrock-runtime model (what the real client checks before sending to AWS).
- ``cached``: the first request writes the prompt cache, later ones read it (``cacheReadInputTokens``) and get
  their first token sooner (the emulator skips the cached prefix's prefill).
- ``agent``: tasks of a tool call then a final answer; each turn a record with its task and turn; the tool call's
  input satisfies the tool's schema (a structured-output round trip), in the burst engine and in Locust (boto3).
- Cell options: a guardrail that always intervenes ends every answer with ``guardrail_intervened``; stop sequences
  reach the service.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pandas as pd
import pytest
from botocore.validate import ParamValidator

from bedrock_lab.engines import BurstSpec, Target, run_burst_sync, run_locust
from bedrock_lab.engines.fallback import request_options
from bedrock_lab.engines.formats import RequestOptions, ResponseParser, build_request
from bedrock_lab.engines.workloads import WorkItem, load_workload, validate_answer
from bedrock_lab.errors import ConfigError

#: a 1,600-token cached prefix with a visible prefill (150 ms per 1k tokens) and otherwise fast answers
LATENCY = dict(ttft_ms=20.0, prefill_ms_per_1k=150.0, ttft_sigma=0.05, tokens_per_s=4000.0, jitter=0.1,
               chunk_tokens=4, contention=0.0, output_median_tokens=16, output_sigma=0.2)  # fmt: skip
MODEL = "amazon.nova-lite-v1:0"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    from bedrock_lab.emulator import run_emulator

    with run_emulator(seed=0, mode="thread", latency=LATENCY, capacity=512) as e:
        yield e


def _validate(operation: str, kwargs: dict[str, Any]) -> None:
    """botocore's client-side validation of the call's parameters (raises on a shape AWS would not accept)."""
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    report = ParamValidator().validate(kwargs, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("api", ["converse", "converse-stream"])
def test_every_new_option_is_a_valid_converse_request(api: str) -> None:
    rng = random.Random(0)
    agent = load_workload("agent").conversation(rng)
    first = agent.next()
    agent.observe(first, "", True, [{"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Oslo"}}])
    second = agent.next()
    cached = load_workload("cached").conversation(rng).next()
    for item in (first, second, cached):
        opts = request_options(item, "END|###", "labguardpass:1")
        prep = build_request(api, MODEL, item.turns, system=item.system, max_tokens=64, tier="flex", options=opts)
        _validate("Converse" if api == "converse" else "ConverseStream", prep.boto3_kwargs)
    kw = build_request(api, MODEL, second.turns, system=second.system,
                       options=request_options(second, None, None)).boto3_kwargs  # fmt: skip
    assert [m["role"] for m in kw["messages"]] == ["user", "assistant", "user"]
    assert "toolResult" in kw["messages"][2]["content"][0] and "toolChoice" not in kw["toolConfig"]
    assert kw_first_choice(first) == {"any": {}}
    sys_blocks = build_request(api, MODEL, cached.turns, system=cached.system,
                               options=cached.options).boto3_kwargs["system"]  # fmt: skip
    assert sys_blocks[-1] == {"cachePoint": {"type": "default"}}


def kw_first_choice(item: WorkItem) -> Any:
    return build_request("converse", MODEL, item.turns, options=item.options).boto3_kwargs["toolConfig"]["toolChoice"]


def test_invoke_takes_stop_sequences_and_guardrail_headers_but_not_tools() -> None:
    opts = RequestOptions(stop_sequences=("END",), guardrail=("labguardpass", "1"))
    prep = build_request("invoke", "anthropic.claude-3-haiku-20240307-v1:0", "hi", options=opts)
    _validate("InvokeModel", prep.boto3_kwargs)
    assert prep.headers["X-Amzn-Bedrock-GuardrailIdentifier"] == "labguardpass"
    assert b'"stop_sequences": ["END"]' in prep.body
    with pytest.raises(ConfigError, match="body format with tools"):  # anthropic and nova bodies take tools
        build_request("invoke", "meta.llama3-8b-instruct-v1:0", "hi", options=RequestOptions(tools=({"toolSpec": {}},)))
    with pytest.raises(ConfigError, match="no stop sequences"):
        build_request("invoke", "meta.llama3-8b-instruct-v1:0", "hi", options=RequestOptions(stop_sequences=("x",)))


def test_parser_reads_tool_use_and_cache_usage_from_stream_events_and_bodies() -> None:
    p = ResponseParser("converse-stream", "converse")
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"}),
              ("contentBlockStart", {"start": {"toolUse": {"toolUseId": "t1", "name": "get_weather"}},
                                     "contentBlockIndex": 0}),
              ("contentBlockDelta", {"delta": {"toolUse": {"input": '{"city": "Os'}}, "contentBlockIndex": 0}),
              ("contentBlockDelta", {"delta": {"toolUse": {"input": 'lo"}'}}, "contentBlockIndex": 0}),
              ("contentBlockStop", {"contentBlockIndex": 0}), ("messageStop", {"stopReason": "tool_use"}),
              ("metadata", {"usage": {"inputTokens": 5, "outputTokens": 9, "cacheReadInputTokens": 1600,
                                      "cacheWriteInputTokens": 0}})]  # fmt: skip
    content = [p.feed_converse_event(k, v) for k, v in events]
    assert content[2] and content[3], "tool input fragments are content (they time the first token)"
    assert p.text == "" and p.tool_uses == [{"toolUseId": "t1", "name": "get_weather", "input": {"city": "Oslo"}}]
    assert (p.stop_reason, p.cache_read_tokens, p.cache_write_tokens) == ("tool_use", 1600, 0)
    b = ResponseParser("converse", "converse")
    b.feed_converse_body({"output": {"message": {"content": [{"toolUse": {"toolUseId": "t", "name": "n",
                                                                          "input": {"a": 1}}}]}},
                          "stopReason": "tool_use", "usage": {"cacheWriteInputTokens": 7}})  # fmt: skip
    assert b.tool_uses[0]["input"] == {"a": 1} and b.cache_write_tokens == 7
    a = ResponseParser("invoke", "anthropic")
    a.feed_invoke_body({"content": [], "usage": {"input_tokens": 3, "output_tokens": 4, "cache_read_input_tokens": 9,
                                                 "cache_creation_input_tokens": 2}})  # fmt: skip
    assert (a.cache_read_tokens, a.cache_write_tokens) == (9, 2)
    n = ResponseParser("invoke", "nova")
    n.feed_invoke_body({"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": "end_turn",
                        "usage": {"inputTokens": 3, "outputTokens": 1, "cacheReadInputTokenCount": 11,
                                  "cacheWriteInputTokenCount": 0}})  # fmt: skip
    assert (n.cache_read_tokens, n.cache_write_tokens) == (11, 0)


def test_a_tool_call_must_satisfy_the_tools_schema() -> None:
    item = load_workload("agent").conversation(random.Random(0)).next()
    good = {"toolUseId": "t", "name": "get_weather", "input": {"city": "Oslo", "unit": "celsius"}}
    assert validate_answer(item, "", [good]) is None
    for bad in ({"city": 3}, {"unit": "celsius"}, {"city": "Oslo", "unit": "kelvin"}):
        assert validate_answer(item, "", [{**good, "input": bad}]) == "InvalidToolInput", bad
    assert validate_answer(item, "", [{**good, "name": "nope"}]) == "InvalidToolInput"
    assert validate_answer(item, "", []) == "EmptyResponse"


def test_cached_workload_first_request_writes_later_ones_read_and_start_sooner(emu: Any, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, workload="cached", users=1, requests=8, max_tokens=16, seed=1)
    df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records().sort_values("start")
    assert (df["status"] == "ok").all()
    first, later = df.iloc[0], df.iloc[1:]
    assert first["cache_write_tokens"] > 1000 and first["cache_read_tokens"] == 0
    assert (later["cache_read_tokens"] == first["cache_write_tokens"]).all()
    assert later["input_tokens"].max() < 100, "cached tokens are not billed as input tokens"
    # the miss pays ~240 ms of prefill for the 1,600-token prefix; hits skip it
    assert later["ttft_s"].median() < first["ttft_s"] - 0.1, (first["ttft_s"], later["ttft_s"].tolist())


def test_cached_workload_through_boto3_in_locust(emu: Any, tmp_path: Path) -> None:
    """The same with the real boto3 client (the Locust user): usage carries cacheReadInputTokens after the write."""
    spec = BurstSpec(MODEL, workload="cached", users=1, requests=5, max_tokens=16, seed=4)
    df = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False).records().sort_values("start")
    assert len(df) == 5 and (df["status"] == "ok").all()
    reads = df["cache_read_tokens"].to_numpy()
    assert (reads[1:] > 1000).all(), reads  # the module's emulator may already hold the prefix from the burst test
    # the emulator's intended TTFT (ground truth header, no client noise): a hit skips the prefix's ~240 ms prefill
    assert df["server_ttft_s"].iloc[1:].max() < 0.15, df["server_ttft_s"].tolist()


def _check_agent(df: pd.DataFrame) -> None:
    assert (df["status"] == "ok").all(), df[["error_kind", "error_code", "error_message"]].dropna().head()
    assert df["task_id"].notna().all() and set(df["turn"]) == {1, 2}
    for _, task in df.groupby("task_id"):
        task = task.sort_values("turn")
        if len(task) < 2:  # the run's bound fell between a task's turns
            continue
        assert task["stop_reason"].tolist() == ["tool_use", "end_turn"]
        assert task["input_tokens"].iloc[1] > task["input_tokens"].iloc[0], "turn 2 carries the tool call + result"
        assert task["start"].iloc[1] >= task["start"].iloc[0] + task["e2e_s"].iloc[0] - 1e-3, "turns run in order"


def test_agent_workload_in_the_burst_engine(emu: Any, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, workload="agent", users=3, requests=24, max_tokens=32, seed=2)
    df = run_burst_sync(spec, Target.emulator(emu.url), tmp_path, progress=False).records()
    _check_agent(df)
    from bedrock_lab.stats.analysis import analyze

    a = analyze(df, fit=False, compare_metrics=())
    row = a.agent.iloc[0]
    assert row["n_tasks"] >= 10 and row["task_success"] == 1.0 and row["turns_mean"] > 1.8
    assert row["task_s_p50"] >= row["sum_turn_s_p50"] - 1e-6, "a task spans its turns"
    assert list(a.turns["turn"]) == [1, 2]


def test_agent_workload_in_locust(emu: Any, tmp_path: Path) -> None:
    spec = BurstSpec(MODEL, workload="agent", users=2, requests=16, max_tokens=32, seed=2)
    res = run_locust(spec, Target.emulator(emu.url), tmp_path, html=False)
    df = res.records()
    assert len(df) == 16
    _check_agent(df)


def test_guardrail_and_stop_sequences_as_cell_options(emu: Any, tmp_path: Path) -> None:
    block = BurstSpec(MODEL, users=2, requests=6, max_tokens=32, seed=3, guardrail="labguardblock:1")
    df = run_burst_sync(block, Target.emulator(emu.url), tmp_path / "block", progress=False).records()
    assert (df["status"] == "ok").all() and (df["stop_reason"] == "guardrail_intervened").all()
    passing = BurstSpec(MODEL, users=2, requests=6, max_tokens=32, seed=3, guardrail="labguardpass:DRAFT",
                        stop_sequences="e")  # fmt: skip
    df = run_burst_sync(passing, Target.emulator(emu.url), tmp_path / "pass", progress=False).records()
    assert (df["status"] == "ok").all() and (df["stop_reason"] == "stop_sequence").any()
    unknown = BurstSpec(MODEL, users=1, requests=2, max_tokens=8, guardrail="no-such-guardrail:1")
    res = run_burst_sync(unknown, Target.emulator(emu.url), tmp_path / "unknown", progress=False)
    assert res.records()["error_kind"].eq("validation").all()
    with pytest.raises(ConfigError, match="guardrail"):
        BurstSpec(MODEL, users=1, requests=1, guardrail="no-version")

"""Tool use through the real boto3 client (issue #13): toolConfig -> a toolUse block whose input validates against
the tool's JSON schema (Converse, ConverseStream, Anthropic Messages via InvokeModel), the toolChoice rule, the
answer in text after a toolResult, tool results billed as input, and the schema -> instance generator itself."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest
from emu_helpers import user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bedrock_lab.emulator.tools import schema_instance
from bedrock_lab.tokens import count_tokens

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"

#: a structured-output schema like the ones langchain-aws / pydantic-ai send: nested, enums, arrays, formats
REPORT = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "severity": {"type": "string", "enum": ["low", "medium", "high"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "count": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 4},
        "owner": {"type": "object", "properties": {"email": {"type": "string", "format": "email"},
                                                   "since": {"type": "string", "format": "date"}},
                  "required": ["email", "since"]},
        "ok": {"type": "boolean"},
    },
    "required": ["title", "severity", "score", "count", "tags", "owner", "ok"],
    "additionalProperties": False,
}
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _tools(*specs: tuple[str, dict[str, Any]], choice: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"tools": [{"toolSpec": {"name": n, "description": f"the {n} tool",
                                                   "inputSchema": {"json": s}}} for n, s in specs]}  # fmt: skip
    if choice is not None:
        cfg["toolChoice"] = choice
    return cfg


def _tool_use(out: dict[str, Any]) -> dict[str, Any]:
    blocks = [b["toolUse"] for b in out["output"]["message"]["content"] if "toolUse" in b]
    assert len(blocks) == 1
    return blocks[0]


def test_structured_output_round_trip(client: Any) -> None:
    """What langchain-aws' with_structured_output does: one tool, forced; the answer's input satisfies the schema."""
    out = client.converse(modelId=NOVA, messages=user("Summarise the incident."),
                          toolConfig=_tools(("report", REPORT), choice={"tool": {"name": "report"}}))  # fmt: skip
    tu = _tool_use(out)
    assert out["stopReason"] == "tool_use"
    assert tu["name"] == "report"
    assert tu["toolUseId"].startswith("tooluse_")
    jsonschema.validate(tu["input"], REPORT)
    assert out["usage"]["outputTokens"] == count_tokens(json.dumps(tu["input"]))


def test_same_request_same_input(client: Any) -> None:
    kw = {"modelId": NOVA, "messages": user("Weather in Paris?"), "toolConfig": _tools(("weather", WEATHER))}
    a, b = _tool_use(client.converse(**kw)), _tool_use(client.converse(**kw))
    assert a["input"] == b["input"]
    assert a["toolUseId"] != b["toolUseId"]


def test_auto_calls_then_answers_in_text_after_the_tool_result(client: Any) -> None:
    msgs = user("Weather in Paris?")
    first = client.converse(modelId=NOVA, messages=msgs, toolConfig=_tools(("weather", WEATHER)))
    tu = _tool_use(first)
    assert first["stopReason"] == "tool_use"
    result_text = "Sunny, 24 degrees, light wind from the west. " * 20
    turn2 = [*msgs, first["output"]["message"],
             {"role": "user", "content": [{"toolResult": {"toolUseId": tu["toolUseId"],
                                                           "content": [{"text": result_text}]}}]}]  # fmt: skip
    second = client.converse(modelId=NOVA, messages=turn2, toolConfig=_tools(("weather", WEATHER)),
                             inferenceConfig={"maxTokens": 20})  # fmt: skip
    content = second["output"]["message"]["content"]
    assert all("toolUse" not in b for b in content) and content[0]["text"]
    assert second["stopReason"] in ("end_turn", "max_tokens")
    # the tool result (and the earlier tool call) are input tokens
    assert second["usage"]["inputTokens"] >= first["usage"]["inputTokens"] + count_tokens(result_text)


def test_any_calls_a_tool_even_after_a_result(client: Any) -> None:
    msgs = [*user("Weather?"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "weather",
                                                                              "input": {"city": "Oslo"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"t": 3}}]}}]}]
    out = client.converse(modelId=NOVA, messages=msgs, toolConfig=_tools(("weather", WEATHER), ("report", REPORT),
                                                                          choice={"any": {}}))  # fmt: skip
    assert out["stopReason"] == "tool_use"
    assert _tool_use(out)["name"] in ("weather", "report")


def test_converse_stream_tool_use_events(client: Any) -> None:
    resp = client.converse_stream(modelId=NOVA, messages=user("Summarise."),
                                  toolConfig=_tools(("report", REPORT), choice={"tool": {"name": "report"}}))  # fmt: skip
    events = list(resp["stream"])
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert len(starts) == 1 and starts[0]["start"]["toolUse"]["name"] == "report"
    assert starts[0]["start"]["toolUse"]["toolUseId"].startswith("tooluse_")
    partial = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e)
    jsonschema.validate(json.loads(partial), REPORT)
    assert sum("contentBlockDelta" in e for e in events) > 1  # streamed in pieces
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["tool_use"]
    assert sum("contentBlockStop" in e for e in events) == 1
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert usage["outputTokens"] == count_tokens(partial)


def _claude(client: Any, body: dict[str, Any], stream: bool = False) -> Any:
    full = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 400, **body}
    if stream:
        r = client.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps(full))
        return [json.loads(e["chunk"]["bytes"]) for e in r["body"] if "chunk" in e]
    return json.loads(client.invoke_model(modelId=CLAUDE, body=json.dumps(full))["body"].read())


ANTHROPIC_TOOLS = {"tools": [{"name": "report", "description": "file a report", "input_schema": REPORT}],
                   "tool_choice": {"type": "tool", "name": "report"}}  # fmt: skip


def test_anthropic_messages_tool_use(client: Any) -> None:
    out = _claude(client, {"messages": [{"role": "user", "content": "Summarise."}], **ANTHROPIC_TOOLS})
    assert out["stop_reason"] == "tool_use"
    (block,) = [b for b in out["content"] if b["type"] == "tool_use"]
    assert block["id"].startswith("toolu_bdrk_") and block["name"] == "report"
    jsonschema.validate(block["input"], REPORT)


def test_anthropic_stream_input_json_delta(client: Any) -> None:
    chunks = _claude(client, {"messages": [{"role": "user", "content": "Summarise."}], **ANTHROPIC_TOOLS}, stream=True)
    types = [c["type"] for c in chunks]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    start = next(c for c in chunks if c["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["name"] == "report"
    partial = "".join(c["delta"]["partial_json"] for c in chunks if c["type"] == "content_block_delta")
    jsonschema.validate(json.loads(partial), REPORT)
    delta = next(c for c in chunks if c["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]


def test_anthropic_text_after_tool_result(client: Any) -> None:
    msgs = [{"role": "user", "content": "Summarise."},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "report", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "filed"}]}]
    out = _claude(client, {"messages": msgs, "tools": ANTHROPIC_TOOLS["tools"], "max_tokens": 30})
    assert out["content"][0]["type"] == "text"
    assert out["stop_reason"] in ("end_turn", "max_tokens")


# -- the generator on its own --------------------------------------------------------------------------------

SCHEMAS = [
    REPORT,
    {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3}},
     "required": ["n"]},
    {"type": "object", "properties": {"k": {"type": "integer", "multipleOf": 7, "minimum": 10, "maximum": 40}},
     "required": ["k"]},
    {"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
     "type": "object", "properties": {"pts": {"type": "array", "items": {"$ref": "#/$defs/pt"}, "minItems": 2}},
     "required": ["pts"]},
    {"type": "object", "properties": {"v": {"anyOf": [{"type": "null"}, {"type": "string", "format": "uuid"}]},
                                      "t": {"type": ["string", "null"], "format": "date-time"},
                                      "c": {"const": "fixed"}}, "required": ["v", "t", "c"]},
    {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
               {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]},
    {"type": "object", "properties": {}, "minProperties": 2},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_instances_validate(schema: dict[str, Any]) -> None:
    for seed in range(30):
        jsonschema.validate(schema_instance(schema, random.Random(seed)), schema)


_leaf = st.sampled_from([{"type": "string"}, {"type": "integer", "minimum": -5, "maximum": 5}, {"type": "boolean"},
                         {"type": "number", "minimum": 1, "maximum": 2}, {"enum": ["a", "b", 3]},
                         {"type": "string", "format": "email"}, {"type": "string", "minLength": 5, "maxLength": 8}])
_schema = st.recursive(_leaf, lambda inner: st.one_of(
    st.builds(lambda items, lo: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + 2}, inner,
              st.integers(0, 2)),
    st.builds(lambda props, req: {"type": "object", "properties": props,
                                  "required": [k for k in props if req]}, st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]), inner, max_size=4), st.booleans())), max_leaves=12)  # fmt: skip


@settings(derandomize=True, database=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(_schema, st.integers(0, 10_000))
def test_generated_schemas_get_valid_instances(schema: dict[str, Any], seed: int) -> None:
    jsonschema.validate(schema_instance(schema, random.Random(seed)), schema)

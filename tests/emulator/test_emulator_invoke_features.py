"""Production features on InvokeModel bodies and the shapes real client libraries send (issue #13), through the
real boto3 client: structured outputs (Converse ``outputConfig.textFormat``, which litellm's ``response_format``
and langchain-aws' ``with_structured_output(method="json_schema")`` send; Anthropic ``output_config.format``),
guardrails in InvokeModel's headers (``amazon-bedrock-guardrailAction`` / ``amazon-bedrock-trace`` in the body),
and the Nova messages-v1 body's cache points and tools. bench/clients_compat.py runs the clients themselves."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from botocore.exceptions import ClientError
from emu_helpers import user

from bedrock_lab.catalog import load_catalog

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU3 = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-lite-v1:0"
TITAN = "amazon.titan-text-express-v1"
LLAMA = "meta.llama3-1-70b-instruct-v1:0"
GPT_OSS = "openai.gpt-oss-120b-1:0"

WEATHER = {"type": "object", "additionalProperties": False, "required": ["city", "temperature_c", "conditions"],
           "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"},
                          "conditions": {"enum": ["sunny", "cloudy", "rain"]}}}  # fmt: skip


def _output_config(schema: dict[str, Any] = WEATHER) -> dict[str, Any]:
    """What litellm and langchain-aws send: the schema as a JSON string inside textFormat.structure.jsonSchema."""
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema),
                                                                               "name": "weather"}}}}  # fmt: skip


def _invoke(client: Any, model: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    out = client.invoke_model(modelId=model, body=json.dumps(body), **kw)
    return {"body": json.loads(out["body"].read()), "headers": out["ResponseMetadata"]["HTTPHeaders"]}


def _chunks(client: Any, model: str, body: dict[str, Any], **kw: Any) -> list[dict[str, Any]]:
    out = client.invoke_model_with_response_stream(modelId=model, body=json.dumps(body), **kw)
    return [json.loads(e["chunk"]["bytes"]) for e in out["body"]]


def _anthropic(**extra: Any) -> dict[str, Any]:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 400,
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}], **extra}  # fmt: skip


def _nova(**extra: Any) -> dict[str, Any]:
    return {"schemaVersion": "messages-v1", "messages": user("What is the weather in Paris?"),
            "inferenceConfig": {"maxTokens": 400}, **extra}  # fmt: skip


# -- structured outputs ----------------------------------------------------------------------------------


def test_converse_output_config_answers_json_that_satisfies_the_schema(client: Any) -> None:
    out = client.converse(modelId=SONNET, messages=user("Weather in Paris?"), inferenceConfig={"maxTokens": 400},
                          outputConfig=_output_config())  # fmt: skip
    assert out["stopReason"] == "end_turn"
    (block,) = out["output"]["message"]["content"]
    jsonschema.validate(json.loads(block["text"]), WEATHER)
    assert out["usage"]["outputTokens"] > 0


def test_converse_stream_output_config_streams_the_json_text(client: Any) -> None:
    resp = client.converse_stream(modelId=SONNET, messages=user("Weather?"), inferenceConfig={"maxTokens": 400},
                                  outputConfig=_output_config())  # fmt: skip
    events = list(resp["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    jsonschema.validate(json.loads(text), WEATHER)
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["end_turn"]


def test_output_config_is_refused_where_the_model_has_no_structured_outputs(client: Any) -> None:
    with pytest.raises(ClientError) as e:
        client.converse(modelId=NOVA, messages=user(), outputConfig=_output_config())
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "structured outputs" in e.value.response["Error"]["Message"]


def test_output_config_with_a_schema_that_is_not_json_is_refused(client: Any) -> None:
    bad = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}}
    with pytest.raises(ClientError) as e:
        client.converse(modelId=SONNET, messages=user(), outputConfig=bad)
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_anthropic_invoke_output_config_format(client: Any) -> None:
    out = _invoke(client, SONNET, _anthropic(output_config={"format": {"type": "json_schema", "schema": WEATHER}}))
    (block,) = out["body"]["content"]
    jsonschema.validate(json.loads(block["text"]), WEATHER)
    assert out["body"]["stop_reason"] == "end_turn"
    chunks = _chunks(client, SONNET, _anthropic(output_config={"format": {"type": "json_schema", "schema": WEATHER}}))
    text = "".join(c["delta"].get("text", "") for c in chunks if c.get("type") == "content_block_delta")
    jsonschema.validate(json.loads(text), WEATHER)


# -- guardrails on InvokeModel --------------------------------------------------------------------------


def test_invoke_guardrail_headers_block_with_the_action_and_trace_in_the_body(client: Any) -> None:
    blocked = load_catalog().guardrails["labguardblock"].blocked_message
    out = _invoke(client, SONNET, _anthropic(), guardrailIdentifier="labguardblock", guardrailVersion="1",
                  trace="ENABLED")  # fmt: skip
    body = out["body"]
    assert body["amazon-bedrock-guardrailAction"] == "INTERVENED"
    assert body["content"] == [{"type": "text", "text": blocked}]
    assert "labguardblock" in body["amazon-bedrock-trace"]["guardrail"]["inputAssessment"]


def test_invoke_guardrail_that_passes_says_none_and_traces_only_when_asked(client: Any) -> None:
    quiet = _invoke(client, NOVA, _nova(), guardrailIdentifier="labguardpass", guardrailVersion="DRAFT")["body"]
    assert quiet["amazon-bedrock-guardrailAction"] == "NONE"
    assert "amazon-bedrock-trace" not in quiet
    traced = _invoke(client, NOVA, _nova(), guardrailIdentifier="labguardpass", guardrailVersion="1",
                     trace="ENABLED_FULL")["body"]  # fmt: skip
    assert "labguardpass" in traced["amazon-bedrock-trace"]["guardrail"]["outputAssessments"]
    plain = _invoke(client, NOVA, _nova())["body"]
    assert "amazon-bedrock-guardrailAction" not in plain


@pytest.mark.parametrize(("model", "body", "stop_key", "stop"), [
    (NOVA, _nova(), ("stopReason",), "guardrail_intervened"),
    (TITAN, {"inputText": "Weather?", "textGenerationConfig": {"maxTokenCount": 50}},
     ("results", 0, "completionReason"), "CONTENT_FILTERED"),
    (LLAMA, {"prompt": "Weather?", "max_gen_len": 50}, ("stop_reason",), "stop"),
    (GPT_OSS, {"messages": [{"role": "user", "content": "Weather?"}], "max_completion_tokens": 50},
     ("choices", 0, "finish_reason"), "stop"),  # AWS: the OpenAI models take guardrails in the headers
])  # fmt: skip
def test_invoke_guardrail_blocks_in_each_body_format(client: Any, model: str, body: dict[str, Any],
                                                    stop_key: tuple[Any, ...], stop: str) -> None:  # fmt: skip
    out = _invoke(client, model, body, guardrailIdentifier="labguardblock", guardrailVersion="1")["body"]
    assert out["amazon-bedrock-guardrailAction"] == "INTERVENED"
    node: Any = out
    for k in stop_key:
        node = node[k]
    assert node == stop
    assert load_catalog().guardrails["labguardblock"].blocked_message in json.dumps(out)


@pytest.mark.parametrize("model", [SONNET, NOVA, TITAN])
def test_invoke_stream_guardrail_streams_the_message_and_ends_with_the_action(client: Any, model: str) -> None:
    blocked = load_catalog().guardrails["labguardblock"].blocked_message
    body = {SONNET: _anthropic(), NOVA: _nova(), TITAN: {"inputText": "Weather?"}}[model]
    chunks = _chunks(client, model, body, guardrailIdentifier="labguardblock", guardrailVersion="1",
                     trace="ENABLED")  # fmt: skip
    last = chunks[-1]
    assert last["amazon-bedrock-guardrailAction"] == "INTERVENED"
    assert "guardrail" in last["amazon-bedrock-trace"]
    assert "amazon-bedrock-invocationMetrics" in last
    if model == SONNET:
        text = "".join(c["delta"].get("text", "") for c in chunks if c.get("type") == "content_block_delta")
    elif model == NOVA:
        text = "".join(c["contentBlockDelta"]["delta"].get("text", "") for c in chunks if "contentBlockDelta" in c)
        assert [c["messageStop"]["stopReason"] for c in chunks if "messageStop" in c] == ["guardrail_intervened"]
    else:
        text = "".join(c.get("outputText", "") for c in chunks)
    assert text == blocked


@pytest.mark.parametrize(("kw", "code"), [
    ({"guardrailIdentifier": "nosuchguard", "guardrailVersion": "1"}, "ResourceNotFoundException"),
    ({"guardrailIdentifier": "labguardpass", "guardrailVersion": "7"}, "ResourceNotFoundException"),
    ({"guardrailIdentifier": "labguardpass"}, "ValidationException"),
    ({"guardrailVersion": "1"}, "ValidationException"),
    ({"guardrailIdentifier": "Not Valid!", "guardrailVersion": "1"}, "ValidationException"),
])  # fmt: skip
def test_invoke_guardrail_header_errors(client: Any, kw: dict[str, str], code: str) -> None:
    with pytest.raises(ClientError) as e:
        _invoke(client, NOVA, _nova(), **kw)
    assert e.value.response["Error"]["Code"] == code


def test_invoke_trace_header_outside_the_enum_is_refused(post: Any) -> None:
    status, _, body = post(f"/model/{NOVA}/invoke", json.dumps(_nova()), {"X-Amzn-Bedrock-Trace": "yes"})
    assert status == 400 and "ENABLED" in body["message"]


# -- the Nova messages-v1 body: cache points and tools -----------------------------------------------------


def test_nova_invoke_cache_point_writes_then_reads(client: Any) -> None:
    system = [{"text": "You are a meticulous weather analyst. " * 120 + "nova-invoke-cache"},
              {"cachePoint": {"type": "default"}}]  # fmt: skip
    first = _invoke(client, NOVA, _nova(system=system))
    second = _invoke(client, NOVA, _nova(system=system))
    u1, u2 = first["body"]["usage"], second["body"]["usage"]
    assert u1["cacheWriteInputTokenCount"] >= 1000 and u1["cacheReadInputTokenCount"] == 0
    assert u2["cacheReadInputTokenCount"] == u1["cacheWriteInputTokenCount"] and u2["cacheWriteInputTokenCount"] == 0
    assert u2["inputTokens"] < u1["inputTokens"] + u1["cacheWriteInputTokenCount"]
    assert second["headers"]["x-amzn-bedrock-cache-read-input-token-count"] == str(u2["cacheReadInputTokenCount"])
    chunks = _chunks(client, NOVA, _nova(system=system))
    meta = next(c["metadata"] for c in chunks if "metadata" in c)
    assert meta["usage"]["cacheReadInputTokenCount"] == u1["cacheWriteInputTokenCount"]
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["cacheReadInputTokenCount"] == u1["cacheWriteInputTokenCount"]


def test_nova_invoke_cache_point_on_tools_is_refused(client: Any) -> None:
    tools = {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": WEATHER}}}, {"cachePoint": {"type": "default"}}]}
    with pytest.raises(ClientError) as e:
        _invoke(client, NOVA, _nova(toolConfig=tools))
    assert e.value.response["Error"]["Code"] == "ValidationException"


def _tool_config(choice: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"tools": [{"toolSpec": {"name": "get_weather", "description": "the weather",
                                                   "inputSchema": {"json": WEATHER}}}]}  # fmt: skip
    if choice is not None:
        cfg["toolChoice"] = choice
    return cfg


def test_nova_invoke_tool_config_answers_a_tool_use_block(client: Any) -> None:
    body = _invoke(client, NOVA, _nova(toolConfig=_tool_config({"any": {}})))["body"]
    assert body["stopReason"] == "tool_use"
    (block,) = body["output"]["message"]["content"]
    tu = block["toolUse"]
    assert tu["name"] == "get_weather" and tu["toolUseId"].startswith("tooluse_")
    jsonschema.validate(tu["input"], WEATHER)
    # the tool result goes back and the model answers in text (auto)
    msgs = [*user("What is the weather in Paris?"), {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": tu["toolUseId"],
                                                         "content": [{"json": {"temp": 21}}]}}]}]  # fmt: skip
    after = _invoke(client, NOVA, _nova(messages=msgs, toolConfig=_tool_config()))["body"]
    assert after["stopReason"] in ("end_turn", "max_tokens")
    assert "text" in after["output"]["message"]["content"][0]


def test_nova_invoke_stream_tool_use_events(client: Any) -> None:
    chunks = _chunks(client, NOVA, _nova(toolConfig=_tool_config({"tool": {"name": "get_weather"}})))
    starts = [c["contentBlockStart"]["start"]["toolUse"] for c in chunks if "contentBlockStart" in c]
    assert [s["name"] for s in starts] == ["get_weather"]
    raw = "".join(c["contentBlockDelta"]["delta"]["toolUse"]["input"] for c in chunks if "contentBlockDelta" in c)
    jsonschema.validate(json.loads(raw), WEATHER)
    assert [c["messageStop"]["stopReason"] for c in chunks if "messageStop" in c] == ["tool_use"]
    assert sum("contentBlockStop" in c for c in chunks) == 1


def test_nova_invoke_tool_blocks_without_tool_config_are_refused(client: Any) -> None:
    msgs = [*user(), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "x", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}]
    with pytest.raises(ClientError) as e:
        _invoke(client, NOVA, _nova(messages=msgs))
    assert "toolConfig" in e.value.response["Error"]["Message"]


def test_count_tokens_of_a_nova_invoke_body_counts_its_tools(client: Any) -> None:
    def count(body: dict[str, Any]) -> int:  # botocore base64-encodes the blob
        return int(client.count_tokens(modelId=NOVA, input={"invokeModel": {"body": json.dumps(body)}})["inputTokens"])

    assert count(_nova(toolConfig=_tool_config())) > count(_nova())


def test_anthropic_haiku3_has_no_structured_outputs(client: Any) -> None:
    with pytest.raises(ClientError) as e:
        _invoke(client, HAIKU3, _anthropic(output_config={"format": {"type": "json_schema", "schema": WEATHER}}))
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_timing_log_carries_cache_tokens_and_the_guardrail_decision(tmp_path: Any) -> None:
    from emu_helpers import FAST, make_client

    from bedrock_lab.emulator import run_emulator

    log = tmp_path / "timing.jsonl"
    system = [{"text": "You are a meticulous weather analyst. " * 120}, {"cachePoint": {"type": "default"}}]
    with run_emulator(seed=0, time_scale=FAST, timing_log=log) as emu:
        c = make_client(emu.url)
        _invoke(c, NOVA, _nova(system=system))
        _invoke(c, NOVA, _nova(system=system), guardrailIdentifier="labguardblock", guardrailVersion="1")
        c.converse(modelId=NOVA, messages=user(), guardrailConfig={"guardrailIdentifier": "labguardpass",
                                                                  "guardrailVersion": "1"})  # fmt: skip
        c.converse(modelId=NOVA, messages=user())
    lines = sorted((json.loads(x) for x in log.read_text().splitlines()), key=lambda d: d["seq"])
    write, read, passed, plain = lines
    assert write["cache_write_tokens"] >= 1000 and write["cache_read_tokens"] == 0 and "guardrail_intervened" not in write
    assert read["cache_read_tokens"] == write["cache_write_tokens"] and read["guardrail_intervened"] is True
    assert passed["guardrail_intervened"] is False and passed["cache_read_tokens"] == 0
    assert "cache_read_tokens" not in plain and "guardrail_intervened" not in plain


def test_gpt_oss_on_converse_takes_a_system_prompt_and_tools(client: Any) -> None:
    out = client.converse(modelId=GPT_OSS, messages=user(), system=[{"text": "Be brief."}],
                          toolConfig=_tool_config({"any": {}}), inferenceConfig={"maxTokens": 200})  # fmt: skip
    assert out["stopReason"] == "tool_use"
    jsonschema.validate(out["output"]["message"]["content"][0]["toolUse"]["input"], WEATHER)


@pytest.mark.parametrize("kw", [
    {"messages": [{"role": "user", "content": [{"text": "what is this?"},
                                               {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}]}]},
    {"messages": [{"role": "user", "content": [{"document": {"format": "txt", "name": "d",
                                                             "source": {"bytes": b"text"}}}, {"text": "sum"}]}]},
    {"messages": user(), "outputConfig": _output_config()},
], ids=["image", "document", "structured-output"])  # fmt: skip
def test_gpt_oss_is_text_only_on_converse(client: Any, kw: dict[str, Any]) -> None:
    """AWS: the OpenAI models "support only text input and text output"."""
    with pytest.raises(ClientError) as e:
        client.converse(modelId=GPT_OSS, **kw)
    assert e.value.response["Error"]["Code"] == "ValidationException"

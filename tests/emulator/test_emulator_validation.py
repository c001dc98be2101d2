"""Validation parity and the remaining Converse features through the real boto3 client (issue #13): what the real
service refuses (tool blocks without toolConfig, consecutive user turns, blank text, empty content, features a
model lacks), reasoning (Anthropic thinking, Nova reasoningConfig; reasoningContent before the text, billed as
output), additionalModelResponseFields, document text billed as input, stop reasons of InvokeModel formats."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_helpers import user

from bedrock_lab.emulator.text import VOCAB
from bedrock_lab.tokens import count_tokens

NOVA = "amazon.nova-lite-v1:0"
NOVA2 = "amazon.nova-2-lite-v1:0"
SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-text-express-v1"
TOOL = {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]}


def _err(client: Any, **kw: Any) -> str:
    with pytest.raises(ClientError) as ei:
        client.converse(**kw)
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    return str(ei.value.response["Error"]["Message"])


TOOL_USE = {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "t", "input": {}}}]}
TOOL_RESULT = {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}]}


@pytest.mark.parametrize(("kw", "needle"), [
    ({"messages": [*user(), TOOL_USE, TOOL_RESULT]}, "toolConfig field must be defined"),
    ({"messages": [*user(), *user("again")]}, "alternate between user and assistant"),
    ({"messages": user("   ")}, "messages.0.content.0 is blank"),
    ({"messages": [{"role": "user", "content": []}]}, "messages.0 is empty"),
    ({"messages": user(), "system": [{"text": " "}]}, "system.0 is blank"),
])  # fmt: skip
def test_requests_the_service_refuses(client: Any, kw: dict[str, Any], needle: str) -> None:
    assert needle in _err(client, modelId=NOVA, **kw)


IMAGE = {"image": {"format": "png", "source": {"bytes": b"\x89PNG fake"}}}


@pytest.mark.parametrize(("model", "kw", "needle"), [
    (TITAN, {"system": [{"text": "Be terse."}]}, "system messages"),
    (TITAN, {"toolConfig": TOOL}, "tool use"),
    (TITAN, {"messages": [{"role": "user", "content": [{"text": "see"}, IMAGE]}]}, "image"),
    ("amazon.nova-micro-v1:0", {"messages": [{"role": "user", "content": [{"text": "see"}, IMAGE]}]}, "image"),
    (HAIKU, {"additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 2000}}},
     "reasoning"),
])  # fmt: skip
def test_features_a_model_lacks(client: Any, model: str, kw: dict[str, Any], needle: str) -> None:
    kw.setdefault("messages", user())
    assert needle in _err(client, modelId=model, **kw)


def test_streaming_tool_use_needs_the_model_feature(client: Any) -> None:
    with pytest.raises(ClientError) as ei:
        client.converse_stream(modelId="meta.llama3-1-70b-instruct-v1:0", messages=user(), toolConfig=TOOL)
    assert "streaming mode" in ei.value.response["Error"]["Message"]
    out = client.converse(modelId="meta.llama3-1-70b-instruct-v1:0", messages=user(), toolConfig=TOOL)
    assert out["stopReason"] == "tool_use"  # the same model calls tools without streaming


def test_document_text_counts_as_input(client: Any) -> None:
    doc = "Quarterly revenue grew by twelve percent while costs stayed flat across all regions."
    msgs = [{"role": "user", "content": [{"text": "Summarise"},
                                         {"document": {"format": "txt", "name": "report", "source": {"bytes": doc.encode()}}}]}]  # fmt: skip
    out = client.converse(modelId=NOVA, messages=msgs, inferenceConfig={"maxTokens": 3})
    assert out["usage"]["inputTokens"] == count_tokens("Summarise") + count_tokens(doc)


# -- reasoning ------------------------------------------------------------------------------------------------

THINK = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def test_anthropic_thinking_on_converse(client: Any) -> None:
    out = client.converse(modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 2000},
                          additionalModelRequestFields=THINK)  # fmt: skip
    content = out["output"]["message"]["content"]
    rt = content[0]["reasoningContent"]["reasoningText"]
    assert rt["text"] and rt["signature"]
    assert "text" in content[1]
    assert out["usage"]["outputTokens"] == count_tokens(rt["text"]) + count_tokens(content[1]["text"])
    assert count_tokens(rt["text"]) <= 1024


def test_reasoning_streams_before_the_text(client: Any) -> None:
    resp = client.converse_stream(modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 2000},
                                  additionalModelRequestFields=THINK)  # fmt: skip
    deltas = [(e["contentBlockDelta"]["contentBlockIndex"], e["contentBlockDelta"]["delta"]) for e in resp["stream"]
              if "contentBlockDelta" in e]  # fmt: skip
    kinds = [("reasoning" if "reasoningContent" in d else "text") for _, d in deltas]
    assert kinds[0] == "reasoning" and kinds[-1] == "text"
    assert kinds == sorted(kinds)  # every reasoning delta before the first text delta
    assert any("signature" in d.get("reasoningContent", {}) for _, d in deltas)
    assert {i for i, d in deltas if "text" in d} == {1}


def test_thinking_budget_rules(client: Any) -> None:
    assert "1024" in _err(client, modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 4000},
                          additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 100}})
    assert "max_tokens" in _err(client, modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 1500},
                                additionalModelRequestFields={"thinking": {"type": "enabled", "budget_tokens": 2000}})


def test_nova_reasoning_config(client: Any) -> None:
    out = client.converse(modelId=NOVA2, messages=user(), inferenceConfig={"maxTokens": 3000},
                          additionalModelRequestFields={"reasoningConfig": {"type": "enabled",
                                                                            "maxReasoningEffort": "low"}})  # fmt: skip
    assert "reasoningContent" in out["output"]["message"]["content"][0]


def test_anthropic_thinking_via_invoke_model(client: Any) -> None:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 2000, **THINK,
            "messages": [{"role": "user", "content": "Think first."}]}  # fmt: skip
    out = json.loads(client.invoke_model(modelId=SONNET45, body=json.dumps(body))["body"].read())
    assert [b["type"] for b in out["content"]] == ["thinking", "text"]
    assert out["content"][0]["signature"]


def test_additional_model_response_fields(client: Any) -> None:
    out = client.converse(modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 600, "stopSequences": ["the"]},
                          additionalModelResponseFieldPaths=["/stop_sequence"])  # fmt: skip
    assert out["additionalModelResponseFields"] == {"stop_sequence": "the"}
    stream = client.converse_stream(modelId=SONNET45, messages=user(), inferenceConfig={"maxTokens": 600,
                                    "stopSequences": ["the"]}, additionalModelResponseFieldPaths=["/stop_sequence"])
    stop = next(e["messageStop"] for e in stream["stream"] if "messageStop" in e)
    assert stop["additionalModelResponseFields"] == {"stop_sequence": "the"}


# -- stop reasons of the InvokeModel formats on a stop sequence ------------------------------------------------

assert VOCAB.count("the") / len(VOCAB) > 0.03  # the stop word occurs in 600 generated words almost surely


@pytest.mark.parametrize(("model", "body", "reason"), [
    (TITAN, {"inputText": "Tell a story.", "textGenerationConfig": {"maxTokenCount": 600, "stopSequences": ["the"]}},
     lambda d: d["results"][0]["completionReason"] == "STOP_CRITERIA_MET"),
    (NOVA, {"messages": [{"role": "user", "content": [{"text": "Story"}]}],
            "inferenceConfig": {"maxTokens": 600, "stopSequences": ["the"]}},
     lambda d: d["stopReason"] == "stop_sequence"),
    ("mistral.mistral-large-2402-v1:0", {"prompt": "<s>[INST] Story [/INST]", "max_tokens": 600, "stop": ["the"]},
     lambda d: d["outputs"][0]["stop_reason"] == "stop"),
])  # fmt: skip
def test_invoke_model_stop_sequence_reasons(client: Any, model: str, body: dict[str, Any], reason: Any) -> None:
    doc = json.loads(client.invoke_model(modelId=model, body=json.dumps(body))["body"].read())
    assert reason(doc)

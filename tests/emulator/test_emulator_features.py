"""Converse / InvokeModel features beyond plain text (issue #13, first slice), through the real boto3 client:
stop sequences, the anthropic SDK's newer ``anthropic_version``, and ``projectIdentifier``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_helpers import user

from bedrock_lab.emulator.text import VOCAB, count_tokens

NOVA = "amazon.nova-lite-v1:0"
CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
CLAUDE_V2 = "anthropic.claude-v2"
#: a frequent generated word: in a few hundred generated words it occurs almost surely (checked below)
WORD = "the"
LONG = 600  #: maxTokens of requests meant to run into a stop sequence


def test_word_is_frequent_in_the_generated_text() -> None:
    assert VOCAB.count(WORD) / len(VOCAB) > 0.03  # P(absent in 600 words) < 1e-8


def _claude_body(**extra: Any) -> bytes:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": LONG,
            "messages": [{"role": "user", "content": "Tell me a long story."}], **extra}  # fmt: skip
    return json.dumps(body).encode()


def _stream_chunks(resp: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(e["chunk"]["bytes"]) for e in resp["body"] if "chunk" in e]


# -- stop sequences: Converse ------------------------------------------------------------------------------


def _check_cut(text: str, stop: str, output_tokens: int) -> None:
    assert stop not in text
    assert output_tokens == count_tokens(text)
    assert output_tokens < LONG


@pytest.mark.parametrize("stop", [WORD, "he"])  # a whole word, and one that cuts inside a word ("t|he")
def test_converse_stops_before_the_stop_sequence(client: Any, stop: str) -> None:
    out = client.converse(modelId=NOVA, messages=user(),
                          inferenceConfig={"maxTokens": LONG, "stopSequences": ["zzzz", stop]})  # fmt: skip
    text = out["output"]["message"]["content"][0]["text"]
    assert out["stopReason"] == "stop_sequence"
    _check_cut(text, stop, out["usage"]["outputTokens"])
    assert out["usage"]["totalTokens"] == out["usage"]["inputTokens"] + out["usage"]["outputTokens"]


def test_converse_stop_sequence_that_never_occurs_changes_nothing(client: Any) -> None:
    out = client.converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 50, "stopSequences": ["zzzz"]})
    assert out["stopReason"] in ("end_turn", "max_tokens")
    assert out["usage"]["outputTokens"] == count_tokens(out["output"]["message"]["content"][0]["text"])


def test_converse_stream_stops_before_the_stop_sequence(client: Any) -> None:
    resp = client.converse_stream(modelId=NOVA, messages=user(),
                                  inferenceConfig={"maxTokens": LONG, "stopSequences": ["he"]})  # fmt: skip
    events = list(resp["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    stop = [e["messageStop"]["stopReason"] for e in events if "messageStop" in e]
    usage = [e["metadata"]["usage"] for e in events if "metadata" in e]
    assert stop == ["stop_sequence"]
    _check_cut(text, "he", usage[0]["outputTokens"])


def test_converse_rejects_an_empty_stop_sequence(post: Callable[..., tuple[int, dict[str, str], Any]]) -> None:
    body = json.dumps({"messages": user(), "inferenceConfig": {"stopSequences": [""]}})  # boto3 refuses to send it
    st, h, doc = post("/model/amazon.nova-lite-v1%3A0/converse", body)
    assert st == 400
    assert h["x-amzn-errortype"].startswith("ValidationException")
    assert "inferenceConfig.stopSequences" in doc["message"]


# -- stop sequences: InvokeModel (anthropic messages and text completions) -----------------------------------


def test_anthropic_messages_stop_sequence(client: Any) -> None:
    r = client.invoke_model(modelId=CLAUDE, body=_claude_body(stop_sequences=[WORD]))
    out = json.loads(r["body"].read())
    assert out["stop_reason"] == "stop_sequence"
    assert out["stop_sequence"] == WORD
    _check_cut(out["content"][0]["text"], WORD, out["usage"]["output_tokens"])
    assert r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"] == str(
        out["usage"]["output_tokens"])


def test_anthropic_messages_without_a_hit_has_null_stop_sequence(client: Any) -> None:
    out = json.loads(client.invoke_model(modelId=CLAUDE, body=_claude_body(stop_sequences=["zzzz"]))["body"].read())
    assert out["stop_reason"] in ("end_turn", "max_tokens")
    assert out["stop_sequence"] is None


def test_anthropic_messages_stream_stop_sequence(client: Any) -> None:
    chunks = _stream_chunks(client.invoke_model_with_response_stream(modelId=CLAUDE,
                                                                      body=_claude_body(stop_sequences=["he"])))
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    delta = next(c for c in chunks if c["type"] == "message_delta")
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "he"}
    _check_cut(text, "he", delta["usage"]["output_tokens"])
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == delta["usage"]["output_tokens"]


def test_anthropic_text_completion_stop_sequence(client: Any) -> None:
    body = {"prompt": "\n\nHuman: Tell me a story.\n\nAssistant:", "max_tokens_to_sample": LONG,
            "stop_sequences": [WORD]}  # fmt: skip
    out = json.loads(client.invoke_model(modelId=CLAUDE_V2, body=json.dumps(body))["body"].read())
    assert out["stop_reason"] == "stop_sequence"
    assert out["stop"] == WORD
    assert WORD not in out["completion"]


# -- anthropic_version ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["bedrock-2023-05-31", "2026-10-21", "2023-06-01"])
def test_anthropic_versions_real_clients_send_are_accepted(client: Any, version: str) -> None:
    body = json.dumps({"anthropic_version": version, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    out = json.loads(client.invoke_model(modelId=CLAUDE, body=body)["body"].read())
    assert out["type"] == "message"


@pytest.mark.parametrize("version", ["latest", "bedrock-2023-13-45", "2026-10-21x", "", 20231021])
def test_garbage_anthropic_version_is_rejected(client: Any, version: object) -> None:
    body = json.dumps({"anthropic_version": version, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(ClientError) as e:
        client.invoke_model(modelId=CLAUDE, body=body)
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert e.value.response["Error"]["Message"].startswith("Malformed input request: #/anthropic_version")


# -- projectIdentifier ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("project", ["default", "proj_01-a",
                                     "arn:aws:bedrock:us-east-1:123456789012:project/team-a"])  # fmt: skip
def test_project_identifier_is_accepted(client: Any, project: str) -> None:
    out = client.converse(modelId=NOVA, messages=user(), projectIdentifier=project, inferenceConfig={"maxTokens": 4})
    assert out["usage"]["outputTokens"] >= 1


def test_malformed_project_identifier_is_rejected(client: Any) -> None:
    with pytest.raises(ClientError) as e:
        client.converse(modelId=NOVA, messages=user(), projectIdentifier="not a project!")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "projectIdentifier" in e.value.response["Error"]["Message"]

"""Request builders, parsers, error mapping, workloads and spec validation (no network)."""

from __future__ import annotations

import json
import random

import pytest

from bedrock_lab.engines import (
    BurstSpec,
    Target,
    build_request,
    classify_http_error,
    classify_stream_error,
    load_workload,
    validate_answer,
)
from bedrock_lab.engines.formats import PROVIDER_FORMATS, ResponseParser, base_model_id, guess_provider_format
from bedrock_lab.engines.workloads import WorkItem
from bedrock_lab.errors import ConfigError


def test_paths_headers_and_tier() -> None:
    r = build_request("converse-stream", "us.amazon.nova-lite-v1:0", "hi", tier="flex", max_tokens=10)
    assert r.path == "/model/us.amazon.nova-lite-v1%3A0/converse-stream"
    body = json.loads(r.body)
    assert body["serviceTier"] == {"type": "flex"} and body["inferenceConfig"] == {"maxTokens": 10}
    assert r.boto3_method == "converse_stream" and r.boto3_kwargs["modelId"] == "us.amazon.nova-lite-v1:0"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    s = build_request("invoke-stream", arn, "hi", tier="priority")
    assert "%2F" in s.path and s.path.endswith("/invoke-with-response-stream")
    assert s.headers["X-Amzn-Bedrock-Service-Tier"] == "priority" and "X-Amzn-Bedrock-Accept" in s.headers
    assert s.provider_format == "anthropic" and s.boto3_kwargs["serviceTier"] == "priority"
    assert base_model_id(arn) == "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize(("mid", "fmt"), [
    ("anthropic.claude-v2:1", "anthropic-text"), ("eu.anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic"),
    ("amazon.titan-text-express-v1", "titan"), ("global.amazon.nova-pro-v1:0", "nova"),
    ("meta.llama3-1-8b-instruct-v1:0", "llama"), ("mistral.mistral-7b-instruct-v0:2", "mistral"),
])  # fmt: skip
def test_guess_provider_format(mid: str, fmt: str) -> None:
    assert guess_provider_format(mid) == fmt


def test_bad_inputs_raise_config_errors() -> None:
    with pytest.raises(ConfigError):
        build_request("chat", "amazon.nova-lite-v1:0", "hi")
    with pytest.raises(ConfigError):
        build_request("converse", "amazon.nova-lite-v1:0", "hi", tier="gold")
    with pytest.raises(ConfigError):
        guess_provider_format("acme.model-v1")
    with pytest.raises(ConfigError):
        BurstSpec("m", users=2, rate_rps=3, requests=1)
    with pytest.raises(ConfigError):
        BurstSpec("m", users=2)  # unbounded
    with pytest.raises(ConfigError):
        Target.emulator("127.0.0.1:80")


def test_every_provider_body_is_accepted_by_the_emulator_formats() -> None:
    providers = pytest.importorskip("bedrock_lab.emulator.providers")
    from bedrock_lab.catalog import load_catalog

    specs = {}
    for s in load_catalog():
        specs.setdefault(s.provider_format, s)
    assert set(specs) == set(PROVIDER_FORMATS)
    turns = [("user", "hello there"), ("assistant", "hi"), ("user", "how are you?")]
    for fmt, spec in specs.items():
        for api in ("invoke", "invoke-stream"):
            prep = build_request(api, spec.model_id, turns, system="be brief", max_tokens=50, temperature=0.5)
            prompt = providers.FORMATS[fmt].parse(json.loads(prep.body), spec)
            assert prompt.max_tokens == 50


def test_parsers_read_text_usage_and_metrics() -> None:
    p = ResponseParser("converse-stream", "converse")
    assert p.feed_converse_event("messageStart", {"role": "assistant"}) == ""
    assert p.feed_converse_event("contentBlockDelta", {"delta": {"text": "Hel"}, "contentBlockIndex": 0}) == "Hel"
    p.feed_converse_event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 7}, "metrics": {"latencyMs": 120},
                                       "serviceTier": {"type": "flex"}})  # fmt: skip
    assert (p.text, p.input_tokens, p.output_tokens, p.latency_s, p.tier_served, p.completed) == (
        "Hel", 5, 7, 0.12, "flex", True)
    q = ResponseParser("invoke-stream", "llama")
    q.feed_invoke_chunk({"generation": "a", "prompt_token_count": 9, "generation_token_count": 1})
    q.feed_invoke_chunk({"generation": "b", "generation_token_count": 2, "stop_reason": "stop",
                         "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 2,
                                                              "invocationLatency": 300, "firstByteLatency": 100}})
    assert (q.text, q.input_tokens, q.output_tokens, q.latency_s, q.completed) == ("ab", 9, 2, 0.3, True)


@pytest.mark.parametrize(("status", "code", "kind"), [
    (429, "ThrottlingException", "throttled"), (429, "ModelNotReadyException", "throttled"),
    (500, "InternalServerException", "server"), (503, "ServiceUnavailableException", "server"),
    (424, "ModelErrorException", "server"), (408, "ModelTimeoutException", "timeout"),
    (400, "ValidationException", "validation"), (403, "AccessDeniedException", "validation"),
    (404, "ResourceNotFoundException", "validation"),
])  # fmt: skip
def test_http_error_kinds(status: int, code: str, kind: str) -> None:
    assert classify_http_error(status, code) == kind


def test_stream_error_kinds() -> None:
    assert classify_stream_error("throttlingException") == "throttled"
    assert classify_stream_error("modelStreamErrorException") == "stream"
    assert classify_stream_error("internalServerException") == "stream"
    assert classify_stream_error("modelTimeoutException") == "timeout"


def test_workloads() -> None:
    single = load_workload("single", "large")
    item = single.conversation(random.Random(0)).next()
    assert item.prompt_size == "large" and len(item.turns[0][1].split()) > 100
    small = load_workload("single", "small").conversation(random.Random(0)).next()
    assert len(small.turns[0][1].split()) <= 8
    with pytest.raises(ConfigError):
        load_workload("single", "huge")
    with pytest.raises(ConfigError):
        load_workload("nope")
    mix = load_workload("mix").conversation(random.Random(1))
    ids = {mix.next().prompt_id.split(":")[0] for _ in range(200)}
    assert ids == {"qa", "explain", "analyse", "code"}
    chat = load_workload("chat").conversation(random.Random(0))
    a = chat.next()
    chat.observe(a, "an answer", True)
    b = chat.next()
    assert len(b.turns) == 3 and b.turns[1] == ("assistant", "an answer") and b.prompt_id == "chat-turn2"
    chat.observe(b, None, False)
    assert chat.next().prompt_id == "chat-turn2"  # a failed turn is asked again
    doc = load_workload("summarise").conversation(random.Random(0)).next()
    assert doc.prompt_size == "summarise" and len(doc.turns[0][1].split()) > 300


def test_validation_of_answers() -> None:
    item = WorkItem("x", "small", [("user", "q")])
    assert validate_answer(item, "") == "EmptyResponse"
    assert validate_answer(item, "  ") == "EmptyResponse"
    assert validate_answer(item, "fine") is None
    strict = WorkItem("x", "summarise", [("user", "q")], require_json=True)
    assert validate_answer(strict, "not json") == "InvalidJSON"
    assert validate_answer(strict, '```json\n{"title": "t"}\n```') is None

"""The OpenAI Chat Completions operation (``POST /openai/v1/chat/completions``) through the real OpenAI Python SDK:
whole and streamed answers, usage that matches the text, the service tier, ground truth, the load model's faults
and quota, and errors in the shape the SDK maps to its exception classes. Also the same body via InvokeModel."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from emu_helpers import FAST, make_client, raw_post

from bedrock_lab.emulator import H_SEQ, H_TTFT, Emulator, run_emulator
from bedrock_lab.tokens import count_texts

openai = pytest.importorskip("openai")

MODEL = "openai.gpt-oss-20b-1:0"
USER = [{"role": "user", "content": "Say something short about load tests."}]


def sdk(url: str) -> Any:
    """The OpenAI client exactly as a user builds it for Bedrock (any key works unless the emulator is strict)."""
    return openai.OpenAI(base_url=url + "/openai/v1", api_key="bedrock-lab-test-key", max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def oai(emulator: Emulator) -> Any:
    return sdk(emulator.url)


def test_whole_answer_shape_usage_and_ground_truth(oai: Any) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "developer", "content": "Be brief."}, *USER], max_completion_tokens=24)
    r = raw.parse()
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-") and r.model == MODEL
    assert isinstance(r.created, int) and r.created > 1_700_000_000
    (choice,) = r.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    words = choice.message.content.split()
    assert r.usage.completion_tokens == len(words) <= 24
    assert choice.finish_reason == ("length" if len(words) == 24 else "stop")
    assert r.usage.prompt_tokens == count_texts(["Be brief.", USER[0]["content"]])  # the one token estimate
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.service_tier == "default"
    assert float(raw.headers[H_TTFT]) > 0 and int(raw.headers[H_SEQ]) >= 0


def test_stream_with_usage_chunk_and_tier(oai: Any) -> None:
    chunks = list(oai.chat.completions.create(model="us." + MODEL, messages=USER, max_tokens=30, stream=True,
                                              stream_options={"include_usage": True}, service_tier="priority"))  # fmt: skip
    assert all(c.object == "chat.completion.chunk" and c.service_tier == "priority" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, usage_chunk = chunks
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(c.usage is None for c in body)
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    text = "".join(c.choices[0].delta.content or "" for c in body)
    assert usage_chunk.usage.completion_tokens == len(text.split())
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens


def test_stream_wire_format_ends_with_done(emulator: Emulator) -> None:
    status, headers, data = raw_post(emulator.url, "/openai/v1/chat/completions",
                                     json.dumps({"model": MODEL, "messages": USER, "max_tokens": 8, "stream": True}),
                                     {"Authorization": "Bearer some-key"})  # fmt: skip
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [e for e in data.decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    parsed = [json.loads(e[6:]) for e in events[:-1]]
    assert all("usage" not in p for p in parsed)  # no include_usage: no usage field, no usage chunk
    assert parsed[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_stop_sequence_ends_the_answer(oai: Any) -> None:
    first = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=40, seed=1)
    words = first.choices[0].message.content.split()
    stop = words[len(words) // 2]
    r = oai.chat.completions.create(model=MODEL, messages=USER, max_tokens=40, stop=[" " + stop + " ", "zzzz"])
    text = r.choices[0].message.content
    assert (" " + stop + " ") not in text
    if len(text.split()) < 40:  # cut before the end: a natural stop as far as the SDK is concerned
        assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == len(text.split())


@pytest.mark.parametrize(("body", "param"), [
    ({"model": MODEL}, "messages"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].type"),
    ({"model": MODEL, "messages": USER, "temperature": 3}, "temperature"),
    ({"model": MODEL, "messages": USER, "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": USER, "max_completion_tokens": 10**7}, "max_completion_tokens"),
    ({"model": MODEL, "messages": USER, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"model": MODEL, "messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": MODEL, "messages": USER, "n": 2}, "n"),
    ({"model": MODEL, "messages": USER, "service_tier": "scale"}, "service_tier"),
    ({"model": MODEL, "messages": USER, "service_tier": "reserved"}, "service_tier"),  # not a tier of this model
    ({"model": MODEL, "messages": USER, "bogus": 1}, "bogus"),
    ({"messages": USER}, "model"),
])  # fmt: skip
def test_invalid_requests_are_400_in_the_openai_shape(oai: Any, body: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:  # the SDK's own POST: create() refuses some of these
        oai.post("/chat/completions", body=body, cast_to=dict)
    err = info.value
    assert err.status_code == 400 and err.type == "invalid_request_error" and err.param == param
    assert err.body["message"]


def test_unknown_model_is_404(oai: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="openai.gpt-9-1:0", messages=USER)
    assert info.value.code == "model_not_found"


def test_missing_authorization_is_401_and_other_paths_404(post: Callable[..., Any]) -> None:
    status, headers, body = post("/openai/v1/chat/completions", json.dumps({"model": MODEL, "messages": USER}),
                                 {"Authorization": None})  # fmt: skip
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException")
    status, _, body = post("/openai/v1/models", "", method="GET")
    assert status == 404 and body["error"]["code"] == "unknown_url"


def test_quota_faults_and_mid_stream_errors_follow_the_load_model() -> None:
    with run_emulator(seed=3, time_scale=FAST, tpm_quota=40) as emu:
        with pytest.raises(openai.RateLimitError) as info:
            sdk(emu.url).chat.completions.create(model=MODEL, messages=USER, max_tokens=100)
        assert info.value.code == "rate_limit_exceeded"
    with run_emulator(seed=3, time_scale=FAST, faults={"error_500": 1.0}) as emu, \
            pytest.raises(openai.InternalServerError):
        sdk(emu.url).chat.completions.create(model=MODEL, messages=USER, max_tokens=10)
    with run_emulator(seed=3, time_scale=FAST, faults={"stream_error": 1.0}) as emu:
        stream = sdk(emu.url).chat.completions.create(model=MODEL, messages=USER, max_tokens=40, stream=True)
        with pytest.raises(openai.APIError) as info:
            list(stream)
        assert info.value.code == "modelStreamErrorException"
        assert emu.stats()["outcomes"].get("modelStreamErrorException") == 1


def test_same_seed_same_answer() -> None:
    answers = []
    for _ in range(2):
        with run_emulator(seed=11, time_scale=FAST) as emu:
            r = sdk(emu.url).chat.completions.create(model=MODEL, messages=USER, max_tokens=16)
            answers.append(r.choices[0].message.content)
    assert answers[0] == answers[1]


def test_the_same_body_through_invoke_model(emulator: Emulator) -> None:
    client = make_client(emulator.url)
    body = {"messages": USER, "max_completion_tokens": 12}
    out = json.loads(client.invoke_model(modelId=MODEL, body=json.dumps(body))["body"].read())
    assert out["object"] == "chat.completion" and out["usage"]["completion_tokens"] == len(
        out["choices"][0]["message"]["content"].split())
    resp = client.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in resp["body"]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == len(text.split())
    with pytest.raises(client.exceptions.ValidationException):
        client.invoke_model(modelId=MODEL, body=json.dumps({**body, "model": "openai.gpt-oss-120b-1:0"}))

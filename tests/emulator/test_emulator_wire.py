"""Wire compatibility: real boto3 against the emulator over HTTP, every operation and body format."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from emu_helpers import user

from bedrock_lab.emulator import GROUND_TRUTH_HEADERS, Emulator
from bedrock_lab.emulator.text import count_tokens

PROMPT = "Summarise the benefits of load testing in two sentences, please."

BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "anthropic": ("anthropic.claude-3-haiku-20240307-v1:0",
                  {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40, "system": "Be brief.",
                   "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]}),
    "anthropic-text": ("anthropic.claude-v2",
                       {"prompt": f"\n\nHuman: {PROMPT}\n\nAssistant:", "max_tokens_to_sample": 40}),
    "titan": ("amazon.titan-text-express-v1", {"inputText": PROMPT, "textGenerationConfig": {"maxTokenCount": 40}}),
    "nova": ("amazon.nova-lite-v1:0", {"schemaVersion": "messages-v1", "messages": user(PROMPT),
                                       "inferenceConfig": {"maxTokens": 40}}),
    "llama": ("meta.llama3-1-70b-instruct-v1:0", {"prompt": PROMPT, "max_gen_len": 40}),
    "mistral": ("mistral.mistral-large-2402-v1:0", {"prompt": f"<s>[INST] {PROMPT} [/INST]", "max_tokens": 40}),
}  # fmt: skip


def _full_text(fmt: str, body: dict[str, Any]) -> tuple[str, int, int]:
    """(text, input tokens, output tokens) of a whole InvokeModel body."""
    if fmt == "anthropic":
        return body["content"][0]["text"], body["usage"]["input_tokens"], body["usage"]["output_tokens"]
    if fmt == "anthropic-text":
        return body["completion"], -1, -1
    if fmt == "titan":
        r = body["results"][0]
        return r["outputText"], body["inputTextTokenCount"], r["tokenCount"]
    if fmt == "nova":
        return body["output"]["message"]["content"][0]["text"], body["usage"]["inputTokens"], body["usage"]["outputTokens"]
    if fmt == "llama":
        return body["generation"], body["prompt_token_count"], body["generation_token_count"]
    return body["outputs"][0]["text"], -1, -1


def _chunk_text(fmt: str, c: dict[str, Any]) -> str:
    if fmt == "anthropic":
        return c.get("delta", {}).get("text", "") if c["type"] == "content_block_delta" else ""
    if fmt == "anthropic-text":
        return c["completion"]
    if fmt == "titan":
        return c["outputText"]
    if fmt == "nova":
        return c.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
    if fmt == "llama":
        return c["generation"]
    return c["outputs"][0]["text"]


def _ground_truth(headers: dict[str, str]) -> dict[str, float]:
    return {h: float(headers[h]) for h in GROUND_TRUTH_HEADERS}


def test_converse(client: Any) -> None:
    r = client.converse(modelId="us.amazon.nova-lite-v1:0", messages=user(PROMPT), system=[{"text": "Be brief."}],
                        inferenceConfig={"maxTokens": 64, "temperature": 0.5, "topP": 0.9})
    text = r["output"]["message"]["content"][0]["text"]
    assert r["output"]["message"]["role"] == "assistant"
    assert r["usage"]["outputTokens"] == count_tokens(text) <= 64
    assert r["usage"]["inputTokens"] == count_tokens(PROMPT) + count_tokens("Be brief.")
    assert r["usage"]["totalTokens"] == r["usage"]["inputTokens"] + r["usage"]["outputTokens"]
    assert r["stopReason"] in ("end_turn", "max_tokens")
    assert r["metrics"]["latencyMs"] >= 0
    assert r["serviceTier"] == {"type": "default"}
    gt = _ground_truth(r["ResponseMetadata"]["HTTPHeaders"])
    assert gt["x-bedrock-lab-ttft-ms"] > 0 and gt["x-bedrock-lab-queue-ms"] == 0.0


def test_converse_stream_events_in_order(client: Any) -> None:
    r = client.converse_stream(modelId="global.anthropic.claude-sonnet-4-5-20250929-v1:0", messages=user(PROMPT),
                               inferenceConfig={"maxTokens": 30}, serviceTier={"type": "flex"},
                               performanceConfig={"latency": "standard"})  # fmt: skip
    kinds, text, meta = [], "", {}
    for ev in r["stream"]:
        (kind, payload), = ev.items()
        kinds.append(kind)
        if kind == "contentBlockDelta":
            text += payload["delta"]["text"]
        if kind == "metadata":
            meta = payload
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert set(kinds[1:-3]) == {"contentBlockDelta"}
    assert meta["usage"]["outputTokens"] == count_tokens(text) <= 30
    assert meta["serviceTier"] == {"type": "flex"} and meta["performanceConfig"] == {"latency": "standard"}
    assert "x-bedrock-lab-decode-ms" in r["ResponseMetadata"]["HTTPHeaders"]


@pytest.mark.parametrize("fmt", sorted(BODIES))
def test_invoke_model_every_format(client: Any, fmt: str) -> None:
    model, body = BODIES[fmt]
    r = client.invoke_model(modelId=model, body=json.dumps(body), contentType="application/json",
                            accept="application/json", serviceTier="default")
    out = json.loads(r["body"].read())
    text, n_in, n_out = _full_text(fmt, out)
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert int(h["x-amzn-bedrock-output-token-count"]) == count_tokens(text) <= 40
    if n_out >= 0:
        assert n_out == count_tokens(text) and n_in == int(h["x-amzn-bedrock-input-token-count"])
    assert r["serviceTier"] == "default" and r["contentType"] == "application/json"
    assert int(h["x-amzn-bedrock-invocation-latency"]) >= 0
    _ground_truth(h)


@pytest.mark.parametrize("fmt", sorted(BODIES))
def test_invoke_model_with_response_stream_every_format(client: Any, fmt: str) -> None:
    model, body = BODIES[fmt]
    r = client.invoke_model_with_response_stream(modelId=f"us.{model}", body=json.dumps(body).encode())
    chunks = [json.loads(ev["chunk"]["bytes"]) for ev in r["body"]]
    text = "".join(_chunk_text(fmt, c) for c in chunks)
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert sum("amazon-bedrock-invocationMetrics" in c for c in chunks) == 1
    assert metrics["outputTokenCount"] == count_tokens(text) <= 40
    assert metrics["invocationLatency"] >= metrics["firstByteLatency"] >= 0
    whole = client.invoke_model(modelId=model, body=json.dumps(body))
    assert metrics["inputTokenCount"] == int(whole["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"])
    assert r["contentType"] == "application/json" and r["serviceTier"] == "default"


def test_tier_header_echo_and_latency_optimized(client: Any) -> None:
    model, body = BODIES["llama"]
    r = client.invoke_model(modelId=model, body=json.dumps(body), serviceTier="priority",
                            performanceConfigLatency="optimized")
    assert r["serviceTier"] == "priority" and r["performanceConfigLatency"] == "optimized"
    # a model without latency-optimized inference is served (and labelled) standard
    r = client.converse(modelId="amazon.nova-lite-v1:0", messages=user(), performanceConfig={"latency": "optimized"})
    assert r["performanceConfig"] == {"latency": "standard"}


def test_count_tokens_matches_usage(client: Any) -> None:
    msgs = user(PROMPT)
    n = client.count_tokens(modelId="anthropic.claude-3-5-sonnet-20241022-v2:0",
                            input={"converse": {"messages": msgs, "system": [{"text": "Be brief."}]}})["inputTokens"]
    r = client.converse(modelId="anthropic.claude-3-5-sonnet-20241022-v2:0", messages=msgs,
                        system=[{"text": "Be brief."}], inferenceConfig={"maxTokens": 5})
    assert n == r["usage"]["inputTokens"]
    model, body = BODIES["anthropic"]
    n2 = client.count_tokens(modelId=model, input={"invokeModel": {"body": json.dumps(body).encode()}})["inputTokens"]
    assert n2 == n


def test_arn_with_slash_is_one_path_segment(client: Any) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-micro-v1:0"
    r = client.converse(modelId=arn, messages=user(), inferenceConfig={"maxTokens": 8})
    assert r["usage"]["outputTokens"] <= 8


def test_endpoint_from_environment(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emulator.url)
    c = boto3.client("bedrock-runtime", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}))
    r = c.converse(modelId="amazon.nova-micro-v1:0", messages=user(), inferenceConfig={"maxTokens": 4})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_multi_turn_and_default_max_tokens(client: Any) -> None:
    msgs = [*user("first"), {"role": "assistant", "content": [{"text": "ok"}]}, *user("second")]
    r = client.converse(modelId="amazon.titan-text-premier-v1:0", messages=msgs)
    assert r["usage"]["inputTokens"] == count_tokens("first ok second")
    assert r["usage"]["outputTokens"] <= 3072


def test_raw_bedrock_bytes_are_base64_in_the_frame(emulator: Emulator) -> None:
    """What a raw-HTTP client (Locust FastHttpUser) sees: event-stream frames with base64 chunk payloads."""
    import http.client
    import urllib.parse

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from botocore.eventstream import EventStreamBuffer

    model, body = BODIES["titan"]
    url = f"{emulator.url}/model/{urllib.parse.quote(model, safe='')}/invoke-with-response-stream"
    req = AWSRequest("POST", url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials("testing", "testing"), "bedrock", "us-east-1").add_auth(req)
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", u.path, body=req.body, headers=dict(req.headers.items()))
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "application/vnd.amazon.eventstream"
    buf = EventStreamBuffer()
    buf.add_data(resp.read())
    msgs = list(buf)
    conn.close()
    assert all(m.headers[":event-type"] == "chunk" for m in msgs)
    first = json.loads(base64.b64decode(json.loads(msgs[0].payload)["bytes"]))
    assert "outputText" in first

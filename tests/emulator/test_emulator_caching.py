"""Prompt caching through the real boto3 client (issue #13): cachePoint blocks write a prefix on first sight and
read it later (usage, ground-truth headers, a shorter TTFT), per-model support and minimum tokens from the
catalog, TTLs, the Anthropic body's cache_control, cache prices; the cache's TTL rules on their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_helpers import FAST, make_client, user

from bedrock_lab.catalog import load_catalog
from bedrock_lab.emulator import Emulator, run_emulator
from bedrock_lab.emulator.caching import PromptCache
from bedrock_lab.emulator.providers import CachePoint
from bedrock_lab.emulator.server import H_CACHE_READ, H_CACHE_WRITE, H_PRE, H_TTFT
from bedrock_lab.tokens import count_tokens

NOVA = "amazon.nova-lite-v1:0"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"


def _long(tag: str, words: int = 1500) -> str:
    """A system prompt of ``words`` tokens, unique per test (the shared emulator's cache lives for the session)."""
    return " ".join(f"{tag}{i % 7}" if i == 0 else "rule" for i in range(words))


def _cached_system(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    cp: dict[str, Any] = {"type": "default", **({"ttl": ttl} if ttl else {})}
    return [{"text": text}, {"cachePoint": cp}]


def _meta(resp: dict[str, Any]) -> dict[str, str]:
    return resp["ResponseMetadata"]["HTTPHeaders"]


def test_first_request_writes_then_reads(client: Any) -> None:
    system = _long("writes")
    n = count_tokens(system)
    q = "Which rule applies?"
    first = client.converse(modelId=NOVA, system=_cached_system(system), messages=user(q),
                            inferenceConfig={"maxTokens": 5})  # fmt: skip
    u1 = first["usage"]
    assert (u1["cacheWriteInputTokens"], u1["cacheReadInputTokens"]) == (n, 0)
    assert u1["inputTokens"] == count_tokens(q)  # inputTokens excludes the cached prefix
    assert u1["cacheDetails"] == [{"ttl": "5m", "inputTokens": n}]
    assert u1["totalTokens"] == u1["inputTokens"] + u1["outputTokens"] + n
    assert _meta(first)[H_CACHE_WRITE] == str(n)
    second = client.converse(modelId=NOVA, system=_cached_system(system), messages=user("Another question?"),
                             inferenceConfig={"maxTokens": 5})  # fmt: skip
    u2 = second["usage"]
    assert (u2["cacheReadInputTokens"], u2["cacheWriteInputTokens"]) == (n, 0)
    assert "cacheDetails" not in u2
    assert _meta(second)[H_CACHE_READ] == str(n)


def test_a_changed_prefix_misses(client: Any) -> None:
    system = _long("changed")
    client.converse(modelId=NOVA, system=_cached_system(system), messages=user(), inferenceConfig={"maxTokens": 5})
    other = client.converse(modelId=NOVA, system=_cached_system(system + " extra"), messages=user(),
                            inferenceConfig={"maxTokens": 5})  # fmt: skip
    assert other["usage"]["cacheReadInputTokens"] == 0 and other["usage"]["cacheWriteInputTokens"] > 0


def test_a_prefix_below_the_minimum_is_not_cached(client: Any) -> None:
    short = _long("short", 200)  # Nova: 1,000 tokens per checkpoint at least
    for _ in range(2):
        out = client.converse(modelId=NOVA, system=_cached_system(short), messages=user(),
                              inferenceConfig={"maxTokens": 5})  # fmt: skip
        assert out["usage"]["cacheReadInputTokens"] == out["usage"]["cacheWriteInputTokens"] == 0
        assert out["usage"]["inputTokens"] == count_tokens(short) + count_tokens(user()[0]["content"][0]["text"])


def test_second_cache_point_in_messages_extends_the_prefix(client: Any) -> None:
    system = _long("twopoints")
    doc = _long("doc", 1200)
    msgs = [{"role": "user", "content": [{"text": doc}, {"cachePoint": {"type": "default"}}, {"text": "Q?"}]}]
    client.converse(modelId=NOVA, system=_cached_system(system), messages=user(), inferenceConfig={"maxTokens": 5})
    out = client.converse(modelId=NOVA, system=_cached_system(system), messages=msgs, inferenceConfig={"maxTokens": 5})
    assert out["usage"]["cacheReadInputTokens"] == count_tokens(system)
    assert out["usage"]["cacheWriteInputTokens"] == count_tokens(doc)


def test_stream_metadata_carries_cache_usage(client: Any) -> None:
    system = _long("stream")
    kw = {"modelId": NOVA, "system": _cached_system(system), "messages": user(), "inferenceConfig": {"maxTokens": 8}}
    client.converse(**kw)
    events = list(client.converse_stream(**kw)["stream"])
    usage = next(e["metadata"]["usage"] for e in events if "metadata" in e)
    assert usage["cacheReadInputTokens"] == count_tokens(system)


@pytest.mark.parametrize(("model", "system", "tools"), [
    (HAIKU, True, False),  # Claude 3 Haiku: no prompt caching on Bedrock
    ("amazon.titan-text-express-v1", False, False),
    (NOVA, False, True),  # Nova: cache points in system and messages only
])  # fmt: skip
def test_unsupported_cache_points_are_rejected(client: Any, model: str, system: bool, tools: bool) -> None:
    kw: dict[str, Any] = {"modelId": model}
    if system:
        kw["system"] = _cached_system("You are terse.")
        kw["messages"] = user()
    else:
        kw["messages"] = [{"role": "user", "content": [{"text": "hi"}, {"cachePoint": {"type": "default"}}]}]
    if tools:
        kw["messages"] = user()
        kw["toolConfig"] = {"tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}},
                                      {"cachePoint": {"type": "default"}}]}  # fmt: skip
    with pytest.raises(ClientError) as ei:
        client.converse(**kw)
    assert ei.value.response["Error"]["Code"] == "ValidationException"
    assert "prompt caching" in ei.value.response["Error"]["Message"]


def test_ttl_one_hour_where_the_model_has_it(client: Any) -> None:
    with pytest.raises(ClientError) as ei:
        client.converse(modelId=NOVA, system=_cached_system(_long("ttlnova"), "1h"), messages=user())
    assert "TTL" in ei.value.response["Error"]["Message"]
    system = _long("ttlsonnet")
    out = client.converse(modelId=SONNET45, system=_cached_system(system, "1h"), messages=user(),
                          inferenceConfig={"maxTokens": 5})  # fmt: skip
    assert out["usage"]["cacheDetails"] == [{"ttl": "1h", "inputTokens": count_tokens(system)}]


def test_tool_definitions_are_part_of_the_prefix(client: Any) -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "word " * 30}
                                               for i in range(40)}}  # fmt: skip
    cfg = {"tools": [{"toolSpec": {"name": "big", "inputSchema": {"json": schema}}}, {"cachePoint": {"type": "default"}}]}
    kw = {"modelId": SONNET45, "messages": user("Weather?"), "toolConfig": cfg, "inferenceConfig": {"maxTokens": 5}}
    w = client.converse(**kw)["usage"]["cacheWriteInputTokens"]
    assert w >= 1024
    assert client.converse(**kw)["usage"]["cacheReadInputTokens"] == w


def test_anthropic_cache_control(client: Any) -> None:
    system = _long("anthropic")
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
            "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
    r1 = client.invoke_model(modelId=SONNET45, body=json.dumps(body))
    u1 = json.loads(r1["body"].read())["usage"]
    assert (u1["cache_creation_input_tokens"], u1["cache_read_input_tokens"]) == (count_tokens(system), 0)
    assert u1["input_tokens"] == count_tokens("Hi")
    r2 = client.invoke_model(modelId=SONNET45, body=json.dumps(body))
    u2 = json.loads(r2["body"].read())["usage"]
    assert u2["cache_read_input_tokens"] == count_tokens(system)
    assert _meta(r2)["x-amzn-bedrock-cache-read-input-token-count"] == str(count_tokens(system))


@pytest.fixture(scope="module")
def steady() -> Iterator[Emulator]:
    """TTFT without noise and a slow prefill, so the cache's saving is visible in one pair of requests."""
    with run_emulator(seed=0, time_scale=FAST, latency={"ttft_sigma": 0.0, "prefill_ms_per_1k": 2000.0}) as emu:
        yield emu


def test_a_hit_skips_the_prefill_of_the_cached_prefix(steady: Emulator) -> None:
    c = make_client(steady.url)
    system = _long("ttft")
    kw = {"modelId": NOVA, "system": _cached_system(system), "messages": user(), "inferenceConfig": {"maxTokens": 5}}

    def ttft_ms(r: dict[str, Any]) -> float:
        h = _meta(r)
        return float(h[H_TTFT]) - float(h[H_PRE])

    miss, hit = ttft_ms(c.converse(**kw)), ttft_ms(c.converse(**kw))
    saved = 2000.0 * count_tokens(system) / 1000.0 * FAST  # the prefill of the cached tokens, time-scaled
    assert miss - hit == pytest.approx(saved, rel=1e-3)


# -- the cache's rules, on a clock of our own ------------------------------------------------------------------


def test_ttl_expiry_and_refresh() -> None:
    cache = load_catalog().resolve(NOVA).cache
    assert cache is not None
    pc = PromptCache()
    p = [CachePoint(1500, "k1")]
    assert pc.use("m", p, cache, now=0.0, time_scale=1.0).write == 1500
    assert pc.use("m", p, cache, now=299.0, time_scale=1.0).read == 1500  # within 5 min, and refreshed
    assert pc.use("m", p, cache, now=598.0, time_scale=1.0).read == 1500
    assert pc.use("m", p, cache, now=899.0, time_scale=1.0).write == 1500  # 301 s after the last use: gone
    assert pc.use("other-model", p, cache, now=900.0, time_scale=1.0).write == 1500  # keyed by model
    assert pc.use("m", [CachePoint(1500, "k2", "5m")], cache, now=0.0, time_scale=0.01).write == 1500
    assert pc.use("m", [CachePoint(1500, "k2")], cache, now=3.5, time_scale=0.01).write == 1500  # 5 min x 0.01


def test_cache_prices() -> None:
    cat = load_catalog()
    s = cat.resolve(SONNET45)
    p = s.price().input_per_1k
    assert s.cost_usd(0, 0, cache_read_tokens=1000) == pytest.approx(0.1 * p)
    assert s.cost_usd(0, 0, cache_write_tokens=1000) == pytest.approx(1.25 * p)
    n = cat.resolve(NOVA)
    assert n.cost_usd(0, 0, cache_read_tokens=1000) == pytest.approx(0.25 * n.price().input_per_1k)

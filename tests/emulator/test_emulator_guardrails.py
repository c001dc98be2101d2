"""Guardrails on Converse through the real boto3 client (issue #13): known guardrails from the catalog, unknown ids
and versions refused like the service, a seeded intervention rate (stop reason guardrail_intervened, the blocked
message), the trace when asked, the added latency, guardContent billed as input."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from emu_helpers import FAST, make_client, user

from bedrock_lab.catalog import GuardrailSpec, load_catalog
from bedrock_lab.emulator import Emulator, run_emulator
from bedrock_lab.emulator.server import H_PRE, H_TTFT
from bedrock_lab.tokens import count_tokens

NOVA = "amazon.nova-lite-v1:0"


def _g(gid: str, trace: str = "disabled", version: str = "1") -> dict[str, str]:
    return {"guardrailIdentifier": gid, "guardrailVersion": version, "trace": trace}


def test_a_blocking_guardrail_intervenes_with_its_message_and_trace(client: Any) -> None:
    spec = load_catalog().guardrails["labguardblock"]
    out = client.converse(modelId=NOVA, messages=user(), guardrailConfig=_g("labguardblock", "enabled"))
    assert out["stopReason"] == "guardrail_intervened"
    assert out["output"]["message"]["content"] == [{"text": spec.blocked_message}]
    assert out["usage"]["outputTokens"] == count_tokens(spec.blocked_message)
    g = out["trace"]["guardrail"]
    (f,) = g["inputAssessment"]["labguardblock"]["contentPolicy"]["filters"]
    assert f["action"] == "BLOCKED"
    assert g["actionReason"]
    assert g["inputAssessment"]["labguardblock"]["invocationMetrics"]["guardrailProcessingLatency"] == 120


def test_a_passing_guardrail_answers_and_traces_only_when_asked(client: Any) -> None:
    out = client.converse(modelId=NOVA, messages=user(), guardrailConfig=_g("labguardpass", "enabled"),
                          inferenceConfig={"maxTokens": 20})  # fmt: skip
    assert out["stopReason"] in ("end_turn", "max_tokens")
    assert "labguardpass" in out["trace"]["guardrail"]["outputAssessments"]
    quiet = client.converse(modelId=NOVA, messages=user(), guardrailConfig=_g("labguardpass", version="DRAFT"),
                            inferenceConfig={"maxTokens": 20})  # fmt: skip
    assert "trace" not in quiet


def test_stream_blocked_with_trace_in_metadata(client: Any) -> None:
    spec = load_catalog().guardrails["labguardblock"]
    resp = client.converse_stream(modelId=NOVA, messages=user(),
                                  guardrailConfig={**_g("labguardblock", "enabled"), "streamProcessingMode": "async"})
    events = list(resp["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == spec.blocked_message
    assert [e["messageStop"]["stopReason"] for e in events if "messageStop" in e] == ["guardrail_intervened"]
    meta = next(e["metadata"] for e in events if "metadata" in e)
    assert "labguardblock" in meta["trace"]["guardrail"]["inputAssessment"]


@pytest.mark.parametrize(("gid", "version", "code"), [
    ("nosuchguard", "1", "ResourceNotFoundException"),
    ("labguardpass", "7", "ResourceNotFoundException"),  # a version the guardrail does not have
    ("arn:aws:bedrock:us-east-1:123456789012:guardrail/nosuchguard", "1", "ResourceNotFoundException"),
    ("Bad-Id", "1", "ValidationException"),  # botocore's GuardrailIdentifier pattern
    ("labguardpass", "v1", "ValidationException"),
])  # fmt: skip
def test_unknown_or_malformed_guardrails(client: Any, gid: str, version: str, code: str) -> None:
    with pytest.raises(ClientError) as ei:
        client.converse(modelId=NOVA, messages=user(), guardrailConfig=_g(gid, version=version))
    assert ei.value.response["Error"]["Code"] == code


def test_a_guardrail_arn_resolves(client: Any) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:guardrail/labguardpass"
    out = client.converse(modelId=NOVA, messages=user(), guardrailConfig=_g(arn), inferenceConfig={"maxTokens": 5})
    assert out["stopReason"] != "guardrail_intervened"


def test_guard_content_counts_as_input(client: Any) -> None:
    guarded = "Please check this sentence for anything that should be blocked."
    msgs = [{"role": "user", "content": [{"text": "Hi"}, {"guardContent": {"text": {"text": guarded}}}]}]
    out = client.converse(modelId=NOVA, messages=msgs, guardrailConfig=_g("labguardpass"),
                          inferenceConfig={"maxTokens": 5})  # fmt: skip
    assert out["usage"]["inputTokens"] == count_tokens("Hi") + count_tokens(guarded)


def _rate_emulator(rate: float, seed: int) -> Any:
    cat = load_catalog()
    cat = dataclasses.replace(cat, guardrails={**cat.guardrails, "labrate": GuardrailSpec("labrate", ("1",), rate, 50.0)})
    return run_emulator(seed=seed, catalog=cat, time_scale=FAST)


def _blocked_pattern(url: str, n: int) -> list[bool]:
    c = make_client(url)
    return [c.converse(modelId=NOVA, messages=user(), guardrailConfig=_g("labrate"),
                       inferenceConfig={"maxTokens": 3})["stopReason"] == "guardrail_intervened" for _ in range(n)]


def test_intervention_rate_is_seeded() -> None:
    with _rate_emulator(0.3, seed=7) as a:
        first = _blocked_pattern(a.url, 80)
    with _rate_emulator(0.3, seed=7) as b:
        again = _blocked_pattern(b.url, 80)
    assert first == again  # same seed, same request order: the same requests blocked
    assert 10 <= sum(first) <= 40  # 80 x 0.3 = 24 expected; binomial sd ~4.1 (bounds ~3.4 sd)


@pytest.fixture(scope="module")
def steady() -> Iterator[Emulator]:
    with run_emulator(seed=0, time_scale=FAST, latency={"ttft_sigma": 0.0}) as emu:
        yield emu


def test_a_guardrail_adds_its_latency_before_the_first_token(steady: Emulator) -> None:
    c = make_client(steady.url)

    def ttft(**kw: Any) -> float:
        h = c.converse(modelId=NOVA, messages=user(), inferenceConfig={"maxTokens": 3}, **kw)["ResponseMetadata"][
            "HTTPHeaders"]
        return float(h[H_TTFT]) - float(h[H_PRE])

    added = ttft(guardrailConfig=_g("labguardpass")) - ttft()
    assert added == pytest.approx(load_catalog().guardrails["labguardpass"].latency_ms * FAST, rel=1e-3)

"""Guardrails on Converse: known guardrails from the catalog, an added latency, a seeded intervention and the
``trace`` Bedrock returns when asked (botocore's GuardrailTraceAssessment).

Whether a request is blocked is drawn from ``random.Random(f"{seed}:{n}:guardrail")`` (``n`` = the request's
number): the same seed and request order block the same requests. A block is an input assessment (a content
filter with action BLOCKED): the answer is the guardrail's blocked message with stop reason
``guardrail_intervened``. The added latency (the guardrail's ``latency_ms``) is paid before the first token,
scaled by the emulator's ``time_scale``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bedrock_lab.catalog import Catalog, GuardrailSpec
from bedrock_lab.emulator.providers import ApiError


@dataclass
class GuardrailDecision:
    spec: GuardrailSpec
    intervened: bool
    latency_ms: float
    trace: dict[str, Any] | None  #: Converse ``trace`` ({"guardrail": ...}) when the request asked for one


def resolve(catalog: Catalog, cfg: dict[str, str]) -> GuardrailSpec:
    """The catalog's guardrail for a guardrailConfig (an id or a guardrail ARN); unknown ones as Bedrock answers
    them (ResourceNotFoundException, one of Converse's errors in botocore's model)."""
    gid = cfg["guardrailIdentifier"].rsplit("/", 1)[-1]
    spec = catalog.guardrails.get(gid)
    if spec is None or cfg["guardrailVersion"] not in spec.versions:
        raise ApiError(404, "ResourceNotFoundException", "The guardrail identifier or version provided in the "
                       "request does not exist.")
    return spec


def decide(spec: GuardrailSpec, cfg: dict[str, str], seed: int, seq: int, input_chars: int) -> GuardrailDecision:
    blocked = random.Random(f"{seed}:{seq}:guardrail").random() < spec.intervention_rate
    trace = None
    if cfg.get("trace", "disabled") != "disabled":
        trace = {"guardrail": _assessment(spec, blocked, input_chars)}
    return GuardrailDecision(spec, blocked, spec.latency_ms, trace)


def _assessment(spec: GuardrailSpec, blocked: bool, chars: int) -> dict[str, Any]:
    units = max(1, -(-chars // 1000))  # one text unit per 1,000 characters
    metrics = {"guardrailProcessingLatency": int(round(spec.latency_ms)),
               "usage": {"topicPolicyUnits": 0, "contentPolicyUnits": units, "wordPolicyUnits": 0,
                         "sensitiveInformationPolicyUnits": 0, "sensitiveInformationPolicyFreeUnits": 0,
                         "contextualGroundingPolicyUnits": 0},
               "guardrailCoverage": {"textCharacters": {"guarded": chars, "total": chars}}}  # fmt: skip
    filters = [{"type": "VIOLENCE", "confidence": "HIGH" if blocked else "NONE", "filterStrength": "HIGH",
                "action": "BLOCKED" if blocked else "NONE", "detected": blocked}]  # fmt: skip
    out: dict[str, Any] = {"inputAssessment": {spec.guardrail_id: {"contentPolicy": {"filters": filters},
                                                                   "invocationMetrics": metrics}}}  # fmt: skip
    if blocked:
        out["actionReason"] = "Guardrail blocked."
    else:
        out["outputAssessments"] = {spec.guardrail_id: [{"invocationMetrics": metrics}]}
    return out


__all__ = ["GuardrailDecision", "decide", "resolve"]

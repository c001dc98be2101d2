"""One preflight before any load that can cost money: credentials, catalog, cost, confirmation, one probe request.

Every way of sending load to a target that is not this machine (``bedrock-lab burst`` / ``locust`` with
``--region``, the cell notebook with ``target_kind="aws"``; the sweep runner does the same per sweep) calls
:func:`preflight` before the first request. It

1. resolves the credentials once (a clear error when there are none; they are never printed);
2. checks the model against the catalog: an unknown id may be new on AWS, so it is only noted and the probe
   decides; a known model must offer the tier and accept ``max_tokens``;
3. estimates the cost (expected requests x (input + max_tokens output tokens) x the catalog's list prices) and asks
   for confirmation (``yes`` skips it; with no terminal it refuses), and honours a budget cap;
4. sends one probe (a Converse with ``maxTokens=1``) and stops with the service's message if it fails.

Emulator targets cost nothing and skip it: the engines' circuit breaker ends a hopeless run there within about 20
requests. An AWS target is checked whatever its endpoint (a tunnel or proxy on localhost is still AWS).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab._money import fmt_usd
from bedrock_lab.errors import ConfigError, EngineError

#: seconds per request assumed when the catalog has no latency profile for the model
FALLBACK_E2E_S = 2.0


@dataclass
class PreflightResult:
    """What the preflight found: the cost estimate and notes a person should read."""

    target: str
    expected_requests: float | None = None
    est_cost_usd: float | None = None
    probed: bool = False
    notes: list[str] = field(default_factory=list)


def _terminal_confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise EngineError(f"{question.rstrip(' ?[y/N]')}: no terminal to ask for confirmation; pass --yes "
                          "(or yes=True) to spend it")  # fmt: skip
    return input(question).strip().lower() in ("y", "yes")


def _input_tokens(spec: Any) -> float:
    """Mean input tokens of the first prompts of the workload (about 1.35 tokens per word plus framing)."""
    import random

    from bedrock_lab.engines.workloads import load_workload

    conv = load_workload(spec.workload, spec.prompt_size, spec.prompts_dir).conversation(random.Random(spec.seed))
    words = []
    for _ in range(5):
        item = conv.next()
        words.append(sum(len(text.split()) for _, text in item.turns) + len((item.system or "").split()))
        conv.observe(item, "", True)
    return round(sum(words) / len(words) * 1.35 + 8, 1)


def estimate(spec: Any, model: Any | None) -> tuple[float | None, float | None]:
    """(expected requests, estimated USD) of a run; None where it cannot be known (no bound, unknown model)."""
    if spec.requests is not None:
        n: float | None = float(spec.requests)
    else:
        e2e = FALLBACK_E2E_S
        lat = getattr(model, "latency", None)
        if lat is not None and getattr(lat, "tokens_per_s", 0) > 0:
            e2e = lat.ttft_ms / 1000.0 + spec.max_tokens / lat.tokens_per_s
        n = spec.duration_s * (spec.rate_rps if spec.rate_rps else (spec.users or 1) / e2e)
    if model is None or n is None:
        return n, None
    return n, float(n * model.cost_usd(_input_tokens(spec), spec.max_tokens, spec.tier))


def preflight(
    spec: Any,
    target: Any,
    *,
    yes: bool = False,
    budget_usd: float | None = None,
    confirm: Callable[[str], bool] | None = None,
    echo: Callable[[str], None] = print,
    probe: bool = True,
) -> PreflightResult:
    """Check, price, confirm and probe a run of ``spec`` (a BurstSpec) against ``target`` (a Target) before any
    load; raises :class:`ConfigError` / :class:`EngineError` with the reason. See the module docstring."""
    result = PreflightResult(target=target.describe())
    if target.is_emulator:  # an AWS target on loopback (a tunnel, a proxy) is still AWS: it gets the preflight
        return result
    if budget_usd is not None and not budget_usd > 0:
        raise ConfigError("must be > 0", key="--budget-usd", value=budget_usd, allowed="USD > 0")
    target.credentials()  # EngineError naming the credential chain when there are none
    from bedrock_lab.catalog import load_catalog

    model = load_catalog().get(spec.model_id)
    if model is None:
        result.notes.append(f"model {spec.model_id!r} is not in the catalog: it may be new on AWS, so the probe "
                            "decides; the cost cannot be estimated")  # fmt: skip
    else:
        if spec.tier is not None and not model.supports_tier(spec.tier):
            raise ConfigError(f"model {spec.model_id!r} does not offer service tier {spec.tier!r}", key="tier",
                              value=spec.tier, allowed=", ".join(model.tiers))  # fmt: skip
        if spec.max_tokens > model.max_output_tokens:
            raise ConfigError(f"more than {spec.model_id} can produce per request: every request would be rejected",
                              key="max_tokens", value=spec.max_tokens, allowed=f"1..{model.max_output_tokens}")  # fmt: skip
    result.expected_requests, result.est_cost_usd = estimate(spec, model)
    for note in result.notes:
        echo(f"note: {note}")
    cost = "an unknown cost" if result.est_cost_usd is None else f"an estimated {fmt_usd(result.est_cost_usd)}"
    n = "" if result.expected_requests is None else f"~{result.expected_requests:,.0f} requests "
    echo(f"plan: {n}to {result.target} for {cost} (list prices of params/catalog.yaml; output tokens counted at "
         f"max_tokens {spec.max_tokens}, an upper bound)")  # fmt: skip
    if budget_usd is not None and result.est_cost_usd is not None and result.est_cost_usd > budget_usd:
        raise ConfigError(f"the estimate {fmt_usd(result.est_cost_usd)} is over the budget", key="--budget-usd",
                          value=budget_usd, allowed=f"at least {fmt_usd(result.est_cost_usd)}, or fewer requests")  # fmt: skip
    if not yes and not (confirm or _terminal_confirm)(f"Send {n}to {result.target} for {cost}? [y/N] "):
        raise EngineError("not confirmed: nothing was sent")
    if probe:
        _probe(spec, target)
        result.probed = True
    return result


def _probe(spec: Any, target: Any) -> None:
    """One Converse with maxTokens=1 (the cheapest request that proves model access, tier and credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bedrock_lab.engines.formats import build_request
    from bedrock_lab.engines.target import ClientSettings

    client = target.boto3_client(ClientSettings(max_attempts=1, connect_timeout_s=5.0, read_timeout_s=30.0))
    prep = build_request("converse", spec.model_id, "Say OK.", max_tokens=1, tier=spec.tier)
    try:
        client.converse(**prep.boto3_kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        if err.get("Code") == "ThrottlingException":  # the model answered: throttling is a result, not a fault
            return
        raise EngineError(f"the probe request failed, nothing else was sent: {err.get('Code')}: "
                          f"{err.get('Message')}") from None  # fmt: skip
    except BotoCoreError as exc:
        raise EngineError(f"the probe request failed, nothing else was sent: {type(exc).__name__}: {exc}") from None

"""One preflight before any load that can cost money: credentials, catalog, cost, confirmation, one probe request.

Every way of sending load to a target that is not this machine (``bedrock-lab burst`` / ``locust`` with
``--region``, the cell notebook with ``target_kind="aws"``; the sweep runner does the same per sweep) calls
:func:`preflight` before the first request. It

1. resolves the credentials once (a clear error when there are none; they are never printed);
2. checks the model against the catalog: an unknown id may be new on AWS, so it is only noted and the probe
   decides; a known model must offer the tier and accept ``max_tokens``;
3. estimates the cost (expected requests x (input + max_tokens output tokens) x the catalog's list prices; a
   prompt cache's reads and writes as plain input, an upper bound unless most requests write) and asks
   for confirmation (``yes`` skips it; with no terminal it refuses), and honours a budget cap. Input tokens are
   counted by the target's CountTokens operation (free on AWS) for every distinct request of the workload; where
   it refuses (many models have no token counting: Amazon Nova answers ValidationException) or cannot be reached,
   the local estimate (:mod:`bedrock_lab.tokens`) is used and the plan line says which;
4. sends one probe (a Converse with ``maxTokens=1``) and stops with the service's message if it fails.

Emulator targets cost nothing and skip it: the engines' circuit breaker ends a hopeless run there within about 20
requests. An AWS target is checked whatever its endpoint (a tunnel or proxy on localhost is still AWS).
"""

from __future__ import annotations

import random
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab._money import fmt_usd
from bedrock_lab.engines.workloads import WorkItem, Workload, load_workload
from bedrock_lab.errors import ConfigError, EngineError
from bedrock_lab.token_estimate import estimate_request_tokens
from bedrock_lab.tokens import count_request

_ARN = re.compile(r"arn:aws[\w-]*:\S*")
#: seconds per request assumed when the catalog has no latency profile for the model
FALLBACK_E2E_S = 2.0


@dataclass
class PreflightResult:
    """What the preflight found: the cost estimate and notes a person should read."""

    target: str
    expected_requests: float | None = None
    est_cost_usd: float | None = None
    input_tokens: InputTokens | None = None  #: per request, with its source (None: the model is not in the catalog)
    probed: bool = False
    notes: list[str] = field(default_factory=list)


def _terminal_confirm(question: str) -> bool:
    if not sys.stdin or not sys.stdin.isatty():
        raise EngineError(f"{question.rstrip(' ?[y/N]')}: no terminal to ask for confirmation; pass --yes "
                          "(or yes=True) to spend it")  # fmt: skip
    return input(question).strip().lower() in ("y", "yes")


# --------------------------------------------------------------------------------------------- input tokens


@dataclass(frozen=True)
class InputTokens:
    """Mean input tokens per request of one model and workload, and whether CountTokens counted them."""

    tokens: float
    counted: bool
    reason: str = ""  #: why the local estimate stands in (CountTokens refused, unreachable, not asked)
    #: of ``tokens``, what CountTokens is not asked about (tool specs, later agent turns): the local estimate's
    not_counted: float = 0.0

    def describe(self) -> str:
        how = "counted by CountTokens" if self.counted else f"local estimate ({self.reason or 'CountTokens not asked'})"
        if self.not_counted and self.counted:
            how += f", plus ~{self.not_counted:,.0f} of tool specs and later turns by the local estimate"
        return how


def workload_requests(workload: Workload, *, answer_tokens: int) -> list[tuple[WorkItem, float]]:
    """The distinct requests a workload sends, each with its share of all requests: uniform over the prompts (a
    size class, the documents), by task weight for a mix, each turn once for a chat, whose earlier answers are
    stood in for by ``answer_tokens`` one-token words (the real answers are not known before the run)."""
    if workload.kind == "chat":
        conv = workload.conversation(random.Random(0))
        chat: list[WorkItem] = []
        for _ in workload.data["turns"]:
            item = conv.next()
            chat.append(item)
            conv.observe(item, " ".join(["word"] * min(answer_tokens, item.max_tokens or answer_tokens)), True)
        return [(item, 1 / len(chat)) for item in chat]
    # the workload's own prompt pools (``_items``/``_weights``: what ``Workload.draw`` draws from)
    weights = workload._weights if workload.kind == "mix" else [1.0] * len(workload._items)
    total = sum(weights)
    out: list[tuple[WorkItem, float]] = []
    for choice, weight in zip(workload._items, weights, strict=True):
        pool: list[WorkItem] = choice if isinstance(choice, list) else [choice]
        out += [(item, weight / total / len(pool)) for item in pool]
    return out


def _count_input(api: str, model_id: str, item: WorkItem, max_tokens: int) -> dict[str, Any]:
    """CountTokens ``input`` for the request the engines build for ``item`` (the Converse or InvokeModel form)."""
    from bedrock_lab.engines.formats import CHAT_API, build_request

    if api == CHAT_API:  # CountTokens has no chat form: the same body through InvokeModel (provider format openai)
        api = "invoke"
    prep = build_request(api, model_id, item.turns, system=item.system, max_tokens=item.max_tokens or max_tokens)
    if api.startswith("converse"):
        return {"converse": {k: prep.boto3_kwargs[k] for k in ("messages", "system") if k in prep.boto3_kwargs}}
    return {"invokeModel": {"body": prep.boto3_kwargs["body"]}}


def count_inputs(
    target: Any,
    keys: Iterable[tuple[str, str]],
    *,
    workload: str,
    api: str,
    max_tokens: int,
    answer_tokens: int | None = None,
    prompts_dir: str | None = None,
) -> dict[tuple[str, str], InputTokens]:
    """Input tokens per request for each (model id, prompt size) in ``keys``: CountTokens on ``target`` once per
    distinct request (addressed by the base model id: CountTokens takes foundation models, not inference
    profiles), the local estimate where the model refuses, the target cannot be reached, or ``target`` is None."""
    from botocore.exceptions import BotoCoreError, ClientError

    from bedrock_lab.engines.formats import base_model_id
    from bedrock_lab.engines.target import ClientSettings

    answer = max_tokens if answer_tokens is None else answer_tokens
    client: Any = None
    out: dict[tuple[str, str], InputTokens] = {}
    refused: dict[str, str] = {} if target is not None else {"*": "CountTokens not asked"}  # model or "*" -> why
    for model_id, size in dict.fromkeys(keys):
        reqs = workload_requests(load_workload(workload, size, prompts_dir), answer_tokens=answer)
        local = sum(share * count_request(item.system, item.turns) for item, share in reqs)
        base = base_model_id(model_id)
        reason = refused.get("*") or refused.get(base)
        if reason:
            out[model_id, size] = InputTokens(local, False, reason)
            continue
        if client is None:
            client = target.boto3_client(ClientSettings(max_attempts=1, connect_timeout_s=5.0, read_timeout_s=30.0))
        counted = 0.0
        try:
            for item, share in reqs:
                counted += share * float(client.count_tokens(modelId=base, input=_count_input(api, base, item, max_tokens))
                                         ["inputTokens"])  # fmt: skip
        except ClientError as exc:
            err = exc.response.get("Error", {})
            message = _ARN.sub("<arn>", str(err.get("Message")))[:160]  # an AccessDenied names the caller's ARN
            refused[base] = f"CountTokens refused {base}: {err.get('Code')}: {message}"
            out[model_id, size] = InputTokens(local, False, refused[base])
            continue
        except BotoCoreError as exc:
            refused["*"] = f"CountTokens failed: {type(exc).__name__}"
            out[model_id, size] = InputTokens(local, False, refused["*"])
            continue
        out[model_id, size] = InputTokens(counted, True)
    return out


def _input_tokens(spec: Any, target: Any) -> InputTokens:
    """The run's input tokens per request: CountTokens on ``target`` (None: not asked), else the local estimate,
    plus what CountTokens is not asked about (an agent's tool specs on every turn and its later turns), by the
    plan's estimator (:func:`bedrock_lab.token_estimate.estimate_request_tokens`): both price the same requests."""
    key = (spec.model_id, spec.prompt_size)
    got = count_inputs(target, [key], workload=spec.workload, api=spec.api, max_tokens=spec.max_tokens,
                       prompts_dir=spec.prompts_dir)[key]  # fmt: skip
    local = estimate_request_tokens(spec.workload, spec.prompt_size, spec.prompts_dir, answer_tokens=spec.max_tokens)
    extra = local.not_counted if local is not None else 0.0
    return InputTokens(got.tokens + extra, got.counted, got.reason, extra)


def estimate(spec: Any, model: Any | None, input_tokens: float | None = None) -> tuple[float | None, float | None]:
    """(expected requests, estimated USD) of a run; None where it cannot be known (no bound, unknown model).
    ``input_tokens`` per request: counted ones, else the local estimate of the workload."""
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
    if input_tokens is None:
        input_tokens = _input_tokens(spec, None).tokens
    return n, float(n * model.cost_usd(input_tokens, spec.max_tokens, spec.tier))


def preflight(
    spec: Any,
    target: Any,
    *,
    yes: bool = False,
    budget_usd: float | None = None,
    confirm: Callable[[str], bool] | None = None,
    echo: Callable[[str], None] = print,
    probe: bool = True,
    count_tokens: bool | None = None,
) -> PreflightResult:
    """Check, price, confirm and probe a run of ``spec`` (a BurstSpec) against ``target`` (a Target) before any
    load; raises :class:`ConfigError` / :class:`EngineError` with the reason. See the module docstring.
    ``count_tokens`` (default: as ``probe``) asks the target's CountTokens for the input tokens."""
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
    if model is not None:
        result.input_tokens = _input_tokens(spec, target if (probe if count_tokens is None else count_tokens) else None)
    result.expected_requests, result.est_cost_usd = estimate(
        spec, model, result.input_tokens.tokens if result.input_tokens else None)
    for note in result.notes:
        echo(f"note: {note}")
    cost = "an unknown cost" if result.est_cost_usd is None else f"an estimated {fmt_usd(result.est_cost_usd)}"
    n = "" if result.expected_requests is None else f"~{result.expected_requests:,.0f} requests "
    inputs = "" if result.input_tokens is None else (
        f"input tokens ~{result.input_tokens.tokens:,.1f} per request, {result.input_tokens.describe()}; ")
    echo(f"plan: {n}to {result.target} for {cost} (list prices of params/catalog.yaml; {inputs}output tokens "
         f"counted at max_tokens {spec.max_tokens}, an upper bound)")  # fmt: skip
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

"""One load cell's settings, typed and validated once, with one set of defaults.

Everything that describes a cell is derived from the models here:

- the sweep file's ``cell:`` section (:class:`bedrock_lab.params.CellConfig` extends :class:`CellSettings`),
- the plan's cells (:class:`bedrock_lab.plan.Cell` carries a :class:`CellSpec`),
- the cell notebook's parameters (``notebooks/cell.py``; :func:`notebook_parameters`, and a test keeps the
  notebook's literal defaults equal to :data:`DEFAULTS`),
- the engines' :class:`~bedrock_lab.engines.BurstSpec` (its cell fields and defaults come from here),
- the Locust ``--bl-*`` options and the ``bedrock-lab burst`` / ``locust`` options (:data:`CLI_FIELDS`: flag, help
  and default read from these fields).

>>> spec = CellSpec(model_id="amazon.nova-lite-v1:0", users=4, duration_s=10)
>>> spec.max_tokens, spec.breaker_after
(256, 20)
>>> parse_cell({"model_id": "m", "users": 0, "duration_s": 1}, source="my.yaml")
Traceback (most recent call last):
...
bedrock_lab.errors.ConfigError: my.yaml: users: must be >= 1: got 0 (allowed: a number >= 1)
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bedrock_lab.catalog import APIS, TIERS
from bedrock_lab.errors import ConfigError

Api = Literal["converse", "converse-stream", "invoke", "invoke-stream", "chat-completions"]
Tier = Literal["priority", "default", "flex", "reserved"]
Engine = Literal["burst", "locust"]
LocustClient = Literal["boto3", "direct"]
Arrival = Literal["poisson", "constant"]
#: sequential cells (issue #14): off (fixed bounds), verdict (stop once the SLO verdict is settled) or precision
#: (stop once the percentile is known to ``precision``); see docs/sequential.md
Sequential = Literal["off", "verdict", "precision"]
SloMetric = Literal["ttft_s", "e2e_s", "tpot_s"]

#: the model a cell uses when none is named (small, cheap, in the catalog)
DEFAULT_MODEL = "amazon.nova-lite-v1:0"

#: AWS's limit: up to 4 stop sequences per Converse request (InferenceConfiguration.stopSequences)
MAX_STOP_SEQUENCES = 4


def stop_sequence_list(value: str | None) -> tuple[str, ...]:
    """``"a|b"`` as the request's stop sequences; blank ones are refused (the service rejects them)."""
    if not value:
        return ()
    parts = tuple(value.split("|"))
    if any(not p.strip() for p in parts) or len(parts) > MAX_STOP_SEQUENCES:
        raise ValueError(f"expected 1 to {MAX_STOP_SEQUENCES} non-blank sequences separated by '|', "
                         f"got {value!r}")  # fmt: skip
    return parts


def guardrail_pair(value: str | None) -> tuple[str, str] | None:
    """``"id:version"`` as (guardrailIdentifier, guardrailVersion); the identifier may be an ARN (it has colons),
    so the version is what follows the last one: DRAFT or a number."""
    if not value:
        return None
    ident, sep, version = value.rpartition(":")
    if not sep or not ident.strip() or not (version == "DRAFT" or version.isdigit()):
        raise ValueError(f"expected identifier:version with version DRAFT or a number (e.g. gr-abc123:1), "
                         f"got {value!r}")  # fmt: skip
    return ident, version


def tier_weights(value: str | None) -> dict[str, float]:
    """``"priority:1,default:1,flex:1"`` as {tier: weight}; every tier in TIERS, every weight a number > 0."""
    if not value:
        return {}
    out: dict[str, float] = {}
    for part in value.split(","):
        tier, sep, weight = part.strip().partition(":")
        tier = tier.strip()
        try:
            w = float(weight) if sep else float("nan")
        except ValueError:
            w = float("nan")
        if tier not in TIERS or not w > 0 or w == float("inf") or tier in out:
            raise ValueError(f"expected distinct tier:weight pairs separated by ',' with tiers from "
                             f"{', '.join(TIERS)} and weights > 0 (e.g. priority:1,default:1,flex:1), got {value!r}")
        out[tier] = w
    return out


def pick_tier(weights: Mapping[str, float], seed: int, key: str) -> str:
    """The tier of one request of a mixed cell: drawn from ``weights`` with ``Random(f"{seed}:tier:{key}")``
    (``key``: the worker and its request number), so a seeded run asks the same tiers whichever engine runs it."""
    u = random.Random(f"{seed}:tier:{key}").random() * sum(weights.values())
    for tier, w in weights.items():
        u -= w
        if u < 0:
            return tier
    return list(weights)[-1]


class CellSettings(BaseModel):
    """The settings of a cell that do not vary across a sweep's grid (a sweep file's ``cell:`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Engine = Field("burst", description="load engine: burst (asyncio) or locust")
    api: Api = Field("converse-stream", description="Bedrock Runtime operation: " + " | ".join(APIS))
    workload: str = Field("single", description="prompt set: single, chat, summarise, mix (params/prompts/<name>.yaml) or a YAML path")
    arrival: Arrival = Field("poisson", description="open-loop arrivals: poisson or constant")
    duration_s: float | None = Field(None, gt=0, description="seconds of load (None: stop after requests)")
    requests: int | None = Field(None, ge=1, description="requests to send (None: run for duration_s)")
    ramp_s: float = Field(0.0, ge=0, description="seconds to ramp up users (or the rate)")
    max_tokens: int = Field(256, ge=1, description="maxTokens of each request")
    temperature: float | None = Field(None, ge=0, description="temperature of each request (None: not sent)")
    locust_workers: int = Field(0, ge=0, description="locust only: worker processes (0: one local process)")
    locust_client: LocustClient = Field("boto3", description="locust only: boto3 (the SDK, as your application "
                                        "sends) | direct (urllib3 and the burst engine's decoders: about half the "
                                        "CPU per request, for the most load per core)")
    max_attempts: int = Field(1, ge=1, description="attempts per request (1: retries off, throttles are records)")
    connect_timeout_s: float = Field(10.0, gt=0, description="connect timeout, s")
    read_timeout_s: float = Field(120.0, gt=0, description="read timeout (longest silence between bytes), s")
    breaker_after: int = Field(20, ge=0, description="stop the run after this many consecutive connection, "
                                                     "credential or validation errors (0: never)")
    min_success_rate: float = Field(0.5, ge=0, le=1, description="the run is invalid when fewer of its requests "
                                                                 "that were not throttled succeed")
    # sequential cells: duration_s / requests become the maximum (bedrock_lab.engines.stopping, docs/sequential.md)
    sequential: Sequential = Field("off", description="stop early: off | verdict (SLO percentile settled above or "
                                                      "below its target) | precision (percentile known to precision)")
    slo_metric: SloMetric = Field("ttft_s", description="sequential: the SLO metric watched (ttft_s, e2e_s, tpot_s)")
    slo_percentile: float = Field(0.95, gt=0, lt=1, description="sequential: the SLO percentile as a fraction")
    slo_target_s: float | None = Field(None, gt=0, description="sequential: the SLO target in s (None: the "
                                                               "sweep's slo.<metric>_p95_s; burst and locust "
                                                               "verdict cells need it)")
    precision: float = Field(0.05, gt=0, le=1, description="sequential precision: relative half-width to reach")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="sequential: error rate of the always-valid verdict")
    check_every_s: float = Field(2.0, gt=0, description="sequential: seconds between looks at the records")
    min_duration_s: float = Field(0.0, ge=0, description="sequential: never stop before this many s of load")
    min_requests: int = Field(0, ge=0, description="sequential: never stop before this many measured requests")
    warmup_s: float = Field(0.0, ge=0, description="sequential: requests started in the first s are not used")

    # production features (issue 13): request options and the fallback policy (bedrock_lab/engines/fallback.py)
    stop_sequences: str | None = Field(None, description="stop sequences of each request, separated by '|' "
                                                         "(None: not sent)")
    guardrail: str | None = Field(None, description="guardrail of each request as identifier:version "
                                                    "(version DRAFT or a number; None: no guardrail)")
    fallback_model: str | None = Field(None, description="on throttling or a server error, ask this (lighter) "
                                                         "model once (None: no fallback model)")
    fallback_tier: Tier | None = Field(None, description="on throttling or a server error, ask this service tier "
                                                         "once (None: the cell's tier)")

    # mixed tiers (issue 15): tiers competing inside one run, one drawn per request (cellspec.pick_tier)
    tier_mix: str | None = Field(None, description="ask a mix of service tiers in one run, one drawn per request "
                                                   "(seeded) and recorded in tier_requested, as tier:weight pairs, "
                                                   "e.g. priority:1,default:1,flex:1 (None: the cell's tier)")

    @field_validator("tier_mix", mode="before")
    @classmethod
    def _tier_mix(cls, v: Any) -> Any:
        if isinstance(v, Mapping):  # a sweep file's {priority: 1, default: 1}
            v = ",".join(f"{k}:{w}" for k, w in v.items())
        if isinstance(v, str) and v:
            v = ",".join(f"{t}:{w:g}" for t, w in tier_weights(v).items())
        return v

    @field_validator("guardrail")
    @classmethod
    def _guardrail_pair(cls, v: str | None) -> str | None:
        guardrail_pair(v)
        return v

    @field_validator("stop_sequences")
    @classmethod
    def _stop_list(cls, v: str | None) -> str | None:
        stop_sequence_list(v)
        return v


class CellSpec(CellSettings):
    """One cell: the grid-invariant :class:`CellSettings` plus its own model, tier, prompt size, load and seed."""

    model_id: str = Field(DEFAULT_MODEL, min_length=1, description="model id as sent (base id, prefixed profile or ARN)")
    tier: Tier | None = Field(None, description="service tier to request: " + " | ".join(TIERS) + " (None: send none)")
    prompt_size: str = Field("small", description="prompt size class of the single workload: small, medium, large")
    users: int | None = Field(None, ge=1, description="closed loop: concurrent users")
    rate_rps: float | None = Field(None, gt=0, description="open loop: arrivals per second")
    seed: int = Field(0, description="seed of the workload and arrivals")
    background_load: float | None = Field(None, ge=0, description="other customers' demand on the emulator during "
                                                                  "the cell, share of each model's capacity, recorded "
                                                                  "in every record (a sweep's grid.background_load "
                                                                  "sets its own emulator to it; None: not recorded)")

    @model_validator(mode="after")
    def _one_load_and_a_bound(self) -> CellSpec:
        if self.users is not None and self.rate_rps is not None:
            raise ValueError("set users (closed loop) or rate_rps (open loop), not both")
        if self.engine == "locust" and self.rate_rps is not None:
            raise ValueError("the locust engine runs closed loop only: set users")
        if self.sequential == "verdict" and self.slo_target_s is None:
            raise ValueError("sequential verdict cells need slo_target_s (or a sweep slo for slo_metric)")
        return self

    @model_validator(mode="after")
    def _fallback_elsewhere(self) -> CellSpec:
        if (self.fallback_model or self.fallback_tier) and (self.fallback_model or self.model_id,
                                                            self.fallback_tier or self.tier) == (self.model_id, self.tier):
            raise ValueError("the fallback is the cell's own model and tier: name another (lighter) fallback_model "
                             "and/or another fallback_tier")  # fmt: skip
        return self


#: every field's default, by name (what notebooks/cell.py and the CLI must show)
DEFAULTS: dict[str, Any] = {name: f.default for name, f in CellSpec.model_fields.items()}

#: fields the ``burst``/``locust`` CLIs and the Locust ``--bl-*`` options take from here: field -> flag name
CLI_FIELDS: dict[str, str] = {
    "model_id": "model", "api": "api", "tier": "tier", "workload": "workload", "prompt_size": "prompt-size",
    "max_tokens": "max-tokens", "temperature": "temperature", "seed": "seed", "max_attempts": "max-attempts",
    "connect_timeout_s": "connect-timeout", "read_timeout_s": "read-timeout", "breaker_after": "breaker-after",
    "min_success_rate": "min-success-rate",
    "sequential": "sequential", "slo_metric": "slo-metric", "slo_percentile": "slo-percentile",
    "slo_target_s": "slo-target", "precision": "precision", "alpha": "alpha", "check_every_s": "check-every",
    "min_duration_s": "min-duration", "min_requests": "min-requests", "warmup_s": "warmup",
}  # fmt: skip

#: the sequential-cell fields (one group in every interface)
SEQUENTIAL_FIELDS = ("sequential", "slo_metric", "slo_percentile", "slo_target_s", "precision", "alpha",
                     "check_every_s", "min_duration_s", "min_requests", "warmup_s")

#: the production-feature options (issue 13): request options and the fallback policy
PRODUCTION_FIELDS: tuple[str, ...] = ("stop_sequences", "guardrail", "fallback_model", "fallback_tier")
CLI_FIELDS.update({name: name.replace("_", "-") for name in PRODUCTION_FIELDS})
#: shared capacity (issue 15): a mix of tiers in one run, and the background level the records are labelled with
CLI_FIELDS.update({"tier_mix": "tier-mix", "background_load": "background-load"})

def field_help(name: str) -> str:
    """The description of a :class:`CellSpec` field (the help text every interface shows)."""
    return str(CellSpec.model_fields[name].description or name)


def config_error(exc: ValidationError, *, source: str) -> ConfigError:
    """The first problem of a pydantic error as a :class:`ConfigError` naming the key, value and what is allowed."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or None
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    value = err.get("input")
    allowed: str | None = None
    msg = str(err.get("msg", "invalid value"))
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sym = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        msg, allowed = f"must be {sym} {bound}: got {value!r}", f"a number {sym} {bound}"
    elif kind == "literal_error":
        msg, allowed = f"not one of the allowed values: got {value!r}", str(ctx.get("expected", ""))
    elif kind == "extra_forbidden":
        msg, allowed = "unknown setting", ", ".join(CellSpec.model_fields)
    elif kind == "value_error":
        msg = str(ctx.get("error", msg))
    elif value is not None:
        msg = f"{msg}: got {value!r}"
    return ConfigError(msg, source=source, key=loc, value=value, allowed=allowed)


def parse_cell(data: dict[str, Any], *, source: str = "cell") -> CellSpec:
    """Validate ``data`` as a :class:`CellSpec`; a :class:`ConfigError` names ``source``, the key and the value."""
    try:
        return CellSpec.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, source=source) from None


#: how the cell notebook spells "unset" for optional fields where 0 is a real value
_NOTEBOOK_UNSET: dict[str, Any] = {"temperature": -1.0, "background_load": -1.0}


def _unset(name: str) -> Any:
    if name in _NOTEBOOK_UNSET:
        return _NOTEBOOK_UNSET[name]
    ann = str(CellSpec.model_fields[name].annotation)
    return "" if ("str" in ann or "Literal" in ann) else 0


def notebook_parameters(spec: CellSpec) -> dict[str, Any]:
    """``spec`` as the cell notebook's parameters: papermill takes literals, so None becomes 0 / "" (-1 for
    ``temperature``, where 0 is a value) and :func:`from_notebook_parameters` reads them back as unset."""
    return {name: _unset(name) if value is None else value for name, value in spec.model_dump().items()}


def from_notebook_parameters(params: dict[str, Any], *, source: str = "cell notebook parameters") -> CellSpec:
    """The inverse of :func:`notebook_parameters`: 0 / "" mean unset for the optional fields."""
    data: dict[str, Any] = {}
    for name, value in params.items():
        field = CellSpec.model_fields.get(name)
        optional = field is not None and field.default is None
        data[name] = None if optional and value == _unset(name) else value
    return parse_cell(data, source=source)


__all__ = [
    "CLI_FIELDS",
    "DEFAULTS",
    "DEFAULT_MODEL",
    "PRODUCTION_FIELDS",
    "SEQUENTIAL_FIELDS",
    "CellSettings",
    "CellSpec",
    "config_error",
    "field_help",
    "from_notebook_parameters",
    "guardrail_pair",
    "notebook_parameters",
    "parse_cell",
    "pick_tier",
    "stop_sequence_list",
    "tier_weights",
]

"""The model catalog: which model ids exist, how their bodies look, what they cost and how they behave.

One YAML file (``params/catalog.yaml``) feeds both the emulator (formats, latency, capacity, quotas, faults)
and the planning side (prices, quotas), so a cost estimate and an emulated run never disagree.

Usage::

    cat = load_catalog()                          # params/catalog.yaml, or $BEDROCK_LAB_CATALOG
    spec = cat.resolve("us.amazon.nova-lite-v1:0")  # prefixes and ARNs resolve to the base model
    spec.provider_format                          # "nova"
    spec.cost_usd(1200, 300, tier="flex")         # illustrative USD
    spec.price("priority").input_per_1k

Prices in the shipped catalog are illustrative (see the file header), never a quote.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from bedrock_lab.errors import ConfigError

#: Bedrock Runtime operations the kit drives, by the names records and Locust request names use
#: (``chat-completions``: the OpenAI-compatible ``POST /openai/v1/chat/completions``, streamed; docs/openai.md)
APIS = ("converse", "converse-stream", "invoke", "invoke-stream", "chat-completions")
#: InvokeModel body formats the emulator speaks (``openai``: the Chat Completions body of the gpt-oss models)
PROVIDER_FORMATS = ("anthropic", "anthropic-text", "titan", "nova", "llama", "mistral", "openai")
#: service tiers of the Bedrock API (ServiceTierType)
TIERS = ("priority", "default", "flex", "reserved")
#: cross-region inference profile prefixes
REGION_PREFIXES = ("us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "global.")
#: fault rates a model (or an override) may set; each is a probability per request
FAULT_KINDS = (
    "error_500",  # InternalServerException before the response
    "error_503",  # ServiceUnavailableException before the response
    "error_408",  # ModelTimeoutException before the response
    "model_not_ready",  # ModelNotReadyException (429) before the response
    "stream_throttle",  # throttlingException frame mid-stream
    "stream_error",  # modelStreamErrorException frame mid-stream
    "drop",  # connection closed without a response / mid-stream
    "stall",  # one extra pause of ``stall_ms`` inside the response
)
#: Converse features a model may lack (AWS user guide, "Supported models and model features"); a request using
#: one the model's ``features`` list omits is a ValidationException in the emulator, as on AWS
FEATURES = ("system", "tools", "tool_streaming", "images", "documents", "reasoning", "structured_output")
#: prompt-cache TTLs of botocore's CacheTTL enum, in seconds
CACHE_TTLS = {"5m": 300.0, "1h": 3600.0}

DEFAULT_CATALOG_ENV = "BEDROCK_LAB_CATALOG"
_ARN_RE = re.compile(r"^arn:aws(?:-[a-z-]+)?:bedrock:[a-z0-9-]*:(\d{12})?:([a-z-]+)/(.+)$")


@dataclass(frozen=True)
class TierPrice:
    """USD per 1,000 tokens."""

    input_per_1k: float
    output_per_1k: float


@dataclass(frozen=True)
class LatencyProfile:
    """How a model answers. Times in milliseconds.

    TTFT = (ttft_ms + prefill_ms_per_1k * input_tokens / 1000) x lognormal(0, ttft_sigma), plus queue wait.
    Decode: chunks of ``chunk_tokens`` tokens at ``tokens_per_s`` (times the tier speed-up, divided by
    ``1 + contention * busy_fraction``), each gap multiplied by a lognormal(0, jitter) factor.
    Output length: lognormal with median ``output_median_tokens`` and ``output_sigma``, capped by maxTokens
    (0 = always exactly maxTokens).
    """

    ttft_ms: float = 400.0
    prefill_ms_per_1k: float = 40.0
    ttft_sigma: float = 0.25
    tokens_per_s: float = 80.0
    jitter: float = 0.2
    chunk_tokens: int = 4
    capacity: int = 64  #: concurrent requests served at once; the rest wait in a priority queue
    contention: float = 0.25  #: decode slow-down factor at full capacity (0 = none)
    output_median_tokens: int = 300
    output_sigma: float = 0.6


@dataclass(frozen=True)
class FaultProfile:
    """Per-request fault probabilities (see FAULT_KINDS) and the stall length."""

    error_500: float = 0.0
    error_503: float = 0.0
    error_408: float = 0.0
    model_not_ready: float = 0.0
    stream_throttle: float = 0.0
    stream_error: float = 0.0
    drop: float = 0.0
    stall: float = 0.0
    stall_ms: float = 2000.0

    @property
    def any(self) -> bool:
        return any(getattr(self, k) > 0 for k in FAULT_KINDS)


@dataclass(frozen=True)
class CacheProfile:
    """Prompt caching of one model (AWS user guide, "Prompt caching for faster model inference"; prices relative
    to the input price from https://aws.amazon.com/bedrock/pricing/: Anthropic reads ~0.1x and writes ~1.25x,
    Amazon Nova reads ~0.25x and writes at no extra charge)."""

    min_tokens: int = 1024  #: minimum prefix tokens per cache checkpoint
    max_checkpoints: int = 4  #: cache points per request
    read_multiplier: float = 0.1  #: cache-read price / input price
    write_multiplier: float = 1.25  #: cache-write price / input price
    ttls: tuple[str, ...] = ("5m",)  #: accepted ``cachePoint.ttl`` values (CACHE_TTLS keys)
    fields: tuple[str, ...] = ("system", "messages", "tools")  #: where a cachePoint may stand


@dataclass(frozen=True)
class GuardrailSpec:
    """A guardrail the emulator knows (the catalog's ``guardrails:`` section): how often it intervenes (a seeded
    draw per request) and the latency it adds before the first token."""

    guardrail_id: str
    versions: tuple[str, ...] = ("DRAFT", "1")
    intervention_rate: float = 0.0
    latency_ms: float = 150.0
    blocked_message: str = "Sorry, the model cannot answer this question."


#: shapes of the background demand of other customers (:class:`BackgroundProfile`)
BACKGROUND_PATTERNS = ("none", "constant", "daily", "bursts")


@dataclass(frozen=True)
class BackgroundProfile:
    """Demand from other customers that shares a model's capacity (emulator only; docs/emulator.md).

    Offered load is a fraction of the model's capacity: ``level`` 0.8 keeps on average 80% of the slots busy
    when nothing else runs. Background requests queue with the test's own requests in tier order and give up
    after the emulator's ``max_queue_ms``. Times are scaled by the emulator's ``time_scale``.
    """

    pattern: str = "none"  #: none, constant, daily (sine cycle) or bursts (seeded, on top of ``level``)
    level: float = 0.0  #: mean offered load, fraction of capacity (may exceed 1: overload)
    amplitude: float = 0.5  #: daily: load = level x (1 + amplitude x sin(2 pi (t + phase_s) / period_s))
    period_s: float = 86_400.0  #: daily: cycle length
    phase_s: float = 0.0  #: daily: where in the cycle the emulator starts
    burst_level: float = 1.0  #: bursts: extra load during a burst, fraction of capacity
    burst_every_s: float = 600.0  #: bursts: mean time between burst starts (exponential)
    burst_s: float = 60.0  #: bursts: length of one burst
    hold_ms: float = 0.0  #: slot time of one background request; 0 = the model's TTFT + median output at its speed
    priority_share: float = 0.1  #: fraction of background requests in the priority tier
    flex_share: float = 0.3  #: fraction in flex (the rest: default)

    @property
    def active(self) -> bool:
        return self.pattern != "none" and (self.level > 0 or self.pattern == "bursts")


@dataclass(frozen=True)
class ModelSpec:
    """One base model. Planning code needs only ``model_id``, ``provider_format``, ``tiers``, ``price``,
    ``cost_usd``, ``tpm_quota`` and ``max_output_tokens``; the rest drives the emulator."""

    model_id: str
    provider: str
    provider_format: str
    tiers: tuple[str, ...]
    prices: Mapping[str, TierPrice]
    tpm_quota: int  #: tokens per minute (input + output x output_quota_burn), shared by all tiers
    max_output_tokens: int  #: also the maxTokens assumed when a request sets none
    context_window: int
    output_quota_burn: float = 1.0  #: output tokens count this many times against the quota
    latency_optimized: bool = False  #: accepts performanceConfig latency=optimized
    tier_speed: Mapping[str, float] = field(default_factory=dict)  #: output tokens/s multiplier per tier
    latency: LatencyProfile = field(default_factory=LatencyProfile)
    faults: FaultProfile = field(default_factory=FaultProfile)
    display_name: str = ""
    background: BackgroundProfile = field(default_factory=BackgroundProfile)  #: other customers' demand
    features: frozenset[str] = frozenset(FEATURES)  #: Converse features the model supports (FEATURES)
    cache: CacheProfile | None = None  #: prompt caching; None = the model has none

    def supports_tier(self, tier: str | None) -> bool:
        return tier is None or tier in self.tiers

    def price(self, tier: str | None = None) -> TierPrice:
        """Price of a tier (None = default); ConfigError if the model has no such tier."""
        t = tier or "default"
        if t not in self.prices:
            raise ConfigError(f"model {self.model_id} has no tier {t!r}", key="tier", value=t,
                              allowed=", ".join(self.tiers))
        return self.prices[t]

    def cost_usd(self, input_tokens: float, output_tokens: float, tier: str | None = None, *,
                 cache_read_tokens: float = 0.0, cache_write_tokens: float = 0.0) -> float:  # fmt: skip
        """Illustrative cost of one request (or of token totals) in USD. ``input_tokens`` are the uncached ones;
        cache reads and writes are priced at the model's cache multipliers of the input price."""
        p = self.price(tier)
        cost = input_tokens / 1000.0 * p.input_per_1k + output_tokens / 1000.0 * p.output_per_1k
        if cache_read_tokens or cache_write_tokens:
            c = self.cache or CacheProfile()
            cost += (cache_read_tokens * c.read_multiplier + cache_write_tokens * c.write_multiplier) / 1000.0 \
                * p.input_per_1k
        return cost


def split_model_id(model_id: str) -> tuple[str, str]:
    """``(prefix, base_id)`` of a model id, inference-profile id or ARN (percent-decoded).

    ``"us.amazon.nova-lite-v1:0"`` -> ``("us.", "amazon.nova-lite-v1:0")``; foundation-model and
    inference-profile ARNs give the id after the slash, split the same way. Other ARNs return the ARN.
    """
    mid = urllib.parse.unquote(model_id.strip())
    m = _ARN_RE.match(mid)
    if m:
        kind, rest = m.group(2), m.group(3)
        if kind in ("foundation-model", "inference-profile"):
            mid = rest
        else:
            return "", mid
    for p in REGION_PREFIXES:
        if mid.startswith(p):
            return p, mid[len(p):]
    return "", mid


@dataclass(frozen=True)
class Catalog:
    """All models of one catalog file, keyed by base model id."""

    models: Mapping[str, ModelSpec]
    source: str = "<memory>"
    guardrails: Mapping[str, GuardrailSpec] = field(default_factory=dict)  #: by guardrail id

    def resolve(self, model_id: str) -> ModelSpec:
        """The spec for a base id, a prefixed id (us., eu., apac., jp., au., us-gov., global.) or an ARN.

        Raises ConfigError (key ``model_id``) for an unknown id.
        """
        _, base = split_model_id(model_id)
        spec = self.models.get(base)
        if spec is None:
            raise ConfigError("unknown model id", source=self.source, key="model_id", value=model_id,
                              allowed=", ".join(sorted(self.models)))
        return spec

    def get(self, model_id: str) -> ModelSpec | None:
        try:
            return self.resolve(model_id)
        except ConfigError:
            return None

    def ids(self) -> list[str]:
        return sorted(self.models)

    def replace_models(self, **changes: Any) -> Catalog:
        """A copy with ``dataclasses.replace(spec, **changes)`` applied to every model."""
        return Catalog({k: replace(v, **changes) for k, v in self.models.items()}, self.source, self.guardrails)

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.get(model_id) is not None

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)


# -- loading -------------------------------------------------------------------------------------------


def default_catalog_path() -> Path:
    """``$BEDROCK_LAB_CATALOG`` or ``params/catalog.yaml`` of the repository (found upwards from here/cwd)."""
    env = os.environ.get(DEFAULT_CATALOG_ENV)
    if env:
        return Path(env)
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            cand = d / "params" / "catalog.yaml"
            if cand.is_file():
                return cand
    raise ConfigError(f"no params/catalog.yaml found above {Path(__file__).parent} or {Path.cwd()}; "
                      f"set ${DEFAULT_CATALOG_ENV} or pass a path", key="catalog")


_CACHE: dict[tuple[str, float], Catalog] = {}


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Load and validate a catalog YAML file (default: :func:`default_catalog_path`). Cached per mtime."""
    import yaml

    p = Path(path) if path is not None else default_catalog_path()
    src = str(p)
    try:
        mtime = p.stat().st_mtime
    except OSError as exc:
        raise ConfigError(f"cannot read catalog: {exc.strerror}", source=src) from exc
    cached = _CACHE.get((src, mtime))
    if cached is not None:
        return cached
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=src) from exc
    cat = parse_catalog(data, source=src)
    _CACHE[(src, mtime)] = cat
    return cat


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, msg: str, value: object = None, allowed: str | None = None) -> ConfigError:
        return ConfigError(msg, source=self.source, key=key, value=value, allowed=allowed)

    def mapping(self, key: str, value: object) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__} {value!r}", value)
        return value

    def number(self, key: str, value: object, *, lo: float = 0.0, hi: float = math.inf,
               integer: bool = False, lo_open: bool = False) -> float:
        x = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
        ok = math.isfinite(x)
        if ok and integer and not x.is_integer():
            ok = False
        if ok:
            ok = (x > lo if lo_open else x >= lo) and x <= hi
        if not ok:
            kind = "an integer" if integer else "a number"
            rng = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi != math.inf else "")
            raise self.fail(key, f"must be {kind} {rng}, got {value!r}", value, allowed=rng)
        return int(x) if integer else x

    def dataclass_(self, key: str, cls: type, value: object, base: Any) -> Any:
        data = self.mapping(key, value)
        names = {f.name: f for f in fields(cls)}
        out = {}
        for k, v in data.items():
            if k not in names:
                raise self.fail(f"{key}.{k}", "unknown key", k, allowed=", ".join(names))
            default = getattr(cls(), k)  # the declared type: a base built with ints stays float
            integer = isinstance(default, int) and not isinstance(default, bool)
            hi = 1.0 if cls is FaultProfile and k != "stall_ms" else math.inf
            lo_open = k in ("tokens_per_s", "chunk_tokens", "capacity")
            out[k] = self.number(f"{key}.{k}", v, integer=integer, hi=hi, lo_open=lo_open)
        return replace(base, **out)

    def background(self, key: str, value: object, base: BackgroundProfile) -> BackgroundProfile:
        data = self.mapping(key, value)
        names = [f.name for f in fields(BackgroundProfile)]
        out: dict[str, Any] = {}
        for k, v in data.items():
            if k not in names:
                raise self.fail(f"{key}.{k}", "unknown key", k, allowed=", ".join(names))
            if k == "pattern":
                if v not in BACKGROUND_PATTERNS:
                    raise self.fail(f"{key}.pattern", "unknown background pattern", v,
                                    allowed=", ".join(BACKGROUND_PATTERNS))
                out[k] = v
                continue
            hi = 1.0 if k in ("amplitude", "priority_share", "flex_share") else math.inf
            lo_open = k in ("period_s", "burst_every_s", "burst_s")
            out[k] = self.number(f"{key}.{k}", v, hi=hi, lo_open=lo_open)
        bg = replace(base, **out)
        if bg.priority_share + bg.flex_share > 1.0:
            raise self.fail(f"{key}.flex_share", "priority_share + flex_share must be <= 1",
                            bg.priority_share + bg.flex_share, allowed="a sum <= 1")
        return bg


_MODEL_KEYS = {
    "provider_format", "display_name", "tiers", "prices", "tier_price_multipliers", "tpm_quota",
    "max_output_tokens", "context_window", "output_quota_burn", "latency_optimized", "tier_speed",
    "latency", "faults", "features", "prompt_cache", "background",
}  # fmt: skip
_CACHE_KEYS = {"min_tokens", "max_checkpoints", "read_multiplier", "write_multiplier", "ttls", "fields"}
_GUARDRAIL_KEYS = {"versions", "intervention_rate", "latency_ms", "blocked_message"}


def parse_catalog(data: object, *, source: str = "<memory>") -> Catalog:
    """Validate a parsed catalog document (the YAML structure) into a :class:`Catalog`."""
    r = _Reader(source)
    top = r.mapping("<top>", data)
    for k in top:
        if k not in ("version", "defaults", "models", "guardrails"):
            raise r.fail(k, "unknown top-level key", k, allowed="version, defaults, models, guardrails")
    if top.get("version", 1) != 1:
        raise r.fail("version", "unsupported catalog version", top.get("version"), allowed="1")
    defaults = r.mapping("defaults", top.get("defaults"))
    for k in defaults:
        if k not in _MODEL_KEYS - {"provider_format", "display_name", "prices"}:
            raise r.fail(f"defaults.{k}", "unknown key", k,
                         allowed=", ".join(sorted(_MODEL_KEYS - {"provider_format", "display_name", "prices"})))
    models_raw = r.mapping("models", top.get("models"))
    if not models_raw:
        raise r.fail("models", "the catalog defines no models", None)
    models: dict[str, ModelSpec] = {}
    for mid, raw in models_raw.items():
        key = f"models.{mid}"
        if not isinstance(mid, str) or "." not in mid:
            raise r.fail(key, "model id must look like provider.name", mid)
        if split_model_id(mid)[0]:
            raise r.fail(key, "list base model ids only (prefixes resolve automatically)", mid)
        own = r.mapping(key, raw)
        for k in own:
            if k not in _MODEL_KEYS:
                raise r.fail(f"{key}.{k}", "unknown key", k, allowed=", ".join(sorted(_MODEL_KEYS)))
        m = dict(defaults)
        for k, v in own.items():  # mappings merge one level deep, so a model overrides single knobs
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k] = {**m[k], **v}
            else:
                m[k] = v
        models[mid] = _parse_model(r, key, mid, m)
    guardrails = {gid: _parse_guardrail(r, gid, g) for gid, g in r.mapping("guardrails", top.get("guardrails")).items()}
    return Catalog(models, source, guardrails)


_GUARDRAIL_ID = re.compile(r"[a-z0-9]+")


def _parse_guardrail(r: _Reader, gid: object, raw: object) -> GuardrailSpec:
    key = f"guardrails.{gid}"
    if not isinstance(gid, str) or _GUARDRAIL_ID.fullmatch(gid) is None:
        raise r.fail(key, "a guardrail id is lowercase letters and digits (botocore's GuardrailIdentifier)", gid)
    g = r.mapping(key, raw)
    for k in g:
        if k not in _GUARDRAIL_KEYS:
            raise r.fail(f"{key}.{k}", "unknown key", k, allowed=", ".join(sorted(_GUARDRAIL_KEYS)))
    versions = g.get("versions", ["DRAFT", 1])
    if not isinstance(versions, list) or not versions or not all(
            str(v) == "DRAFT" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) for v in versions):
        raise r.fail(f"{key}.versions", "must be a list of versions", versions, allowed="DRAFT or integers >= 1")
    msg = g.get("blocked_message", GuardrailSpec.blocked_message)
    if not isinstance(msg, str) or not msg.strip():
        raise r.fail(f"{key}.blocked_message", "must be a non-empty string", msg)
    return GuardrailSpec(gid, tuple(str(v) for v in versions),
                         r.number(f"{key}.intervention_rate", g.get("intervention_rate", 0.0), hi=1.0),
                         r.number(f"{key}.latency_ms", g.get("latency_ms", GuardrailSpec.latency_ms)), msg)


def _parse_cache(r: _Reader, key: str, raw: object) -> CacheProfile | None:
    if raw is None or raw is False:
        return None
    c = r.mapping(key, raw)
    for k in c:
        if k not in _CACHE_KEYS:
            raise r.fail(f"{key}.{k}", "unknown key", k, allowed=", ".join(sorted(_CACHE_KEYS)))
    base = CacheProfile()
    ttls = c.get("ttls", list(base.ttls))
    if not isinstance(ttls, list) or not ttls or any(t not in CACHE_TTLS for t in ttls):
        raise r.fail(f"{key}.ttls", "must be a non-empty list of TTLs", ttls, allowed=", ".join(CACHE_TTLS))
    where = c.get("fields", list(base.fields))
    if not isinstance(where, list) or not where or any(f not in base.fields for f in where):
        raise r.fail(f"{key}.fields", "must be a non-empty list of fields", where, allowed=", ".join(base.fields))
    return CacheProfile(
        min_tokens=int(r.number(f"{key}.min_tokens", c.get("min_tokens", base.min_tokens), lo=1, integer=True)),
        max_checkpoints=int(r.number(f"{key}.max_checkpoints", c.get("max_checkpoints", base.max_checkpoints),
                                     lo=1, integer=True)),
        read_multiplier=r.number(f"{key}.read_multiplier", c.get("read_multiplier", base.read_multiplier)),
        write_multiplier=r.number(f"{key}.write_multiplier", c.get("write_multiplier", base.write_multiplier)),
        ttls=tuple(ttls), fields=tuple(where))  # fmt: skip


def _parse_model(r: _Reader, key: str, mid: str, m: dict[str, Any]) -> ModelSpec:
    fmt = m.get("provider_format")
    if fmt not in PROVIDER_FORMATS:
        raise r.fail(f"{key}.provider_format", "unknown provider format", fmt, allowed=", ".join(PROVIDER_FORMATS))
    tiers = m.get("tiers", ["default"])
    if not isinstance(tiers, list) or not tiers or any(t not in TIERS for t in tiers):
        raise r.fail(f"{key}.tiers", "must be a non-empty list of tiers", tiers, allowed=", ".join(TIERS))
    if "default" not in tiers:
        raise r.fail(f"{key}.tiers", "must include 'default'", tiers, allowed=", ".join(TIERS))
    mult = r.mapping(f"{key}.tier_price_multipliers", m.get("tier_price_multipliers"))
    prices_raw = r.mapping(f"{key}.prices", m.get("prices"))
    if "default" not in prices_raw:
        raise r.fail(f"{key}.prices", "needs a 'default' entry {input: USD/1k, output: USD/1k}", prices_raw)
    def tier_price(t: str) -> TierPrice:
        pr = r.mapping(f"{key}.prices.{t}", prices_raw[t])
        extra = set(pr) - {"input", "output"}
        if extra:
            raise r.fail(f"{key}.prices.{t}", "unknown key", sorted(extra), allowed="input, output")
        return TierPrice(r.number(f"{key}.prices.{t}.input", pr.get("input")),
                         r.number(f"{key}.prices.{t}.output", pr.get("output")))

    base = tier_price("default")
    prices: dict[str, TierPrice] = {}
    for t in tiers:
        if t in prices_raw:
            prices[t] = tier_price(t)
        else:
            f = r.number(f"{key}.tier_price_multipliers.{t}", mult.get(t, 1.0), lo=0.0, lo_open=True)
            prices[t] = TierPrice(base.input_per_1k * f, base.output_per_1k * f)
    for t in prices_raw:
        if t not in tiers:
            raise r.fail(f"{key}.prices.{t}", "price for a tier the model does not list", t, allowed=", ".join(tiers))
    speed_raw = r.mapping(f"{key}.tier_speed", m.get("tier_speed"))
    speed = {t: r.number(f"{key}.tier_speed.{t}", speed_raw.get(t, 1.0), lo=0.0, lo_open=True) for t in TIERS}
    for t in speed_raw:
        if t not in TIERS:
            raise r.fail(f"{key}.tier_speed.{t}", "unknown tier", t, allowed=", ".join(TIERS))
    burn = r.number(f"{key}.output_quota_burn", m.get("output_quota_burn", 1.0), lo=0.0, lo_open=True)
    feats = m.get("features", list(FEATURES))
    if not isinstance(feats, list) or any(f not in FEATURES for f in feats):
        raise r.fail(f"{key}.features", "must be a list of features", feats, allowed=", ".join(FEATURES))
    lo = m.get("latency_optimized", False)
    if not isinstance(lo, bool):
        raise r.fail(f"{key}.latency_optimized", "must be true or false", lo, allowed="true, false")
    return ModelSpec(
        model_id=mid,
        provider=mid.split(".", 1)[0],
        provider_format=fmt,
        tiers=tuple(t for t in TIERS if t in tiers),
        prices=prices,
        tpm_quota=int(r.number(f"{key}.tpm_quota", m.get("tpm_quota", 1_000_000), lo=1, integer=True)),
        max_output_tokens=int(r.number(f"{key}.max_output_tokens", m.get("max_output_tokens", 4096), lo=1,
                                       integer=True)),
        context_window=int(r.number(f"{key}.context_window", m.get("context_window", 128_000), lo=1,
                                    integer=True)),
        output_quota_burn=burn,
        latency_optimized=lo,
        tier_speed=speed,
        latency=r.dataclass_(f"{key}.latency", LatencyProfile, m.get("latency"), LatencyProfile()),
        faults=r.dataclass_(f"{key}.faults", FaultProfile, m.get("faults"), FaultProfile()),
        display_name=str(m.get("display_name", mid)),
        features=frozenset(feats),
        cache=_parse_cache(r, f"{key}.prompt_cache", m.get("prompt_cache")),
        background=r.background(f"{key}.background", m.get("background"), BackgroundProfile()),
    )


def parse_background(value: object, *, source: str = "<background>", key: str = "background") -> BackgroundProfile:
    """Validate a background mapping (a catalog's ``background:``, the emulator's ``background`` override)."""
    return _Reader(source).background(key, value, BackgroundProfile())


# -- overlays ------------------------------------------------------------------------------------------

#: what an overlay may set per model (the behaviour, never formats, tiers or prices)
OVERLAY_KEYS = ("latency", "faults", "tier_speed", "background", "tpm_quota", "output_quota_burn")


def load_overlay(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an overlay file (``bedrock-lab calibrate`` writes them) as a mapping; ConfigError if unreadable."""
    import yaml

    src = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read overlay: {exc.strerror}", source=src, key="overlay", value=src) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=src, key="overlay") from exc
    if not isinstance(data, dict):
        raise ConfigError("an overlay is a mapping with 'models:'", source=src, key="<top>", value=type(data).__name__)
    return data


def apply_overlay(catalog: Catalog, overlay: str | os.PathLike[str] | Mapping[str, Any], *,
                  source: str | None = None) -> Catalog:  # fmt: skip
    """The catalog with an overlay merged on: per model, only the knobs the overlay names change.

    Layout: ``version: 1``, optional ``meta:`` (free provenance, e.g. what a calibration was fitted on) and
    ``models:`` id -> any of :data:`OVERLAY_KEYS`; mappings merge one level deep (``latency: {ttft_ms: 380}``
    keeps every other latency knob). Values are validated by the catalog's own rules (ConfigError with the
    overlay file and key path). Model ids may carry a region prefix; they must be in the catalog.
    """
    if isinstance(overlay, Mapping):
        data, src = dict(overlay), source or "<overlay>"
    else:
        data, src = load_overlay(overlay), source or str(overlay)
    r = _Reader(src)
    for k in data:
        if k not in ("version", "meta", "models"):
            raise r.fail(k, "unknown top-level key", k, allowed="version, meta, models")
    if data.get("version", 1) != 1:
        raise r.fail("version", "unsupported overlay version", data.get("version"), allowed="1")
    models = dict(catalog.models)
    for mid, raw in r.mapping("models", data.get("models")).items():
        key = f"models.{mid}"
        spec = catalog.get(str(mid))
        if spec is None:
            raise r.fail(key, "model not in the catalog the overlay is applied to", mid,
                         allowed=", ".join(catalog.ids()))
        ch: dict[str, Any] = {}
        for k, v in r.mapping(key, raw).items():
            if k == "latency":
                ch[k] = r.dataclass_(f"{key}.latency", LatencyProfile, v, spec.latency)
            elif k == "faults":
                ch[k] = r.dataclass_(f"{key}.faults", FaultProfile, v, spec.faults)
            elif k == "background":
                ch[k] = r.background(f"{key}.background", v, spec.background)
            elif k == "tier_speed":
                sp = dict(spec.tier_speed)
                for t, x in r.mapping(f"{key}.tier_speed", v).items():
                    if t not in TIERS:
                        raise r.fail(f"{key}.tier_speed.{t}", "unknown tier", t, allowed=", ".join(TIERS))
                    sp[t] = r.number(f"{key}.tier_speed.{t}", x, lo_open=True)
                ch[k] = sp
            elif k == "tpm_quota":
                ch[k] = int(r.number(f"{key}.tpm_quota", v, lo=1, integer=True))
            elif k == "output_quota_burn":
                ch[k] = r.number(f"{key}.output_quota_burn", v, lo_open=True)
            else:
                raise r.fail(f"{key}.{k}", "an overlay cannot set this key", k, allowed=", ".join(OVERLAY_KEYS))
        models[spec.model_id] = replace(spec, **ch)
    return replace(catalog, models=models, source=f"{catalog.source} + {src}")


__all__ = [
    "BACKGROUND_PATTERNS",
    "CACHE_TTLS",
    "FAULT_KINDS",
    "FEATURES",
    "OVERLAY_KEYS",
    "PROVIDER_FORMATS",
    "REGION_PREFIXES",
    "TIERS",
    "BackgroundProfile",
    "CacheProfile",
    "Catalog",
    "FaultProfile",
    "GuardrailSpec",
    "LatencyProfile",
    "ModelSpec",
    "TierPrice",
    "apply_overlay",
    "default_catalog_path",
    "load_catalog",
    "load_overlay",
    "parse_background",
    "parse_catalog",
    "split_model_id",
]

"""Sweep files (``params/sweeps/*.yaml``) -> typed, validated :class:`SweepConfig`.

A sweep file is typed by a person, so every mistake becomes one :class:`~bedrock_lab.errors.ConfigError` that
names the file, the key path (``grid.users[1]``), the bad value and what is allowed, instead of a traceback
twenty minutes into a run. Models and tiers are checked against the model catalog before anything runs.

Environment variables named like the public Bedrock load-test examples' may override the file (see
:data:`ENV_OVERRIDES` and docs/sweeps.md); errors in them name the variable.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from bedrock_lab._money import DEFAULT_DAYS_PER_MONTH
from bedrock_lab._net import is_loopback_url, parse_endpoint
from bedrock_lab.catalog import APIS, split_model_id
from bedrock_lab.catalog import REGION_PREFIXES as CATALOG_PREFIXES
from bedrock_lab.cellspec import CellSettings, tier_weights
from bedrock_lab.errors import BedrockLabError, ConfigError
from bedrock_lab.paths import project_root
from bedrock_lab.prompts import is_prompt_path, read_prompt_file
from bedrock_lab.token_estimate import TokenEstimate, estimate_input_tokens, estimate_request_tokens
from bedrock_lab.token_estimate import prompt_file as _prompt_file

#: cross-region inference profile prefixes ("" = the plain in-region model id)
REGION_PREFIXES = ("", *CATALOG_PREFIXES)
#: prompt size classes of the ``single`` workload (params/prompts/single.yaml may add more)
PROMPT_SIZES = ("small", "medium", "large")
#: rough input tokens per request of each prompt size (words x ~1.3 plus framing); override in ``estimates``
DEFAULT_INPUT_TOKENS = {"small": 12, "medium": 60, "large": 210, "chat": 120, "summarise": 700}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """An OpenAI-compatible server (vLLM, TGI, SGLang, ...) that serves one of the sweep's models: its cells go
    there (chat-completions), the other models' cells to the sweep's target, so one sweep compares them."""

    #: the base URL before /chat/completions, e.g. http://127.0.0.1:8000/v1
    base_url: str
    #: the environment variable holding its API key (default OPENAI_API_KEY; unset: no Authorization header)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    ca_bundle: str | None = None


class TargetConfig(_Strict):
    """Where requests go. Credentials never appear here: only a named AWS profile, or the name of the environment
    variable that holds an API key."""

    #: emulator, aws, or openai: any OpenAI-compatible server at ``endpoint_url`` (its base URL before
    #: /chat/completions, e.g. http://127.0.0.1:8000/v1 for vLLM), for the chat-completions API only
    kind: Literal["emulator", "aws", "openai"] = "emulator"
    region: str = "us-east-1"
    profile: str | None = None
    #: an already running emulator (or a custom endpoint); empty: the runner starts a private emulator
    endpoint_url: str | None = None
    emulator_seed: int = 0
    #: keyword overrides passed to ``run_emulator(**overrides)`` (latency profile, quotas...)
    emulator_overrides: dict[str, Any] = Field(default_factory=dict)
    #: sigv4 (the AWS credential chain) or api-key (``Authorization: Bearer``: a Bedrock API key, or the key of an
    #: openai target); the key is read from the environment variable ``api_key_env`` when the cell runs
    auth: Literal["sigv4", "api-key"] = "sigv4"
    #: the environment variable holding the API key (default AWS_BEARER_TOKEN_BEDROCK; openai: OPENAI_API_KEY)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: a CA file to trust for an https endpoint (an emulator started with tls=True: its ca_bundle)
    ca_bundle: str | None = None
    #: model id (as in grid.models) -> the OpenAI-compatible server that serves it instead of this target
    servers: dict[str, ServerConfig] = Field(default_factory=dict)


class GridConfig(_Strict):
    """The axes; the sweep runs their cross product (x repeats)."""

    models: list[str] = Field(min_length=1)
    tiers: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    region_prefixes: list[str] = Field(default_factory=lambda: [""], min_length=1)
    prompt_sizes: list[str] = Field(default_factory=lambda: ["small"], min_length=1)
    #: closed loop: concurrent users per cell
    users: list[Annotated[StrictInt, Field(ge=1)]] = Field(default_factory=list)
    #: open loop: target arrival rates (requests/s) per cell
    rates_rps: list[Annotated[StrictFloat, Field(gt=0)]] = Field(default_factory=list)
    repeats: StrictInt = Field(default=1, ge=1)
    #: other customers' demand on the sweep's own emulator per cell, share of each model's capacity (issue 15;
    #: the runner restarts its emulator at each level; empty: no axis)
    background_load: list[Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(default_factory=list)

    @field_validator("region_prefixes")
    @classmethod
    def _prefixes(cls, v: list[str]) -> list[str]:
        return [normalize_prefix(p) for p in v]


class CellConfig(CellSettings):
    """What each cell does, identical across the grid: the cell settings of :mod:`bedrock_lab.cellspec` (one set
    of defaults for every interface), plus a sweep's default duration and the papermill timeout."""

    #: seconds of load per cell (0/None: stop after ``requests``); a sweep runs 60 s per cell unless told
    duration_s: float | None = Field(default=60.0, ge=0)
    #: papermill per-notebook-cell execution timeout in seconds (None: no limit)
    timeout_s: float | None = Field(default=None, gt=0)


class OrderConfig(_Strict):
    """Cells run in a seeded random order so drift over time does not line up with one axis."""

    randomize: bool = True
    seed: int = 0


class EstimatesConfig(_Strict):
    """Assumptions behind the plan's request, token, cost and wall-time estimates."""

    input_tokens: dict[str, int] = Field(default_factory=dict)  # per prompt size; merged over the defaults
    #: output tokens per request; None: max_tokens (an upper bound, so cost is not underestimated)
    output_tokens: int | None = Field(default=None, ge=0)
    #: closed loop: seconds per request; None: ttft_s + output_tokens / output_tokens_per_s
    e2e_s: float | None = Field(default=None, gt=0)
    ttft_s: float = Field(default=0.6, ge=0)
    output_tokens_per_s: float = Field(default=60.0, gt=0)
    #: notebook start-up and teardown per cell (kernel start, imports, summary)
    cell_overhead_s: float = Field(default=10.0, ge=0)


class SLOConfig(_Strict):
    """Service-level objectives the analysis checks cells against (None: not checked)."""

    ttft_p95_s: float | None = Field(default=None, gt=0)
    e2e_p95_s: float | None = Field(default=None, gt=0)
    #: time per output token (s): (e2e - TTFT) / (output tokens - 1)
    tpot_p95_s: float | None = Field(default=None, gt=0)
    error_rate_max: float | None = Field(default=None, ge=0, le=1)


class TrafficConfig(_Strict):
    """The production traffic the report projects costs at. ``requests_per_day`` unset (None, also in the
    sweep folder's effective config and plan.json) means not stated: the report then assumes
    ``bedrock_lab._money.DEFAULT_REQUESTS_PER_DAY`` and says so. ``peak_users``, when given, is the concurrency a recommended
    configuration must be shown to hold (a tested load of at least that many users meeting the SLOs)."""

    requests_per_day: float | None = Field(default=None, gt=0, strict=True, allow_inf_nan=False)
    days_per_month: float = Field(default=DEFAULT_DAYS_PER_MONTH, gt=0, le=31, strict=True)
    peak_users: StrictInt | None = Field(default=None, ge=1)


class SearchConfig(_Strict):
    """SLO search (issue #14, :mod:`bedrock_lab.sweep.search`): per model x tier x prompt size, the highest load
    meeting the sequential SLO, by doubling from ``low`` until a level misses (or ``high``), then bisection down to
    ``resolution``; each level is a sequential verdict cell. The grid's load axes are not used."""

    load: Literal["users", "rate_rps"] = "users"
    low: float = Field(default=1, gt=0)
    high: float = Field(default=64, gt=0)
    #: stop bisecting when the bracket is this narrow (None: 1 user, or 10% of the low rate)
    resolution: float | None = Field(default=None, gt=0)
    #: at most this many levels per group (the plan's cost bound)
    max_levels: StrictInt = Field(default=10, ge=2)


class SweepConfig(_Strict):
    """One sweep file, validated. ``source`` is the file it came from (for messages)."""

    name: str
    description: str = ""
    target: TargetConfig = Field(default_factory=TargetConfig)
    grid: GridConfig
    cell: CellConfig = Field(default_factory=lambda: CellConfig())
    order: OrderConfig = Field(default_factory=OrderConfig)
    estimates: EstimatesConfig = Field(default_factory=EstimatesConfig)
    slo: SLOConfig = Field(default_factory=SLOConfig)
    #: SLO search instead of a grid of loads (None: the grid)
    search: SearchConfig | None = None
    #: expected production traffic: the report's monthly cost projection (and the peak load to hold)
    traffic: TrafficConfig = Field(default_factory=TrafficConfig)
    #: seconds to wait between cells (lets queues and quotas drain)
    cooldown_s: float = Field(default=0.0, ge=0)
    #: stop before the estimated spend would pass this many USD (None: no cap)
    budget_usd: float | None = Field(default=None, gt=0)
    #: Jupyter kernel the cell notebooks run on
    kernel: str = "bedrock-lab"
    #: the cell notebook (jupytext py:percent or .ipynb), relative to the repository root
    notebook: str = "notebooks/cell.py"
    source: str = Field(default="<memory>", exclude=True)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("a sweep name is letters, digits, '-', '_' and '.' (it names the output folder)")
        return v

    def request_tokens(self, prompt_size: str) -> TokenEstimate | None:
        """The local estimate of the workload's requests at ``prompt_size`` (:func:`estimate_request_tokens`; chat
        answers as long as the expected output)."""
        answer = self.estimates.output_tokens if self.estimates.output_tokens is not None else self.cell.max_tokens
        return estimate_request_tokens(self.cell.workload, prompt_size, answer_tokens=answer)

    def input_tokens(self, prompt_size: str) -> float:
        """Input tokens per request: ``estimates.input_tokens``, else counted from the prompt file (the local token
        estimate), else a default."""
        if prompt_size in self.estimates.input_tokens:
            return float(self.estimates.input_tokens[prompt_size])
        measured = self.request_tokens(prompt_size)
        if measured is not None:
            return measured.total
        return float(DEFAULT_INPUT_TOKENS.get(prompt_size, DEFAULT_INPUT_TOKENS["medium"]))


# --------------------------------------------------------------------------------------------- helpers


def normalize_prefix(prefix: str | None) -> str:
    """``us`` / ``us.`` -> ``us.``; ``""`` / ``none`` -> ``""``."""
    p = (prefix or "").strip()
    if p.lower() in ("", "none", "-"):
        return ""
    if not p.endswith("."):
        p += "."
    if p not in REGION_PREFIXES:
        raise ValueError(f"unknown region prefix {prefix!r}")
    return p


def split_prefix(model_id: str) -> tuple[str, str]:
    """``us.amazon.nova-lite-v1:0`` -> (``us.``, ``amazon.nova-lite-v1:0``): the catalog's model-id grammar."""
    return split_model_id(model_id)


def _csv(text: str) -> list[str]:
    return [t for t in re.split(r"[,\s]+", text.strip()) if t]


def parse_duration(text: str) -> float:
    """``90`` / ``90s`` / ``2m`` / ``1h`` / ``1m30s`` -> seconds."""
    t = str(text).strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", t)
    if not t or not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r}")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _env_models(v: str) -> dict[str, Any]:
    prefix, base = split_prefix(v.strip())
    out: dict[str, Any] = {"grid.models": [base]}
    if prefix:
        out["grid.region_prefixes"] = [prefix]
    return out


def _env_prompts_file(v: str) -> dict[str, Any]:
    """A prompt file typed on a command line or in the environment: absolute, because cells run in their folders."""
    path = Path(v.strip()).expanduser()
    if not is_prompt_path(path):
        raise ValueError("a prompt file ends in .json, .yaml or .yml")
    return {"cell.workload": str(path.resolve())}


def _env_results_dir(v: str) -> dict[str, Any]:
    name = Path(v.strip()).expanduser().resolve().name
    return {"name": name}


def _env_ints(key: str) -> Any:
    def parse(v: str) -> dict[str, Any]:
        return {key: [int(x) for x in _csv(v)]}

    return parse


#: environment variable -> (what it overrides, parser returning {dotted key: value})
ENV_OVERRIDES: dict[str, tuple[str, Any]] = {
    "BASE_MODEL_ID": ("grid.models (one model; a region prefix in it sets grid.region_prefixes)", _env_models),
    "SERVICE_TIERS": ("grid.tiers (comma-separated)", lambda v: {"grid.tiers": _csv(v)}),
    "REGION_PREFIXES": ("grid.region_prefixes (comma-separated; 'none' for no prefix)",
                        lambda v: {"grid.region_prefixes": _csv(v)}),
    "PROMPT_SIZES": ("grid.prompt_sizes (comma-separated)", lambda v: {"grid.prompt_sizes": _csv(v)}),
    "USER_COUNTS": ("grid.users (comma-separated integers)", _env_ints("grid.users")),
    "TEST_DURATION": ("cell.duration_s (seconds, or 90s / 2m / 1h)",
                      lambda v: {"cell.duration_s": parse_duration(v)}),
    "MAX_TOKENS": ("cell.max_tokens", lambda v: {"cell.max_tokens": int(v)}),
    "REPEATS": ("grid.repeats", lambda v: {"grid.repeats": int(v)}),
    "BUDGET_USD": ("budget_usd", lambda v: {"budget_usd": float(v)}),
    # the AWS tier-sweep sample's own (docs/migration.md)
    "PROMPTS_FILE": ("cell.workload (a prompt file: the sample's prompts.json, or a params/prompts YAML file)",
                     _env_prompts_file),
}  # fmt: skip

#: the AWS tier-sweep sample's run_tests.py flags (and our additions) -> the environment variable whose meaning and
#: parser they share; ``bedrock-lab sweep`` accepts them and they override the file and the environment
SAMPLE_FLAGS: dict[str, str] = {
    "--model-id": "BASE_MODEL_ID", "--region-prefixes": "REGION_PREFIXES", "--service-tiers": "SERVICE_TIERS",
    "--prompt-sizes": "PROMPT_SIZES", "--user-counts": "USER_COUNTS", "--test-duration": "TEST_DURATION",
    "--max-tokens": "MAX_TOKENS", "--prompts-file": "PROMPTS_FILE",
}  # fmt: skip
#: flags of ``bedrock-lab sweep`` with no twin in :data:`ENV_OVERRIDES`: flag -> (what it sets, parser). The
#: sample's RESULTS_DIR is read by the command (it is where the sweep goes, not a sweep key): it acts as --results-dir
FLAG_OVERRIDES: dict[str, tuple[str, Any]] = {
    "--results-dir": ("the sweep folder: its last part is the sweep name (letters, digits, - _ .)", _env_results_dir),
    "--name": ("name (the sweep's folder OUT/NAME)", lambda v: {"name": v.strip()}),
    "--target": ("target.kind (emulator | aws | openai)", lambda v: {"target.kind": v.strip()}),
    "--region": ("target.region (an AWS region)", lambda v: {"target.region": v.strip()}),
    "--spawn-rate": ("cell.ramp_s = the largest user count / spawn rate (users started per second)",
                     lambda v: {"cell.ramp_s": _positive(v)}),
}  # fmt: skip
#: what the sample's --include-failures / INCLUDE_FAILURES=true asks, and what bedrock-lab does instead
INCLUDE_FAILURES_NOTE = (
    "bedrock-lab always records failed requests (with their latencies) and counts them in error rates and goodput; "
    "a sweep's latency percentiles exclude them (timeouts enter the censored percentiles), so the sample's "
    "--include-failures / INCLUDE_FAILURES=true changes nothing in the run: for percentiles that include failures, "
    "use bedrock_lab.stats.summarize(records, include_failures=True)"
)
#: variables of the sample's locustfile.py (one Locust run) that a sweep does not read -> what to use instead
SAMPLE_LOCUST_ENV: dict[str, str] = {
    "REGION_PREFIX": "REGION_PREFIXES or --region-prefixes (one run: bedrock-lab locust --model PREFIX.MODEL)",
    "SERVICE_TIER": "SERVICE_TIERS or --service-tiers (one run: bedrock-lab locust --tier TIER)",
    "PROMPT_SIZE": "PROMPT_SIZES or --prompt-sizes (one run: bedrock-lab locust --prompt-size SIZE)",
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def _positive(v: str) -> float:
    x = float(v)
    if not x > 0:
        raise ValueError("must be > 0")
    return x


def sample_env_notes(env: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for the AWS sample's environment variables that bedrock-lab does not apply as overrides (so none is
    silently ignored): ``INCLUDE_FAILURES=true`` and the locustfile's one-run variables. An unreadable
    ``INCLUDE_FAILURES`` is a :class:`ConfigError`."""
    env = os.environ if env is None else env
    notes: list[str] = []
    raw = env.get("INCLUDE_FAILURES")
    if raw is not None:
        flag = raw.strip().lower()
        if flag not in _TRUE + _FALSE:
            raise ConfigError(f"not true or false: got {raw!r}", source="environment variable",
                              key="INCLUDE_FAILURES", value=raw, allowed="true or false")  # fmt: skip
        if flag in _TRUE:
            notes.append(f"INCLUDE_FAILURES={raw}: {INCLUDE_FAILURES_NOTE}")
    for var, instead in SAMPLE_LOCUST_ENV.items():
        if env.get(var, "").strip():
            notes.append(f"{var}={env[var]} is not read by a sweep (the sample's run_tests.py sets it per test "
                         f"too); use {instead}")  # fmt: skip
    return notes


def _flag_updates(flag: str, raw: Any) -> dict[str, Any]:
    if flag in SAMPLE_FLAGS:
        what, parse = ENV_OVERRIDES[SAMPLE_FLAGS[flag]]
    elif flag in FLAG_OVERRIDES:
        what, parse = FLAG_OVERRIDES[flag]
    else:
        raise ConfigError("unknown flag", source="command line", key=flag,
                          allowed=", ".join([*SAMPLE_FLAGS, *FLAG_OVERRIDES]))  # fmt: skip
    try:
        return dict(parse(str(raw)))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot parse {raw!r}: {exc}", source="command line", key=flag, value=raw,
                          allowed=what) from None  # fmt: skip


def apply_flags(data: dict[str, Any], flags: Mapping[str, Any]) -> dict[str, str]:
    """Apply command-line ``flags`` ({flag: value as typed}, see :data:`SAMPLE_FLAGS` and :data:`FLAG_OVERRIDES`)
    to ``data`` in place, over the file and the environment; returns {dotted key: flag}. ``--spawn-rate`` R becomes
    ``cell.ramp_s`` = the largest user count / R (one ramp per sweep: smaller cells start their users over the
    same time)."""
    applied: dict[str, str] = {}
    spawn: float | None = None
    for flag, raw in flags.items():
        if raw is None:
            continue
        updates = _flag_updates(flag, raw)
        if flag == "--spawn-rate":
            spawn = float(updates["cell.ramp_s"])
            continue
        for dotted, value in updates.items():
            _set_path(data, dotted, value)
            applied[dotted] = flag
    if spawn is not None:
        grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
        users = [u for u in (grid or {}).get("users") or [] if isinstance(u, int) and not isinstance(u, bool)]
        if not users:
            raise ConfigError("--spawn-rate starts closed-loop users, and this sweep has none", source="command line",
                              key="--spawn-rate", value=flags["--spawn-rate"],
                              allowed="--user-counts (or grid.users) with --spawn-rate")  # fmt: skip
        _set_path(data, "cell.ramp_s", round(max(users) / spawn, 3))
        applied["cell.ramp_s"] = "--spawn-rate"
    return applied


def _blame_flag(exc: ConfigError, flag_keys: Mapping[str, str]) -> ConfigError:
    """``exc`` re-pointed at the command-line flag that set its key (source "command line", key the flag)."""
    key = exc.key or ""
    for dotted, flag in flag_keys.items():
        if key == dotted or key.startswith((dotted + "[", dotted + ".")):
            return ConfigError(exc.message, source="command line", key=flag, value=exc.value, allowed=exc.allowed)
    return exc


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[last] = value


def apply_env(data: dict[str, Any], env: Mapping[str, str], source: str) -> dict[str, str]:
    """Apply :data:`ENV_OVERRIDES` present in ``env`` to ``data`` in place; returns {dotted key: variable}."""
    applied: dict[str, str] = {}
    for var, (what, parse) in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            updates = parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"cannot parse environment variable {var}: {exc}",
                source=f"environment variable {var} (overriding {source})",
                key=var,
                value=raw,
                allowed=what,
            ) from None
        for dotted, value in updates.items():
            _set_path(data, dotted, value)
            applied[dotted] = var
    return applied


# --------------------------------------------------------------------------------------------- errors

_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping of key: value",
    "model_type": "a mapping of key: value",
    "model_attributes_type": "a mapping of key: value",
    "missing": "a value: this key is required (see docs/sweeps.md)",
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the last element of ``loc``."""
    model: type[BaseModel] = SweepConfig
    for part in loc[:-1]:
        if not isinstance(part, str):
            continue
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _error_from_pydantic(err: Mapping[str, Any], source: str, env_keys: Mapping[str, str], n_more: int) -> ConfigError:
    loc = tuple(err.get("loc", ()))
    key = _key_path(loc)
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    msg = str(err.get("msg", "invalid value"))
    allowed: str | None = None
    if kind == "extra_forbidden":
        model = _model_at(loc)
        names = [n for n in (model.model_fields if model else {}) if n != "source"]
        guess = difflib.get_close_matches(str(loc[-1]), names, n=1)
        msg = "unknown key" + (f"; did you mean {guess[0]!r}?" if guess else "")
        allowed = ", ".join(names)
        value = loc[-1]
    elif kind == "too_short":
        msg = "empty grid axis: it needs at least one value" if loc[:1] == ("grid",) else "needs at least one value"
        allowed = "a non-empty list"
    elif kind == "literal_error":
        allowed = str(ctx.get("expected", ""))
        msg = "not one of the allowed values"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sym = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()), "")
        allowed = f"a number {sym} {bound}"
        msg = f"must be {sym} {bound}"
    elif kind == "value_error":
        msg = str(ctx.get("error", msg))
        if "region prefix" in msg:
            allowed = ", ".join(repr(p) for p in REGION_PREFIXES)
        elif "user counts" in msg:
            allowed = "integers >= 1"
        elif "rates" in msg:
            allowed = "numbers > 0"
        elif "sweep name" in msg:
            allowed = "letters, digits, '-', '_', '.'"
    elif kind in _TYPE_WORDS:
        allowed = _TYPE_WORDS[kind]
        if kind == "missing":
            msg, value = "required key is missing", None
        else:
            msg = f"wrong type ({type(value).__name__})"
    where = source
    for dotted, var in env_keys.items():
        if key == dotted or key.startswith(dotted + "[") or key.startswith(dotted + "."):
            where = f"{source} (overridden by environment variable {var})"
    if value is not None and kind not in ("extra_forbidden", "value_error") and repr(value) not in msg:
        msg += f": got {value!r}"
    elif kind == "extra_forbidden":
        msg = f"unknown key {value!r}" + msg[len("unknown key"):]
    if n_more:
        msg += f" [and {n_more} more problem{'s' if n_more > 1 else ''}]"
    return ConfigError(msg, source=where, key=key, value=value, allowed=allowed)


# --------------------------------------------------------------------------------------------- catalog


def catalog_model_ids(catalog: Any) -> list[str]:
    """Model ids a catalog knows, for 'allowed' lists (works with a mapping or a ``models`` attribute)."""
    for attr in ("model_ids", "ids"):
        fn = getattr(catalog, attr, None)
        if callable(fn):
            return list(fn())
        if fn is not None:
            return list(fn)
    models = getattr(catalog, "models", None)
    if isinstance(models, Mapping):
        return list(models)
    if models is not None:
        return [getattr(m, "model_id", getattr(m, "id", str(m))) for m in models]
    return []


def spec_tiers(spec: Any) -> list[str]:
    """Service tiers a catalog model offers (``tiers`` as a mapping, a list of names or of objects)."""
    tiers = getattr(spec, "tiers", None)
    if tiers is None and isinstance(spec, Mapping):
        tiers = spec.get("tiers")
    if tiers is None:
        return ["default"]
    if isinstance(tiers, Mapping):
        return [str(t) for t in tiers]
    return [t if isinstance(t, str) else str(getattr(t, "name", getattr(t, "tier", t))) for t in tiers]


def resolve_model(catalog: Any, model_id: str, *, source: str, key: str) -> Any:
    """``catalog.resolve(model_id)`` with a ConfigError naming the sweep file and key when it is unknown."""
    try:
        return catalog.resolve(model_id)
    except (BedrockLabError, KeyError, ValueError, LookupError):
        ids = catalog_model_ids(catalog)
        guess = difflib.get_close_matches(split_prefix(model_id)[1], ids, n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else ""
        raise ConfigError(
            f"unknown model {model_id!r}: not in the model catalog{hint}",
            source=source,
            key=key,
            value=model_id,
            allowed=", ".join(ids) if ids else "a model id of params/catalog.yaml",
        ) from None


def default_catalog() -> Any:
    """The project's catalog (``params/catalog.yaml``), imported lazily."""
    from bedrock_lab.catalog import load_catalog

    return load_catalog()


def available_workloads(prompts_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Workload names (``params/prompts/<name>.yaml`` files that declare a ``kind``)."""
    folder = Path(prompts_dir) if prompts_dir else repo_root() / "params" / "prompts"
    return sorted(p.stem for p in folder.glob("*.yaml") if "kind" in (_prompt_file(str(p)) or {}))


def workload_sizes(workload: str, prompts_dir: str | os.PathLike[str] | None = None) -> list[str] | None:
    """Prompt sizes a ``single`` workload defines; None when sizes do not apply (chat, mix, summarise)."""
    data = _prompt_file(workload, prompts_dir)
    if not data or data.get("kind") != "single":
        return None
    return [str(k) for k in (data.get("prompts") or {})]


def repo_root() -> Path:
    """The checkout this package lives in (params/ and notebooks/ are resolved from here): ``paths.project_root``."""
    return project_root()


def validate_against_catalog(config: SweepConfig, catalog: Any) -> None:
    """Unknown model or tier -> ConfigError naming the grid key; prefixes and sizes are checked too."""
    src = config.source
    workloads = available_workloads()
    workload = config.cell.workload
    if workloads and workload not in workloads and not is_prompt_path(workload):
        raise ConfigError(
            f"unknown workload {workload!r}", source=src, key="cell.workload", value=workload,
            allowed=", ".join(workloads) + " (params/prompts/*.yaml) or a path to a prompt file (.yaml, .json)",
        )  # fmt: skip
    if is_prompt_path(workload) and workload.lower().endswith(".json"):
        try:
            read_prompt_file(workload)  # the sample's prompts.json: a wrong path or format fails here, not in a cell
        except ConfigError as exc:
            inner = ": ".join(str(x) for x in (exc.source, exc.key, exc.message) if x)
            raise ConfigError(inner, source=src, key="cell.workload", value=workload,
                              allowed=exc.allowed or 'a prompts.json: {"small": {"text": "..."}, ...}') from None
    sizes = workload_sizes(workload)
    for i, size in enumerate(config.grid.prompt_sizes):
        if sizes is not None and size not in sizes:
            raise ConfigError(
                f"unknown prompt size {size!r} for workload {workload!r}", source=src,
                key=f"grid.prompt_sizes[{i}]", value=size, allowed=", ".join(sizes),
            )  # fmt: skip
    for i, model in enumerate(config.grid.models):
        given_prefix, _base = split_prefix(model)
        if given_prefix and config.grid.region_prefixes != [""]:
            raise ConfigError(
                "model id already carries a region prefix and grid.region_prefixes adds another",
                source=src, key=f"grid.models[{i}]", value=model,
                allowed="a base model id (amazon.nova-lite-v1:0) with grid.region_prefixes, or a prefixed id alone",
            )  # fmt: skip
        offered: set[str] | None = None
        for prefix in config.grid.region_prefixes:
            spec = resolve_model(catalog, prefix + model, source=src, key=f"grid.models[{i}]")
            limit = getattr(spec, "max_output_tokens", None)
            if isinstance(limit, int) and config.cell.max_tokens > limit:
                raise ConfigError(
                    f"max_tokens {config.cell.max_tokens} is more than {model} can produce ({limit} output tokens "
                    f"per request, grid.models[{i}]): every request would be rejected",
                    source=src, key="cell.max_tokens", value=config.cell.max_tokens, allowed=f"1..{limit}",
                )  # fmt: skip
            tiers = set(spec_tiers(spec))
            offered = tiers if offered is None else offered & tiers
        offered = offered or set()
        for j, tier in enumerate(config.grid.tiers):
            if tier not in offered:
                raise ConfigError(
                    f"model {model!r} does not offer service tier {tier!r}",
                    source=src, key=f"grid.tiers[{j}]", value=tier, allowed=", ".join(sorted(offered)),
                )  # fmt: skip
        for tier in tier_weights(config.cell.tier_mix):  # a mixed cell asks each of its tiers
            if tier not in offered:
                raise ConfigError(
                    f"model {model!r} does not offer service tier {tier!r}",
                    source=src, key="cell.tier_mix", value=config.cell.tier_mix, allowed=", ".join(sorted(offered)),
                )  # fmt: skip
    if config.cell.tier_mix and config.grid.tiers != ["default"]:
        raise ConfigError("cell.tier_mix asks its tiers in every cell: grid.tiers would repeat each cell per tier",
                          source=src, key="grid.tiers", value=config.grid.tiers,
                          allowed="leave grid.tiers out with cell.tier_mix")  # fmt: skip
    if config.grid.background_load and (config.target.kind != "emulator" or config.target.endpoint_url):
        raise ConfigError("grid.background_load sets the demand of other customers on the sweep's own emulator",
                          source=src, key="grid.background_load", value=config.grid.background_load,
                          allowed="target.kind: emulator (with no endpoint_url), or no grid.background_load")


# --------------------------------------------------------------------------------------------- loading


def parse_sweep(
    data: Any,
    *,
    source: str = "<memory>",
    env: Mapping[str, str] | None = None,
    catalog: Any = None,
    check_catalog: bool = True,
    flags: Mapping[str, Any] | None = None,
) -> SweepConfig:
    """Validate an already-parsed mapping. ``env=None`` reads ``os.environ``; pass ``{}`` to ignore it.

    ``flags`` ({flag: value as typed}: the AWS sample's run_tests.py flags, :data:`SAMPLE_FLAGS`, and
    :data:`FLAG_OVERRIDES`) override the file and the environment; a bad value is a :class:`ConfigError` with
    source "command line" and the flag as its key."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            "a sweep file must be a mapping of key: value at the top level",
            source=source, value=type(data).__name__, allowed="name, grid, target, cell, ...",
        )  # fmt: skip
    raw = _deep_copy(data)
    env_keys = apply_env(raw, os.environ if env is None else env, source)
    flag_keys = apply_flags(raw, flags or {})
    _absolute_prompt_path(raw)
    env_keys = {k: v for k, v in env_keys.items() if k not in flag_keys}
    try:
        try:
            config = SweepConfig.model_validate({**raw, "source": source})
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            raise _error_from_pydantic(errors[0], source, env_keys, len(errors) - 1) from None
        _check_cross_fields(config, env_keys)
        if check_catalog:
            validate_against_catalog(config, catalog if catalog is not None else default_catalog())
    except ConfigError as exc:
        raise _blame_flag(exc, flag_keys) from None
    return config


def _absolute_prompt_path(raw: dict[str, Any]) -> None:
    """A prompt file path in ``cell.workload`` made absolute (the working folder, else the repository root), because
    each cell's notebook runs in its own folder, where a relative path would name nothing."""
    cell = raw.get("cell")
    if not isinstance(cell, dict):
        return
    workload = cell.get("workload")
    if not isinstance(workload, str) or not is_prompt_path(workload):
        return
    path = Path(workload).expanduser()
    if not path.is_absolute():
        here = Path.cwd() / path
        path = here if here.exists() else project_root() / path
    cell["workload"] = str(path)


def _check_cross_fields(config: SweepConfig, env_keys: Mapping[str, str]) -> None:
    src = config.source
    for axis in ("models", "tiers", "region_prefixes", "prompt_sizes", "users", "rates_rps"):
        values = getattr(config.grid, axis)
        seen: set[Any] = set()
        for i, v in enumerate(values):
            if v in seen:
                raise ConfigError(
                    f"duplicate value {v!r} on a grid axis (it would give two cells the same id)",
                    source=src, key=f"grid.{axis}[{i}]", value=v, allowed="distinct values; use grid.repeats to repeat",
                )  # fmt: skip
            seen.add(v)
    _check_sequential(config)
    if not config.grid.users and not config.grid.rates_rps and config.search is None:
        raise ConfigError(
            "empty grid: no load levels (grid.users and grid.rates_rps are both empty)",
            source=src, key="grid.users", value=[], allowed="a non-empty list of user counts or rates_rps",
        )  # fmt: skip
    cell = config.cell
    if cell.engine == "locust" and config.grid.rates_rps:
        raise ConfigError(
            "the locust engine runs closed loop only", source=src, key="grid.rates_rps", value=config.grid.rates_rps,
            allowed="grid.users with engine locust, or engine burst for open-loop rates",
        )  # fmt: skip
    if not cell.requests and not cell.duration_s:
        where = src + (f" (overridden by environment variable {env_keys['cell.duration_s']})"
                       if "cell.duration_s" in env_keys else "")  # fmt: skip
        raise ConfigError(
            f"a cell needs a stopping rule: cell.duration_s is {cell.duration_s!r} and cell.requests is not set",
            source=where, key="cell.duration_s", value=cell.duration_s, allowed="seconds > 0, or set cell.requests",
        )  # fmt: skip
    if config.grid.rates_rps and not cell.duration_s and cell.requests is None:
        raise ConfigError(
            "open-loop cells (rates_rps) need cell.duration_s or cell.requests",
            source=src, key="cell.duration_s", value=cell.duration_s, allowed="seconds > 0",
        )  # fmt: skip
    if config.target.endpoint_url:
        parse_endpoint(config.target.endpoint_url, key="target.endpoint_url", source=src)
    if config.target.kind == "openai" and not config.target.endpoint_url:
        raise ConfigError(
            "an openai target needs target.endpoint_url: the server's base URL", source=src,
            key="target.endpoint_url", value=None, allowed="e.g. http://127.0.0.1:8000/v1 (before /chat/completions)",
        )  # fmt: skip
    for name, server in config.target.servers.items():
        if name not in config.grid.models:
            raise ConfigError(
                "target.servers names a model that is not on the grid", source=src, key=f"target.servers.{name}",
                value=name, allowed=", ".join(config.grid.models),
            )  # fmt: skip
        parse_endpoint(server.base_url, key=f"target.servers.{name}.base_url", source=src)
    if (config.target.kind == "openai" or config.target.servers) and cell.api != "chat-completions":
        raise ConfigError(
            "an OpenAI-compatible server serves only the chat-completions API", source=src, key="cell.api",
            value=cell.api, allowed="chat-completions",
        )  # fmt: skip
    if config.target.kind == "aws" and config.target.endpoint_url and is_loopback_url(config.target.endpoint_url):
        raise ConfigError(
            "target.kind is aws but target.endpoint_url points at loopback (an emulator?)",
            source=src, key="target.kind", value="aws", allowed="emulator (for a local endpoint)",
        )  # fmt: skip


#: the sweep's ``slo`` key of each sequential metric (its p95 target)
SLO_P95_KEYS = {"ttft_s": "ttft_p95_s", "e2e_s": "e2e_p95_s", "tpot_s": "tpot_p95_s"}


def sequential_target(config: SweepConfig) -> float | None:
    """The target of the sweep's sequential cells: ``cell.slo_target_s``, else the sweep's ``slo.<metric>_p95_s``
    when the percentile is 0.95 (one SLO definition for the cells and the analysis)."""
    cell = config.cell
    if cell.slo_target_s is not None:
        return cell.slo_target_s
    if abs(cell.slo_percentile - 0.95) < 1e-12:
        value = getattr(config.slo, SLO_P95_KEYS[cell.slo_metric])
        return float(value) if value is not None else None
    return None


def _check_sequential(config: SweepConfig) -> None:
    """Sequential verdict cells and the SLO search need a target; the search its bounds the right way round."""
    src, cell, search = config.source, config.cell, config.search
    if (cell.sequential == "verdict" or search is not None) and sequential_target(config) is None:
        raise ConfigError(
            f"sequential verdict cells{' (an SLO search)' if search else ''} need a target for p"
            f"{cell.slo_percentile * 100:g} {cell.slo_metric}",
            source=src, key="cell.slo_target_s", value=None,
            allowed=f"cell.slo_target_s: seconds, or slo.{SLO_P95_KEYS[cell.slo_metric]} (with slo_percentile 0.95)",
        )  # fmt: skip
    if search is None:
        return
    if search.high <= search.low:
        raise ConfigError("search.high must be above search.low", source=src, key="search.high", value=search.high,
                          allowed=f"a load > {search.low:g}")  # fmt: skip
    if search.load == "users" and (search.low != int(search.low) or search.high != int(search.high)):
        raise ConfigError("a users search needs whole numbers", source=src, key="search.low",
                          value=[search.low, search.high], allowed="integers >= 1")  # fmt: skip
    if search.load == "rate_rps" and cell.engine == "locust":
        raise ConfigError("the locust engine runs closed loop only", source=src, key="search.load",
                          value="rate_rps", allowed="users, or engine burst")  # fmt: skip
    if cell.sequential == "precision":
        raise ConfigError("an SLO search runs verdict cells", source=src, key="cell.sequential", value="precision",
                          allowed="verdict or off (the search runs verdict cells either way)")  # fmt: skip


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} at line {line} (first at line {first}): YAML would keep only "
                         "the last one")  # fmt: skip
        self.key = key


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(str(key), line, seen[key])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def load_sweep_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    catalog: Any = None,
    check_catalog: bool = True,
    flags: Mapping[str, Any] | None = None,
) -> SweepConfig:
    """Read and validate a sweep YAML file (``flags`` as in :func:`parse_sweep`); any mistake raises
    :class:`ConfigError` (file, key, value, allowed)."""
    p = Path(path)
    source = str(path)
    if p.is_dir():
        raise ConfigError("is a folder, not a sweep file", source=source, value=source,
                          allowed="a path to a YAML file such as params/sweeps/demo.yaml")  # fmt: skip
    if not p.is_file():
        raise ConfigError("sweep file not found", source=source, value=source, allowed="a path to params/sweeps/*.yaml")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at line {line} cannot be decoded",
                          source=source, allowed="a YAML file saved as UTF-8") from None  # fmt: skip
    except OSError as exc:
        raise ConfigError(f"cannot read the sweep file: {exc.strerror}", source=source) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except _DuplicateKey as exc:
        raise ConfigError(str(exc), source=source, key=exc.key, value=exc.key,
                          allowed="each key once per mapping") from None  # fmt: skip
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", source=source, allowed="YAML mapping"
        ) from None
    if data is None:
        raise ConfigError("the sweep file is empty", source=source, allowed="name, grid, target, cell, ...")
    return parse_sweep(data, source=source, env=env, catalog=catalog, check_catalog=check_catalog, flags=flags)


__all__ = [
    "APIS",
    "DEFAULT_INPUT_TOKENS",
    "ENV_OVERRIDES",
    "FLAG_OVERRIDES",
    "INCLUDE_FAILURES_NOTE",
    "PROMPT_SIZES",
    "REGION_PREFIXES",
    "SAMPLE_FLAGS",
    "SAMPLE_LOCUST_ENV",
    "CellConfig",
    "EstimatesConfig",
    "GridConfig",
    "OrderConfig",
    "SLOConfig",
    "SLO_P95_KEYS",
    "SearchConfig",
    "SweepConfig",
    "TargetConfig",
    "apply_env",
    "apply_flags",
    "available_workloads",
    "estimate_input_tokens",
    "estimate_request_tokens",
    "TokenEstimate",
    "catalog_model_ids",
    "load_sweep_config",
    "normalize_prefix",
    "parse_duration",
    "parse_sweep",
    "sequential_target",
    "resolve_model",
    "sample_env_notes",
    "spec_tiers",
    "split_prefix",
    "validate_against_catalog",
    "workload_sizes",
]

"""What one engine run does (:class:`BurstSpec`) and what it reports (:class:`BurstResult`)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bedrock_lab.catalog import PROVIDER_FORMATS
from bedrock_lab.cellspec import DEFAULTS, CellSpec, parse_cell
from bedrock_lab.engines.health import HealthPolicy, RunHealth
from bedrock_lab.errors import ConfigError

_D = DEFAULTS  # one set of defaults: bedrock_lab.cellspec


@dataclass
class BurstSpec:
    """One load run. Closed loop: set ``users``. Open loop: set ``rate_rps`` (and ``arrival``).

    At least one bound is required: ``duration_s`` and/or ``requests`` (whichever comes first ends the run).
    Retries are off by default (``max_attempts=1``); with more attempts the engine mirrors botocore's standard
    mode and records the retries of each request.

    The cell's settings (every field that :class:`~bedrock_lab.cellspec.CellSpec` also has) take their defaults
    and their validation from :mod:`bedrock_lab.cellspec`; the rest are engine knobs. :meth:`from_cell` builds
    one from a :class:`~bedrock_lab.cellspec.CellSpec`.
    """

    model_id: str
    api: str = _D["api"]
    tier: str | None = _D["tier"]
    workload: str = _D["workload"]
    prompt_size: str = _D["prompt_size"]
    users: int | None = None
    rate_rps: float | None = None
    arrival: str = _D["arrival"]
    duration_s: float | None = None
    requests: int | None = None
    ramp_s: float = _D["ramp_s"]
    max_tokens: int = _D["max_tokens"]
    seed: int = _D["seed"]
    run_id: str | None = None
    cell_id: str = ""
    temperature: float | None = _D["temperature"]
    max_attempts: int = _D["max_attempts"]
    connect_timeout_s: float = _D["connect_timeout_s"]
    read_timeout_s: float = _D["read_timeout_s"]
    breaker_after: int = _D["breaker_after"]  #: consecutive fatal failures (connection, credentials, validation) that end the run
    min_success_rate: float = _D["min_success_rate"]  #: fewer successes among non-throttled requests: invalid
    # sequential cells (bedrock_lab.engines.stopping): duration_s / requests are then the maximum
    sequential: str = _D["sequential"]
    slo_metric: str = _D["slo_metric"]
    slo_percentile: float = _D["slo_percentile"]
    slo_target_s: float | None = _D["slo_target_s"]
    precision: float = _D["precision"]
    alpha: float = _D["alpha"]
    check_every_s: float = _D["check_every_s"]
    min_duration_s: float = _D["min_duration_s"]
    min_requests: int = _D["min_requests"]
    warmup_s: float = _D["warmup_s"]
    # production features (issue 13): request options and the fallback policy (engines/fallback.py)
    stop_sequences: str | None = _D["stop_sequences"]  #: "a|b"
    guardrail: str | None = _D["guardrail"]  #: "identifier:version"
    fallback_model: str | None = _D["fallback_model"]
    fallback_tier: str | None = _D["fallback_tier"]
    # shared capacity (issue 15): tiers competing in one run (cellspec.pick_tier), the background level recorded
    tier_mix: str | None = _D["tier_mix"]  #: "priority:1,default:1,flex:1"
    background_load: float | None = _D["background_load"]
    # engine knobs
    provider_format: str | None = None  #: InvokeModel body format; default from the catalog / model id
    prompts_dir: str | None = None
    max_in_flight: int = 1000  #: open loop: concurrency cap (a full cap shows up as schedule lag)
    miss_threshold_s: float = 0.010  #: open loop: a start later than this counts as a schedule miss
    keep_chunk_times: bool = True
    flush_rows: int = 500
    flush_seconds: float = 5.0
    drain_s: float | None = None  #: how long in-flight requests may finish after the bound (default read timeout)
    extra: dict[str, Any] = field(default_factory=dict)  #: free-form labels (not used by the engine)

    @classmethod
    def from_cell(cls, spec: CellSpec, **knobs: Any) -> BurstSpec:
        """The engine spec of a cell (``knobs``: ``run_id``, ``cell_id`` and the engine-only fields)."""
        cell = spec.model_dump(exclude={"engine", "locust_workers", "locust_client"})
        return cls(**cell, **knobs)

    def cell_spec(self) -> CellSpec:
        """The :class:`~bedrock_lab.cellspec.CellSpec` part of this spec (validated)."""
        return parse_cell({k: getattr(self, k) for k in CellSpec.model_fields if hasattr(self, k)}, source="BurstSpec")

    def __post_init__(self) -> None:
        def bad(key: str, msg: str, allowed: str | None = None) -> ConfigError:
            return ConfigError(msg, source="BurstSpec", key=key, value=getattr(self, key), allowed=allowed)

        if not self.model_id:
            raise bad("model_id", "is required")
        self.cell_spec()  # the cell's settings: validated once, by bedrock_lab.cellspec
        if self.provider_format is not None and self.provider_format not in PROVIDER_FORMATS:
            raise bad("provider_format", "unknown provider format", ", ".join(PROVIDER_FORMATS))
        if (self.users is None) == (self.rate_rps is None):
            raise bad("users", "set exactly one of users (closed loop) or rate_rps (open loop)")
        if self.duration_s is None and self.requests is None:
            raise bad("duration_s", "set duration_s and/or requests: a run must be bounded")
        if self.max_in_flight < 1:
            raise bad("max_in_flight", "must be >= 1")
        if self.run_id is None:
            self.run_id = uuid.uuid4().hex[:12]

    @property
    def health_policy(self) -> HealthPolicy:
        """When the run stops early and when it is invalid (:mod:`bedrock_lab.engines.health`)."""
        return HealthPolicy(breaker_after=self.breaker_after, min_success_rate=self.min_success_rate)

    def request_tier(self, key: str) -> str | None:
        """The tier of one request (``key``: its worker and number): drawn from ``tier_mix`` (seeded), else the
        cell's tier."""
        if not self.tier_mix:
            return self.tier
        from bedrock_lab.cellspec import pick_tier, tier_weights

        return pick_tier(tier_weights(self.tier_mix), self.seed, key)

    @property
    def open_loop(self) -> bool:
        return self.rate_rps is not None

    @property
    def concurrency(self) -> int:
        return self.users if self.users is not None else self.max_in_flight

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BurstResult:
    """Outcome of one run: counts, the engine's own health, and where the records are."""

    run_id: str
    spec: BurstSpec
    target: str  #: credential-free description of the target
    out_dir: Path
    n_requests: int = 0
    n_ok: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    schedule_misses: int | None = None  #: open loop: starts later than miss_threshold_s
    max_schedule_lag_s: float | None = None
    loop_lag_p50_ms: float | None = None
    loop_lag_p99_ms: float | None = None
    loop_lag_max_ms: float | None = None
    cpu_mean_pct: float | None = None
    cpu_max_pct: float | None = None
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    stopped_early: str | None = None  #: why the circuit breaker ended the run (None: it ran to its bound)
    health: RunHealth | None = None  #: the verdict on the run, from its records (None if interrupted)
    #: why the run ended: settled_above / settled_below / precise (a sequential cell's answer, see
    #: bedrock_lab.engines.stopping), max_duration / max_requests (its bound), circuit_breaker, interrupted
    stop_reason: str | None = None
    stopped_at_s: float | None = None  #: seconds of load when the stop was decided (None: at the bound)
    sequential: dict[str, Any] | None = None  #: a sequential cell's last look: n, estimate, lo, hi, status

    @property
    def valid(self) -> bool:
        """False when the run could not succeed (:class:`~bedrock_lab.engines.health.RunHealth`)."""
        return self.health is None or self.health.valid

    @property
    def n_errors(self) -> int:
        return self.n_requests - self.n_ok

    @property
    def achieved_rps(self) -> float:
        return self.n_requests / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def saturated(self) -> bool:
        """True when the engine itself was a bottleneck (see ``warnings``): its latencies are inflated."""
        return bool(self.warnings)

    def records(self, keep_chunk_times: bool = False) -> Any:
        """The run's records as a DataFrame (read back from the shards on disk)."""
        from bedrock_lab.records import load_records

        return load_records(self.out_dir, keep_chunk_times=keep_chunk_times)

    def summary(self) -> str:
        s = self.spec
        mode = f"{s.users} users" if not s.open_loop else f"{s.rate_rps:g} rps {s.arrival}"
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_kind.items())) or "none"
        lines = [
            f"run {self.run_id}: {s.api} {s.model_id} on {self.target}, {mode}",
            f"  {self.n_requests} requests in {self.wall_s:.1f} s ({self.achieved_rps:.1f}/s), ok {self.n_ok}, "
            f"errors: {errs}",
            f"  event-loop lag p99 {self.loop_lag_p99_ms or 0:.1f} ms, CPU mean {self.cpu_mean_pct or 0:.0f}%",
        ]
        if self.schedule_misses is not None:
            lines.append(f"  schedule misses (> {s.miss_threshold_s * 1000:g} ms late): {self.schedule_misses}")
        lines += [f"  WARNING: {w}" for w in self.warnings]
        if self.health is not None and not self.health.valid:
            lines.append(f"  INVALID RUN: {self.health.reason}")
        if self.stop_reason is not None and s.sequential != "off":
            from bedrock_lab.engines.stopping import describe_stop

            lines.append("  " + describe_stop(s.sequential, self.stop_reason, self.stopped_at_s, self.sequential))
        if self.interrupted:
            lines.append("  interrupted: records so far were written")
        lines.append(f"  records: {self.out_dir}")
        return "\n".join(lines)

"""Whether a run can succeed: a circuit breaker that ends a hopeless run early, and the verdict on a finished one.

A load test that cannot reach its target, has no valid credentials or sends a request the service rejects
records thousands of identical failures in seconds and, without this module, reports them as a result. Two
rules, one policy (:class:`HealthPolicy`), shared by both engines and the sweep runner:

* **Circuit breaker** (live, inside the engine): ``breaker_after`` consecutive failures of a kind that does not
  heal by itself while the run goes on (:data:`FATAL_KINDS`: connection refused or DNS failure, missing or
  rejected credentials, 4xx validation errors) end the run. Any other outcome (a success, a throttle, a server
  error, a timeout) shows the target is alive and resets the count.
* **Validity** (after the run, from the records on disk: :func:`assess`): a run is *invalid* when the breaker
  tripped, when nothing succeeded, or when successes are fewer than ``min_success_rate`` of the requests that
  were not throttled. Throttling is a result (the quota answered), not a failure, unless nothing got through.

An invalid run makes ``bedrock-lab burst`` / ``locust`` exit non-zero and a sweep cell ``failed``, with the first
error message verbatim and how often it occurred (:attr:`RunHealth.reason`).

>>> import pandas as pd
>>> df = pd.DataFrame({"start": range(30), "e2e_s": 0.01, "status": "error", "error_kind": "validation",
...                    "error_code": "ValidationException", "error_message": "The provided model identifier is invalid."})
>>> h = assess(df)
>>> h.valid, h.breaker_tripped
(False, True)
>>> print(h.reason)
stopped after 20 consecutive validation errors; 0 of 30 requests succeeded; first error (30x): ValidationException: The provided model identifier is invalid.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from bedrock_lab.cellspec import DEFAULTS
from bedrock_lab.errors import ConfigError, EngineError

#: error kinds that will not heal by themselves during a run (the breaker counts only these)
FATAL_KINDS = frozenset({"connection", "validation", "client"})
#: longest error message kept in a record (service messages are short; connection errors can be long)
MESSAGE_MAX_CHARS = 300
_SECRET_RE = re.compile(r"\b(A[SK]IA[0-9A-Z]{12,})\b|(Signature=)[0-9a-f]{16,}|(X-Amz-Security-Token=)[^&\s]+")
#: API keys: a bearer header, Bedrock's short-term (``bedrock-api-key-`` + base64) and long-term (``ABSK...``) keys,
#: OpenAI-style ``sk-...`` keys
_KEY_RE = re.compile(r"(Bearer\s+)\S+|\b(bedrock-api-key-)[A-Za-z0-9+/=_-]+|\bABSK[A-Za-z0-9+/=_-]{16,}"
                     r"|\bsk-[A-Za-z0-9_-]{16,}")


def clean_message(text: object) -> str | None:
    """An error message as stored in a record: one line, at most :data:`MESSAGE_MAX_CHARS`, and with anything
    that looks like an access key id, a signature, a session token or an API key masked (messages are data, never secrets)."""
    if text is None:
        return None
    s = " ".join(str(text).split())
    if not s:
        return None
    s = _SECRET_RE.sub(lambda m: (m.group(2) or m.group(3) or "") + "***", s)
    s = _KEY_RE.sub(lambda m: (m.group(1) or m.group(2) or "") + "***", s)
    return s[:MESSAGE_MAX_CHARS]


@dataclass(frozen=True)
class HealthPolicy:
    """When a run ends early and when it counts as invalid."""

    #: consecutive fatal failures that stop a run (0: never stop early)
    breaker_after: int = DEFAULTS["breaker_after"]
    #: successes / (requests - throttled) below this make the run invalid (0: only "nothing succeeded")
    min_success_rate: float = DEFAULTS["min_success_rate"]

    def __post_init__(self) -> None:
        if self.breaker_after < 0:
            raise ConfigError("must be >= 0 (0: never stop early)", key="breaker_after", value=self.breaker_after)
        if not 0.0 <= self.min_success_rate <= 1.0:
            raise ConfigError("must be between 0 and 1", key="min_success_rate", value=self.min_success_rate)


class CircuitBreaker:
    """Counts consecutive fatal failures; :attr:`tripped` once ``policy.breaker_after`` are seen in a row."""

    def __init__(self, policy: HealthPolicy | None = None) -> None:
        self.after = (policy or HealthPolicy()).breaker_after
        self.run = 0
        self.kind: str | None = None
        self.tripped = False

    def observe(self, error_kind: str | None) -> bool:
        """Feed one finished request's ``error_kind`` (None: success); returns :attr:`tripped`."""
        if error_kind in FATAL_KINDS:
            self.run += 1
            self.kind = error_kind
            if self.after and self.run >= self.after:
                self.tripped = True
        else:
            self.run = 0
        return self.tripped


@dataclass(frozen=True)
class RunHealth:
    """The verdict on one run. ``reason`` (None when valid) is what a person reads first."""

    valid: bool
    n_requests: int
    n_ok: int
    n_throttled: int
    breaker_tripped: bool
    first_error: str | None  #: "<error_code>: <message>" of the earliest non-throttle failure
    first_error_count: int  #: requests that failed with that same code and message
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def raise_if_invalid(self, what: str = "run") -> None:
        """:class:`RunInvalidError` with :attr:`reason` when the run is invalid."""
        if not self.valid:
            raise RunInvalidError(f"{what} is invalid: {self.reason}", health=self)


class RunInvalidError(EngineError):
    """A run could not succeed (see :class:`RunHealth`); its records are kept but must not enter an analysis."""

    def __init__(self, message: str, *, health: RunHealth | None = None) -> None:
        super().__init__(message)
        self.health = health


def _col(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def assess(records: pd.DataFrame, policy: HealthPolicy | None = None) -> RunHealth:
    """Judge a finished run from its records (see the module docstring for the rules).

    The breaker is replayed on the records in the order the requests ended, so the verdict is the same whether
    the engine stopped the run itself (burst, each Locust process) or not (records of another tool).
    """
    policy = policy or HealthPolicy()
    n = int(len(records))
    status = _col(records, "status")
    kinds = _col(records, "error_kind")
    n_ok = int((status == "ok").sum())
    n_thr = int((kinds == "throttled").sum())
    breaker = CircuitBreaker(policy)
    if n and policy.breaker_after:
        start = pd.to_numeric(_col(records, "start"), errors="coerce").fillna(0.0)
        end = start + pd.to_numeric(_col(records, "e2e_s"), errors="coerce").fillna(0.0)
        for kind in kinds.iloc[end.to_numpy().argsort(kind="stable")]:
            if breaker.observe(None if pd.isna(kind) else str(kind)):
                break
    tripped = breaker.tripped
    failed = records[(status != "ok") & (kinds != "throttled")] if n else records
    first, first_n = None, 0
    if len(failed):
        failed = failed.sort_values("start", kind="stable") if "start" in failed.columns else failed
        code = _col(failed, "error_code").fillna(_col(failed, "error_kind")).fillna("error").astype(str)
        msg = _col(failed, "error_message").fillna("").astype(str)
        label = code.where(msg == "", code + ": " + msg)
        first = str(label.iloc[0])
        first_n = int((label == first).sum())
    problems = []
    if n == 0:
        problems.append("no request was sent")
    if tripped:
        problems.append(f"stopped after {policy.breaker_after} consecutive {breaker.kind} errors")
    if n and n_ok == 0:
        problems.append(f"0 of {n} requests succeeded" + (f" ({n_thr} throttled)" if n_thr else ""))
    elif n and n_ok < policy.min_success_rate * (n - n_thr):
        problems.append(f"only {n_ok} of {n - n_thr} requests that were not throttled succeeded "
                        f"({n_ok / (n - n_thr):.0%} < {policy.min_success_rate:.0%})")  # fmt: skip
    elif tripped:
        problems.append(f"{n_ok} of {n} requests succeeded")
    reason = None
    if problems:
        reason = "; ".join(problems) + (f"; first error ({first_n}x): {first}" if first else "")
    return RunHealth(valid=not problems, n_requests=n, n_ok=n_ok, n_throttled=n_thr, breaker_tripped=tripped,
                     first_error=first, first_error_count=first_n, reason=reason)  # fmt: skip


__all__ = [
    "FATAL_KINDS",
    "CircuitBreaker",
    "HealthPolicy",
    "RunHealth",
    "RunInvalidError",
    "assess",
    "clean_message",
]

"""The stop controller of sequential cells, shared by the burst engine and the Locust runner.

A sequential cell (``CellSpec.sequential``: ``verdict`` or ``precision``) ends as soon as its question is
answered instead of at its fixed bound: the always-valid interval of the SLO percentile
(:mod:`bedrock_lab._confseq`, Howard & Ramdas 2022) lies wholly above or below the target, or is narrower than
the requested relative precision. ``duration_s`` / ``requests`` stay the maximum; ``min_duration_s`` and
``min_requests`` the minimum; requests started in the first ``warmup_s`` are not used.

Off the per-request path: an engine hands each finished request's metric to :meth:`StopController.add` (one
list append) and a periodic task calls :meth:`StopController.look` every ``check_every_s``; the sort and the
band are computed there. Because the interval is a confidence sequence, looking as often as we like and
stopping at the first settled look keeps the verdict's error rate at or below ``alpha``.

What the watcher sees: successful requests' metric; a timed-out request counts with the time it waited (a lower
bound of its true latency, so it can only push the verdict towards "above", never hide a miss); other failures
(throttles, server errors) are not latencies and are left to the error-rate SLO.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bedrock_lab._confseq import SequentialInterval, SloWatcher

if TYPE_CHECKING:
    from bedrock_lab.engines.spec import BurstSpec

#: why a run ended: a sequential answer, a bound, or a failure
SETTLED_ABOVE = "settled_above"  #: the percentile is above the target: the SLO is missed
SETTLED_BELOW = "settled_below"  #: the percentile is below the target: the SLO is met
PRECISE = "precise"  #: the percentile is known to the requested relative precision
MAX_DURATION = "max_duration"  #: ran to duration_s
MAX_REQUESTS = "max_requests"  #: ran to requests
CIRCUIT_BREAKER = "circuit_breaker"  #: the engine's circuit breaker ended it (bedrock_lab.engines.health)
INTERRUPTED = "interrupted"
STOP_REASONS = (SETTLED_ABOVE, SETTLED_BELOW, PRECISE, MAX_DURATION, MAX_REQUESTS, CIRCUIT_BREAKER, INTERRUPTED)
#: the stop reasons that are a sequential answer (the others: the run ended at a bound or failed)
SETTLED = (SETTLED_ABOVE, SETTLED_BELOW, PRECISE)
_STATUS_REASON = {"above": SETTLED_ABOVE, "below": SETTLED_BELOW, "precise": PRECISE}


@dataclass(frozen=True, slots=True)
class StopRule:
    """What a sequential cell watches and when it may stop (the sequential fields of a cell spec)."""

    mode: str  #: verdict | precision
    metric: str  #: ttft_s | e2e_s | tpot_s
    p: float
    target: float | None
    precision: float
    alpha: float
    check_every_s: float
    min_duration_s: float
    min_requests: int
    warmup_s: float

    @classmethod
    def from_spec(cls, spec: BurstSpec) -> StopRule | None:
        """The rule of a :class:`~bedrock_lab.engines.BurstSpec`; None when it is not sequential."""
        if spec.sequential == "off":
            return None
        return cls(mode=spec.sequential, metric=spec.slo_metric, p=spec.slo_percentile, target=spec.slo_target_s,
                   precision=spec.precision, alpha=spec.alpha, check_every_s=spec.check_every_s,
                   min_duration_s=spec.min_duration_s, min_requests=spec.min_requests,
                   warmup_s=spec.warmup_s)  # fmt: skip

    def watcher(self) -> SloWatcher:
        """A fresh watcher: verdict mode watches the target, precision mode the relative half-width."""
        if self.mode == "verdict":
            return SloWatcher(self.p, target=self.target, alpha=self.alpha)
        return SloWatcher(self.p, target=None, rel_precision=self.precision, alpha=self.alpha)

    def describe(self) -> str:
        what = (f"p{self.p * 100:g} {self.metric} vs {self.target:g} s" if self.mode == "verdict" and self.target
                else f"p{self.p * 100:g} {self.metric} to +-{self.precision:.0%}")  # fmt: skip
        return f"sequential {self.mode}: {what}, alpha {self.alpha:g}, look every {self.check_every_s:g} s"


def watched_value(metric: str, status: str, error_kind: str | None, ttft_s: float | None, e2e_s: float | None,
                  tpot_s: float | None) -> float | None:
    """The value a request adds to the watcher (module docstring): its metric if it succeeded, the time it waited
    if it timed out (not for tpot_s: a timeout says nothing about the time per token), else None."""
    if status == "ok":
        v = ttft_s if metric == "ttft_s" else e2e_s if metric == "e2e_s" else tpot_s
    elif error_kind == "timeout" and metric != "tpot_s":
        v = ttft_s if metric == "ttft_s" and ttft_s is not None else e2e_s
    else:
        return None
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


class StopController:
    """Collects a run's watched values and decides, at each look, whether the run may end (module docstring).

    ``t0`` is the run's start on the same clock as the ``start`` of each added request (epoch seconds).
    """

    def __init__(self, rule: StopRule, t0: float) -> None:
        self.rule, self.t0 = rule, t0
        self._pending: list[float] = []
        self.watcher = rule.watcher()
        self.looks = 0
        self.last: SequentialInterval | None = None
        self.status = "undecided"
        self.reason: str | None = None  #: the settled stop reason, once decided
        self.stopped_at_s: float | None = None

    def add(self, start: float, value: float | None) -> None:
        """One finished request (hot path: an append); warm-up requests and requests without a value are dropped."""
        if value is not None and start >= self.t0 + self.rule.warmup_s:
            self._pending.append(value)

    def add_many(self, items: Iterable[tuple[float, float | None]]) -> None:
        for start, value in items:
            self.add(start, value)

    @property
    def n(self) -> int:
        """Values the watcher has used (warm-up excluded)."""
        return self.watcher.n + len(self._pending)

    def look(self, now: float) -> str | None:
        """A periodic look: the stop reason once the answer is settled (and min bounds are met), else None."""
        if self.reason is not None:
            return self.reason
        if self._pending:
            batch, self._pending = self._pending, []
            self.watcher.update(batch)
        self.looks += 1
        if self.watcher.n == 0:
            return None
        self.last = self.watcher.interval()
        self.status = self.watcher.status()
        elapsed = now - self.t0
        if elapsed < max(self.rule.min_duration_s, self.rule.warmup_s) or self.watcher.n < self.rule.min_requests:
            return None
        reason = _STATUS_REASON.get(self.status)
        if reason is not None:
            self.reason, self.stopped_at_s = reason, elapsed
        return self.reason

    def finish(self) -> None:
        """After the run: the interval over every value (requests still in flight at the stop included); the stop
        reason does not change. Still valid: the confidence sequence holds at any data-dependent stopping time."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.watcher.update(batch)
        if self.watcher.n:
            self.last = self.watcher.interval()
            self.status = self.watcher.status()

    def summary(self) -> dict[str, Any]:
        """The last look, for the run's result and the cell's summary.json."""
        ci = self.last
        r = self.rule
        return {
            "mode": r.mode, "metric": r.metric, "percentile": r.p, "target_s": r.target, "precision": r.precision,
            "alpha": r.alpha, "warmup_s": r.warmup_s, "looks": self.looks, "status": self.status,
            "n": ci.n if ci else 0, "estimate": ci.estimate if ci else None, "lo": ci.lo if ci else None,
            "hi": ci.hi if ci else None, "interval": "always-valid (Howard & Ramdas 2022)",
        }  # fmt: skip


def describe_stop(mode: str, reason: str | None, stopped_at_s: float | None, last: dict[str, Any] | None) -> str:
    """One line for a run's summary: why a sequential cell stopped and its always-valid interval."""
    at = f" after {stopped_at_s:.1f} s" if stopped_at_s is not None else ""
    line = f"sequential ({mode}): stopped {reason}{at}"
    if last and last.get("estimate") is not None:
        def fmt(v: Any) -> str:
            return "inf" if v is None or not math.isfinite(v) else f"{v * 1000:.1f} ms"

        line += (f"; p{last['percentile'] * 100:g} {last['metric']} {fmt(last['estimate'])}, always-valid "
                 f"{1 - last['alpha']:.0%} interval [{fmt(last['lo'])}, {fmt(last['hi'])}] from {last['n']} "
                 "requests" + (f" (target {fmt(last['target_s'])})" if last.get("target_s") else ""))  # fmt: skip
    return line


def bound_reason(*, interrupted: bool, breaker_tripped: bool, issued: int, requests: int | None) -> str:
    """Why a run that no sequential answer ended stopped: interrupted, circuit breaker, or its bound."""
    if interrupted:
        return INTERRUPTED
    if breaker_tripped:
        return CIRCUIT_BREAKER
    if requests is not None and issued >= requests:
        return MAX_REQUESTS
    return MAX_DURATION


__all__ = ["CIRCUIT_BREAKER", "INTERRUPTED", "MAX_DURATION", "MAX_REQUESTS", "PRECISE", "SETTLED", "SETTLED_ABOVE",
           "SETTLED_BELOW", "STOP_REASONS", "StopController", "StopRule", "bound_reason", "describe_stop",
           "watched_value"]

"""The behaviour under load: per-request schedules, capacity with a priority queue, token quotas, faults.

Determinism: request number ``n`` (arrival order at the server) draws everything random -- faults, output
length, TTFT, every inter-chunk gap -- from ``random.Random(f"{seed}:{n}")``. Same seed and same request
sequence therefore give the same faults, lengths and sampled latencies; only queueing and the contention
slow-down depend on what else is running, as they should.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from dataclasses import dataclass, field

from bedrock_lab.catalog import FAULT_KINDS, FaultProfile, LatencyProfile, ModelSpec
from bedrock_lab.emulator.providers import ApiError

#: queue order: lower rank is admitted first
TIER_RANK = {"reserved": 0, "priority": 0, "default": 1, "flex": 2}
PRE_FAULTS = ("error_500", "error_503", "error_408", "model_not_ready")
STREAM_FAULTS = ("stream_throttle", "stream_error", "drop")

MSG_TOO_MANY_REQUESTS = "Too many requests, please wait before trying again."
MSG_TOO_MANY_TOKENS = "Too many tokens, please wait before trying again."

PRE_FAULT_ERRORS: dict[str, ApiError] = {
    "error_500": ApiError(500, "InternalServerException", "The system encountered an unexpected error during "
                          "processing. Try your request again."),
    "error_503": ApiError(503, "ServiceUnavailableException", "Bedrock is unable to process your request."),
    "error_408": ApiError(408, "ModelTimeoutException", "Model has timed out in processing the request. Try "
                          "your request again."),
    "model_not_ready": ApiError(429, "ModelNotReadyException", "Model is not ready to serve inference requests. "
                                "The AWS SDK will automatically retry the operation."),
}


@dataclass
class Schedule:
    """The intended timing of one admitted request. Times in seconds (already time-scaled)."""

    output_tokens: int
    finished: bool
    ttft_s: float  #: admission -> first content chunk (excludes queue wait)
    chunk_tokens: list[int]
    chunk_offsets: list[float]  #: from admission; chunk_offsets[0] == ttft_s
    text_offset: int
    fault: str | None = None  #: mid-stream fault kind (STREAM_FAULTS) or None
    fault_chunk: int = 0  #: the fault replaces this chunk

    @property
    def decode_s(self) -> float:
        return self.chunk_offsets[-1] - self.chunk_offsets[0] if self.chunk_offsets else 0.0


@dataclass
class Draw:
    """The random choices of one request, made at arrival from its own RNG."""

    rng: random.Random
    pre_fault: str | None
    stream_fault: str | None
    stall: bool


def draw(seed: int, n: int, faults: FaultProfile) -> Draw:
    rng = random.Random(f"{seed}:{n}")
    u = [rng.random() for _ in FAULT_KINDS]  # always the same number of draws, so later samples line up
    by = dict(zip(FAULT_KINDS, u, strict=True))
    pre = next((k for k in PRE_FAULTS if by[k] < getattr(faults, k)), None)
    stream = next((k for k in STREAM_FAULTS if by[k] < getattr(faults, k)), None)
    return Draw(rng, pre, stream, by["stall"] < faults.stall)


def plan(d: Draw, spec: ModelSpec, lat: LatencyProfile, *, input_tokens: int, max_tokens: int, tier: str,
         busy_fraction: float, time_scale: float, optimized: bool, stall_ms: float, cached_tokens: int = 0,
         extra_ttft_ms: float = 0.0, fixed_output: int | None = None, extra_output: int = 0) -> Schedule:  # fmt: skip
    """Sample the schedule of an admitted request.

    Production features (providers.Shape, caching, guardrails): ``cached_tokens`` of the input are read from the
    prompt cache and skip prefill; ``extra_ttft_ms`` (a guardrail) is paid before the first token;
    ``fixed_output`` replaces the sampled answer length (a tool call, a blocked text) and ``extra_output``
    (reasoning) streams before the answer; both count against maxTokens. The random draws are the same either way.
    """
    rng = d.rng
    if lat.output_median_tokens <= 0:
        natural = max_tokens
    else:
        natural = max(1, round(lat.output_median_tokens * math.exp(lat.output_sigma * rng.gauss(0.0, 1.0))))
    if fixed_output is not None:
        natural = fixed_output
    natural += extra_output
    out = min(natural, max_tokens)
    finished = natural <= max_tokens
    prefill = max(0, input_tokens - cached_tokens)
    ttft_ms = (lat.ttft_ms + lat.prefill_ms_per_1k * prefill / 1000.0) * math.exp(lat.ttft_sigma * rng.gauss(0, 1))
    ttft_ms += extra_ttft_ms
    tps = lat.tokens_per_s * spec.tier_speed.get(tier, 1.0) / (1.0 + lat.contention * min(1.0, busy_fraction))
    if optimized:
        ttft_ms *= 0.75
        tps *= 1.4
    ttft = ttft_ms / 1000.0 * time_scale
    sizes: list[int] = []
    left = out
    while left > 0:
        k = min(max(1, lat.chunk_tokens), left)
        sizes.append(k)
        left -= k
    offsets = [ttft]
    t = ttft
    jitter = lat.jitter
    for k in sizes[1:]:
        t += k / tps * math.exp(jitter * rng.gauss(0.0, 1.0)) * time_scale
        offsets.append(t)
    fault_chunk = rng.randrange(len(sizes))
    if d.stall and len(offsets) > 1:
        at = rng.randrange(1, len(offsets))
        extra = stall_ms / 1000.0 * time_scale
        offsets[at:] = [o + extra for o in offsets[at:]]
    return Schedule(out, finished, ttft, sizes, offsets, rng.randrange(1 << 20), d.stream_fault, fault_chunk)


@dataclass
class TokenBucket:
    """Tokens-per-minute quota: holds at most one minute's tokens, refills continuously."""

    per_minute: float
    level: float = field(default=-1.0)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = self.per_minute

    def _refill(self, now: float) -> None:
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60.0)
        self.stamp = now

    def take(self, n: float) -> bool:
        self._refill(time.monotonic())
        if n > self.level:
            return False
        self.level -= n
        return True

    def give_back(self, n: float) -> None:
        self._refill(time.monotonic())
        self.level = min(self.per_minute, self.level + n)


class Capacity:
    """A model's concurrent slots, handed out in tier order (priority/reserved, default, flex), FIFO within."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.active = 0
        self.waiting = 0
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    @property
    def busy_fraction(self) -> float:
        return self.active / self.slots

    def try_acquire(self) -> bool:
        """Take a free slot at once (nobody queued ahead), else False: what a background arrival checks first."""
        if self.active < self.slots and not self.waiting:
            self.active += 1
            return True
        return False

    async def acquire(self, tier: str, timeout_s: float) -> float:
        """Wait for a slot; returns the wait in seconds. Raises ThrottlingException after ``timeout_s``."""
        if self.active < self.slots and not self.waiting:
            self.active += 1
            return 0.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        fut: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        self.waiting += 1
        heapq.heappush(self._queue, (TIER_RANK.get(tier, 1), self._seq, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout_s)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done():  # got the slot at the last moment: pass it on
                self.release()
            else:
                self.waiting -= 1
                fut.cancel()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ApiError(429, "ThrottlingException", MSG_TOO_MANY_REQUESTS) from None
        return loop.time() - t0

    def release(self) -> None:
        while self._queue:
            _, _, fut = heapq.heappop(self._queue)
            if not fut.done():
                self.waiting -= 1
                fut.set_result(None)  # the slot passes straight to the waiter: active stays the same
                return
        self.active -= 1


class EmitStats:
    """Histogram of frame emit lag (actual write time - intended time), 0.1 ms buckets up to 2 s."""

    BUCKETS = 20_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)
        self.n = 0
        self.max_s = 0.0

    def add(self, lag_s: float) -> None:
        i = int(lag_s * 10_000.0)
        if i < 0:
            i = 0
        elif i > self.BUCKETS:
            i = self.BUCKETS
        self.counts[i] += 1
        self.n += 1
        if lag_s > self.max_s:
            self.max_s = lag_s

    def quantile_ms(self, q: float) -> float | None:
        if not self.n:
            return None
        target = q * self.n
        acc = 0
        for i, c in enumerate(self.counts):
            acc += c
            if acc >= target:
                return (i + 0.5) / 10.0
        return self.BUCKETS / 10.0

    def summary(self) -> dict[str, float | int | None]:
        return {"frames": self.n, "p50_ms": self.quantile_ms(0.5), "p90_ms": self.quantile_ms(0.9),
                "p99_ms": self.quantile_ms(0.99), "max_ms": round(self.max_s * 1000.0, 3)}  # fmt: skip

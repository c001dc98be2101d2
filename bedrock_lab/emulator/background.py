"""Other customers: a seeded background demand that shares a model's capacity with the test's own requests.

On Bedrock the capacity behind a model serves every customer of the region; service tiers decide who waits when
it is short ("Service tiers for optimizing performance and cost", Bedrock user guide: priority is served ahead of
default, flex may wait behind both). The emulator models that with virtual requests from other customers, per
model with a ``background`` profile (:class:`~bedrock_lab.catalog.BackgroundProfile`):

* arrivals: a Poisson process with rate ``load(t) x capacity / hold`` (so ``load`` is the offered share of the
  capacity), ``load(t)`` constant, a daily sine cycle or seeded bursts on top of ``level``; non-homogeneous
  arrivals by thinning. Drawn from ``Random(f"{seed}:background:{model}")``: the same seed gives the same
  arrival times and tiers whatever the test sends.
* each arrival picks a tier (``priority_share``, ``flex_share``, the rest default) and queues for a slot in the
  same priority queue as the test's requests (:class:`~bedrock_lab.emulator.load.Capacity`: priority, then
  default, then flex, FIFO within a tier); it gives up after ``max_queue_ms`` like a throttled client;
* admitted, it holds the slot for an exponential time with mean ``hold_ms`` (default: the model's TTFT plus its
  median answer at its token rate), then releases it. It sends no bytes and has no timing-log line.

Times are model milliseconds, multiplied by the emulator's ``time_scale`` like every latency. At start the model's
slots are pre-filled to the current load (up to capacity), with exponential residual holds (memoryless), so a
test does not begin on an idle model.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from dataclasses import dataclass, field

from bedrock_lab.catalog import BackgroundProfile, ModelSpec
from bedrock_lab.emulator.load import Capacity
from bedrock_lab.emulator.providers import ApiError


def hold_ms(spec: ModelSpec) -> float:
    """Mean slot time of one background request (model milliseconds)."""
    bg, lat = spec.background, spec.latency
    if bg.hold_ms > 0:
        return bg.hold_ms
    out = lat.output_median_tokens or 300
    return lat.ttft_ms + out / lat.tokens_per_s * 1000.0


def load_at(bg: BackgroundProfile, t_s: float, bursts: list[tuple[float, float]] | None = None) -> float:
    """Offered load (share of capacity) at model time ``t_s`` seconds after the start."""
    if bg.pattern == "constant":
        return bg.level
    if bg.pattern == "daily":
        return max(0.0, bg.level * (1.0 + bg.amplitude * math.sin(2 * math.pi * (t_s + bg.phase_s) / bg.period_s)))
    if bg.pattern == "bursts":
        on = any(a <= t_s < b for a, b in bursts or ())
        return bg.level + (bg.burst_level if on else 0.0)
    return 0.0


def peak_load(bg: BackgroundProfile) -> float:
    if bg.pattern == "daily":
        return bg.level * (1.0 + bg.amplitude)
    if bg.pattern == "bursts":
        return bg.level + bg.burst_level
    return bg.level if bg.pattern == "constant" else 0.0


@dataclass
class BackgroundStats:
    arrivals: int = 0
    admitted: int = 0
    gave_up: int = 0  #: waited longer than max_queue_ms (a throttled request of another customer)
    by_tier: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"arrivals": self.arrivals, "admitted": self.admitted, "gave_up": self.gave_up,
                "by_tier": dict(self.by_tier)}  # fmt: skip


class Background:
    """The background demand of one model; :meth:`start` on the emulator's loop, :meth:`stop` at shutdown."""

    def __init__(self, spec: ModelSpec, capacity: Capacity, *, seed: int, time_scale: float,
                 max_queue_s: float) -> None:  # fmt: skip
        self.spec = spec
        self.bg = spec.background
        self.capacity = capacity
        self.time_scale = time_scale
        self.max_queue_s = max_queue_s
        self.rng = random.Random(f"{seed}:background:{spec.model_id}")
        self.hold_s = hold_ms(spec) / 1000.0  #: model seconds
        self.stats = BackgroundStats()
        self._bursts: list[tuple[float, float]] = []
        self._next_burst = 0.0
        self._task: asyncio.Task[None] | None = None
        self._waiters: set[asyncio.Task[None]] = set()
        self._t0 = 0.0

    # -- schedule (model seconds) ---------------------------------------------------------------------
    def _extend_bursts(self, until_s: float) -> None:
        while self.bg.pattern == "bursts" and self._next_burst <= until_s:
            start = self._next_burst + self.rng.expovariate(1.0 / self.bg.burst_every_s)
            self._bursts.append((start, start + self.bg.burst_s))
            self._next_burst = start + self.bg.burst_s
        self._bursts = [b for b in self._bursts if b[1] >= until_s - self.bg.burst_s] or self._bursts[-1:]

    def load(self, t_s: float) -> float:
        self._extend_bursts(t_s)
        return load_at(self.bg, t_s, self._bursts)

    def _tier(self) -> str:
        u = self.rng.random()
        if u < self.bg.priority_share:
            return "priority"
        if u < self.bg.priority_share + self.bg.flex_share:
            return "flex"
        return "default"

    # -- running --------------------------------------------------------------------------------------
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        prefill = min(self.capacity.slots, round(self.load(0.0) * self.capacity.slots))
        for _ in range(prefill):  # steady state of an M/M/c below saturation: busy slots, memoryless residuals
            if self.capacity.try_acquire():
                loop.call_later(self.rng.expovariate(1.0 / self.hold_s) * self.time_scale, self.capacity.release)
        self._task = loop.create_task(self._arrivals())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for w in list(self._waiters):
            w.cancel()

    async def _arrivals(self) -> None:
        loop = asyncio.get_running_loop()
        peak = peak_load(self.bg)
        if peak <= 0:
            return
        rate_max = peak * self.capacity.slots / self.hold_s  # per model second
        t = 0.0
        while True:
            t += self.rng.expovariate(rate_max)
            accept = self.rng.random() * peak < self.load(t)  # thinning: keep with probability load(t) / peak
            tier = self._tier()
            hold = self.rng.expovariate(1.0 / self.hold_s)
            delay = self._t0 + t * self.time_scale - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not accept:
                continue
            self.stats.arrivals += 1
            self.stats.by_tier[tier] = self.stats.by_tier.get(tier, 0) + 1
            if self.capacity.try_acquire():
                self.stats.admitted += 1
                loop.call_later(hold * self.time_scale, self.capacity.release)
            else:
                w = loop.create_task(self._queued(tier, hold))
                self._waiters.add(w)
                w.add_done_callback(self._waiters.discard)

    async def _queued(self, tier: str, hold: float) -> None:
        try:
            await self.capacity.acquire(tier, self.max_queue_s)
        except ApiError:
            self.stats.gave_up += 1
            return
        self.stats.admitted += 1
        try:
            await asyncio.sleep(hold * self.time_scale)
        finally:
            self.capacity.release()


def start_background(spec: ModelSpec, capacity: Capacity, *, seed: int, time_scale: float,
                     max_queue_s: float) -> Background | None:  # fmt: skip
    """Start the model's background demand on the running loop (None when its profile has none)."""
    if not spec.background.active:
        return None
    bg = Background(spec, capacity, seed=seed, time_scale=time_scale, max_queue_s=max_queue_s)
    with contextlib.suppress(RuntimeError):  # no running loop: nothing to start
        bg.start()
        return bg
    return None


__all__ = ["Background", "BackgroundStats", "hold_ms", "load_at", "peak_load", "start_background"]

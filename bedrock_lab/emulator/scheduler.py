"""One timer for every stream frame: a heap of (due time, seq, callback) drained by a single loop timer.

Why: asyncio keeps its timers in a heap of ``TimerHandle`` objects compared by a Python-level ``__lt__``,
and a coroutine per frame adds a future and a task step. With thousands of streams that overhead is what
makes frames late. Here due frames are tuples (compared in C) and all frames due at one wake-up run in a
single pass, in due order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable


class FrameScheduler:
    """``at(when, fn)`` runs ``fn()`` at loop time ``when`` (no earlier, as soon as possible after)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._armed = math.inf  #: due time of the earliest pending wake-up
        self._resolution = loop._clock_resolution if hasattr(loop, "_clock_resolution") else 1e-6
        # libuv (uvloop) timers have whole-millisecond granularity and may fire up to 1 ms early: arm them
        # 1 ms late instead, so a frame never leaves before its time (asyncio's epoll rounds up already)
        self._pad = 0.001 if type(loop).__module__.startswith("uvloop") else 0.0

    def at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), fn))
        if when < self._armed:
            self._armed = when
            self.loop.call_at(when + self._pad, self._fire, when)

    def _fire(self, when: float) -> None:
        if when == self._armed:
            self._armed = math.inf
        heap = self._heap
        pop = heapq.heappop
        limit = self.loop.time() + self._resolution
        while heap and heap[0][0] <= limit:
            pop(heap)[2]()
        if heap and heap[0][0] < self._armed:
            self._armed = heap[0][0]
            self.loop.call_at(self._armed + self._pad, self._fire, self._armed)

    def __len__(self) -> int:
        return len(self._heap)

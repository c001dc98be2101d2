"""LLM statistics for Locust (TTFT, time per output token, output tokens per second), mergeable across processes.

Locust's request stats know one response time per request; an LLM request has three more numbers that matter.
Firing extra request events for them (the old ``ttft`` rows) doubles Locust's Aggregated row and its RPS, so they
live here instead: one :class:`LlmStats` per Locust process, keyed by request name. A worker sends what it
gathered since its last report (:meth:`LlmStats.take`) with Locust's ``report_to_master`` event and the master
merges it (:meth:`LlmStats.merge`), the way Locust aggregates its own stats.

Each metric is kept as a log-bucket histogram with 1% relative resolution (bucket ``i`` holds values in
``[(1.01)^i, (1.01)^(i+1))``, reported at its geometric midpoint), so a percentile read from it is within 0.5%
of the exact order statistic of the same samples, memory is bounded (a few hundred buckets per metric, whatever
the request count) and merging is adding counts. Percentiles are nearest-rank (Locust's own definition);
:mod:`bedrock_lab.stats` computes the analysis from the records with its own estimators and intervals.

Pure Python without Locust or gevent, so tests and the CLI can import it.

>>> s = LlmStats()
>>> for ms in range(1, 101):
...     s.add("m [no tier] small", ttft_ms=float(ms), tpot_ms=2.0, tokens_per_s=500.0, output_tokens=10, t=ms)
>>> row = s.rows()[0]
>>> row["requests"], round(row["ttft_p50_ms"]), round(row["ttft_p99_ms"]), row["output_tokens"]
(100, 50, 99, 1000)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: relative width of a histogram bucket
RESOLUTION = 0.01
_LOG_BASE = math.log1p(RESOLUTION)
#: the metrics each request name keeps: key -> (title, unit)
METRICS: dict[str, tuple[str, str]] = {
    "ttft": ("time to first token", "ms"),
    "tpot": ("time per output token", "ms"),
    "tps": ("output tokens per second of decoding, per request", "tokens/s"),
}
#: the percentiles the web UI tab, the JSON endpoint and the HTML report show
PERCENTILES: tuple[float, ...] = (0.5, 0.95, 0.99)


def _bucket(value: float) -> int:
    return math.floor(math.log(value) / _LOG_BASE)


def _value(bucket: int) -> float:
    """The geometric midpoint of a bucket: within RESOLUTION / 2 of every value in it."""
    return math.exp((bucket + 0.5) * _LOG_BASE)


@dataclass
class Histogram:
    """Counts of positive values in log buckets (non-positive or non-finite values are not kept)."""

    counts: Counter[int] = field(default_factory=Counter)
    n: int = 0

    def add(self, value: float | None) -> None:
        if value is not None and value > 0 and math.isfinite(value):
            self.counts[_bucket(value)] += 1
            self.n += 1

    def merge(self, pairs: list[list[int]]) -> None:
        for bucket, count in pairs:
            self.counts[int(bucket)] += int(count)
            self.n += int(count)

    def pairs(self) -> list[list[int]]:
        """``[[bucket, count], ...]``: msgpack- and JSON-safe (no integer map keys)."""
        return [[b, c] for b, c in sorted(self.counts.items())]

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile (the ceil(q * n)-th smallest value); None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(q * self.n))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return _value(bucket)
        return _value(max(self.counts))  # unreachable: counts sum to n


@dataclass
class LlmEntry:
    """One request name: a histogram per metric, output tokens, and the first and last request end (epoch s)."""

    hists: dict[str, Histogram] = field(default_factory=lambda: {k: Histogram() for k in METRICS})
    requests: int = 0
    output_tokens: int = 0
    first: float | None = None
    last: float | None = None

    def span(self, first: float | None, last: float | None) -> None:
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)


class LlmStats:
    """Per request name LLM stats of one Locust process (a worker's since its last report; the master's in total)."""

    def __init__(self) -> None:
        self.entries: dict[str, LlmEntry] = {}

    def add(self, name: str, *, ttft_ms: float | None, tpot_ms: float | None, tokens_per_s: float | None,
            output_tokens: int | None, t: float) -> None:  # fmt: skip
        """One successful request that ended at epoch ``t``."""
        e = self.entries.get(name)
        if e is None:
            e = self.entries[name] = LlmEntry()
        e.hists["ttft"].add(ttft_ms)
        e.hists["tpot"].add(tpot_ms)
        e.hists["tps"].add(tokens_per_s)
        e.requests += 1
        e.output_tokens += int(output_tokens or 0)
        e.span(t, t)

    def reset(self) -> None:
        self.entries = {}

    def serialize(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for Locust's msgpack messages and for JSON."""
        return {name: {"hists": {k: h.pairs() for k, h in e.hists.items()}, "requests": e.requests,
                       "output_tokens": e.output_tokens, "first": e.first, "last": e.last}
                for name, e in self.entries.items()}  # fmt: skip

    def take(self) -> dict[str, Any]:
        """What was gathered since the last call, serialized; this process starts again from empty."""
        data = self.serialize()
        self.reset()
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Add another process's :meth:`serialize` output (a worker's report) into these stats."""
        for name, d in data.items():
            e = self.entries.get(name)
            if e is None:
                e = self.entries[name] = LlmEntry()
            for k, pairs in d.get("hists", {}).items():
                if k in e.hists:
                    e.hists[k].merge(pairs)
            e.requests += int(d.get("requests", 0))
            e.output_tokens += int(d.get("output_tokens", 0))
            e.span(d.get("first"), d.get("last"))

    def rows(self) -> list[dict[str, Any]]:
        """One row per request name (sorted), plus an ``Aggregated`` row when there are several names.

        Columns: ``name``, ``requests`` (successful requests measured), ``<metric>_p50_<unit>`` ... for
        :data:`METRICS` and :data:`PERCENTILES`, ``output_tokens`` and ``output_tokens_per_s`` (throughput:
        output tokens over the span between the first and the last request end; None under two requests)."""
        names = sorted(self.entries)
        entries = [(n, self.entries[n]) for n in names]
        if len(entries) > 1:
            total = LlmStats()
            for n in names:
                total.merge({"Aggregated": self.serialize()[n]})
            entries.append(("Aggregated", total.entries["Aggregated"]))
        out = []
        for name, e in entries:
            row: dict[str, Any] = {"name": name, "requests": e.requests}
            for k, (_, unit) in METRICS.items():
                suffix = "ms" if unit == "ms" else "tok_s"
                for q in PERCENTILES:
                    v = e.hists[k].percentile(q)
                    row[f"{k}_p{round(q * 100)}_{suffix}"] = None if v is None else round(v, 3)
            span = (e.last - e.first) if e.first is not None and e.last is not None else 0.0
            row["output_tokens"] = e.output_tokens
            row["output_tokens_per_s"] = round(e.output_tokens / span, 1) if e.requests > 1 and span > 0 else None
            out.append(row)
        return out


#: the columns of :meth:`LlmStats.rows`, with their titles (the web UI table and the HTML report section)
COLUMNS: list[tuple[str, str]] = [
    ("name", "Name"), ("requests", "# requests"),
    *[(f"{k}_p{round(q * 100)}_{'ms' if unit == 'ms' else 'tok_s'}",
       f"{k.upper() if k != 'tps' else 'tok/s'} p{round(q * 100)}{' (ms)' if unit == 'ms' else ''}")
      for k, (_, unit) in METRICS.items() for q in PERCENTILES],
    ("output_tokens", "output tokens"), ("output_tokens_per_s", "output tokens/s (throughput)"),
]  # fmt: skip

"""Sweep grid -> cells, with the requests, tokens, cost and wall time to expect *before* anything is spent.

Cells are the cross product model x tier x region prefix x prompt size x load (users or rate) x background load
(``grid.background_load``, when given) x repeats; a mixed-tier cell (``cell.tier_mix``) replaces the tier axis. A cell's
id is derived from its parameters only, so it is stable across re-plans (resume matches on it) and readable in a
folder listing. The run order is shuffled with a seed (drift in the service over an hour-long sweep then does not
line up with one axis), and each cell gets its own seed derived from the sweep seed and its id.

Cost is an estimate: expected requests x the cost of a mean request by the catalog's own formula
(:meth:`bedrock_lab.catalog.ModelSpec.cost_usd`, which the stats price records with: input, output, cache-read and
cache-write tokens at the tier's prices); output tokens default to ``max_tokens`` (an upper bound). Input tokens
per request are, in order: the sweep file's ``estimates.input_tokens``, counts given to
:meth:`Plan.with_input_tokens` (the sweep runner asks an AWS target's CountTokens operation), else the local token
estimate of the request texts the engines send (:func:`bedrock_lab.token_estimate.estimate_request_tokens`: the texts are
assembled by :mod:`bedrock_lab.prompts` for the engines and the plan alike, counted with :mod:`bedrock_lab.tokens`,
which is also the emulator's count). Each cell says which (``input_tokens_source``) and the plan text prints it.

Workloads whose requests are not alike are priced as they run: ``cached`` sends its system prompt behind a cache
point, so a cell writes it once (the first wave of concurrent requests on AWS, one request on the emulator, which
writes on arrival) and every later request reads it at the cache-read price (reads refresh the entry's TTL, so
steady load keeps one entry; open-loop arrivals further apart than the 5-minute TTL write again); a prefix below
the model's minimum is not cached and bills in full. ``agent`` runs
each task as its turns: every turn carries the tool specs, and the tool round's turn the call and its result
(``input_tokens_per_request`` is the mean over the turns, and never holds cache tokens).

Wall time: a cell bounded by ``duration_s`` takes that long whatever the target (the engines' duration is
wall-clock). Seconds per request (closed-loop request counts, request-bound cells) come from the catalog's latency
profile; against the sweep's own emulator that profile is scaled by ``target.emulator_overrides.time_scale`` and
its ``latency`` knobs, as the emulator applies them (``estimates.e2e_s`` and the notebook overhead are real time).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from bedrock_lab._confseq import quantile_cs_band
from bedrock_lab._money import fmt_usd
from bedrock_lab.catalog import CACHE_TTLS
from bedrock_lab.cellspec import CellSpec, notebook_parameters, parse_cell, tier_weights
from bedrock_lab.errors import ConfigError
from bedrock_lab.params import SweepConfig, default_catalog, resolve_model, sequential_target, split_prefix

#: where a cell's input tokens per request come from (see the module docstring)
INPUT_SWEEP_FILE = "sweep file estimates.input_tokens"
INPUT_COUNTED = "counted by CountTokens"
INPUT_LOCAL = "local estimate"
INPUT_SOURCES = (INPUT_SWEEP_FILE, INPUT_COUNTED, INPUT_LOCAL)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: one notebook run. Its settings are a :class:`~bedrock_lab.cellspec.CellSpec`
    (``cell.spec``); ``cell.model_id``, ``cell.users``, ``cell.max_tokens``... read from it."""

    cell_id: str
    grid_index: int  #: position in the unshuffled grid
    base_model: str
    region_prefix: str
    repeat: int  #: 1-based
    spec: CellSpec  #: model id (with the region prefix), tier, prompt size, load, seed and the sweep's cell settings
    # estimates
    expected_requests: float
    input_tokens_per_request: float
    output_tokens_per_request: float
    price_input_per_1k: float
    price_output_per_1k: float
    est_cost_usd: float
    est_wall_s: float  #: load time + notebook overhead (cooldown not included)
    input_tokens_source: str = "local estimate"  #: one of INPUT_SOURCES: where input_tokens_per_request comes from
    #: a sequential cell (issue #14): the fewest requests it may stop after and their cost (None: a fixed cell,
    #: which sends expected_requests); expected_requests / est_cost_usd are then its maximum
    min_requests_expected: float | None = None
    est_cost_min_usd: float | None = None
    #: a mixed-tier cell (``cell.tier_mix``): (tier, share of its requests, USD per 1k input, output, cache-read and
    #: cache-write tokens); the cell's prices are their share-weighted mean, so its cost prices the mix
    mix_prices: tuple[tuple[str, float, float, float, float, float], ...] = ()
    #: prompt-cache tokens per request (mean over the cell's requests; ``input_tokens_per_request`` is the rest)
    cache_read_tokens_per_request: float = 0.0
    cache_write_tokens_per_request: float = 0.0
    price_cache_read_per_1k: float = 0.0
    price_cache_write_per_1k: float = 0.0
    #: input tokens per request that CountTokens is not asked about (tool specs, later agent turns): a count
    #: given to :meth:`Plan.with_input_tokens` is the rest
    input_tokens_not_counted: float = 0.0

    def __getattr__(self, name: str) -> Any:
        if name in CellSpec.model_fields:  # only reached for names the dataclass itself lacks
            return getattr(self.__dict__["spec"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def expected_input_tokens(self) -> float:
        return self.expected_requests * self.input_tokens_per_request

    @property
    def expected_output_tokens(self) -> float:
        return self.expected_requests * self.output_tokens_per_request

    @property
    def expected_cache_tokens(self) -> tuple[float, float]:
        """(cache-read, cache-write) input tokens of the cell."""
        return (self.expected_requests * self.cache_read_tokens_per_request,
                self.expected_requests * self.cache_write_tokens_per_request)  # fmt: skip

    def cost_of(self, requests: float, input_tokens: float | None = None) -> float:
        """USD of ``requests`` of this cell's mean request (``input_tokens``: uncached input per request)."""
        return _cost(requests, self.input_tokens_per_request if input_tokens is None else input_tokens,
                     self.output_tokens_per_request, self.price_input_per_1k, self.price_output_per_1k,
                     self.cache_read_tokens_per_request, self.cache_write_tokens_per_request,
                     self.price_cache_read_per_1k, self.price_cache_write_per_1k)  # fmt: skip

    def cost_of_tokens(self, input_tokens: float, output_tokens: float, cache_read_tokens: float = 0.0,
                       cache_write_tokens: float = 0.0) -> float:  # fmt: skip
        """USD of token totals at this cell's prices (``input_tokens``: the uncached ones), e.g. what a finished
        cell's records say it used: what the sweep's budget cap counts as spent."""
        return _cost(1.0, input_tokens, output_tokens, self.price_input_per_1k, self.price_output_per_1k,
                     cache_read_tokens, cache_write_tokens, self.price_cache_read_per_1k,
                     self.price_cache_write_per_1k)  # fmt: skip

    def notebook_parameters(self) -> dict[str, Any]:
        """Parameters of notebooks/cell.py for this cell (target, output folder and run id are added by the runner)."""
        return {"cell_id": self.cell_id, **notebook_parameters(self.spec)}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spec"}
        d.update(self.spec.model_dump())
        d["expected_input_tokens"] = self.expected_input_tokens
        d["expected_output_tokens"] = self.expected_output_tokens
        d["expected_cache_read_tokens"], d["expected_cache_write_tokens"] = self.expected_cache_tokens
        return d


@dataclass
class Plan:
    """The ordered cells of a sweep and their totals."""

    config: SweepConfig
    cells: list[Cell]
    cell_overhead_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def total_requests(self) -> float:
        return sum(c.expected_requests for c in self.cells)

    @property
    def total_input_tokens(self) -> float:
        return sum(c.expected_input_tokens for c in self.cells)

    @property
    def total_output_tokens(self) -> float:
        return sum(c.expected_output_tokens for c in self.cells)

    @property
    def total_cache_tokens(self) -> tuple[float, float]:
        """(cache-read, cache-write) input tokens of the sweep."""
        return (sum(c.expected_cache_tokens[0] for c in self.cells),
                sum(c.expected_cache_tokens[1] for c in self.cells))  # fmt: skip

    @property
    def total_cost_usd(self) -> float:
        return sum(c.est_cost_usd for c in self.cells)

    @property
    def sequential(self) -> bool:
        """True when the cells may stop early (sequential cells: the totals are a maximum)."""
        return any(c.min_requests_expected is not None for c in self.cells)

    @property
    def total_requests_min(self) -> float:
        """The fewest requests the sweep may send (sequential cells stopping as early as they can)."""
        return sum(c.expected_requests if c.min_requests_expected is None else c.min_requests_expected
                   for c in self.cells)  # fmt: skip

    @property
    def total_cost_min_usd(self) -> float:
        return sum(c.est_cost_usd if c.est_cost_min_usd is None else c.est_cost_min_usd for c in self.cells)

    @property
    def wall_time_s(self) -> float:
        """Cells back to back plus the cooldowns between them."""
        n = len(self.cells)
        return sum(c.est_wall_s for c in self.cells) + max(0, n - 1) * self.config.cooldown_s

    def cost_by_tier(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self.cells:
            if not c.mix_prices:
                out[str(c.tier)] = out.get(str(c.tier), 0.0) + c.est_cost_usd
            for tier, share, pin, pout, pread, pwrite in c.mix_prices:  # a mixed cell: each tier its share
                cost = _cost(c.expected_requests * share, c.input_tokens_per_request, c.output_tokens_per_request,
                             pin, pout, c.cache_read_tokens_per_request, c.cache_write_tokens_per_request,
                             pread, pwrite)  # fmt: skip
                out[tier] = out.get(tier, 0.0) + cost
        return out

    def input_token_keys(self) -> list[tuple[str, str]]:
        """The distinct (model id, prompt size) whose input tokens a count may replace (not the sweep file's own)."""
        return list(dict.fromkeys((c.model_id, c.prompt_size) for c in self.cells
                                  if c.input_tokens_source != INPUT_SWEEP_FILE))  # fmt: skip

    def with_input_tokens(self, counts: Mapping[tuple[str, str], float], notes: Iterable[str] = ()) -> Plan:
        """This plan with counted input tokens per request (CountTokens) for the (model id, prompt size) in
        ``counts``, costs re-estimated; the sweep file's own ``estimates.input_tokens`` still win. A count is of
        the system prompt and the first turn's messages (the whole prompt, cached prefix included): the tokens it
        is not asked about (``input_tokens_not_counted``) are added, the cache tokens taken out."""
        cells = []
        for c in self.cells:
            if (c.model_id, c.prompt_size) not in counts or c.input_tokens_source == INPUT_SWEEP_FILE:
                cells.append(c)
                continue
            total = float(counts[c.model_id, c.prompt_size]) + c.input_tokens_not_counted
            uncached = max(0.0, total - c.cache_read_tokens_per_request - c.cache_write_tokens_per_request)
            cells.append(replace(c, input_tokens_per_request=uncached, input_tokens_source=INPUT_COUNTED,
                                 est_cost_usd=c.cost_of(c.expected_requests, uncached),
                                 est_cost_min_usd=None if c.min_requests_expected is None
                                 else c.cost_of(c.min_requests_expected, uncached)))  # fmt: skip
        return Plan(self.config, cells, self.cell_overhead_s, [*self.notes, *notes])

    def cell(self, cell_id: str) -> Cell:
        for c in self.cells:
            if c.cell_id == cell_id:
                return c
        raise KeyError(cell_id)

    def select(self, only: Iterable[str] | None) -> Plan:
        """Cells whose id matches any of ``only`` (exact id, glob like ``*flex*``, or a substring)."""
        if not only:
            return self
        patterns = [p for p in only if p]
        chosen = [c for c in self.cells if any(_matches(c.cell_id, p) for p in patterns)]
        if not chosen:
            raise ConfigError(
                "--only matches no cell of the plan",
                source=self.config.source, key="--only", value=list(patterns),
                allowed=", ".join(c.cell_id for c in self.cells[:10]) + (" ..." if len(self.cells) > 10 else ""),
            )  # fmt: skip
        return Plan(self.config, chosen, self.cell_overhead_s, list(self.notes))

    def _input_lines(self) -> list[str]:
        """Input tokens per request by model and prompt size, each group with its source."""
        groups: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        for c in sorted(self.cells, key=lambda c: c.grid_index):  # grid order: model, ..., prompt size
            cache = c.cache_read_tokens_per_request + c.cache_write_tokens_per_request
            groups.setdefault((c.model_id, c.input_tokens_source), {})[c.prompt_size] = (c.input_tokens_per_request,
                                                                                         cache)  # fmt: skip
        several = len({model for model, _ in groups}) > 1
        lines = []
        for (model, source), sizes in groups.items():
            per = ", ".join(f"{size} {_fmt_tokens(n)}" + (f" + {_fmt_tokens(cache)} cached" if cache else "")
                            for size, (n, cache) in sizes.items())  # fmt: skip
            why = source
            if source == INPUT_LOCAL:
                why += (" (bedrock_lab.tokens: the emulator's own count of these texts)"
                        if self.config.target.kind == "emulator"
                        else " (bedrock_lab.tokens: an approximation of the model's tokenizer)")  # fmt: skip
            lines.append(f"  input/req   : {per}{' on ' + model if several else ''}: {why}")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "sweep": self.name,
            "source": self.config.source,
            "target": self.config.target.model_dump(),
            "config": self.config.model_dump(mode="json"),
            "totals": {
                "cells": len(self.cells),
                "requests": self.total_requests,
                "input_tokens": self.total_input_tokens,
                "output_tokens": self.total_output_tokens,
                "cache_read_tokens": self.total_cache_tokens[0],
                "cache_write_tokens": self.total_cache_tokens[1],
                "cost_usd": self.total_cost_usd,
                "cost_usd_by_tier": self.cost_by_tier(),
                "requests_min": self.total_requests_min,
                "cost_usd_min": self.total_cost_min_usd,
                "wall_time_s": self.wall_time_s,
            },
            "cells": [c.to_dict() for c in self.cells],
        }

    def table(self) -> Any:
        """The cells as a pandas DataFrame (run order)."""
        import pandas as pd

        return pd.DataFrame([c.to_dict() for c in self.cells])

    def describe(self, *, max_rows: int = 30) -> str:
        """Human-readable plan: what will run, what it should cost, how long it should take."""
        cfg = self.config
        t = cfg.target
        where = f"emulator ({t.endpoint_url or 'started for this sweep'})" if t.kind == "emulator" else (
            f"AWS {t.region}" + (f" profile {t.profile}" if t.profile else ""))  # fmt: skip
        lines = [
            f"sweep {cfg.name!r} from {cfg.source}",
            f"  target      : {where}",
            f"  engine/api  : {cfg.cell.engine} / {cfg.cell.api}, max_tokens {cfg.cell.max_tokens}",
            f"  cells       : {len(self.cells)} ({'random order, seed ' + str(cfg.order.seed) if cfg.order.randomize else 'grid order'})",
            (f"  requests    : ~{self.total_requests_min:,.0f}..{self.total_requests:,.0f} (sequential cells stop "
             "once settled; the maximum is a fixed-duration sweep's)" if self.sequential
             else f"  requests    : ~{self.total_requests:,.0f} expected"),
            f"  tokens      : ~{self.total_input_tokens:,.0f} input, <= {self.total_output_tokens:,.0f} output"
            + (", ~{:,.0f} cache read, ~{:,.0f} cache write".format(*self.total_cache_tokens)
               if any(self.total_cache_tokens) else ""),
            *self._input_lines(),
            f"  est. cost   : {fmt_usd(self.total_cost_usd)}"
            + (" (list prices; the emulator itself costs nothing)" if t.kind == "emulator" else " (list prices)"),
        ]
        if self.sequential:
            lines.append(f"  est. range  : {fmt_usd(self.total_cost_min_usd)}..{fmt_usd(self.total_cost_usd)} "
                         f"({'/'.join(sorted({c.sequential for c in self.cells} - {'off'}))} cells stop once "
                         "settled; the budget check uses the maximum)")  # fmt: skip
        for tier, cost in sorted(self.cost_by_tier().items()):
            lines.append(f"      {tier:<10}: {fmt_usd(cost)}")
        if cfg.budget_usd is not None:
            flag = "  <-- OVER BUDGET: the sweep will stop before passing it" if self.total_cost_usd > cfg.budget_usd else ""
            lines.append(f"  budget      : {fmt_usd(cfg.budget_usd)}{flag}")
        lines.append(f"  wall time   : ~{_fmt_s(self.wall_time_s)} (incl. ~{_fmt_s(self.cell_overhead_s)}/cell notebook overhead"
                     + (f", {_fmt_s(cfg.cooldown_s)} cooldown" if cfg.cooldown_s else "") + ")")  # fmt: skip
        lines.extend(f"  note        : {n}" for n in self.notes)
        lines.append("")
        w = max([4] + [len(c.cell_id) for c in self.cells[:max_rows]])
        header = f"  {'#':>3} {'cell':<{w}} {'load':>10} {'requests':>9} {'cost $':>9} {'time':>7}"
        lines.append(header)
        for i, c in enumerate(self.cells[:max_rows]):
            load = f"{c.users} users" if c.users else f"{c.rate_rps:g} rps"
            n = (f"{c.expected_requests:,.0f}" if c.min_requests_expected is None
                 else f"{c.min_requests_expected:,.0f}..{c.expected_requests:,.0f}")  # fmt: skip
            lines.append(f"  {i + 1:>3} {c.cell_id:<{w}} {load:>10} {n:>9} "
                         f"{c.est_cost_usd:>9.4f} {_fmt_s(c.est_wall_s):>7}")  # fmt: skip
        if len(self.cells) > max_rows:
            lines.append(f"  ... and {len(self.cells) - max_rows} more cells")
        return "\n".join(lines)


def _fmt_tokens(n: float) -> str:
    return f"{n:,.1f}".removesuffix(".0")


def _fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _matches(cell_id: str, pattern: str) -> bool:
    import fnmatch

    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(cell_id, pattern)
    return pattern == cell_id or pattern in cell_id


# --------------------------------------------------------------------------------------------- prices

_IN_NAMES = ("input_per_1k", "price_input_per_1k", "input_price_per_1k", "input_1k", "input", "in", "price_in")
_OUT_NAMES = ("output_per_1k", "price_output_per_1k", "output_price_per_1k", "output_1k", "output", "out", "price_out")


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _number(obj: Any, names: Iterable[str]) -> float | None:
    for n in names:
        v = _get(obj, n)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    # per million tokens
    for n in names:
        for suffix in ("_per_1m", "_per_million"):
            v = _get(obj, n.replace("_per_1k", "") + suffix)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v) / 1000.0
    return None


def tier_prices(spec: Any, tier: str) -> tuple[float, float]:
    """(USD per 1k input tokens, USD per 1k output tokens) of ``spec`` on ``tier``.

    Accepts the catalog's ``price(tier)`` method or ``tiers[tier]`` / ``prices[tier]`` entries with
    input/output prices per 1k (or per 1M) tokens.
    """
    fn = getattr(spec, "price", None) or getattr(spec, "prices_for", None)
    if callable(fn):
        got = fn(tier)
        if isinstance(got, tuple) and len(got) == 2:
            return float(got[0]), float(got[1])
        pin, pout = _number(got, _IN_NAMES), _number(got, _OUT_NAMES)
        if pin is not None and pout is not None:
            return pin, pout
    for container_name in ("tiers", "prices", "pricing"):
        container = _get(spec, container_name)
        entry = None
        if isinstance(container, Mapping):
            entry = container.get(tier)
        elif isinstance(container, list | tuple):
            entry = next((t for t in container if _get(t, "name") == tier or _get(t, "tier") == tier), None)
        if entry is None:
            continue
        prices = _get(entry, "price") or _get(entry, "prices") or entry
        if isinstance(prices, tuple) and len(prices) == 2:
            return float(prices[0]), float(prices[1])
        pin, pout = _number(prices, _IN_NAMES), _number(prices, _OUT_NAMES)
        if pin is not None and pout is not None:
            return pin, pout
    raise ConfigError(
        f"the catalog has no price for tier {tier!r} of {getattr(spec, 'model_id', spec)!r}",
        source="params/catalog.yaml", key=f"{getattr(spec, 'model_id', '?')}.tiers.{tier}",
        allowed="input and output prices per 1k tokens",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------- planning

#: provider formats whose InvokeModel body is one flat prompt with role labels (see engines/formats.py)
_FLAT_FORMATS = ("anthropic-text", "titan", "llama", "mistral")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def make_cell_id(
    model_id: str, tier: str, prompt_size: str, users: int | None, rate_rps: float | None, repeat: int, repeats: int,
    background_load: float | None = None,
) -> str:
    """Readable, stable id from the parameters only: ``us.amazon.nova-lite-v1-0_flex_small_u30``."""
    load = f"u{users}" if users else f"r{rate_rps:g}"
    bg = [] if background_load is None else [f"bg{background_load:g}"]
    parts = [model_id, tier, prompt_size, load, *bg] + ([f"rep{repeat}"] if repeats > 1 else [])
    return "_".join(_ID_UNSAFE.sub("-", p).strip("-") for p in parts)


def cell_seed(sweep_seed: int, cell_id: str) -> int:
    digest = hashlib.sha256(f"{sweep_seed}:{cell_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _expected_requests(cfg: SweepConfig, users: int | None, rate: float | None, e2e_s: float) -> float:
    cell = cfg.cell
    duration = cell.duration_s or 0.0
    if rate:
        n = rate * max(0.0, duration - cell.ramp_s / 2) if duration else math.inf
    else:
        n = (users or 0) * max(0.0, duration - cell.ramp_s / 2) / e2e_s if duration else math.inf
    if cell.requests:
        n = min(n, float(cell.requests))
    return float(n)


def _load_seconds(cfg: SweepConfig, users: int | None, rate: float | None, e2e_s: float, n: float) -> float:
    if cfg.cell.duration_s and (not cfg.cell.requests or n < cfg.cell.requests):
        return float(cfg.cell.duration_s)
    if rate:
        return n / rate
    return math.ceil(n / max(1, users or 1)) * e2e_s


def _own_emulator(config: SweepConfig) -> Mapping[str, Any] | None:
    """The ``run_emulator`` overrides of the emulator the runner starts for this sweep (None: another target, or
    an already running emulator at ``endpoint_url``, whose settings the plan does not know)."""
    t = config.target
    return t.emulator_overrides if t.kind == "emulator" and not t.endpoint_url else None


def time_scale(config: SweepConfig) -> float:
    """The factor the sweep's own emulator multiplies every latency by (``target.emulator_overrides.time_scale``;
    1 for any other target). A bad value is the runner's check to report: it counts as 1 here."""
    ts = (_own_emulator(config) or {}).get("time_scale", 1.0)
    return float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) and ts > 0 else 1.0


def _e2e_estimate(config: SweepConfig, spec: Any, tier: str, out_tokens: float, in_tokens: float = 0.0) -> float:
    """Seconds per request for closed-loop cells: the sweep's estimate (real seconds), else the catalog's latency
    profile (TTFT with the prefill of ``in_tokens``, then the median output at the tier's speed), with the sweep's
    own emulator's ``latency`` knobs and ``time_scale`` applied as the emulator applies them."""
    est = config.estimates
    if est.e2e_s:
        return est.e2e_s
    lat = getattr(spec, "latency", None)
    knobs = (_own_emulator(config) or {}).get("latency")
    if isinstance(knobs, Mapping) and lat is not None:
        known = {k: v for k, v in knobs.items() if hasattr(lat, k) and isinstance(v, int | float)}
        lat = replace(lat, **known) if known else lat
    ttft = getattr(lat, "ttft_ms", None)
    tps = getattr(lat, "tokens_per_s", None)
    if isinstance(ttft, int | float) and isinstance(tps, int | float) and tps > 0:
        median = getattr(lat, "output_median_tokens", 0) or out_tokens
        prefill = getattr(lat, "prefill_ms_per_1k", 0.0)
        prefill = float(prefill) * in_tokens / 1000.0 if isinstance(prefill, int | float) else 0.0
        speed = float((getattr(spec, "tier_speed", None) or {}).get(tier, 1.0))
        real = (ttft + prefill) / 1000.0 + min(float(median), float(config.cell.max_tokens)) / (tps * speed)
        return real * time_scale(config)
    return est.ttft_s + out_tokens / est.output_tokens_per_s


def _cost(requests: float, in_tokens: float, out_tokens: float, pin: float, pout: float, read: float = 0.0,
          write: float = 0.0, pread: float = 0.0, pwrite: float = 0.0) -> float:  # fmt: skip
    """USD of ``requests`` requests of ``in_tokens`` uncached input, ``out_tokens`` output, ``read`` / ``write``
    cache tokens, at USD per 1k tokens (:func:`unit_prices`: the catalog's formula, linear in the tokens)."""
    return requests * (in_tokens * pin + out_tokens * pout + read * pread + write * pwrite) / 1000.0


def unit_prices(spec: Any, tier: str) -> tuple[float, float, float, float]:
    """USD per 1k input, output, cache-read and cache-write tokens of ``spec`` on ``tier``, from the catalog's own
    formula (:meth:`~bedrock_lab.catalog.ModelSpec.cost_usd`, which the stats price records with); a spec without
    it: :func:`tier_prices`, cache tokens at the input price."""
    cost = getattr(spec, "cost_usd", None)
    if callable(cost):
        t = None if tier == "default" else tier
        return (float(cost(1000, 0, t)), float(cost(0, 1000, t)), float(cost(0, 0, t, cache_read_tokens=1000)),
                float(cost(0, 0, t, cache_write_tokens=1000)))  # fmt: skip
    pin, pout = tier_prices(spec, tier)
    return pin, pout, pin, pin


def _cache_split(config: SweepConfig, spec: Any, prefix: float, n: float, users: int | None, rate: float | None,
                 e2e_s: float) -> tuple[float, float]:  # fmt: skip
    """(cache-read, cache-write) tokens per request of a cell whose requests share a cached ``prefix``: one write
    per cell, by the first request on the emulator (it writes on arrival), by the first wave of concurrent
    requests on AWS (none has found the entry yet); reads refresh the TTL, so every later request reads. No cache
    (a model without one, or a prefix below its minimum): (0, 0), the prefix is billed as input."""
    cache = getattr(spec, "cache", None)
    if prefix <= 0 or cache is None or prefix < getattr(cache, "min_tokens", 0) or not 0 < n < math.inf:
        return 0.0, 0.0
    if config.target.kind == "emulator":
        wave = 1.0
    else:
        wave = float(users) if users else max(1.0, math.ceil((rate or 0.0) * e2e_s))
    writes = min(n, wave)
    if rate and not users:  # sparse arrivals: a gap longer than the TTL finds the entry expired and writes again
        ttl = CACHE_TTLS["5m"] * time_scale(config)  # the workload's cachePoint sets no ttl: the default
        gap_over_ttl = math.exp(-rate * ttl) if config.cell.arrival == "poisson" else float(1.0 / rate > ttl)
        writes += (n - writes) * gap_over_ttl
    return prefix * (n - writes) / n, prefix * writes / n


def _settle_min_n(p: float, alpha: float) -> int:
    """The fewest measured requests after which a sequential verdict can settle (the always-valid band's first
    finite bound; a clear miss settles there, a pass needs the upper bound, later)."""
    import numpy as np

    t = np.arange(1, 2001)
    a, _ = quantile_cs_band(p, t, alpha)
    hit = np.flatnonzero(a > 0)
    return int(t[hit[0]]) if hit.size else 2000


def _sequential_min(config: SweepConfig, spec: CellSpec, users: int | None, rate: float | None, e2e_s: float,
                    n_max: float) -> float | None:
    """A sequential cell's fewest requests (None for a fixed cell): the warm-up's, then at least the minimum
    duration (or one look) and enough measured requests to settle."""
    if spec.sequential == "off":
        return None
    per_s = rate if rate else (users or 1) / e2e_s
    early_s = spec.warmup_s + max(spec.min_duration_s, spec.check_every_s)
    measured = max(float(spec.min_requests), float(_settle_min_n(spec.slo_percentile, spec.alpha)))
    n = max(per_s * early_s, per_s * spec.warmup_s + measured)
    return float(min(n, n_max))


def make_cell(config: SweepConfig, *, model: str, prefix: str, tier: str, size: str, users: int | None,
              rate: float | None, rep: int = 1, grid_index: int = 0, catalog: Any = None,
              specs: dict[str, Any] | None = None, sequential: str | None = None,
              background_load: float | None = None) -> Cell:  # fmt: skip
    """One cell of ``config`` with its estimates (the grid's cells and the SLO search's levels,
    :mod:`bedrock_lab.sweep.search`). ``sequential`` overrides the sweep's ``cell.sequential``."""
    catalog = catalog if catalog is not None else default_catalog()
    specs = specs if specs is not None else {}
    g, cell, est = config.grid, config.cell, config.estimates
    out_tokens = float(est.output_tokens if est.output_tokens is not None else cell.max_tokens)
    given_prefix, base = split_prefix(model)
    model_id = prefix + model
    if model_id not in specs:
        index = g.models.index(model) if model in g.models else 0
        specs[model_id] = resolve_model(catalog, model_id, source=config.source, key=f"grid.models[{index}]")
    local = config.request_tokens(size)
    if size in est.input_tokens:
        in_tokens, in_source = float(est.input_tokens[size]), INPUT_SWEEP_FILE
    else:  # the local estimate counted once here (config.input_tokens would count it again), else the default
        in_tokens, in_source = (local.total if local is not None else float(config.input_tokens(size))), INPUT_LOCAL
    mix = tier_weights(cell.tier_mix)
    if mix:  # tiers competing in one run: prices and time per request are the mix's share-weighted means
        total = sum(mix.values())
        mix_prices = tuple((t, w / total, *unit_prices(specs[model_id], t)) for t, w in mix.items())
        pin = sum(share * p for _, share, p, _, _, _ in mix_prices)
        pout = sum(share * p for _, share, _, p, _, _ in mix_prices)
        pread = sum(share * p for _, share, _, _, p, _ in mix_prices)
        pwrite = sum(share * p for _, share, _, _, _, p in mix_prices)
        e2e_s = sum(m[1] * _e2e_estimate(config, specs[model_id], m[0], out_tokens, in_tokens) for m in mix_prices)
        tier = "mix"
    else:
        mix_prices = ()
        pin, pout, pread, pwrite = unit_prices(specs[model_id], tier)
        e2e_s = _e2e_estimate(config, specs[model_id], tier, out_tokens, in_tokens)
    n = _expected_requests(config, users, rate, e2e_s)
    cached_prefix = min(local.cache_prefix, in_tokens) if local is not None else 0.0
    read, write = _cache_split(config, specs[model_id], cached_prefix, n, users, rate, e2e_s)
    uncached = in_tokens - read - write
    not_counted = local.not_counted if local is not None and in_source == INPUT_LOCAL else 0.0
    cost = _cost(n, uncached, out_tokens, pin, pout, read, write, pread, pwrite)
    cid = make_cell_id(model_id, tier, size, users, rate, rep, g.repeats, background_load)
    settings = cell.model_dump(exclude={"timeout_s"})
    settings["duration_s"] = cell.duration_s or None
    if sequential is not None:
        settings["sequential"] = sequential
    if settings["sequential"] != "off":  # one SLO definition: the sweep's slo section, unless the cell names one
        settings["slo_target_s"] = sequential_target(config)
    spec = parse_cell({**settings, "model_id": model_id, "tier": None if mix else tier, "prompt_size": size,
                       "users": users, "rate_rps": rate, "seed": cell_seed(config.order.seed, cid),
                       "background_load": background_load}, source=config.source)  # fmt: skip
    n_min = _sequential_min(config, spec, users, rate, e2e_s, n)

    def _min_cost(requests: float) -> float:  # the cache's one write is a larger share of fewer requests
        r, w = _cache_split(config, specs[model_id], cached_prefix, requests, users, rate, e2e_s)
        return _cost(requests, in_tokens - r - w, out_tokens, pin, pout, r, w, pread, pwrite)
    return Cell(
        cell_id=cid, grid_index=grid_index, base_model=base, region_prefix=prefix or given_prefix, repeat=rep,
        spec=spec, expected_requests=n,
        input_tokens_per_request=uncached, output_tokens_per_request=out_tokens,
        price_input_per_1k=pin, price_output_per_1k=pout, est_cost_usd=cost,
        est_wall_s=_load_seconds(config, users, rate, e2e_s, n) + est.cell_overhead_s, input_tokens_source=in_source,
        min_requests_expected=n_min,
        est_cost_min_usd=None if n_min is None else _min_cost(n_min),
        mix_prices=mix_prices, cache_read_tokens_per_request=read, cache_write_tokens_per_request=write,
        price_cache_read_per_1k=pread, price_cache_write_per_1k=pwrite, input_tokens_not_counted=not_counted,
    )  # fmt: skip


def build_plan(config: SweepConfig, *, catalog: Any = None) -> Plan:
    """Expand the grid into ordered cells with estimates (prices from ``catalog``, default params/catalog.yaml);
    input tokens are the local estimate until :meth:`Plan.with_input_tokens` replaces them with counts.
    An SLO search (``config.search``) plans its levels instead: :func:`bedrock_lab.sweep.search.search_plan`."""
    catalog = catalog if catalog is not None else default_catalog()
    g, est = config.grid, config.estimates
    cells: list[Cell] = []
    specs: dict[str, Any] = {}
    if config.search is not None:
        return _search_plan(config, catalog, specs)
    loads: list[tuple[int | None, float | None]] = [(u, None) for u in g.users] + [(None, r) for r in g.rates_rps]
    tiers = ["mix"] if config.cell.tier_mix else g.tiers  # a mixed cell asks its tier_mix, not a grid tier
    levels: list[float | None] = list(g.background_load) or [None]  # the grid's background axis (issue 15)
    for i, (model, prefix, tier, size, (users, rate), bg, rep) in enumerate(
        itertools.product(g.models, g.region_prefixes, tiers, g.prompt_sizes, loads, levels, range(1, g.repeats + 1))
    ):
        cells.append(make_cell(config, model=model, prefix=prefix, tier=tier, size=size, users=users, rate=rate,
                               rep=rep, grid_index=i, catalog=catalog, specs=specs,
                               background_load=bg))  # fmt: skip
    if config.order.randomize:
        random.Random(config.order.seed).shuffle(cells)
    if g.background_load:  # one emulator (re)start per background level: its cells run together, shuffled within
        cells.sort(key=lambda c: g.background_load.index(c.background_load))
    return Plan(config, cells, est.cell_overhead_s, plan_notes(config, cells, specs))


def search_ladder(low: float, high: float, *, integer: bool) -> list[float]:
    """The SLO search's bracketing levels: ``low`` doubled until ``high`` (which ends the ladder)."""
    out: list[float] = []
    level = float(low)
    while level < high:
        out.append(float(math.floor(level)) if integer else level)
        level *= 2
    out.append(float(high))
    return out


def search_groups(config: SweepConfig) -> list[tuple[str, str, str, str]]:
    """What an SLO search searches separately: (model, region prefix, tier, prompt size), in grid order."""
    g = config.grid
    return list(itertools.product(g.models, g.region_prefixes, g.tiers, g.prompt_sizes))


def _search_plan(config: SweepConfig, catalog: Any, specs: dict[str, Any]) -> Plan:
    """An SLO search's plan: each group's doubling ladder, up to ``max_levels`` (an estimate: the levels the search
    tests depend on the verdicts; bisection levels replace the ones above the first miss)."""
    search = config.search
    if search is None:
        raise ConfigError("internal: not a search", source=config.source, key="search")
    integer = search.load == "users"
    ladder = search_ladder(search.low, search.high, integer=integer)[: search.max_levels]
    cells: list[Cell] = []
    for i, (model, prefix, tier, size) in enumerate(search_groups(config)):
        for load in ladder:
            users, rate = (int(load), None) if integer else (None, float(load))
            cells.append(make_cell(config, model=model, prefix=prefix, tier=tier, size=size, users=users, rate=rate,
                                   grid_index=i, catalog=catalog, specs=specs, sequential="verdict"))  # fmt: skip
    notes = [f"SLO search over {search.load} {search.low:g}..{search.high:g}: up to {search.max_levels} sequential "
             f"levels per model x tier x prompt size; listed: the doubling ladder (bisection levels replace those above "
             "the first miss)", *plan_notes(config, cells, specs)]  # fmt: skip
    return Plan(config, cells, config.estimates.cell_overhead_s, notes)


def plan_notes(config: SweepConfig, cells: list[Cell], specs: Mapping[str, Any]) -> list[str]:
    """What the estimates assume, in words."""
    cell, est = config.cell, config.estimates
    notes = []
    flat = sorted({f for spec in specs.values() if (f := getattr(spec, "provider_format", None)) in _FLAT_FORMATS})
    if cell.api.startswith("invoke") and flat and any(c.input_tokens_source == INPUT_LOCAL for c in cells):
        notes.append(f"InvokeModel bodies of the {', '.join(flat)} format(s) carry role labels and markers the "
                     "local input estimate leaves out (the emulator and CountTokens count them)")  # fmt: skip
    local = {size: config.request_tokens(size) for size in dict.fromkeys(c.prompt_size for c in cells)}
    prefix = max((t.cache_prefix for t in local.values() if t is not None), default=0.0)
    if prefix > 0:
        cached = sorted({c.model_id for c in cells if c.cache_write_tokens_per_request > 0})
        uncached = sorted({c.model_id for c in cells if c.cache_write_tokens_per_request == 0})
        who = "the first request (the emulator writes on arrival)" if config.target.kind == "emulator" else \
            "the first wave of concurrent requests"  # fmt: skip
        if cached:
            notes.append(f"prompt cache: the ~{prefix:,.0f}-token prefix is written once per cell, by {who}, and read "
                         "by every later request at the cache-read price (reads refresh its TTL)")  # fmt: skip
        for model in uncached:
            notes.append(f"prompt cache: {model} caches no ~{prefix:,.0f}-token prefix (no prompt cache, or below its "
                         "minimum): priced as plain input (a model without one rejects the cachePoint)")  # fmt: skip
    turns = max((t.turns_per_task for t in local.values() if t is not None), default=1.0)
    if turns > 1:
        notes.append(f"agent tasks priced as {turns:g} turns each, every one with the tool specs: the task, one tool "
                     "round (the call and its result, a stand-in input), then the answer (the emulator's rule); a "
                     "model calling more tools sends more, longer turns")  # fmt: skip
    ts = time_scale(config)
    if ts != 1.0:
        notes.append(f"seconds per request: the catalog's latency profile x the emulator's time_scale {ts:g}; cell "
                     "durations, cooldowns and notebook overhead are wall-clock")  # fmt: skip
    if est.output_tokens is None:
        notes.append("output tokens assumed = max_tokens per request (an upper bound)")
    return notes


__all__ = ["INPUT_COUNTED", "INPUT_LOCAL", "INPUT_SOURCES", "INPUT_SWEEP_FILE", "Cell", "Plan", "build_plan",
           "cell_seed", "make_cell", "make_cell_id", "plan_notes", "search_groups", "search_ladder",
           "tier_prices", "time_scale", "unit_prices"]

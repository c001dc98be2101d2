"""SLO search: per model x tier x region prefix x prompt size, the highest load that meets the sequential SLO.

A sweep file with a ``search:`` section (:class:`bedrock_lab.params.SearchConfig`) runs this instead of a grid of
loads. Each group brackets the load by doubling from ``low`` (:func:`bedrock_lab.plan.search_ladder`) until a
level misses or ``high`` passes, then bisects between the highest level that met the SLO and the lowest that did
not, until the bracket is ``resolution`` wide or ``max_levels`` levels ran. Every level is a sequential verdict
cell (:mod:`bedrock_lab.engines.stopping`): it ends as soon as its always-valid interval of the SLO percentile
clears the target, so clear levels cost a few seconds and only levels near the capacity run long.

A level counts as meeting the SLO only when its interval lies below the target (settled, or at its maximum
duration); a level that ran to its maximum undecided counts as not shown to meet it (conservative: the found
load is the highest *shown* to meet the SLO) and is marked ``undecided``; a failed cell counts as a miss.

Resumable like the grid: the levels are a deterministic function of the verdicts, and a level whose cell is done
in the manifest with the same parameters is read back instead of run again. The outcome is ``search.json``
(:data:`bedrock_lab.store.manifest.SEARCH`), which the report reads.

>>> bisect_levels(1, 64, integer=True, resolution=1, max_levels=10,
...               verdict=lambda load: "met" if load <= 12 else "missed")  # doctest: +NORMALIZE_WHITESPACE
SearchResult(found=12.0, bracket=(12.0, 13.0), status='bracketed',
             tried=[(1.0, 'met'), (2.0, 'met'), (4.0, 'met'), (8.0, 'met'), (16.0, 'missed'), (12.0, 'met'),
                    (14.0, 'missed'), (13.0, 'missed')])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bedrock_lab.engines.stopping import SETTLED_ABOVE, SETTLED_BELOW
from bedrock_lab.errors import ConfigError
from bedrock_lab.params import SweepConfig
from bedrock_lab.plan import Cell, make_cell, search_groups, search_ladder

#: a level's verdict
MET, MISSED, UNDECIDED, FAILED = "met", "missed", "undecided", "failed"


@dataclass
class SearchResult:
    """The levels one group tried and what they say: ``found`` is the highest load shown to meet the SLO (None:
    not even ``low``), ``bracket`` = (found, lowest load that did not; None: ``high`` met)."""

    found: float | None
    bracket: tuple[float | None, float | None]
    status: str  #: bracketed | below_low (low missed) | at_least_high (high met) | max_levels (stopped early)
    tried: list[tuple[float, str]] = field(default_factory=list)


def _round(load: float, integer: bool) -> float:
    return float(math.floor(load)) if integer else float(load)


def bisect_levels(
    low: float, high: float, *, integer: bool, resolution: float, max_levels: int, verdict: Callable[[float], str]
) -> SearchResult:
    """Bracket then bisect (module docstring); ``verdict(load)`` runs (or reads back) one level: met / missed /
    undecided / failed. Only ``met`` counts as meeting the SLO."""
    tried: list[tuple[float, str]] = []

    def run(load: float) -> bool:
        v = verdict(load)
        tried.append((load, v))
        return v == MET

    passed: float | None = None
    failed: float | None = None
    for load in search_ladder(low, high, integer=integer):
        if len(tried) >= max_levels:
            return SearchResult(passed, (passed, failed), "max_levels", tried)
        if run(load):
            passed = load
        else:
            failed = load
            break
    if passed is None:
        return SearchResult(None, (None, failed), "below_low", tried)
    if failed is None:
        return SearchResult(passed, (passed, None), "at_least_high", tried)
    while failed - passed > resolution:
        mid = _round((passed + failed) / 2, integer)
        if mid <= passed or mid >= failed or len(tried) >= max_levels:
            break
        if run(mid):
            passed = mid
        else:
            failed = mid
    status = "bracketed" if failed - passed <= resolution or _round((passed + failed) / 2, integer) <= passed \
        else "max_levels"  # fmt: skip
    return SearchResult(passed, (passed, failed), status, tried)


def level_verdict(summary: Mapping[str, Any] | None) -> str:
    """A level's verdict from its cell's ``summary.json`` (None: the cell failed)."""
    if summary is None or summary.get("valid") is False:
        return FAILED
    reason = summary.get("stop_reason")
    status = (summary.get("sequential") or {}).get("status")
    if reason == SETTLED_BELOW or status == "below":
        return MET
    if reason == SETTLED_ABOVE or status == "above":
        return MISSED
    return UNDECIDED


def level_cell(config: SweepConfig, group: tuple[str, str, str, str], load: float, *, index: int = 0,
               catalog: Any = None) -> Cell:  # fmt: skip
    """The sequential verdict cell of one search level (its id, seed and estimates from :func:`plan.make_cell`)."""
    search = config.search
    model, prefix, tier, size = group
    users, rate = (int(load), None) if search is None or search.load == "users" else (None, float(load))
    return make_cell(config, model=model, prefix=prefix, tier=tier, size=size, users=users, rate=rate,
                     grid_index=index, catalog=catalog, sequential="verdict")  # fmt: skip


def run_search(
    config: SweepConfig, run_level: Callable[[Cell], Mapping[str, Any] | None], *, catalog: Any = None,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:  # fmt: skip
    """Search every group; ``run_level(cell)`` runs one level (or reads back a done one) and returns its summary
    (None if it failed). Returns the content of ``search.json``: the search settings and one entry per group."""
    search = config.search
    if search is None:
        raise ConfigError("run_search needs a sweep with a search: section", source=config.source, key="search",
                          allowed="a search: section (docs/sequential.md)")  # fmt: skip
    integer = search.load == "users"
    resolution = search.resolution or (1.0 if integer else 0.1 * search.low)
    groups_out = []
    for i, group in enumerate(search_groups(config)):
        levels: list[dict[str, Any]] = []

        def verdict(load: float, group: tuple[str, str, str, str] = group, index: int = i,
                    levels: list[dict[str, Any]] = levels) -> str:  # fmt: skip
            cell = level_cell(config, group, load, index=index, catalog=catalog)
            summary = run_level(cell)
            v = level_verdict(summary)
            seq = (summary or {}).get("sequential") or {}
            stats = (summary or {}).get("stats") or {}
            levels.append({"load": load, "cell_id": cell.cell_id, "verdict": v,
                           "stop_reason": (summary or {}).get("stop_reason"), "requests": stats.get("requests"),
                           "estimate_s": seq.get("estimate"), "lo_s": seq.get("lo"), "hi_s": seq.get("hi")})  # fmt: skip
            echo(f"search {cell.cell_id}: {search.load} {load:g} {v}")
            return v

        res = bisect_levels(search.low, search.high, integer=integer, resolution=resolution,
                            max_levels=search.max_levels, verdict=verdict)  # fmt: skip
        model, prefix, tier, size = group
        groups_out.append({
            "model_id": prefix + model, "tier": tier, "prompt_size": size, "found": res.found,
            "bracket": list(res.bracket), "status": res.status, "levels": levels,
        })  # fmt: skip
    cell = config.cell
    return {
        "load": search.load, "low": search.low, "high": search.high, "resolution": resolution,
        "max_levels": search.max_levels,
        "slo": {"metric": cell.slo_metric, "percentile": cell.slo_percentile,
                "target_s": level_cell(config, search_groups(config)[0], search.low, catalog=catalog).slo_target_s,
                "alpha": cell.alpha},
        "groups": groups_out,
    }  # fmt: skip


__all__ = ["FAILED", "MET", "MISSED", "UNDECIDED", "SearchResult", "bisect_levels", "level_cell", "level_verdict",
           "run_search"]

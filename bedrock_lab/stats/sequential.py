"""Sequential cells in the analysis: always-valid percentile intervals, stop reasons, the SLO search and the cost saved.

The confidence sequence itself (Howard & Ramdas, "Sequential estimation of quantiles with applications to
A/B-testing and best-arm identification", Bernoulli 28(3), 2022, Theorem 1; beta-binomial mixture boundary) lives
in :mod:`bedrock_lab._confseq`, one implementation that the engines' stop controller also uses; it is re-exported
here. See docs/stats.md and docs/sequential.md.

From a sweep folder (:class:`bedrock_lab.stats.analysis.SweepData`): :func:`stop_table` (why and when each cell
ended and, for a sequential cell, the always-valid interval it was judged by: the one that stays valid under
its data-dependent stop, unlike the fixed-n interval of the summary table), :func:`cost_saved` (what the sweep
cost against a fixed-duration sweep of the same cells) and :func:`search_tables` (an SLO search's outcome).

Example
-------
>>> import numpy as np
>>> x = np.random.default_rng(0).lognormal(0, 0.5, 2000)
>>> cs = quantile_cs(x, 0.9)
>>> bool(cs.lo <= np.exp(0.5 * 1.2816) <= cs.hi), cs.n
(True, 2000)
>>> w = SloWatcher(0.9, target=1.0)
>>> w.update(x[:300]); w.status()
'above'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bedrock_lab._confseq import (
    DEFAULT_T_OPT,
    SequentialInterval,
    SloWatcher,
    Status,
    prior_weight,
    quantile_cs,
    quantile_cs_band,
    quantile_cs_path,
)
from bedrock_lab.store.manifest import SEARCH as SEARCH_FILE

if TYPE_CHECKING:  # analysis imports this module
    from bedrock_lab.stats.analysis import SweepData

#: the manifest's stop reasons that are a sequential answer (bedrock_lab.engines.stopping.SETTLED)
SETTLED_REASONS = ("settled_above", "settled_below", "precise")
#: how the stop table names the interval of a sequential cell
ALWAYS_VALID = "always-valid (Howard & Ramdas 2022)"
STOP_COLUMNS = ("cell_id", "model_id", "tier", "prompt_size", "users", "rate_rps", "sequential", "stop_reason",
                "requests", "load_s", "stopped_at_s", "metric", "percentile", "target_s", "estimate_s", "lo_s",
                "hi_s", "interval", "verdict")  # fmt: skip


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _verdict(seq: Mapping[str, Any], reason: Any) -> str | None:
    if not seq:
        return None
    status = seq.get("status")
    if reason == "settled_below" or status == "below":
        return "met"
    if reason == "settled_above" or status == "above":
        return "missed"
    return "precise" if status == "precise" else "undecided"


def _plan_cells(data: SweepData) -> dict[str, Mapping[str, Any]]:
    plan = data.plan or {}
    return {str(c.get("cell_id")): c for c in plan.get("cells", []) if isinstance(c, Mapping)}


def stop_table(data: SweepData) -> pd.DataFrame:
    """One row per done cell of the sweep's manifest: its stop reason, requests, seconds of load, when a stop was
    decided and, for a sequential cell, its percentile with the always-valid interval and the verdict.
    Empty when the sweep has no manifest; cells of sweeps older than issue #14 have no stop reason (None)."""
    manifest = data.manifest or {}
    cells = manifest.get("cells") or {}
    plan = _plan_cells(data)
    rows = []
    order = list(manifest.get("order") or []) + [c for c in cells if c not in (manifest.get("order") or [])]
    for cid in order:
        entry = cells.get(cid) or {}
        if entry.get("status") != "done":
            continue
        info = plan.get(cid, {})
        seq = entry.get("sequential") or {}
        rows.append({
            "cell_id": cid, "model_id": entry.get("model_id"), "tier": entry.get("tier"),
            "prompt_size": entry.get("prompt_size"), "users": entry.get("users"), "rate_rps": entry.get("rate_rps"),
            "sequential": seq.get("mode") or info.get("sequential") or "off", "stop_reason": entry.get("stop_reason"),
            "requests": entry.get("requests"), "load_s": _num(entry.get("load_s")),
            "stopped_at_s": _num(entry.get("stopped_at_s")), "metric": seq.get("metric"),
            "percentile": seq.get("percentile"), "target_s": _num(seq.get("target_s")),
            "estimate_s": _num(seq.get("estimate")), "lo_s": _num(seq.get("lo")), "hi_s": _num(seq.get("hi")),
            "interval": ALWAYS_VALID if seq else None, "verdict": _verdict(seq, entry.get("stop_reason")),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(STOP_COLUMNS))


def cost_saved(data: SweepData) -> dict[str, Any]:
    """What the sweep's done cells cost (tokens x catalog prices, as the runner recorded) and what the same cells
    would have cost at their fixed bound: a cell stopped early would have sent ``requests x duration_s / load_s``
    (its own request rate over its full duration, at most its ``requests`` bound) at the same cost per request.
    Fixed cells count the same in both. ``fixed_usd`` is an estimate: the rate of an early stop's seconds."""
    manifest = data.manifest or {}
    plan = _plan_cells(data)
    spent = fixed = 0.0
    n_req = n_fixed = 0.0
    early = 0
    n = 0
    for cid, entry in (manifest.get("cells") or {}).items():
        if entry.get("status") != "done":
            continue
        n += 1
        cost = _num(entry.get("cost_usd")) or 0.0
        req = _num(entry.get("requests")) or 0.0
        spent, n_req = spent + cost, n_req + req
        info = plan.get(cid, {})
        load_s, duration = _num(entry.get("load_s")), _num(info.get("duration_s"))
        would = req
        if entry.get("stop_reason") in SETTLED_REASONS and load_s and req:
            early += 1
            if duration:
                would = max(req, req * duration / load_s)
            cap = _num(info.get("requests"))
            if cap:
                would = min(would, cap) if duration else cap
        fixed += cost * (would / req) if req else cost
        n_fixed += would
    return {"cells": n, "stopped_early": early, "spent_usd": spent, "fixed_usd": fixed, "saved_usd": fixed - spent,
            "saved_frac": (fixed - spent) / fixed if fixed > 0 else 0.0, "requests": n_req,
            "fixed_requests": n_fixed}  # fmt: skip


def read_search(root: str | Path) -> dict[str, Any] | None:
    """A sweep folder's search.json (None: not an SLO search, or unreadable)."""
    path = Path(root) / SEARCH_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def search_tables(data: SweepData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An SLO search's outcome: one row per group (found load, bracket, status, levels tried, the SLO) and one per level
    (load, verdict, stop reason, requests, the always-valid interval). Both empty when there was no search."""
    search = read_search(data.root)
    if not search:
        return pd.DataFrame(), pd.DataFrame()
    groups, levels = [], []
    slo = search.get("slo") or {}  # the SLO every level was judged by (the search's, named in each group's row)
    for g in search.get("groups", []):
        lo, hi = (list(g.get("bracket") or []) + [None, None])[:2]
        groups.append({"model_id": g.get("model_id"), "tier": g.get("tier"), "prompt_size": g.get("prompt_size"),
                       "load": search.get("load"), "found": g.get("found"), "bracket_lo": lo, "bracket_hi": hi,
                       "status": g.get("status"), "levels": len(g.get("levels") or []),
                       "requests": sum(int(v.get("requests") or 0) for v in g.get("levels") or []),
                       "slo_metric": slo.get("metric"), "slo_percentile": slo.get("percentile"),
                       "slo_target_s": slo.get("target_s")})  # fmt: skip
        for i, v in enumerate(g.get("levels") or []):
            levels.append({"model_id": g.get("model_id"), "tier": g.get("tier"), "prompt_size": g.get("prompt_size"),
                           "step": i + 1, **v})  # fmt: skip
    return pd.DataFrame(groups), pd.DataFrame(levels)


__all__ = [
    "ALWAYS_VALID",
    "SEARCH_FILE",
    "SETTLED_REASONS",
    "STOP_COLUMNS",
    "cost_saved",
    "read_search",
    "search_tables",
    "stop_table",
    "DEFAULT_T_OPT",
    "SequentialInterval",
    "SloWatcher",
    "Status",
    "prior_weight",
    "quantile_cs",
    "quantile_cs_band",
    "quantile_cs_path",
]

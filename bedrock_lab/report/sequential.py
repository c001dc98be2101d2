"""The report's section on sequential cells and the SLO search (issue #14): presentation only.

Why each cell stopped, the always-valid interval it was judged by, what the sweep cost against a fixed-duration
sweep of the same cells, and an SLO search's found load with its bracket and the levels it tried. The numbers
come from :mod:`bedrock_lab.stats.sequential`; this module only words and formats them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from bedrock_lab._money import fmt_usd
from bedrock_lab.stats import sequential as seq

if TYPE_CHECKING:
    from bedrock_lab.stats.analysis import Analysis

#: how the stop reasons read in the report
REASON_WORDS = {
    "settled_below": "settled: meets the SLO", "settled_above": "settled: misses the SLO",
    "precise": "precise enough", "max_duration": "ran to its maximum duration",
    "max_requests": "ran to its maximum requests", "circuit_breaker": "circuit breaker", "interrupted": "interrupted",
}  # fmt: skip


def _s(v: Any) -> str:
    if v is None or v != v:
        return "n/a"
    if v == float("inf"):
        return "inf"
    return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"


def _load(row: Any) -> str:
    if row.get("users") is not None and row.get("users") == row.get("users"):
        return f"{int(row['users'])} users"
    rate = row.get("rate_rps")
    return f"{rate:g} rps" if rate is not None and rate == rate else ""


def has_sequential(analysis: Analysis) -> bool:
    """True when the sweep ran sequential cells or an SLO search (the section is shown only then)."""
    table = seq.stop_table(analysis.data)
    return bool(len(table) and (table["sequential"] != "off").any()) or seq.read_search(analysis.data.root) is not None


def stop_reasons(analysis: Analysis) -> pd.DataFrame:
    """Cell, load, stop reason, requests, seconds of load and, for a sequential cell, its percentile with the
    always-valid 95% interval (the interval that stays valid under the early stop) and the verdict."""
    table = analysis.sequential_cells  # the analysis's stop table (empty for a sweep without sequential cells)
    if table.empty:
        table = seq.stop_table(analysis.data)
    rows = []
    for _, r in table.iterrows():
        sequential = r["sequential"] != "off" and r["metric"] is not None
        level = f"p{float(r['percentile']) * 100:g} {r['metric']}" if sequential else ""
        rows.append({
            "cell": r["cell_id"], "load": _load(r), "stop reason": REASON_WORDS.get(r["stop_reason"], r["stop_reason"]),
            "requests": r["requests"], "duration": _s(r["load_s"]),
            "percentile (always-valid interval)": f"{level} {_s(r['estimate_s'])} [{_s(r['lo_s'])}, {_s(r['hi_s'])}]"
            if sequential else "fixed cell: see the summary tables",
            "target": _s(r["target_s"]) if sequential else "", "verdict": r["verdict"] or "",
        })  # fmt: skip
    return pd.DataFrame(rows)


def cost_sentences(analysis: Analysis) -> list[str]:
    """What the sweep cost and what a fixed-duration sweep of the same cells would have cost."""
    c = seq.cost_saved(analysis.data)
    if not c["cells"]:
        return []
    out = [f"This sweep cost {fmt_usd(c['spent_usd'])} at list prices for {c['requests']:,.0f} requests in "
           f"{c['cells']} cells; {c['stopped_early']} stopped as soon as their answer was settled."]  # fmt: skip
    if c["stopped_early"]:
        out.append(f"The same cells at their fixed duration would have sent about {c['fixed_requests']:,.0f} "
                   f"requests for about {fmt_usd(c['fixed_usd'])}: {c['saved_frac']:.0%} less spent "
                   "(each early cell's own request rate over its full duration).")  # fmt: skip
    return out


def search_summary(analysis: Analysis) -> pd.DataFrame:
    """Per model, tier and prompt size: the highest load shown to meet the SLO, its bracket and the levels tried."""
    groups, levels = seq.search_tables(analysis.data)
    if not len(groups):
        return pd.DataFrame()
    rows = []
    for _, g in groups.iterrows():
        mine = levels[(levels["model_id"] == g["model_id"]) & (levels["tier"] == g["tier"])
                      & (levels["prompt_size"] == g["prompt_size"])] if len(levels) else levels  # fmt: skip
        tried = ", ".join(f"{v['load']:g} {v['verdict']}" for _, v in mine.iterrows())
        found = "none (the lowest level missed)" if g["found"] is None or g["found"] != g["found"] else f"{g['found']:g}"
        hi = g["bracket_hi"]
        bracket = (f"{g['found']:g} to below {hi:g}" if hi is not None and hi == hi and g["found"] == g["found"]
                   and g["found"] is not None else "at least the highest level" if g["status"] == "at_least_high"
                   else f"below {hi:g}" if hi is not None and hi == hi else "")  # fmt: skip
        rows.append({"model": g["model_id"], "tier": g["tier"], "prompt size": g["prompt_size"],
                     f"highest {g['load']} meeting the SLO": found, "bracket": bracket, "status": g["status"],
                     "levels tried (in order)": tried, "requests": g["requests"]})  # fmt: skip
    return pd.DataFrame(rows)


def search_slo(analysis: Analysis) -> str:
    """The SLO the search judged each level by, in words."""
    search = seq.read_search(analysis.data.root) or {}
    slo = search.get("slo") or {}
    if not slo:
        return ""
    return (f"Each level is a sequential cell judged by p{float(slo.get('percentile', 0.95)) * 100:g} "
            f"{slo.get('metric')} <= {_s(slo.get('target_s'))} with an always-valid interval (error rate "
            f"{slo.get('alpha', 0.05):g}); a level counts as meeting the SLO only when its interval lies below the "
            "target, so the found load is the highest shown to meet it.")  # fmt: skip


def write_tables(analysis: Analysis, folder: str | Path) -> list[Path]:
    """``sequential_cells.csv`` (the stop table) and, for a search, ``search.csv`` / ``search_levels.csv``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sequential_cells.csv"]
    seq.stop_table(analysis.data).to_csv(written[0], index=False)
    groups, levels = seq.search_tables(analysis.data)
    if len(groups):
        groups.to_csv(out / "search.csv", index=False)
        levels.to_csv(out / "search_levels.csv", index=False)
        written += [out / "search.csv", out / "search_levels.csv"]
    return written


def method_sentence() -> str:
    """The method of sequential cells, for the methods section."""
    return ("Sequential cells stop once the always-valid 95% confidence sequence of the SLO percentile (Howard & "
            "Ramdas, Bernoulli 28(3), 2022) lies wholly above or below the target, or is narrow enough; it holds "
            "at every look, so stopping early keeps the verdict's error rate at or below 5%. Those cells are "
            "judged by that interval (the stop table), not by the fixed-n interval of the summary tables.")


__all__ = ["REASON_WORDS", "cost_sentences", "has_sequential", "method_sentence", "search_slo", "search_summary",
           "stop_reasons", "write_tables"]

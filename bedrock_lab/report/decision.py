"""The report's decision section in words: which model, which tier, how many users, what cost (per 1k requests,
per month at the stated traffic) and what the test itself cost.

Presentation only: the choice, runners-up, cheapest failing configuration and every cost are computed by
:mod:`bedrock_lab.stats.decision` (``Analysis.decision``, ``Analysis.sweep_cost``, ``Analysis.traffic``); this
module turns them into sentences and a readable table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bedrock_lab._money import fmt_usd
from bedrock_lab.report.summary import (
    _join,
    _users,
    fmt_monthly,
    fmt_pct,
    fmt_quantile,
    fmt_s,
    name_models,
    per_month_label,
)
from bedrock_lab.stats.analysis import Analysis
from bedrock_lab.stats.decision import CHEAPEST_FAILING, CHOICE, RUNNER_UP

#: what the options of the decision table are, said once above it
OPTIONS_EXPLAINED = (
    "Per workload, the choice is the cheapest configuration (model and service tier) whose goodput meets the SLO "
    "target at some tested load. Runners-up also meet the SLOs but cost more per request, cheapest first: the "
    "fallbacks if the choice is ruled out for another reason (quota, region, model access). The cheapest "
    "failing configuration is the cheapest one that did not meet the SLOs, with the reason: what saving money "
    "would cost in latency or errors."
)



def _missed_below(r: Any, kind: str) -> str:
    """" (missed them at 8 users)" when a lower tested load missed the SLOs that a higher one met."""
    raw = r.get("missed_below", "") if hasattr(r, "get") else ""
    if isinstance(raw, (int, float)):  # read back from decision.csv: one load becomes a number, none NaN
        raw = f"{raw:g}" if np.isfinite(raw) else ""
    loads = [float(u) for u in str(raw or "").split(",") if u]
    if not loads:
        return ""
    return f" (but missed them at {_join([_users(u, kind) for u in loads])}: not monotone in load, rerun longer)"

def _money(v: float) -> str:
    return fmt_usd(v) if v is not None and np.isfinite(v) else "n/a (no price in the catalog)"


def _count(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def traffic_phrase(analysis: Analysis) -> str:
    """"100,000 requests/day" (with "assumed" when the sweep file states no traffic)."""
    t = analysis.traffic
    return f"{_count(t.requests_per_day)} requests/day" + ("" if t.stated else " (assumed)")


def traffic_sentence(analysis: Analysis) -> str:
    """Where the monthly projection's traffic comes from, and how to state the real one."""
    t = analysis.traffic
    month = f"{_count(t.requests_per_day)} requests/day x {t.days_per_month:g} days a month"
    peak = (f"; a configuration must hold the stated peak of {_users(t.peak_users, analysis.load_kind)}"
            if t.peak_users is not None else "")
    if not t.stated:
        copy = analysis.data.sweep_file or analysis.data.root / "sweep.yaml"
        return (f"Monthly costs assume {month}: the sweep file states no traffic. State yours in its traffic: "
                f"section (requests_per_day, days_per_month, peak_users; this report reads {copy}) or with "
                f"`bedrock-lab report {analysis.data.root} --requests-per-day N`, and rebuild the report; no new "
                "load test is needed.")
    where = {"sweep file": "the sweep file's traffic: section", "plan.json": "the traffic recorded in plan.json",
             "override": "the traffic given to this report"}.get(t.source, t.source)
    return f"Monthly costs are at {where}: {month}{peak}."


_CHECK_WORDS = {"ttft": "time to first token", "e2e": "end-to-end latency", "tpot": "time per output token"}


def stop_reason(row: Mapping[str, Any], analysis: Analysis) -> str:
    """Why a configuration fails, or where a qualifying one stops holding the SLOs, in words."""
    checks = [c for c in str(row.get("failed_checks", "") or "").split(";") if c]
    kind = analysis.load_kind
    if "peak_users" in checks:
        return (f"holds the SLOs only up to {_users(row['max_users_meeting_slo'], kind)}, below the stated peak "
                f"of {_users(analysis.traffic.peak_users or 0, kind)}")
    at = row.get("judged_at_users")
    if at is None or not np.isfinite(float(at)):
        return ("held them at the highest load tested; more load was not tested"
                if row.get("qualifies") else "")
    slo = analysis.slo
    parts = []
    if "goodput" in checks:
        parts.append(f"only {fmt_pct(row['judged_goodput'])} of requests were good (target "
                     f"{slo.goodput_target:.0%})")
    limits = {"ttft": slo.ttft_s, "e2e": slo.e2e_s, "tpot": slo.tpot_s}
    metric = {"ttft": "judged_ttft_s_p95", "e2e": "judged_e2e_s_p95", "tpot": "judged_tpot_s_p95"}
    for code in ("ttft", "e2e", "tpot"):
        if code in checks:
            parts.append(f"p95 {_CHECK_WORDS[code]} {fmt_s(row[metric[code]])} > {fmt_s(float(limits[code] or 0))}")
    if "errors" in checks or "error_rate" in checks:
        parts.append(f"{fmt_pct(row['judged_error_rate'])} of requests failed")
    where = _users(float(at), kind)
    lead = f"fails at {where}" if row.get("qualifies") else f"fails already at {where}, its lowest tested load"
    return f"{lead}: " + ", ".join(parts) if parts else lead


def decision_sentences(analysis: Analysis) -> list[str]:
    """One sentence per workload: the choice with its load, cost per 1k requests and per month, then the
    cheapest failing configuration and why (or that nothing meets the SLOs)."""
    d, kind = analysis.decision, analysis.load_kind
    out = []
    if d.empty:
        return ["No decision: the analysis has no configuration to compare."]
    shown_table = decision_table(analysis)  # what the reader sees below: the sentence counts the same rows
    table_rows = ({str(w).removesuffix(" prompts"): g["option"] for w, g in shown_table.groupby("workload")}
                  if "workload" in shown_table else {})
    for size, group in d.groupby("prompt_size", sort=True):
        choice = group[group["role"] == CHOICE]
        failing = group[group["role"] == CHEAPEST_FAILING]
        if choice.empty:
            why = stop_reason(failing.iloc[0], analysis) if len(failing) else ""
            out.append(f"For {size} prompts, no tested configuration meets the SLOs"
                       + (f"; the cheapest, {_name(failing.iloc[0])}, {why}." if why else "."))  # fmt: skip
            continue
        c = choice.iloc[0]
        top = " (the highest load tested)" if c["max_users_meeting_slo"] >= c["highest_tested"] else ""
        text = (f"For {size} prompts, {_name(c)} meets the SLOs at up to {_users(c['max_users_meeting_slo'], kind)}"
                f"{top}{_missed_below(c, kind)} at {_money(c['cost_per_1k'])} per 1k requests")
        if np.isfinite(c["cost_per_month"]):
            text += f", about {fmt_monthly(c['cost_per_month'])}/month at {traffic_phrase(analysis)}"
        n_runners = int((group["role"] == RUNNER_UP).sum())
        shown = int((table_rows.get(size, pd.Series(dtype=str)) == _ROLE_WORDS[RUNNER_UP]).sum())
        where = ("table below" if shown >= n_runners else
                 f"the table below shows {shown}: the cheapest and the best of each other model; "
                 "tables/decision.csv lists all")
        text += (f"; {n_runners} runner{'s' if n_runners > 1 else ''}-up also meet them at a higher cost "
                 f"({where})") if n_runners else ""
        if len(failing) and np.isfinite(failing.iloc[0]["cost_per_1k"]) and np.isfinite(c["cost_per_1k"]) \
                and failing.iloc[0]["cost_per_1k"] < c["cost_per_1k"]:
            f = failing.iloc[0]
            text += f". The cheaper {_name(f)} ({_money(f['cost_per_1k'])} per 1k) {stop_reason(f, analysis)}"
        out.append(text + ".")
    return out


def _name(row: Mapping[str, Any]) -> str:
    return f"{row['model_name']} on the {row['tier']} tier"


_ROLE_WORDS = {CHOICE: "choice", RUNNER_UP: "runner-up", CHEAPEST_FAILING: "cheapest failing"}


def decision_table(analysis: Analysis, runners_up: int = 3) -> pd.DataFrame:
    """The readable decision table: per workload the choice, the ``runners_up`` cheapest runners-up, the best
    runner-up of every other model (so the table answers "which model"), and the cheapest failing
    configuration, with load held, goodput and p95 TTFT there, cost per 1k and per month, and why a
    configuration stops or fails."""
    d, kind = analysis.decision, analysis.load_kind
    if d.empty:
        return pd.DataFrame({"note": ["no configuration to compare"]})
    rows = []
    month = per_month_label(analysis)
    for _, group in d.groupby("prompt_size", sort=True):
        runners = group[group["role"] == RUNNER_UP]
        shown = pd.concat([group[group["role"] == CHOICE], runners.head(runners_up)])
        others = runners[~runners["model"].isin(shown["model"])].drop_duplicates("model")  # best per model
        keep = pd.concat([shown, others, group[group["role"] == CHEAPEST_FAILING]])
        for _, r in keep.iterrows():
            holds = r["max_users_meeting_slo"]
            rows.append({
                "workload": f"{r['prompt_size']} prompts",
                "option": _ROLE_WORDS[r["role"]],
                "model": r["model_name"],
                "tier": r["tier"],
                "meets the SLOs up to": (_users(holds, kind) + _missed_below(r, kind)) if np.isfinite(holds)
                else "no tested load",
                "goodput there": fmt_pct(r["goodput"]) if np.isfinite(holds) else "-",
                "p95 time to first token there": fmt_quantile(r, "ttft_s") if np.isfinite(holds) else "-",
                "per 1k requests": _money(r["cost_per_1k"]),
                month: fmt_monthly(r["cost_per_month"]) if np.isfinite(r["cost_per_month"]) else _money(np.nan),
                "where it stops / why it fails": stop_reason(r, analysis) or "-",
            })  # fmt: skip
    return pd.DataFrame(rows)


def sweep_cost_sentence(analysis: Analysis) -> str:
    """What the load test itself cost (or, on the emulator, what its tokens would have cost on Amazon Bedrock)."""
    c = analysis.sweep_cost
    if c.empty:
        return "The cost of this test is unknown: the records have no token counts."
    total = float(c["cost_usd"].sum(min_count=1))
    priced = c["cost_usd"].notna()
    tin, tout = float(c["input_tokens"].sum()), float(c["output_tokens"].sum())
    emulated = _emulated(analysis)
    head = f"This test sent {int(c['requests'].sum()):,} requests using {tin:,.0f} input and {tout:,.0f} output tokens"
    cached = [f"{float(c[col].sum()):,.0f} {what}" for col, what in (("cache_read_tokens", "cache-read"),
                                                                     ("cache_write_tokens", "cache-write"))
              if col in c and float(c[col].sum()) > 0]
    head += (f", plus {' and '.join(cached)} input tokens at the prompt cache's prices" if cached else "") + \
        " (the counts in its records)"
    if not priced.any():
        return head + "; the catalog has no price for them, so their cost is unknown."
    money = fmt_usd(total)
    tail = "" if priced.all() else f" ({int((~priced).sum())} cell(s) without a catalog price left out)"
    if emulated:
        return (head + f": at the catalog's prices they would have cost {money} on Amazon Bedrock{tail}. Nothing "
                "was billed: the target was the embedded emulator.")
    return head + f": {money} at the catalog's prices{tail} (check the Bedrock pricing page for your region)."


def sweep_cost_by_config(analysis: Analysis) -> pd.DataFrame:
    """The test's cost per configuration and load (one row per cell), readable."""
    c = analysis.sweep_cost
    if c.empty:
        return pd.DataFrame({"note": ["no token counts in the records"]})
    c = c.sort_values([k for k in ("model", "tier", "prompt_size", "users") if k in c])
    return pd.DataFrame({
        "cell": c["cell_id"], "model": name_models(c["model"], analysis), "tier": c["tier"], "prompt": c["prompt_size"],
        "load": c["users"].map(lambda u: _users(u, analysis.load_kind)),
        "requests": c["requests"].map(lambda v: f"{int(v):,}"),
        "input tokens": c["input_tokens"].map(lambda v: f"{v:,.0f}" if np.isfinite(v) else "n/a"),
        "output tokens": c["output_tokens"].map(lambda v: f"{v:,.0f}" if np.isfinite(v) else "n/a"),
        **{label: c[col].map(lambda v: f"{v:,.0f}") for col, label in (("cache_read_tokens", "cache read tokens"),
                                                                       ("cache_write_tokens", "cache write tokens"))
           if col in c and float(c[col].sum()) > 0},  # only when the prompt cache was used
        "cost": c["cost_usd"].map(_money),
    })  # fmt: skip


def lines_from_tables(tables: str | os.PathLike[str]) -> list[str]:
    """The decision as terminal lines, read back from the tables a report wrote (``decision.csv`` and the
    traffic in ``analysis.json``), so ``bedrock-lab demo`` can print it without re-running the analysis."""
    folder = Path(tables)
    path = folder / "decision.csv"
    if not path.is_file():
        return []
    d = pd.read_csv(path)
    meta = json.loads((folder / "analysis.json").read_text()) if (folder / "analysis.json").is_file() else {}
    t = meta.get("traffic") or {}
    rpd = float(t.get("requests_per_day", np.nan))
    at = f"{_count(rpd)} requests/day" + ("" if t.get("stated") else " (assumed; set traffic: in the sweep file)")
    kind = str(meta.get("load_kind", "users"))
    out = [f"decision ({path}; monthly at {at}):"]
    for size, group in d.groupby("prompt_size", sort=True):
        out.append(f"  {size} prompts:")
        for _, r in group.iterrows():
            holds = float(r["max_users_meeting_slo"])
            load = (f"holds the SLOs up to {_users(holds, kind)}{_missed_below(r, kind)}" if np.isfinite(holds)
                    else "meets the SLOs at no load")
            out.append(f"    {str(r['role']):<16} {r['model_name']} / {r['tier']}: {load}, "
                       f"{_money(r['cost_per_1k'])} per 1k requests, {fmt_monthly(r['cost_per_month'])}/month")
    return out


def _emulated(analysis: Analysis) -> bool:
    from bedrock_lab.report.summary import environment

    return str(environment(analysis).get("target", "")).startswith("emulator")


__all__ = [
    "OPTIONS_EXPLAINED", "decision_sentences", "decision_table", "lines_from_tables", "stop_reason", "sweep_cost_by_config",
    "sweep_cost_sentence", "traffic_phrase", "traffic_sentence",
]  # fmt: skip

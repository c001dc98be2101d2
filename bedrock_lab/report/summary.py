"""Words and tables for people who decide budgets: executive summary, recommendations, methods, environment.

Everything here is written from an :class:`~bedrock_lab.stats.analysis.Analysis` (presentation only); numbers come with their
intervals, and where the data cannot support a number (too few requests for a p99) the text says so.
"""

from __future__ import annotations

import datetime as dt
import html
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from bedrock_lab._money import fmt_usd as money_usd
from bedrock_lab.stats import decision as stats_decision
from bedrock_lab.stats.analysis import CONFIG, KEYS, Analysis
from bedrock_lab.stats.labels import display_names, model_label, short_model
from bedrock_lab.stats.saturation import USL_NMAX_OVERSTATES
from bedrock_lab.stats.sequential import SETTLED_REASONS

# ---------------------------------------------------------------- formatting


def fmt_s(v: float | None) -> str:
    """Seconds for people: "850 ms", "1.23 s"."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"


def fmt_pct(v: float | None, digits: int = 1) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v * 100:.{digits}f}%"


def fmt_ci(lo: float | None, hi: float | None, fmt: Any = fmt_s) -> str:
    """"[95% CI a-b]", or a plain statement when the interval does not exist."""
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "(too few requests for a 95% interval)"
    return f"[95% CI {fmt(lo)}-{fmt(hi)}]"


def fmt_quantile(row: Mapping[str, Any], metric: str, q: str = "p95") -> str:
    """A percentile of a summary row as it may be quoted: "412 ms [95% CI 398-431 ms]", or, where timeouts
    could hide it, a bound: ">= 629 ms (lower bound: 2.0% timed out)" (never a two-sided interval)."""
    v = float(row.get(f"{metric}_{q}", np.nan))
    if str(row.get(f"{metric}_{q}_bound", "") or "") == "lower":
        return f">= {fmt_s(v)} (lower bound: {fmt_pct(float(row.get(f'{metric}_censored_frac', np.nan)))} timed out)"
    return f"{fmt_s(v)} {fmt_ci(row.get(f'{metric}_{q}_lo'), row.get(f'{metric}_{q}_hi'))}"


def fmt_usd(v: float | None) -> str:
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


def fmt_monthly(v: float | None) -> str:
    """A monthly projection: whole dollars from $100 up (cents would claim a precision it does not have)."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return money_usd(round(float(v))).removesuffix(".00") if abs(v) >= 100 else money_usd(v)


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _users(u: float, kind: str = "users") -> str:
    """A load level in words: "1 user", "16 users", or "2.5 requests/s" for an open-loop sweep."""
    if u is None or not np.isfinite(float(u)):
        return "n/a"
    if kind == "rate":
        return f"{float(u):g} requests/s"
    return f"{int(u)} user" + ("" if int(u) == 1 else "s")


#: how the interval of a comparison's ratio of medians holds, by multiplicity correction (stats.compare)
_CI_KIND = {"bonferroni": "95% simultaneous CI", "bh": "95% FCR-adjusted CI", "none": "95% CI"}


def model_names(analysis: Analysis) -> dict[str, str]:
    """The one readable name of each model, by short label and by model id: the catalog's display name
    ("Claude 3 Haiku", :func:`bedrock_lab.stats.labels.display_names`) as the decision table holds it, so the
    summary, the decision and every table name a model alike; models the catalog does not know keep their label."""
    d, s = analysis.decision, analysis.summary
    names: dict[str, str] = {}
    if not d.empty and {"model", "model_name"} <= set(d.columns):
        for col in ("model", "model_id"):
            if col in d:
                names.update({str(k): str(v) for k, v in zip(d[col], d["model_name"], strict=True) if pd.notna(v)})
    elif "model_id" in s and len(s):
        found = display_names(stats_decision.load_catalog_or_reason(), s["model_id"])
        for mid, short in zip(s["model_id"].astype(str), s["model"].astype(str), strict=True):
            if mid in found:
                names[mid] = names[short] = found[mid]
    return names


def name_models(models: pd.Series, analysis: Analysis) -> pd.Series:
    """A table's model column in the report's words (:func:`model_names`)."""
    names = model_names(analysis)
    return models.map(lambda m: model_label(m, names))


def _cfg(row: Mapping[str, Any], with_size: bool = True, names: Mapping[str, str] | None = None) -> str:
    text = f"{model_label(row['model'], names or {})} on the {row['tier']} tier"
    return text + (f" with {row['prompt_size']} prompts" if with_size else "")


# ---------------------------------------------------------------- recommendations


def per_month_label(analysis: Analysis) -> str:
    """"per month at 100,000 requests/day, assumed" (no "assumed" when the sweep file states its traffic)."""
    t = analysis.traffic
    return f"per month at {t.requests_per_day:,.0f} requests/day" + ("" if t.stated else ", assumed")


def recommendations(analysis: Analysis) -> pd.DataFrame:
    """Per workload (prompt size): the choice of the decision table (``Analysis.decision``, computed by
    :mod:`bedrock_lab.stats.decision`: the cheapest configuration whose goodput reaches the SLO target at some
    tested load), with its cost per 1k requests and per month at the stated traffic, and how many runners-up
    (configurations that also meet the SLOs, at a higher cost) there are."""
    s, d = analysis.summary, analysis.decision
    if d.empty:
        d = stats_decision.decision_table(s, analysis.capacity, analysis.costs, analysis.slo, analysis.traffic)
    per_month = per_month_label(analysis)
    names = model_names(analysis)
    rows = []
    for size in sorted(s["prompt_size"].unique()):
        options = d[d["prompt_size"] == size]
        choice = options[options["role"] == stats_decision.CHOICE]
        if choice.empty:
            best = s[s["prompt_size"] == size].sort_values(["goodput", "users"], ascending=[False, True]).iloc[0]
            rows.append({"workload": f"{size} prompts", "recommendation": "none meets the SLOs",
                         "holds the SLOs up to": "-",
                         "goodput": f"best: {model_label(best['model'], names)} / {best['tier']} at {_users(best['users'], analysis.load_kind)}, "
                                    f"{fmt_pct(best['goodput'])}",
                         "p95 time to first token": "-", "cost per 1k requests": "-", per_month: "-",
                         "runners-up (also meet the SLOs, cost more)": 0})
            continue
        r = choice.iloc[0]
        u = float(r["max_users_meeting_slo"])
        at_rows = s[(s["model"] == r["model"]) & (s["tier"] == r["tier"]) & (s["prompt_size"] == size)
                    & (s["users"] == u)]
        at = at_rows.iloc[0] if len(at_rows) else None
        rows.append({
            "workload": f"{size} prompts",
            "recommendation": f"{model_label(r['model'], names)} / {r['tier']}",
            "holds the SLOs up to": _users(u, analysis.load_kind) + (" (highest tested)" if u == analysis.max_users else ""),
            "goodput": (f"{fmt_pct(at['goodput'])} {fmt_ci(at['goodput_lo'], at['goodput_hi'], fmt_pct)}"
                        if at is not None else "n/a"),
            "p95 time to first token": fmt_quantile(at, "ttft_s") if at is not None else "n/a",
            "cost per 1k requests": money_usd(r["cost_per_1k"]) if np.isfinite(r["cost_per_1k"]) else "n/a",
            per_month: fmt_monthly(r["cost_per_month"]),
            "runners-up (also meet the SLOs, cost more)": int((options["role"] == stats_decision.RUNNER_UP).sum()),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- executive summary


def _tier_sentences(analysis: Analysis, limit: int = 3) -> list[str]:
    """The largest significant tier effects on median TTFT at the highest load, versus the default tier."""
    comp = analysis.comparisons
    if comp.empty or analysis.max_users is None or analysis.compare_by != "tier":
        return []
    c = comp[(comp["metric"] == "ttft_s") & (comp["users"] == analysis.max_users)
             & ((comp["a"] == "default") | (comp["b"] == "default"))]
    found = []
    for _, r in c.iterrows():
        other = r["b"] if r["a"] == "default" else r["a"]
        if r["a"] == "default":  # ratio = median(default) / median(other)
            change = 1 / r["ratio"] - 1
            lo, hi = 1 / r["ratio_hi"] - 1, 1 / r["ratio_lo"] - 1
        else:
            change, lo, hi = r["ratio"] - 1, r["ratio_lo"] - 1, r["ratio_hi"] - 1
        significant = r["winner"] != "none"
        found.append((significant, abs(change), other, change, lo, hi, r))
    found.sort(key=lambda t: (not t[0], -t[1]))
    best_per_tier: dict[str, tuple] = {}
    for item in found:  # the strongest evidence for each non-default tier
        best_per_tier.setdefault(item[2], item)
    out = []
    names = model_names(analysis)
    for significant, _, other, change, lo, hi, r in list(best_per_tier.values())[:limit]:
        verb = "cut" if change < 0 else "raised"
        p = r.get("p_adjusted", r["p_value"])
        p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
        ci = _CI_KIND.get(str(r.get("correction", "none")), "95% CI")
        if significant:  # the verdict is read off this interval: it excludes no change
            out.append(
                f"At {_users(analysis.max_users, analysis.load_kind)}, {other} {verb} median time to first token by {abs(change):.0%} "
                f"[{ci} {min(abs(lo), abs(hi)):.0%}-{max(abs(lo), abs(hi)):.0%}] versus default for "
                f"{model_label(r['model'], names)} with {r['prompt_size']} prompts (adjusted {p_text}){_p95_clause(r)}.")
        else:
            out.append(
                f"For {model_label(r['model'], names)} with {r['prompt_size']} prompts at {_users(analysis.max_users, analysis.load_kind)}, no difference in "
                f"time to first token between {other} and default was detected (the data could detect a "
                f"{r['mde_ratio'] - 1:.0%} change in the median).")
    return out


def _p95_clause(r: Mapping[str, Any]) -> str:
    """"; p95 fell by 120 ms [95% CI -180 ms to -60 ms]" for the non-default tier, when both groups are big
    enough for a bootstrap interval of p95 (else nothing)."""
    diff, d_lo, d_hi = (float(r.get(k, np.nan)) for k in ("diff_p95", "diff_p95_lo", "diff_p95_hi"))
    if not all(np.isfinite(v) for v in (diff, d_lo, d_hi)):
        return ""
    if r["a"] == "default":  # diff = p95(default) - p95(other): flip to "other minus default"
        diff, d_lo, d_hi = -diff, -d_hi, -d_lo
    return (f"; its p95 {'fell' if diff < 0 else 'rose'} by {fmt_s(abs(diff))} "
            f"[95% CI {fmt_s(d_lo)} to {fmt_s(d_hi)}]")


def failed_cells(analysis: Analysis) -> pd.DataFrame:
    """The cells that failed (cell, reason, requests sent): listed, never part of any table, verdict or chart."""
    f = analysis.data.failed
    if f is None or f.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "cell": f["cell_id"], "model": f["model_id"], "tier": f["tier"], "prompt size": f["prompt_size"],
        "load": [_users(float(u), "users") if pd.notna(u) else _users(float(r), "rate")
                 for u, r in zip(f["users"], f["rate_rps"], strict=True)],
        "requests sent": [f"{int(v):,}" if pd.notna(v) else "n/a" for v in f["requests"]],
        "reason": f["reason"],
    })  # fmt: skip
    return out.reset_index(drop=True)


def executive_summary(analysis: Analysis) -> list[str]:
    """A few sentences with numbers and intervals, most important first."""
    rec, s = analysis.records, analysis.summary
    n = len(rec)
    ok = int((rec["status"] == "ok").sum())
    configs = s[list(CONFIG)].drop_duplicates()
    levels = sorted(s["users"].unique().tolist())
    unit = "requests/s arrival rate" if analysis.load_kind == "rate" else "concurrent users"
    target = environment(analysis).get("target", "not recorded")
    target = ("the target" if target == "not recorded" else f"the {target}" if target.startswith("emulator")
              else "Amazon Bedrock" if target == "aws" else target)
    out = [
        f"This sweep sent {n:,} requests to {target} across {_n(len(configs), 'configuration')} "
        f"({_n(rec['model'].nunique(), 'model')} x {_n(rec['tier'].nunique(), 'service tier')} x "
        f"{_n(rec['prompt_size'].nunique(), 'prompt size')}) at {_n(len(levels), 'load level')} "
        f"({_join([f'{u:g}' for u in levels])} {unit}); {fmt_pct(ok / n if n else float('nan'))} succeeded."
    ]
    n_failed = len(analysis.data.failed) if analysis.data.failed is not None else 0
    if n_failed:
        out.insert(0, f"{n_failed} cell(s) of this sweep failed and are left out of every number below; see "
                      "'Failed cells' for why.")  # fmt: skip
    slo = analysis.slo
    cap = analysis.capacity
    meeting = int(cap["max_users_meeting_slo"].notna().sum()) if not cap.empty else 0
    at_max = s[s["users"] == analysis.max_users] if analysis.max_users is not None else s
    out.append(
        f"Against the SLOs ({slo.describe()}, for at least {slo.goodput_target:.0%} of requests), {meeting} of "
        f"{len(configs)} configurations meet them at some tested load and {int(at_max['meets_target'].sum())} at the "
        f"highest load ({_users(analysis.max_users or 0, analysis.load_kind)})."
    )
    out.extend(capacity_sentences(analysis))
    out.extend(search_sentences(analysis))
    out.extend(stop_sentences(analysis))
    out.extend(bound_sentences(analysis))
    for _, r in recommendations(analysis).iterrows():
        if r["recommendation"] == "none meets the SLOs":
            out.append(f"For {r['workload']}, no configuration met the SLOs ({r['goodput']}).")
        else:
            cost = r["cost per 1k requests"]
            cost_text = f" at {cost} per 1k requests" if cost != "n/a" else " (no price in the catalog)"
            month = r.get(per_month_label(analysis), "n/a")
            if cost != "n/a" and month != "n/a":
                cost_text += f" (about {month}/month at {per_month_label(analysis).removeprefix('per month at ')})"
            out.append(f"For {r['workload']}, the cheapest configuration meeting the SLOs is {r['recommendation']}"
                       f"{cost_text}, holding them up to {r['holds the SLOs up to']}; its p95 time to first token "
                       f"there is {r['p95 time to first token']}.")
    out.extend(_tier_sentences(analysis))
    thr = s[s["n_throttled"] > 0].sort_values("throttle_rate", ascending=False)
    if thr.empty:
        out.append("No request was throttled.")
    else:
        r = thr.iloc[0]
        out.append(f"{r['tier'].capitalize()} was throttled on {fmt_pct(r['throttle_rate'])} "
                   f"{fmt_ci(r['throttle_rate_lo'], r['throttle_rate_hi'], fmt_pct)} of requests for "
                   f"{model_label(r['model'], model_names(analysis))} with {r['prompt_size']} prompts at "
                   f"{_users(r['users'], analysis.load_kind)} "
                   f"({_n(len(thr), 'configuration')} saw throttling in total).")
    return out


def _n(count: int, noun: str) -> str:
    """"1 model", "2 models": counts in words a reader does not have to decode ("2 model(s)")."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _level_range(values: pd.Series, kind: str) -> str:
    """"24 users" or "24 to 64 users, depending on the configuration" (the unit once)."""
    lo, hi = _users(values.min(), kind), _users(values.max(), kind)
    if lo == hi:
        return lo
    unit = "requests/s" if kind == "rate" else "users"
    lo = lo.removesuffix(" " + unit).removesuffix(" user")
    return f"{lo} to {hi}, depending on the configuration"


def capacity_sentences(analysis: Analysis) -> list[str]:
    """Capacity led by what was measured (the knee, the highest load meeting the SLOs), then USL's N_max with
    its interval and its known bias (a model-based extrapolation that overstates a hard capacity)."""
    cap, kind = analysis.capacity, analysis.load_kind
    if cap.empty:
        return []
    parts = []
    knees = cap["knee_users"].dropna() if "knee_users" in cap else pd.Series(dtype=float)
    if len(knees):
        parts.append(f"throughput's knee is at {_level_range(knees, kind)}")
    meeting = cap["max_users_meeting_slo"].dropna() if "max_users_meeting_slo" in cap else pd.Series(dtype=float)
    parts.append(f"the highest load meeting the SLOs is {_level_range(meeting, kind)}" if len(meeting)
                 else "no tested load meets the SLOs")
    how = "Kneedle knee of the measured throughput curve; " if len(knees) else ""
    out = ["Capacity, as measured: " + "; ".join(parts) + f" ({how}SLOs by goodput per cell)."]
    fitted = cap[np.isfinite(pd.to_numeric(cap.get("n_max"), errors="coerce"))] if "n_max" in cap else cap.iloc[0:0]
    top = analysis.max_users
    beyond = (fitted[pd.to_numeric(fitted["n_max"], errors="coerce") > NMAX_QUOTED_WITHIN * float(top)]
              if top and len(fitted) else fitted.iloc[0:0])
    fitted = fitted.drop(index=beyond.index)
    if len(beyond):  # a near-linear curve puts the fitted peak absurdly far out: say so instead of quoting it
        unit = "requests/s" if kind == "rate" else "users"
        out.append(f"The Universal Scalability Law finds no throughput peak within {NMAX_QUOTED_WITHIN:g}x the "
                   f"highest tested load ({top:g} {unit}) for {_n(len(beyond), 'configuration')}: throughput still grew "
                   "almost linearly, so test higher loads to find their capacity.")
    if len(fitted):
        unit = "requests/s" if kind == "rate" else "users"
        if len(fitted) == 1:
            r = fitted.iloc[0]
            lo, hi = float(r.get("n_max_lo", np.nan)), float(r.get("n_max_hi", np.nan))
            ci = (f" [95% CI {lo:.0f}-{hi:.0f}]" if np.isfinite(lo) and np.isfinite(hi)
                  else " (no interval: too few load levels for one)")
            where = f"N_max = {float(r['n_max']):.0f} {unit}{ci}"
        else:
            nm = fitted["n_max"].astype(float)
            others = " of the other configurations" if len(beyond) else ""
            span = f"{nm.min():.0f} {unit}" if round(nm.min()) == round(nm.max()) else \
                f"{nm.min():.0f} to {nm.max():.0f} {unit}, depending on the configuration"
            where = f"{span} (N_max{others}; 95% intervals in capacity.csv)"
        lo_b, hi_b = USL_NMAX_OVERSTATES
        out.append(f"The Universal Scalability Law puts peak throughput at {where}; that is a model-based "
                   f"extrapolation which overstated a hard capacity by {lo_b:g}-{hi_b:g}x in our measurements "
                   "against the emulator, so read it as an upper estimate, not a limit.")
    return out


#: a USL N_max further out than this many times the highest tested load is not quoted as a number
NMAX_QUOTED_WITHIN = 10.0


#: words for the metrics a timeout can censor
_CENSORED_NAMES = {"ttft_s": "time to first token", "e2e_s": "end-to-end latency"}


#: the sequential SLO metrics (cellspec slo_metric) in the summary's words
_SLO_METRIC_WORDS = {"ttft_s": "TTFT", "e2e_s": "end-to-end latency", "tpot_s": "time per output token"}


def _search_slo(g: Mapping[str, Any]) -> str:
    """The SLO a search judged its levels by, in words: "p95 TTFT <= 60 ms" ("" when not recorded)."""
    metric, p, target = g.get("slo_metric"), g.get("slo_percentile"), g.get("slo_target_s")
    if metric is None or p is None or target is None or pd.isna(p) or pd.isna(target):
        return ""
    return f"p{float(p) * 100:g} {_SLO_METRIC_WORDS.get(str(metric), str(metric))} <= {fmt_s(float(target))}"


def search_sentences(analysis: Analysis) -> list[str]:
    """One sentence per SLO search group (:attr:`Analysis.search`): the highest load shown to meet the search's
    SLO, its bracket (that load to the lowest that missed) and how many levels the search tried."""
    groups = analysis.search
    if groups is None or groups.empty:
        return []
    names = model_names(analysis)
    unnamed = [m for m in groups["model_id"].astype(str).unique() if m not in names]
    if unnamed:  # a searched model the tables do not name (e.g. every level failed): the catalog's name
        names = {**display_names(stats_decision.load_catalog_or_reason(), unnamed), **names}
    out = []
    for _, g in groups.iterrows():
        slo = _search_slo(g)
        meeting = f"the highest load meeting the SLO ({slo})" if slo else "the highest load meeting the SLO"
        mid = str(g["model_id"])
        label = names.get(mid) or model_label(short_model(mid), names)
        cfg = _cfg({"model": label, "tier": g["tier"], "prompt_size": g["prompt_size"]})
        kind = "rate" if g["load"] == "rate_rps" else "users"
        found, hi, n = g["found"], g["bracket_hi"], int(g["levels"])
        tried = _n(n, "level") + " tried"
        if found is None or pd.isna(found):
            lowest = f" (the lowest level, {_users(hi, kind)}, missed)" if hi is not None and pd.notna(hi) else ""
            out.append(f"For {cfg}, no load searched met the SLO{f' ({slo})' if slo else ''}{lowest}; {tried}.")
        elif g["status"] == "at_least_high" or hi is None or pd.isna(hi):
            out.append(f"For {cfg}, {meeting}: at least {_users(found, kind)} (the highest level searched met "
                       f"it), {tried}.")
        else:
            cut = "; the search stopped at its max_levels" if g["status"] == "max_levels" else ""
            out.append(f"For {cfg}, {meeting}: {_users(found, kind)} (bracket "
                       f"{float(found):g}-{float(hi):g}), {tried}{cut}.")
    return out


def stop_sentences(analysis: Analysis) -> list[str]:
    """Why the sequential cells stopped (:attr:`Analysis.sequential_cells`): how many settled (met / missed the
    SLO, precise enough) and how many ran to their maximum."""
    cells = analysis.sequential_cells
    if cells is None or cells.empty:
        return []
    seq = cells[cells["sequential"] != "off"]
    if seq.empty:
        return []
    settled = seq["stop_reason"].isin(SETTLED_REASONS)
    verdicts = seq.loc[settled, "verdict"].value_counts()
    parts = [f"{int(verdicts[v])} {w}" for v, w in (("met", "met the SLO"), ("missed", "missed it"),
                                                    ("precise", "precise enough")) if v in verdicts]  # fmt: skip
    at_max = int(seq["stop_reason"].isin(("max_duration", "max_requests")).sum())
    text = (f"Of {_n(len(seq), 'sequential cell')}, {int(settled.sum())} stopped as soon as the always-valid "
            f"interval settled their answer ({_join(parts) or 'none settled'}) and {at_max} ran to their maximum")
    other = len(seq) - int(settled.sum()) - at_max
    return [text + (f"; {other} ended otherwise (circuit breaker or interrupted)." if other else ".")]


def bound_sentences(analysis: Analysis, limit: int = 3) -> list[str]:
    """Where timeouts could hide a percentile: the lowest such percentile per cell, quoted as a bound (with the
    model-based value beside it, when the censored fit has one), the cells with most timeouts first."""
    s = analysis.summary
    out = []
    for metric, name in _CENSORED_NAMES.items():
        found = []
        for _, r in s.iterrows():
            lab = next((q for q in ("p50", "p90", "p95", "p99") if str(r.get(f"{metric}_{q}_bound", "")) == "lower"),
                       None)
            if lab is not None:
                found.append((-float(r.get(f"{metric}_censored_frac", 0.0)), lab, r))
        if not found:
            continue
        found.sort(key=lambda t: t[0])
        items = []
        for _, lab, r in found[:limit]:
            model = float(r.get(f"{metric}_{lab}_model", np.nan))
            extra = (f"; a censored log-normal model, which assumes timed-out requests are like the others, "
                     f"puts it near {fmt_s(model)}" if np.isfinite(model) else "")
            items.append(f"{lab} {fmt_quantile(r, metric, lab)} for {_cfg(r, names=model_names(analysis))} at "
                         f"{_users(r['users'], analysis.load_kind)}{extra}")
        more = f" ({len(found)} cells in all; summary.csv column {metric}_pXX_bound)" if len(found) > limit else ""
        out.append(f"Timeouts could hide the tail of {name}, so it is quoted as a bound, not an estimate: "
                   + "; ".join(items) + f"{more}.")
    return out


# ---------------------------------------------------------------- methods, environment, appendix


def methods_and_caveats(analysis: Analysis) -> list[str]:
    rec, s = analysis.records, analysis.summary
    closed = rec["users"].notna().any() if "users" in rec else False
    open_loop = rec["rate_rps"].notna().any() if "rate_rps" in rec else False
    loop = ("closed loop (each user sends its next request when the previous one ends, so latency and "
            "throughput are coupled: a slower service also receives fewer requests)" if closed and not open_loop
            else "open loop (a fixed arrival rate; latency is measured from the intended start, so client lag "
                 "cannot hide queueing)" if open_loop and not closed else "a mix of closed and open loop runs")
    n_min, n_max = int(s["n_requests"].min()), int(s["n_requests"].max())
    few_p99 = 0
    if "ttft_s_p99_ok" in s:  # cells too small for a p99 interval (a bound hidden by timeouts is said apart)
        bounded = s["ttft_s_p99_bound"].astype(str).eq("lower") if "ttft_s_p99_bound" in s else False
        few_p99 = int((~s["ttft_s_p99_ok"].astype(bool) & ~bounded).sum())
    errors = int((rec["status"] != "ok").sum())
    lines = [
        f"Load was generated in {loop}.",
        f"Failed requests ({errors:,} of {len(rec):,}) are reported as rates with Wilson 95% intervals and count "
        "as not good in goodput, so throttling lowers goodput instead of disappearing; they are left out of "
        "latency percentiles, except timeouts, which are right-censored latencies (below).",
        f"Cells hold {n_min:,} to {n_max:,} requests. Percentile intervals are distribution-free (order "
        "statistics); a two-sided 95% interval needs at least 6 requests for p50, 72 for p95 and 368 for p99"
        + (f", so {_n(few_p99, 'cell')} {'has' if few_p99 == 1 else 'have'} no p99 interval." if few_p99 else "."),
        "Comparisons between tiers are ratios of medians with intervals that hold simultaneously at 95% over "
        "the whole grid (Bonferroni); a verdict is read off its interval alone (faster only when the whole "
        "interval lies on one side of 1), and 'no difference detected' states the smallest effect the data "
        "could have detected.",
        "Throughput is successful requests per second over each cell's wall time; the Universal Scalability "
        "Law fit and the knee describe how it scales with users, and Little's law flags cells where the client, "
        "not the service, limited concurrency.",
    ]
    if analysis.fit_cell:
        fc = analysis.fit_cell
        lines.append(f"Distribution fits (maximum likelihood, ranked by AIC, parametric-bootstrap goodness of "
                     f"fit) are shown for {model_label(fc['model'], model_names(analysis))} / {fc['tier']} / {fc['prompt_size']} at "
                     f"{_users(fc['users'], analysis.load_kind)} ({fc['n']} requests); the best was {fc['name']}.")
    if (analysis.load_kind == "users" and not analysis.capacity.empty
            and analysis.capacity["client_bottleneck_users"].map(len).gt(0).any()):
        lines.append("Little's law flagged a possible client-side bottleneck in some cells (mean requests in "
                     "flight below 80% of the users); treat their throughput as a lower bound.")
    cen = analysis.censored
    if not cen.empty:
        e2e = cen[cen["metric"] == "e2e_s"] if "metric" in cen else cen
        worst = (e2e if len(e2e) else cen).sort_values("n_censored", ascending=False).iloc[0]
        n_timeouts = int(s["n_timeout"].sum()) if "n_timeout" in s else int(worst["n_censored"])
        bounded = sum(int(cen[f"{q}_bound"].astype(str).eq("lower").sum()) for q in ("p50", "p90", "p95", "p99")
                      if f"{q}_bound" in cen)
        lines.append(
            f"{n_timeouts:,} request(s) timed out in {cen[list(KEYS)].drop_duplicates().shape[0]} cell(s). A "
            "timeout is data: its latency is only known to exceed the time it had run, so time to first token "
            "(when no token came) and end-to-end latency treat timeouts as right-censored observations "
            "(Kaplan-Meier) under a bound rule. A percentile is an estimate with its interval only where no "
            "placement of the timed-out requests above their censoring times could move it (best case: at "
            "that time; worst case: never finishing); elsewhere it is quoted as a lower bound"
            + (f" ({bounded} percentile(s) of the censored table)" if bounded else "")
            + ", never as a two-sided interval. Kaplan-Meier alone would assume a timed-out request is like "
            "those still running, which a read timeout (silence between bytes) is not. For "
            f"{model_label(worst['model'], model_names(analysis))} / {worst['tier']} / {worst['prompt_size']} at "
            f"{_users(worst['users'], analysis.load_kind)}, end-to-end p95 is "
            + (f">= {fmt_s(worst['p95'])} (a bound)" if str(worst.get("p95_bound", "")) == "lower"
               else fmt_s(worst.get("p95", worst["p95_km"])))
            + f" against {fmt_s(worst['p95_naive'])} with timeouts dropped"
            + (f"; {worst['note']}." if worst.get("note") else "."))
    q = analysis.quality
    if not q.empty and "overhead_distorts" in q and q["overhead_distorts"].astype(bool).any():
        bad = q[q["overhead_distorts"].astype(bool)].sort_values("overhead_share", ascending=False)
        r = bad.iloc[0]
        lines.append(
            f"Absolute percentiles are distorted in {len(bad)} of {len(q)} cells: the client's own overhead "
            "(measured time to first token minus the emulator's ground truth) exceeds 2% of the median TTFT, up "
            f"to {float(r['client_overhead_s']) * 1000:.1f} ms ({fmt_pct(float(r['overhead_share']))}) for "
            f"{model_label(r['model'], model_names(analysis))} / {r['tier']} / {r['prompt_size']} at "
            f"{_users(r['users'], analysis.load_kind)}, so "
            "their absolute latencies are overstated by about that much; comparisons between configurations "
            "(ratios) are unaffected.")
    if not q.empty and "flags" in q:
        flagged = q[q["flags"].astype(str) != ""]
        kinds = {"warm-up": int((q["n_warmup"] > 0).sum()), "drift": int(q["drift"].sum()),
                 "coordinated-omission risk": int(q["coordinated_omission"].sum()), "bimodal": int(q["bimodal"].sum()),
                 "client-overhead": int(q["overhead_distorts"].sum()) if "overhead_distorts" in q else 0}
        found = [f"{v} {k}" for k, v in kinds.items() if v]
        lines.append(f"Data-quality checks (MSER-5 warm-up, drift within a cell, schedule lag, bimodality, client "
                     f"overhead against ground truth) flagged "
                     f"{len(flagged)} of {len(q)} cells" + (f": {_join(found)}" if found else "")
                     + "; the appendix lists the flags per cell. Warm-up requests are kept in the numbers.")
    if str(environment(analysis).get("target", "")).startswith("emulator"):
        lines.append("The target was the embedded emulator: the numbers show how the kit measures, not how "
                     "Amazon Bedrock performs.")
    lines.extend(analysis.notes)
    return lines


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def target_banner(analysis: Analysis) -> str:
    """An HTML banner for the top of the report when the target was the emulator ("" otherwise): a reader who
    skips to the numbers must not take emulated latencies and illustrative prices for Amazon Bedrock's."""
    if not str(environment(analysis).get("target", "")).startswith("emulator"):
        return ""
    return ('<div class="bl-banner" role="note" style="border:2px solid #b45309;background:#fffbeb;'
            'padding:0.6em 1em;margin:0.5em 0 1em 0;font-weight:600">'
            "Emulated run: these numbers come from bedrock-lab's embedded Bedrock Runtime emulator, not from "
            "Amazon Bedrock. Latencies follow illustrative profiles and prices are illustrative; they show how "
            "the kit measures, not how Bedrock performs or what it costs.</div>")


def environment(analysis: Analysis) -> dict[str, str]:
    """Target, region, models, versions, date and sweep file, from the manifest/sweep yaml and the records."""
    data = analysis.data
    man = data.manifest or {}
    cfg = data.sweep_config or {}

    def pick(*keys: str) -> Any:
        for src in (man, cfg, data.plan or {}):
            for k in keys:
                v = src.get(k)
                if v not in (None, "", {}, []):
                    return v
        return None

    target = pick("target", "target_kind")
    region = pick("region", "aws_region")
    if isinstance(target, Mapping):
        region = region or target.get("region")
        endpoint = target.get("endpoint_url") or target.get("endpoint")
        target = str(target.get("kind") or target.get("name") or "custom") + (f" at {endpoint}" if endpoint else "")
    if str(target).startswith("emulator") and region:
        region = f"{region} (emulated)"
    start = pd.to_numeric(analysis.records.get("start"), errors="coerce")
    when = pick("started", "started_at", "created_at", "created", "date")
    if when is None and start.notna().any():
        when = dt.datetime.fromtimestamp(float(start.min()), tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    raw_versions = man.get("versions")
    versions: Mapping[str, Any] = raw_versions if isinstance(raw_versions, Mapping) else {}
    kit = versions.get("bedrock_lab") or versions.get("bedrock-lab") or _version("bedrock-lab")
    return {
        "sweep": data.name,
        "target": str(target or "not recorded"),
        "region": str(region or "not recorded"),
        "models": ", ".join(sorted(analysis.records["model_id"].astype(str).unique())),
        "service tiers": ", ".join(sorted(analysis.records["tier"].unique())),
        "date": str(when or "not recorded"),
        "sweep file": data.sweep_file.name if data.sweep_file else "not found",
        "records": f"{len(analysis.records):,} requests in {analysis.summary.shape[0]} cells",
        "versions": ", ".join(f"{k} {v}" for k, v in {
            "bedrock-lab": kit, "python": platform.python_version(), "boto3": _version("boto3"),
            "pandas": _version("pandas"), "scipy": _version("scipy"), "altair": _version("altair"),
        }.items()),
        "report generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cell_appendix(analysis: Analysis) -> pd.DataFrame:
    """One row per cell with the numbers a reviewer checks first (formatted for reading)."""
    s = analysis.summary.copy()
    rec = analysis.records
    if "cell_id" in rec:
        ids = rec.groupby(list(KEYS), sort=False)["cell_id"].first().reset_index()
        s = s.merge(ids, on=list(KEYS), how="left")
    else:
        s["cell_id"] = ""
    s = s.sort_values(list(KEYS))

    def pct_ci(row: Mapping[str, Any], metric: str, q: str) -> str:
        if str(row.get(f"{metric}_{q}_bound", "")) == "lower":  # timeouts could hide it: a bound, no interval
            return f">= {fmt_s(row[f'{metric}_{q}'])} (bound)"
        v, lo, hi = (float(row.get(f"{metric}_{q}{k}", np.nan)) for k in ("", "_lo", "_hi"))
        return f"{fmt_s(v)} [{fmt_s(lo)}-{fmt_s(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else fmt_s(v)

    if not analysis.quality.empty and "flags" in analysis.quality:
        s = s.merge(analysis.quality[[*KEYS, "flags"]], on=list(KEYS), how="left")
    else:
        s["flags"] = ""
    return pd.DataFrame({
        "cell": s["cell_id"].fillna(""),
        "model": name_models(s["model"], analysis), "tier": s["tier"], "prompt": s["prompt_size"],
        "load": s["users"].map(lambda u: _users(u, analysis.load_kind)),
        "requests": s["n_requests"].astype(int),
        "success": s["success_rate"].map(fmt_pct),
        "throttled": s["throttle_rate"].map(fmt_pct),
        "TTFT p50 [95% CI]": [pct_ci(r, "ttft_s", "p50") for _, r in s.iterrows()],
        "TTFT p95 [95% CI]": [pct_ci(r, "ttft_s", "p95") for _, r in s.iterrows()],
        "end-to-end p95": [f">= {fmt_s(r['e2e_s_p95'])} (bound)" if str(r.get("e2e_s_p95_bound", "")) == "lower"
                           else fmt_s(r["e2e_s_p95"]) for _, r in s.iterrows()],
        "throughput (req/s)": s["throughput_rps"].map(lambda v: f"{v:.2f}" if np.isfinite(v) else "n/a"),
        "goodput": s["goodput"].map(fmt_pct),
        "data quality": s["flags"].fillna("").replace("", "ok"),
    })


def comparison_table(analysis: Analysis, metric: str = "ttft_s") -> pd.DataFrame:
    """Tier vs tier per model, prompt size and load: ratio of medians with its CI, adjusted p and verdict."""
    comp = analysis.comparisons
    if comp.empty:
        return pd.DataFrame({"note": ["only one service tier in this sweep: no tier comparison"]})
    c = comp[comp["metric"] == metric].sort_values(["model", "prompt_size", "users", "a", "b"])
    p_col = "p_adjusted" if "p_adjusted" in c else "p_value"
    ci = _CI_KIND.get(str(c["correction"].iloc[0]) if "correction" in c and len(c) else "none", "95% CI")
    return pd.DataFrame({
        "model": name_models(c["model"], analysis), "prompt": c["prompt_size"],
        "load": c["users"].map(lambda u: _users(u, analysis.load_kind)),
        "A vs B": c["a"] + " vs " + c["b"],
        f"median A / median B [{ci}]": [f"{r:.2f} [{lo:.2f}-{hi:.2f}]" for r, lo, hi in
                                         zip(c["ratio"], c["ratio_lo"], c["ratio_hi"], strict=True)],
        "P(A slower) (VDA)": c["vda"].map(lambda v: f"{v:.2f}"),
        "adjusted p": c[p_col].map(lambda p: "< 0.001" if p < 0.001 else f"{p:.3f}"),
        "verdict": c["verdict"],
    })


def fit_table(analysis: Analysis) -> pd.DataFrame:
    """Distribution fits of the chosen cell, best first."""
    f = analysis.fits
    if f.empty:
        return pd.DataFrame({"note": ["no distribution fit (too few successful requests)"]})
    return pd.DataFrame({
        "rank": f["rank"], "distribution": f["name"], "AIC": f["aic"].map(lambda v: f"{v:.1f}"),
        "delta AIC": f["delta_aic"].map(lambda v: f"{v:.1f}"), "BIC": f["bic"].map(lambda v: f"{v:.1f}"),
        "goodness of fit p (bootstrap)": f["gof_p"].map(lambda v: f"{v:.2f}" if np.isfinite(v) else "not tested"),
    })


def html_list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def html_table(df: pd.DataFrame) -> str:
    """A plain escaped HTML table (pandas' own, without the index)."""
    return df.to_html(index=False, escape=True, border=0, classes="bl-table", na_rep="n/a")


def html_definitions(items: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                   f"{html.escape(v)}</td></tr>" for k, v in items.items())
    return f"<table class='bl-table'>{rows}</table>"


__all__ = [
    "bound_sentences", "capacity_sentences", "cell_appendix", "comparison_table", "fit_table", "environment",
    "executive_summary", "fmt_ci", "fmt_pct", "fmt_quantile", "fmt_s", "fmt_usd", "html_definitions",
    "html_list", "html_table", "methods_and_caveats", "model_names", "name_models", "recommendations",
]  # fmt: skip


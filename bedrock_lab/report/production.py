"""The report's "Production features" section: prompt caching, agent tasks and the fallback policy.

Presentation only: sentences and display tables from :mod:`bedrock_lab.stats.production`'s tables on the
:class:`~bedrock_lab.stats.analysis.Analysis` (``cache``, ``agent``, ``turns``, ``fallback``), plus one small chart
each. :func:`has_production` is False for a sweep without these features, and the notebook then shows nothing.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bedrock_lab._money import fmt_usd
from bedrock_lab.report.summary import _users, fmt_ci, fmt_pct, fmt_s, model_names
from bedrock_lab.stats.analysis import Analysis
from bedrock_lab.stats.labels import model_label


def has_production(analysis: Analysis) -> bool:
    """True when any production-feature table has rows."""
    return any(not getattr(analysis, name).empty for name in ("cache", "agent", "fallback"))


def _cfg(row: Any, analysis: Analysis) -> str:
    """"Claude 3 Haiku / flex / small at 8 users" (or "at 2.5 requests/s" for an open-loop run): the report's
    model names and load unit."""
    cfg = f"{model_label(row['model'], model_names(analysis))} / {row['tier']} / {row['prompt_size']}"
    try:
        users = float(row["users"])
    except (KeyError, TypeError, ValueError):
        return cfg
    return f"{cfg} at {_users(users, analysis.load_kind)}" if math.isfinite(users) else cfg


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))


def production_sentences(analysis: Analysis) -> list[str]:
    """One sentence per configuration and feature: hit rate and what a hit saves; task latency; the fallback."""
    out: list[str] = []
    for _, r in analysis.cache.iterrows():
        s = (f"Prompt cache, {_cfg(r, analysis)}: {fmt_pct(r['hit_rate'])} of answers read the cache "
             f"{fmt_ci(r['hit_rate_lo'], r['hit_rate_hi'], fmt_pct)}")  # fmt: skip
        if _finite(r["ttft_ratio"]):
            s += (f"; median time to first token {fmt_s(r['ttft_p50_hit_s'])} on a hit vs "
                  f"{fmt_s(r['ttft_p50_miss_s'])} on a miss ({r['ttft_ratio']:.2f}x)")  # fmt: skip
        if _finite(r["cost_per_1k"]) and _finite(r["cost_saving"]):
            s += (f"; {fmt_usd(r['cost_per_1k'])} per 1,000 requests with cache prices instead of "
                  f"{fmt_usd(r['cost_per_1k_uncached'])} uncached ({fmt_pct(r['cost_saving'])} less)")  # fmt: skip
        out.append(s + ".")
    for _, r in analysis.agent.iterrows():
        out.append(f"Agent tasks, {_cfg(r, analysis)}: {fmt_pct(r['task_success'])} of {int(r['n_tasks'])} tasks succeeded, "
                   f"{r['turns_mean']:.1f} turns each on average; a whole task took {fmt_s(r['task_s_p50'])} at the "
                   f"median and {fmt_s(r['task_s_p95'])} at p95 (first request sent to last answer).")  # fmt: skip
    for _, r in analysis.fallback.iterrows():
        if not r["n_fallback"]:
            out.append(f"Fallback, {_cfg(r, analysis)}: never needed (no request was throttled or failed on the server).")
            continue
        out.append(f"Fallback, {_cfg(r, analysis)}: {fmt_pct(r['fallback_share'])} of requests went to the fallback "
                   f"({r['fallback_model'] or 'no answer'}), which gave {fmt_pct(r['fallback_answer_share'])} of the "
                   f"answers; goodput {fmt_pct(r['goodput'])} with it vs {fmt_pct(r['goodput_without'])} without "
                   f"(+{fmt_pct(r['goodput_gain'])}).")  # fmt: skip
    return out


def cache_display(analysis: Analysis) -> pd.DataFrame:
    t = analysis.cache
    if t.empty:
        return t
    return pd.DataFrame({
        "configuration": [_cfg(r, analysis) for _, r in t.iterrows()], "answers": t["n_ok"],
        "cache hit rate": [f"{fmt_pct(r)} {fmt_ci(lo, hi, fmt_pct)}" for r, lo, hi in
                           zip(t["hit_rate"], t["hit_rate_lo"], t["hit_rate_hi"], strict=True)],
        "TTFT p50 hit": t["ttft_p50_hit_s"].map(fmt_s), "TTFT p50 miss": t["ttft_p50_miss_s"].map(fmt_s),
        "cost / 1k (cache prices)": t["cost_per_1k"].map(fmt_usd),
        "cost / 1k (uncached)": t["cost_per_1k_uncached"].map(fmt_usd),
    })  # fmt: skip


def agent_display(analysis: Analysis) -> pd.DataFrame:
    t = analysis.agent
    if t.empty:
        return t
    return pd.DataFrame({
        "configuration": [_cfg(r, analysis) for _, r in t.iterrows()], "tasks": t["n_tasks"],
        "succeeded": t["task_success"].map(fmt_pct), "turns / task": t["turns_mean"].map(lambda v: f"{v:.1f}"),
        "task p50": t["task_s_p50"].map(fmt_s), "task p95": t["task_s_p95"].map(fmt_s),
        "sum of turns p50": t["sum_turn_s_p50"].map(fmt_s),
    })  # fmt: skip


def turns_display(analysis: Analysis) -> pd.DataFrame:
    t = analysis.turns
    if t.empty:
        return t
    return pd.DataFrame({
        "configuration": [_cfg(r, analysis) for _, r in t.iterrows()], "turn": t["turn"], "requests": t["n"],
        "ok": t["ok_rate"].map(fmt_pct), "TTFT p50": t["ttft_s_p50"].map(fmt_s),
        "e2e p50": t["e2e_s_p50"].map(fmt_s), "e2e p95": t["e2e_s_p95"].map(fmt_s),
        "input tokens": t["mean_input_tokens"].map(lambda v: f"{v:,.0f}" if _finite(v) else "n/a"),
        "tool calls": t["tool_use_share"].map(fmt_pct),
    })  # fmt: skip


def fallback_display(analysis: Analysis) -> pd.DataFrame:
    t = analysis.fallback
    if t.empty:
        return t
    return pd.DataFrame({
        "configuration": [_cfg(r, analysis) for _, r in t.iterrows()], "requests": t["n"],
        "sent to fallback": t["fallback_share"].map(fmt_pct), "answers by fallback": t["fallback_answer_share"].map(fmt_pct),
        "fallback model": t["fallback_model"].replace("", "n/a"), "goodput": t["goodput"].map(fmt_pct),
        "goodput without fallback": t["goodput_without"].map(fmt_pct),
    })  # fmt: skip


def _paired_bars(analysis: Analysis, t: pd.DataFrame, series: str, value: str, pairs: tuple[tuple[str, str], ...],
                 title: str, *, x: Any = None, dropna: bool = True) -> Any:
    """One bar per configuration and series (``pairs``: label, column of ``t``), offset side by side: the shape
    of every production chart."""
    import altair as alt

    long = pd.concat([pd.DataFrame({"configuration": [_cfg(r, analysis) for _, r in t.iterrows()], series: label,
                                    value: t[col]}) for label, col in pairs])  # fmt: skip
    return alt.Chart(long.dropna() if dropna else long).mark_bar().encode(
        y=alt.Y("configuration:N", title=None), yOffset=f"{series}:N", x=x if x is not None else alt.X(f"{value}:Q"),
        color=alt.Color(f"{series}:N", title=None), tooltip=list(long.columns),
    ).properties(title=title, width=520)  # fmt: skip


def production_charts(analysis: Analysis) -> dict[str, Any]:
    """Small altair charts: TTFT on a cache hit vs a miss, whole-task latency, goodput with and without the
    fallback (only those whose table has rows)."""
    import altair as alt

    charts: dict[str, Any] = {}
    if not analysis.cache.empty:
        charts["cache_ttft"] = _paired_bars(analysis, analysis.cache, "request", "TTFT p50 (s)",
                                            (("cache hit", "ttft_p50_hit_s"), ("cache miss", "ttft_p50_miss_s")),
                                            "Median time to first token: cache hit vs miss")  # fmt: skip
    if not analysis.agent.empty:
        charts["agent_tasks"] = _paired_bars(analysis, analysis.agent, "percentile", "task latency (s)",
                                             (("p50", "task_s_p50"), ("p95", "task_s_p95")),
                                             "Whole agent task: first request sent to last answer")  # fmt: skip
    if not analysis.fallback.empty:
        charts["fallback_goodput"] = _paired_bars(
            analysis, analysis.fallback, "policy", "goodput",
            (("with fallback", "goodput"), ("without (fallback answers failed)", "goodput_without")),
            "Goodput (requests meeting the SLOs) with and without the fallback", dropna=False,
            x=alt.X("goodput:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])))  # fmt: skip
    return charts


__all__ = ["agent_display", "cache_display", "fallback_display", "has_production", "production_charts",
           "production_sentences", "turns_display"]  # fmt: skip

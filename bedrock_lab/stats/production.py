"""Production features in the records: prompt caching, agent tasks, the fallback policy (issue 13).

Each table is per configuration and load (``KEYS`` of :mod:`bedrock_lab.stats.analysis`) and is empty when the
records do not carry the feature, so a sweep without them shows nothing new.

- :func:`cache_table`: cache hit rate (successful requests that read cached input tokens, with a Wilson interval),
  the median TTFT of hits and of misses and their ratio, and the cost per 1,000 requests with cache prices next to
  what the same tokens cost uncached. Cache reads and writes are priced by the catalog's per-model multipliers of
  the input price (``prompt_cache`` in the catalog; :meth:`bedrock_lab.catalog.ModelSpec.cost_usd`, the one price
  formula; a model without its own cache prices gets the catalog's defaults, AWS's Anthropic prices: reads 0.1x,
  writes 1.25x the input price).
- :func:`agent_tasks` / :func:`agent_table` / :func:`turn_table`: an agent task is the turns that share a
  ``task_id``. Whole-task latency is the span from the first turn's start to the last turn's end (what the user
  waits, think time included); ``sum_turn_s`` adds the turns' own latencies (the model's share). A task succeeded
  when every turn did.
- :func:`fallback_table`: the share of requests that went to the fallback and the share of answers it gave, and
  goodput (requests meeting the SLOs, :func:`bedrock_lab.stats.slo.meets_slo`) with the fallback next to goodput
  counting the fallback's answers as failures: what the same run would have delivered without it (every request
  that fell back had failed its first attempt).

>>> import pandas as pd
>>> rec = pd.DataFrame({"model": "m", "tier": "default", "prompt_size": "agent", "users": 1, "status": "ok",
...                     "task_id": ["a", "a", "b"], "turn": [1, 2, 1], "start": [0.0, 1.0, 5.0],
...                     "e2e_s": [0.5, 0.75, 0.5]})
>>> agent_tasks(rec)[["task_id", "n_turns", "task_s", "sum_turn_s", "ok"]].to_dict("records")
[{'task_id': 'a', 'n_turns': 2, 'task_s': 1.75, 'sum_turn_s': 1.25, 'ok': True}, {'task_id': 'b', 'n_turns': 1, 'task_s': 0.5, 'sum_turn_s': 0.5, 'ok': True}]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bedrock_lab.errors import ConfigError
from bedrock_lab.stats.analysis import KEYS
from bedrock_lab.stats.rates import proportion
from bedrock_lab.stats.slo import SLO, meets_slo

#: cache prices relative to the input price when the catalog has none for a model (AWS, Anthropic models)


def _num(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce").astype(float)


def _keys(df: pd.DataFrame) -> list[str]:
    return [k for k in KEYS if k in df]


def _p(x: pd.Series, q: float) -> float:
    v = pd.to_numeric(x, errors="coerce").dropna()
    return float(np.quantile(v.to_numpy(float), q)) if len(v) else float("nan")


def has_cache(records: pd.DataFrame) -> bool:
    """True when some request read or wrote cached input tokens."""
    return bool((_num(records, "cache_read_tokens").fillna(0) + _num(records, "cache_write_tokens").fillna(0)).gt(0)
                .any())  # fmt: skip


def has_agent(records: pd.DataFrame) -> bool:
    """True when the records hold agent turns (a ``task_id``)."""
    return "task_id" in records and bool(records["task_id"].notna().any())


def has_fallback(records: pd.DataFrame) -> bool:
    """True when the records were made with a fallback policy (``fallback`` set, True or False)."""
    return "fallback" in records and bool(records["fallback"].notna().any())


def _fell_back(df: pd.DataFrame) -> pd.Series:
    return df["fallback"].astype("boolean").fillna(False).astype(bool) if "fallback" in df else \
        pd.Series(False, index=df.index)  # fmt: skip


# ---------------------------------------------------------------- prompt caching


def cache_table(records: pd.DataFrame, catalog: Any | None = None) -> pd.DataFrame:
    """Per KEYS: ``n_ok``, ``n_hit`` / ``hit_rate`` (+``_lo``/``_hi``), ``n_write``, mean cached and uncached
    input tokens, ``ttft_p50_hit_s`` / ``ttft_p50_miss_s`` / ``ttft_ratio`` (hit / miss), ``cost_per_1k`` with cache
    prices, ``cost_per_1k_uncached`` (the same tokens all billed as input) and ``cost_saving`` (the fraction saved).
    Empty when no request read or wrote the cache."""
    if not has_cache(records):
        return pd.DataFrame()
    if catalog is None:
        try:
            from bedrock_lab.catalog import load_catalog

            catalog = load_catalog()
        except Exception:  # no catalog: the table keeps its token and latency columns
            catalog = None
    keys = _keys(records)
    ok = records[records["status"] == "ok"] if "status" in records else records
    rows = []
    for key, sub in ok.groupby(keys, sort=True):
        read, write = _num(sub, "cache_read_tokens").fillna(0), _num(sub, "cache_write_tokens").fillna(0)
        hit = read > 0
        n = len(sub)
        rate = proportion(int(hit.sum()), n)
        ttft = _num(sub, "ttft_s")
        t_hit, t_miss = _p(ttft[hit], 0.5), _p(ttft[~hit], 0.5)
        mean_in, mean_out = float(_num(sub, "input_tokens").mean()), float(_num(sub, "output_tokens").mean())
        row: dict[str, Any] = {**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                               "n_ok": n, "n_hit": int(hit.sum()), "hit_rate": rate["rate"], "hit_rate_lo": rate["lo"],
                               "hit_rate_hi": rate["hi"], "n_write": int((write > 0).sum()),
                               "mean_input_tokens": mean_in, "mean_cache_read_tokens": float(read.mean()),
                               "mean_cache_write_tokens": float(write.mean()), "ttft_p50_hit_s": t_hit,
                               "ttft_p50_miss_s": t_miss,
                               "ttft_ratio": t_hit / t_miss if t_miss and math.isfinite(t_miss) else float("nan"),
                               "cost_per_1k": float("nan"), "cost_per_1k_uncached": float("nan"),
                               "cost_saving": float("nan")}  # fmt: skip
        model_id = str(sub["model_id"].iloc[0]) if "model_id" in sub else str(row.get("model"))
        tier = row.get("tier")
        if catalog is not None and all(map(math.isfinite, (mean_in, mean_out))):
            try:
                spec = catalog.resolve(model_id)
                t = None if tier in (None, "default") else str(tier)
                cached = float(spec.cost_usd(mean_in, mean_out, t, cache_read_tokens=float(read.mean()),
                                             cache_write_tokens=float(write.mean())))
                plain = float(spec.cost_usd(mean_in + float(read.mean()) + float(write.mean()), mean_out, t))
                row.update(cost_per_1k=1000 * cached, cost_per_1k_uncached=1000 * plain,
                           cost_saving=1 - cached / plain if plain > 0 else float("nan"))  # fmt: skip
            except ConfigError:  # an unknown model or tier: the cost stays NaN
                pass
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- agents


def agent_tasks(records: pd.DataFrame) -> pd.DataFrame:
    """One row per agent task: KEYS, ``task_id``, ``n_turns``, ``tool_turns`` (turns that ended in a tool call),
    ``start`` / ``end`` (epoch s), ``task_s`` (first start to last end), ``sum_turn_s`` and ``ok`` (every turn
    succeeded). A turn that never ended (no e2e) leaves the task unfinished: ``task_s`` NaN, ``ok`` False."""
    if not has_agent(records):
        return pd.DataFrame()
    df = records[records["task_id"].notna()]
    keys = _keys(df)
    start, e2e = _num(df, "start"), _num(df, "e2e_s")
    df = df.assign(_start=start, _end=start + e2e, _e2e=e2e,
                   _ok=(df["status"] == "ok") if "status" in df else True,
                   _tool=(df["stop_reason"] == "tool_use") if "stop_reason" in df else False)  # fmt: skip
    g = df.groupby([*keys, "task_id"], sort=True)
    out = g.agg(n_turns=("_start", "size"), tool_turns=("_tool", "sum"), start=("_start", "min"),
                end=("_end", "max"), sum_turn_s=("_e2e", "sum"), ok=("_ok", "all"),
                unfinished=("_e2e", lambda s: bool(s.isna().any()))).reset_index()  # fmt: skip
    out["task_s"] = out["end"] - out["start"]
    out.loc[out["unfinished"], ["task_s", "end"]] = float("nan")
    out.loc[out["unfinished"], "ok"] = False
    out["n_turns"] = out["n_turns"].astype(int)
    out["tool_turns"] = out["tool_turns"].astype(int)
    return out.drop(columns="unfinished")[[*keys, "task_id", "n_turns", "tool_turns", "start", "end", "task_s",
                                           "sum_turn_s", "ok"]]


def agent_table(records: pd.DataFrame, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per KEYS: ``n_tasks``, ``task_success`` (+``_lo``/``_hi``), mean turns and tool turns per task, and p50 / p95
    of whole-task latency (``task_s``, successful tasks) and of the summed turn latencies."""
    tasks = agent_tasks(records) if tasks is None else tasks
    if tasks.empty:
        return pd.DataFrame()
    keys = _keys(tasks)
    rows = []
    for key, sub in tasks.groupby(keys, sort=True):
        good = sub[sub["ok"].astype(bool)]
        rate = proportion(int(len(good)), len(sub))
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)),
                     "n_tasks": len(sub), "task_success": rate["rate"], "task_success_lo": rate["lo"],
                     "task_success_hi": rate["hi"], "turns_mean": float(sub["n_turns"].mean()),
                     "tool_turns_mean": float(sub["tool_turns"].mean()),
                     "task_s_p50": _p(good["task_s"], 0.5), "task_s_p95": _p(good["task_s"], 0.95),
                     "sum_turn_s_p50": _p(good["sum_turn_s"], 0.5), "sum_turn_s_p95": _p(good["sum_turn_s"], 0.95)})
    return pd.DataFrame(rows)


def turn_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per KEYS and turn: requests, success rate, p50 / p95 of TTFT and end-to-end latency, mean input tokens
    (each turn carries the earlier ones) and the share ending in a tool call."""
    if not has_agent(records):
        return pd.DataFrame()
    df = records[records["task_id"].notna()]
    keys = [*_keys(df), "turn"]
    rows = []
    for key, sub in df.groupby(keys, sort=True):
        ok = sub[sub["status"] == "ok"] if "status" in sub else sub
        rows.append({**dict(zip(keys, key, strict=True)), "n": len(sub), "ok_rate": len(ok) / len(sub),
                     "ttft_s_p50": _p(_num(ok, "ttft_s"), 0.5), "ttft_s_p95": _p(_num(ok, "ttft_s"), 0.95),
                     "e2e_s_p50": _p(_num(ok, "e2e_s"), 0.5), "e2e_s_p95": _p(_num(ok, "e2e_s"), 0.95),
                     "mean_input_tokens": float(_num(ok, "input_tokens").mean()),
                     "tool_use_share": float((ok["stop_reason"] == "tool_use").mean()) if "stop_reason" in ok and len(ok)
                     else float("nan")})  # fmt: skip
    out = pd.DataFrame(rows)
    out["turn"] = out["turn"].astype(int)
    return out


# ---------------------------------------------------------------- fallback


def fallback_table(records: pd.DataFrame, slo: SLO | None = None,
                   by: Sequence[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """Per KEYS (or ``by``): ``n``, ``fallback_share`` (requests sent to the fallback), ``fallback_answer_share``
    (successful answers the fallback gave), ``fallback_ok_rate`` (how often the fallback answered), ``goodput``
    (meeting the SLOs, with the fallback), ``goodput_without`` (the fallback's answers counted as failures) and
    ``goodput_gain``. Empty when the records were made without a fallback policy."""
    if not has_fallback(records):
        return pd.DataFrame()
    keys = list(by) if by else _keys(records)
    slo = slo or SLO()
    good = meets_slo(records, slo)
    fell = _fell_back(records)
    ok = records["status"] == "ok"
    rows = []
    for key, sub in records.groupby(keys, sort=True):
        idx = sub.index
        n, n_fell = len(sub), int(fell[idx].sum())
        n_ok = int(ok[idx].sum())
        g_all = int(good[idx].sum())
        g_without = int((good[idx] & ~fell[idx]).sum())
        answered = sub.loc[ok[idx] & fell[idx], "answered_model"] if "answered_model" in sub else pd.Series(dtype=str)
        rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), "n": n,
                     "n_fallback": n_fell, "fallback_share": n_fell / n,
                     "fallback_answer_share": int((ok[idx] & fell[idx]).sum()) / n_ok if n_ok else float("nan"),
                     "fallback_ok_rate": int((ok[idx] & fell[idx]).sum()) / n_fell if n_fell else float("nan"),
                     "fallback_model": ", ".join(sorted(map(str, answered.dropna().unique()))),
                     "goodput": g_all / n, "goodput_without": g_without / n,
                     "goodput_gain": (g_all - g_without) / n})  # fmt: skip
    return pd.DataFrame(rows)


__all__ = [
    "agent_table",
    "agent_tasks",
    "cache_table",
    "fallback_table",
    "has_agent",
    "has_cache",
    "has_fallback",
    "turn_table",
]

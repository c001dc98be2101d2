"""Latency as other customers' demand grows (issue 15): TTFT percentiles per configuration, load and background level.

A sweep that varies ``grid.background_load`` runs each cell against a different level of shared demand; this table
puts the levels side by side for one chart (the other tables treat each level as its own workload, see
:func:`bedrock_lab.stats.labels.label_records`). Percentiles and their distribution-free 95% intervals come from
:func:`bedrock_lab.stats.quantiles.quantile_table`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bedrock_lab.stats.quantiles import quantile_table


def background_table(records: pd.DataFrame, by: Sequence[str], metric: str = "ttft_s") -> pd.DataFrame:
    """TTFT p50 and p95 (with 95% intervals) of successful requests per ``by`` (e.g. model, tier asked for, prompt
    size, load) and background level; empty unless the records hold two levels or more. Long form: a row per
    percentile, with ``n`` and the throttled share of the group's requests."""
    rec = records
    if "background_load" not in rec or metric not in rec:
        return pd.DataFrame()
    level = pd.to_numeric(rec["background_load"], errors="coerce")
    if level.nunique() < 2:
        return pd.DataFrame()
    df = rec.assign(background_load=level).dropna(subset=["background_load"])
    if "prompt_size_base" in df:  # labels split each level into its own workload; across levels, the size alone
        df = df.assign(prompt_size=df["prompt_size_base"])
    keys = [*by, "background_load"]
    rows = []
    for values, sub in df.groupby(keys, sort=True, dropna=False):
        ok = sub[sub["status"] == "ok"]
        q = quantile_table(pd.to_numeric(ok[metric], errors="coerce").to_numpy(float), (0.5, 0.95))
        base = dict(zip(keys, values, strict=True))
        throttled = float((sub["error_kind"] == "throttled").mean()) if "error_kind" in sub else 0.0
        for p in ("p50", "p95"):
            rows.append({**base, "percentile": p, "estimate": q[p], "lo": q[f"{p}_lo"], "hi": q[f"{p}_hi"],
                         "n": q["n"], "throttled": throttled})  # fmt: skip
    out = pd.DataFrame(rows)
    out = out.dropna(subset=["estimate"]).reset_index(drop=True)
    for col in ("lo", "hi"):  # no two-sided interval (too few samples): the band collapses to the estimate
        out[col] = out[col].where(np.isfinite(out[col]), out["estimate"])
    return out

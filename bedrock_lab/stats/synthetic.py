"""Seeded synthetic sweep records with known structure, for tests, benchmarks and notebook demos.

The grid is models x tiers x user counts (x prompt sizes); each cell's latencies are log-normal with a
median that grows with users following a USL-like queue, so saturation, comparisons and fits all have
something true to find. Nothing here touches the network.

Example
-------
>>> df = synthetic_records(2_700, seed=1)
>>> df["cell_id"].nunique(), len(df)
(27, 2700)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError
from bedrock_lab.records import SCHEMA_VERSION


def synthetic_records(
    n: int = 27_000,
    *,
    models: Sequence[str] = ("model-a",),
    tiers: Sequence[str | None] = ("default", "priority", "flex"),
    users: Sequence[int] = (1, 8, 32),
    prompt_sizes: Sequence[str] = ("small", "medium", "large"),
    throttle_share: float = 0.01,
    timeout_share: float = 0.002,
    tier_effect: dict[str, float] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """About ``n`` request rows spread evenly over the grid (schema v1 column names)."""
    cells = [(m, t, u, p) for m in models for t in tiers for u in users for p in prompt_sizes]
    if n < len(cells):
        raise StatsError(f"need at least one row per cell ({len(cells)}), got n={n}")
    effect = {"default": 1.0, "priority": 0.8, "flex": 1.3, **(tier_effect or {})}
    size_effect = {"small": 1.0, "medium": 1.6, "large": 2.5}
    rng = np.random.default_rng(seed)
    per = n // len(cells)
    counts = np.full(len(cells), per)
    counts[: n - per * len(cells)] += 1
    cell_idx = np.repeat(np.arange(len(cells)), counts)
    total = int(counts.sum())
    m_arr = np.array([c[0] for c in cells], dtype=object)[cell_idx]
    t_arr = np.array([c[1] for c in cells], dtype=object)[cell_idx]
    u_arr = np.array([c[2] for c in cells])[cell_idx]
    p_arr = np.array([c[3] for c in cells], dtype=object)[cell_idx]
    mult = np.array([effect.get(str(c[1]), 1.0) * size_effect.get(c[3], 1.0) *
                     (1 + 0.03 * (c[2] - 1) + 0.0004 * c[2] * (c[2] - 1)) for c in cells])[cell_idx]
    ttft = 0.35 * mult * rng.lognormal(0.0, 0.35, total)
    out_tokens = rng.integers(50, 400, total)
    itl = 0.012 * np.sqrt(mult) * rng.lognormal(0.0, 0.15, total)
    e2e = ttft + out_tokens * itl
    # start times: each cell runs back-to-back; closed loop -> arrival rate ~ users / mean latency
    start = np.empty(total)
    offset = 1.7e9
    for i in range(len(cells)):
        sel = cell_idx == i
        k = int(sel.sum())
        rate = cells[i][2] / max(float(np.mean(e2e[sel])), 1e-3)
        start[sel] = offset + np.cumsum(rng.exponential(1 / rate, k))
        offset = float(start[sel].max() + e2e[sel].max() + 1.0)
    u = rng.random(total)
    throttled = u < throttle_share
    timeout = (u >= throttle_share) & (u < throttle_share + timeout_share)
    status = np.where(throttled | timeout, "error", "ok")
    kind = np.where(throttled, "throttled", np.where(timeout, "timeout", np.array(None, dtype=object)))
    e2e_obs = np.where(throttled, 0.05, np.where(timeout, 60.0, e2e))
    ttft_obs = np.where(throttled, np.nan, ttft)
    df = pd.DataFrame({
        "run_id": [f"run-{i}" for i in cell_idx],
        "cell_id": [f"cell-{i:03d}" for i in cell_idx],
        "engine": "burst", "worker": "w0", "seq": np.arange(total), "api": "converse-stream",
        "model_id": m_arr, "tier_requested": t_arr, "tier_served": t_arr, "prompt_id": "p0",
        "prompt_size": p_arr, "users": u_arr, "rate_rps": np.nan, "intended_start": np.nan,
        "start": start, "schedule_lag_s": np.nan, "ttft_s": ttft_obs, "e2e_s": e2e_obs,
        "itl_mean_s": np.where(status == "ok", itl, np.nan), "itl_p50_s": np.nan, "itl_p95_s": np.nan,
        "itl_max_s": np.nan, "n_chunks": np.where(status == "ok", out_tokens // 4, 0),
        "input_tokens": 200, "output_tokens": np.where(status == "ok", out_tokens, 0),
        "status": status, "error_kind": kind, "error_code": None, "http_status": np.where(throttled, 429, 200),
        "retries": 0, "server_request_id": None, "server_queue_s": np.nan, "server_ttft_s": np.nan,
        "server_decode_s": np.nan, "server_latency_s": np.nan, "schema_version": SCHEMA_VERSION,
    })
    return df

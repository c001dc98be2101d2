"""Throughput and latency over time within each cell: the per-run view of Locust's report, in time bins.

A whole-cell percentile hides warm-up, drift, stalls and bursts of throttling; binning the run shows them.
Each request is placed in the bin in which it **finished** (``start + e2e_s``, as Locust counts a response when
it completes), so a bin's requests/s is what a client saw complete in that window::

    bin_i     = floor((start_i + e2e_i - t0) / w)          t0 = first start of the cell, w = bin width (s)
    ok_rps    = successes finishing in the bin / width      (the last bin: its covered width, not w)
    error_rps = failures finishing in the bin / width
    ttft_p50, ttft_p95 = sample percentiles (linear interpolation) of the successes finishing in the bin

A percentile of a handful of values is noise, so ``ttft_p50`` needs at least :data:`MIN_N_P50` values in the
bin and ``ttft_p95`` at least :data:`MIN_N_P95` (NaN otherwise). Empty bins are kept (0 requests/s): a stall
must show as a gap, not vanish. Each cell gets its own readable width (:func:`bin_width`: about 20 requests a
bin, 4 to 60 bins), since a cell at 1 user completes a tenth of the requests of one at 16; ``bin_s`` forces one
width for all.

Example
-------
>>> import pandas as pd
>>> df = pd.DataFrame({"cell_id": "c", "status": ["ok"] * 4 + ["error"], "start": [0.0, 0.5, 1.0, 1.5, 2.0],
...                    "e2e_s": [0.4, 0.4, 0.4, 0.4, 0.1], "ttft_s": [0.1, 0.1, 0.2, 0.2, None]})
>>> t = time_bins(df, by=["cell_id"], bin_s=1.0)
>>> t[["t_s", "n_ok", "n_error"]].values.tolist()
[[0.0, 2.0, 0.0], [1.0, 2.0, 0.0], [2.0, 0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bedrock_lab.errors import StatsError
from bedrock_lab.stats._data import groups, metric_values, ok_mask, require_columns

#: bin widths a reader can read (seconds); :func:`bin_width` picks the smallest that fits
NICE_BINS_S: tuple[float, ...] = (0.1, 0.2, 0.25, 0.5, 1, 2, 3, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
MIN_N_P50 = 3  #: values a bin needs for its median
MIN_N_P95 = 10  #: values a bin needs for its p95 (below that it is close to the bin's maximum)


def _ends(sub: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each request in seconds; a request without ``e2e_s`` ends where it started."""
    start = pd.to_numeric(sub["start"], errors="coerce").to_numpy(float)
    e2e = pd.to_numeric(sub["e2e_s"], errors="coerce").to_numpy(float) if "e2e_s" in sub else np.zeros_like(start)
    return start, start + np.nan_to_num(e2e, nan=0.0)


def _nice(width: float) -> float:
    """The smallest of :data:`NICE_BINS_S` at least ``width`` (the largest for longer widths)."""
    return float(next((b for b in NICE_BINS_S if b >= width), NICE_BINS_S[-1]))


def bin_width(sub: pd.DataFrame, *, per_bin: int = 20, min_bins: int = 4, max_bins: int = 60) -> float:
    """A readable bin width for one cell: span / clip(n / per_bin, min_bins, max_bins), rounded up to
    :data:`NICE_BINS_S` (about ``per_bin`` requests a bin). NaN with fewer than two timed requests."""
    start, end = _ends(sub)
    timed = np.isfinite(start)
    if timed.sum() < 2:
        return float("nan")
    span = float(np.nanmax(end[timed]) - np.nanmin(start[timed]))
    if span <= 0:
        return float("nan")
    return _nice(span / float(np.clip(timed.sum() / per_bin, min_bins, max_bins)))


def _percentile(values: np.ndarray, q: float, min_n: int) -> float:
    v = values[np.isfinite(values)]
    return float(np.percentile(v, q)) if v.size >= min_n else float("nan")


def time_bins(records: pd.DataFrame, by: Sequence[str] = ("model", "tier", "prompt_size", "users"), *,
              bin_s: float | None = None, metric: str = "ttft_s") -> pd.DataFrame:
    """Per group and time bin: ``t_s`` (bin start, seconds since the group's first request), ``width_s``,
    ``n_ok``, ``n_error``, ``ok_rps``, ``error_rps``, ``<metric>_p50``, ``<metric>_p95``, ``<metric>_n``
    and ``bin_s`` (the group's bin width). ``bin_s`` None: each group its own (:func:`bin_width`)."""
    by = list(by)
    require_columns(records, ["start", "status", *by])
    if bin_s is not None and not (isinstance(bin_s, int | float) and np.isfinite(bin_s) and bin_s > 0):
        raise StatsError(f"bin_s must be a positive number of seconds, got {bin_s!r}")
    has_metric = metric in records.columns or metric in ("tpot_s", "tokens_per_s")
    rows = []
    for keys, sub in groups(records, by):
        start, end = _ends(sub)
        timed = np.isfinite(start)
        width_s = float(bin_s) if bin_s is not None else bin_width(sub)
        if not timed.any() or not np.isfinite(width_s):
            continue
        t0, t_last = float(np.nanmin(start)), float(np.nanmax(end[timed]))
        idx = np.floor((end - t0) / width_s)
        n_bins = int(np.nanmax(idx[timed])) + 1
        ok = ok_mask(sub).to_numpy(bool) & timed
        err = ~ok_mask(sub).to_numpy(bool) & timed
        n_ok = np.bincount(idx[ok].astype(int), minlength=n_bins)
        n_err = np.bincount(idx[err].astype(int), minlength=n_bins)
        values = metric_values(sub, metric).to_numpy(float) if has_metric else np.full(len(sub), np.nan)
        for b in range(n_bins):
            lo = b * width_s
            width = max(min(width_s, t_last - t0 - lo), 1e-9) if b == n_bins - 1 else width_s
            v = values[ok & (idx == b)]
            rows.append({**keys, "t_s": lo, "width_s": width, "n_ok": float(n_ok[b]), "n_error": float(n_err[b]),
                         "ok_rps": n_ok[b] / width, "error_rps": n_err[b] / width,
                         f"{metric}_p50": _percentile(v, 50, MIN_N_P50), f"{metric}_p95": _percentile(v, 95, MIN_N_P95),
                         f"{metric}_n": int(np.isfinite(v).sum()), "bin_s": width_s})
    if not rows:
        raise StatsError("no group has two or more timed requests to bin (need start and e2e_s)")
    return pd.DataFrame(rows)

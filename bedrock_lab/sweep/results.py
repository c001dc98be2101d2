"""Tables of a sweep folder for people and spreadsheets: ``results.csv`` (done cells) and ``failed.csv``.

Both come from :func:`bedrock_lab.store.read_sweep`'s rules: a failed cell never gets a row of statistics.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from bedrock_lab._files import write_text_atomic
from bedrock_lab.store import DONE, read_sweep, sweep_dir
from bedrock_lab.store.manifest import FAILED_CSV, RESULTS, SUMMARY, load_manifest, plan_cells, read_json


def load_sweep(path: str | os.PathLike[str], *, include_failed: bool = False, keep_chunk_times: bool = False) -> pd.DataFrame:
    """All done cells' records of a sweep folder as one DataFrame, with the cell's grid coordinates.

    Columns: the record schema plus ``region_prefix``, ``base_model``, ``repeat``, ``grid_index`` and
    ``cell_status``. Failed cells' records are left out unless ``include_failed`` (for diagnosis only).
    Each cell's records are those of the run its manifest entry names (see :mod:`bedrock_lab.store.reader`).
    """
    return read_sweep(sweep_dir(path), include_failed=include_failed, keep_chunk_times=keep_chunk_times).records


def results_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per done cell: grid coordinates and the summary statistics of its run."""
    folder = sweep_dir(path)
    manifest = load_manifest(folder)
    cells = plan_cells(folder)
    rows = []
    for cell_id in manifest.ordered():
        entry = manifest.cells.get(cell_id)
        if not entry or entry.get("status") != DONE:
            continue
        info = cells.get(cell_id, {})
        row: dict[str, Any] = {
            "sweep": manifest.data.get("sweep"), "cell_id": cell_id, "status": entry.get("status"),
            "run_id": entry.get("run_id"), "model_id": info.get("model_id"), "region_prefix": info.get("region_prefix"),
            "tier": info.get("tier"), "prompt_size": info.get("prompt_size"), "users": info.get("users"),
            "rate_rps": info.get("rate_rps"), "repeat": info.get("repeat"), "duration_s": info.get("duration_s"),
            "max_tokens": info.get("max_tokens"),
            # shared capacity (issue 15): the tiers a mixed cell drew from, other customers' demand during it
            "tier_mix": info.get("tier_mix") or None,
            "background_load": info.get("background_load"),
        }  # fmt: skip
        summary_path = folder / "cells" / cell_id / SUMMARY
        summary = read_json(summary_path) if summary_path.is_file() else {}
        row.update(stop_columns(entry, summary))
        if summary:
            stats = summary.get("stats", {})
            for k, v in stats.items():
                if not isinstance(v, dict):
                    row[k] = v
            row["errors_by_kind"] = json.dumps(stats.get("errors_by_kind", {}), sort_keys=True)
        row["est_cost_usd"] = info.get("est_cost_usd")
        row["cost_usd"] = entry.get("cost_usd")
        row["cell_wall_s"] = entry.get("duration_s")
        row["started_at"] = entry.get("started_at")
        rows.append(row)
    return pd.DataFrame(rows)


#: results.csv's columns on why a cell ended and, for a sequential cell, its always-valid interval (issue #14)
STOP_COLUMNS = ("stop_reason", "stopped_at_s", "load_s", "sequential", "seq_metric", "seq_percentile",
                "seq_target_s", "seq_n", "seq_estimate_s", "seq_lo_s", "seq_hi_s", "seq_status", "seq_interval")


def stop_columns(entry: Mapping[str, Any], summary: Mapping[str, Any]) -> dict[str, Any]:
    """Why a done cell ended (its manifest entry, else its summary.json): the stop reason, the seconds of load
    when a stop was decided (empty: it ran to its bound) and, for a sequential cell, the last look of its
    always-valid interval (``seq_status``: below / above / undecided / precise). An unbounded side of the interval
    (too few requests) is written as -inf / inf, as in the stop table."""
    def pick(key: str) -> Any:
        return entry.get(key) if entry.get(key) is not None else summary.get(key)

    seq = pick("sequential") or {}
    engine = summary.get("engine_result") or {}
    out: dict[str, Any] = {"stop_reason": pick("stop_reason"), "stopped_at_s": pick("stopped_at_s"),
                           "load_s": entry.get("load_s", engine.get("wall_s")),
                           "sequential": seq.get("mode") or "off"}  # fmt: skip
    n = int(seq.get("n") or 0)
    lo, hi = seq.get("lo"), seq.get("hi")
    out.update({
        "seq_metric": seq.get("metric"), "seq_percentile": seq.get("percentile"), "seq_target_s": seq.get("target_s"),
        "seq_n": n if seq else None, "seq_estimate_s": seq.get("estimate"),
        "seq_lo_s": lo if lo is not None or not n else -math.inf, "seq_hi_s": hi if hi is not None or not n else math.inf,
        "seq_status": seq.get("status"), "seq_interval": seq.get("interval") if seq else None,
    })  # fmt: skip
    return out


def failed_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per failed cell: its coordinates, why it failed, and how many requests it sent."""
    return read_sweep(sweep_dir(path), with_records=False).failed


def write_results_csv(path: str | os.PathLike[str]) -> Path:
    """Write ``results.csv`` (:func:`results_table`) and ``failed.csv`` (:func:`failed_table`, only when a cell
    failed) atomically; returns the path of ``results.csv``."""
    folder = sweep_dir(path)
    target = folder / RESULTS
    write_text_atomic(target, results_table(folder).to_csv(index=False))
    failed = failed_table(folder)
    if len(failed):
        write_text_atomic(folder / FAILED_CSV, failed.to_csv(index=False))
    elif (folder / FAILED_CSV).exists():
        (folder / FAILED_CSV).unlink()
    return target


def sweep_status(path: str | os.PathLike[str]) -> dict[str, int]:
    """Counts of cells per status in a sweep folder's manifest."""
    return load_manifest(sweep_dir(path)).counts()

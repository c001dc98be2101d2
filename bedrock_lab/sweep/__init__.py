"""Sweeps: a ``params/sweeps/*.yaml`` grid run cell by cell through papermill, resumable, cost shown first.

- :mod:`~bedrock_lab.sweep.runner`: :func:`run_sweep` / :func:`plan_sweep` (plan, confirm, run, resume).
- :mod:`~bedrock_lab.sweep.cell`: :func:`run_cell`, what ``notebooks/cell.py`` calls for one cell.
- :mod:`~bedrock_lab.sweep.results`: :func:`load_sweep`, ``results.csv`` and ``failed.csv``.

The folder layout and the manifest live in :mod:`bedrock_lab.store`, which every reader of a sweep uses.
"""

from bedrock_lab.store.manifest import DONE, FAILED, PENDING, RUNNING, SKIPPED, Manifest, write_json_atomic
from bedrock_lab.sweep.cell import run_cell, summarize_records
from bedrock_lab.sweep.results import failed_table, load_sweep, results_table, sweep_status, write_results_csv
from bedrock_lab.sweep.runner import STOP_AFTER_SAME_FAILURES, SweepResult, plan_sweep, run_sweep

__all__ = [
    "DONE",
    "FAILED",
    "PENDING",
    "RUNNING",
    "SKIPPED",
    "STOP_AFTER_SAME_FAILURES",
    "Manifest",
    "SweepResult",
    "failed_table",
    "load_sweep",
    "plan_sweep",
    "results_table",
    "run_cell",
    "run_sweep",
    "summarize_records",
    "sweep_status",
    "write_json_atomic",
    "write_results_csv",
]

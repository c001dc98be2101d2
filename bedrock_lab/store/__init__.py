"""Sweep folders on disk: the manifest (which cells count) and the one reader every consumer uses.

>>> from bedrock_lab.store import read_sweep    # doctest: +SKIP
>>> data = read_sweep("outputs/demo")            # doctest: +SKIP
>>> data.records   # requests of done cells only, fenced to each cell's run      # doctest: +SKIP
>>> data.failed    # failed cells with their reasons                             # doctest: +SKIP
"""

from bedrock_lab.store.manifest import (
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    SKIPPED,
    Manifest,
    failure_reason,
    sweep_dir,
)
from bedrock_lab.store.reader import CELL_COLUMNS, FAILED_COLUMNS, SweepRecords, find_sweep_file, read_sweep

__all__ = [
    "CELL_COLUMNS",
    "DONE",
    "FAILED",
    "FAILED_COLUMNS",
    "PENDING",
    "RUNNING",
    "SKIPPED",
    "Manifest",
    "SweepRecords",
    "failure_reason",
    "find_sweep_file",
    "read_sweep",
    "sweep_dir",
]

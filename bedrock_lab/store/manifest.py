"""``manifest.json``: the state of every cell of a sweep folder, and the names of the files in it.

Layout of ``outputs/<sweep>/``::

    plan.json                 the cells with their parameters and estimates
    sweep.yaml                the effective configuration (file + environment overrides)
    manifest.json             per cell: status, run id, timings, error; rewritten atomically after every change
    cell.source.ipynb         notebooks/cell.py converted by jupytext for this run
    cells/<cell_id>/cell.ipynb      the executed notebook
    cells/<cell_id>/records/        per-request parquet shards
    cells/<cell_id>/summary.json    written last by the notebook
    results.csv               one row per done cell (percentiles, error rates, throughput, cost)
    failed.csv                one row per failed cell (reason, requests sent)
    search.json               an SLO search's outcome per group: the levels tried, the found load and its bracket

The manifest is the one authority on which cells count: only ``done`` cells, and only the records of the run id
their entry names, reach an analysis (:func:`bedrock_lab.store.read_sweep`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bedrock_lab._files import write_text_atomic
from bedrock_lab.errors import SweepError

MANIFEST = "manifest.json"
PLAN = "plan.json"
RESULTS = "results.csv"
FAILED_CSV = "failed.csv"
SUMMARY = "summary.json"
CELL_NOTEBOOK = "cell.ipynb"
SOURCE_NOTEBOOK = "cell.source.ipynb"
SWEEP_COPY = "sweep.yaml"
SEARCH = "search.json"  #: an SLO search's outcome (bedrock_lab.sweep.search)
MANIFEST_VERSION = 1

#: manifest cell statuses
PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"


def now() -> str:
    """UTC timestamp as written in manifests and summaries."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean_json(obj: Any) -> Any:
    """``obj`` with non-finite floats as None and keys as strings (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    return obj


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, set | tuple):
        return list(o)
    return str(o)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON via a temp file + fsync + rename, so readers never see half a file."""
    text = json.dumps(clean_json(obj), indent=2, default=_json_default, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def read_json(path: Path) -> Any:
    """Parse a JSON file the kit wrote; a :class:`SweepError` names the file when it cannot."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read {path}: {exc}") from exc


class Manifest:
    """``manifest.json``: the state of every cell; saved atomically after each change."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path) -> Manifest | None:
        if not path.exists():
            return None
        data = read_json(path)
        if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or "cells" not in data:
            raise SweepError(f"{path} is not a bedrock-lab sweep manifest (version {MANIFEST_VERSION})")
        return cls(path, data)

    @classmethod
    def new(cls, path: Path, *, sweep: str, source: str, target: Mapping[str, Any]) -> Manifest:
        return cls(path, {
            "version": MANIFEST_VERSION, "sweep": sweep, "source": source, "created_at": now(),
            "updated_at": now(), "target": dict(target), "order": [], "cells": {},
        })  # fmt: skip

    @property
    def cells(self) -> dict[str, dict[str, Any]]:
        return self.data["cells"]

    def status(self, cell_id: str) -> str | None:
        entry = self.cells.get(cell_id)
        return entry.get("status") if entry else None

    def update(self, cell_id: str, **fields: Any) -> None:
        self.cells.setdefault(cell_id, {}).update(fields)
        self.save()

    def save(self) -> None:
        self.data["updated_at"] = now()
        write_json_atomic(self.path, self.data)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.cells.values():
            out[entry.get("status", PENDING)] = out.get(entry.get("status", PENDING), 0) + 1
        return out

    def ordered(self) -> list[str]:
        """Cell ids in plan order, then any cells of an earlier plan of the same sweep."""
        order = list(self.data.get("order") or [])
        return order + [c for c in self.cells if c not in order]


def sweep_dir(path: str | os.PathLike[str]) -> Path:
    """The sweep folder of ``path`` (the folder, or its manifest file); :class:`SweepError` if it is none."""
    p = Path(path)
    if p.is_file() and p.name == MANIFEST:
        p = p.parent
    if not (p / MANIFEST).is_file():
        raise SweepError(f"{p} is not a sweep output folder (no {MANIFEST})")
    return p


def load_manifest(folder: Path) -> Manifest:
    manifest = Manifest.load(folder / MANIFEST)
    if manifest is None:
        raise SweepError(f"{folder} has no {MANIFEST}")
    return manifest


def plan_cells(folder: Path) -> dict[str, dict[str, Any]]:
    """``plan.json``'s cells by id (empty when the folder has no plan)."""
    path = folder / PLAN
    if not path.is_file():
        return {}
    return {c["cell_id"]: c for c in read_json(path).get("cells", [])}


def failure_reason(entry: Mapping[str, Any]) -> str:
    """One line saying why a cell failed, from its manifest entry."""
    err = entry.get("error") or {}
    if not err:
        return ""
    reason = err.get("reason") or err.get("evalue") or ""
    ename = err.get("ename")
    return f"{ename}: {reason}" if ename and ename not in ("RunInvalidError",) else str(reason)

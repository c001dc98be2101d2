"""The one reader of a sweep folder: the records of valid cells, and the list of failed cells with their reasons.

Everything downstream (``bedrock_lab.sweep.load_sweep``, ``results.csv``, the analysis, the notebooks, the
report) reads a sweep through :func:`read_sweep`, so a failed cell's requests can never enter a table, a
verdict or a chart through one consumer while another leaves them out.

Rules:

* Only cells whose manifest entry is ``done`` contribute records.
* A cell's records are *fenced* to the run id its manifest entry names: shards a killed earlier attempt wrote
  late into the folder (a Locust child that outlived its parent) are ignored.
* A folder without a manifest (any folder of record shards) is read whole: there is nothing to fence with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from bedrock_lab.errors import SweepError
from bedrock_lab.records import ARROW_SCHEMA, COLUMNS, load_records
from bedrock_lab.store.manifest import (
    DONE,
    FAILED,
    MANIFEST,
    PLAN,
    SUMMARY,
    Manifest,
    failure_reason,
    plan_cells,
    read_json,
)

#: grid coordinates copied from plan.json onto every record of a cell
CELL_COLUMNS = ("region_prefix", "base_model", "repeat", "grid_index")
#: columns of :attr:`SweepRecords.failed`
FAILED_COLUMNS = ("cell_id", "model_id", "tier", "prompt_size", "users", "rate_rps", "status", "reason",
                  "requests", "ok")  # fmt: skip


@dataclass
class SweepRecords:
    """What a sweep folder holds: valid records, failed cells, and the metadata files (None when absent)."""

    root: Path
    records: pd.DataFrame  #: records of done cells only (fenced to their run), plus CELL_COLUMNS and cell_status
    failed: pd.DataFrame  #: one row per failed cell: FAILED_COLUMNS
    manifest: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    sweep_config: dict[str, Any] | None = None  #: the sweep yaml as a plain mapping
    sweep_file: Path | None = None
    notes: list[str] = field(default_factory=list)  #: what the reader left out, in words
    n_done: int | None = None  #: cells the manifest marks done (None: no manifest)

    @property
    def all_failed(self) -> bool:
        """True when cells ran and every one of them failed: there is nothing to analyse, only reasons."""
        return self.n_done == 0 and len(self.failed) > 0

    @property
    def name(self) -> str:
        for src in (self.manifest, self.sweep_config, self.plan):
            if src and isinstance(src.get("sweep") or src.get("name"), str):
                return str(src.get("sweep") or src.get("name"))
        return self.root.name


def _read_yaml(path: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def find_sweep_file(root: Path, manifest: dict[str, Any] | None = None) -> Path | None:
    """The sweep yaml: the copy in the sweep folder (``sweep.yaml``), else the manifest's ``source`` if it exists."""
    for name in ("sweep.yaml", "sweep.yml"):
        if (root / name).is_file():
            return root / name
    source = (manifest or {}).get("source")
    if isinstance(source, str) and source and Path(source).is_file():
        return Path(source)
    return None


def _summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except SweepError:
        return {}
    return data if isinstance(data, dict) else {}


def read_sweep(path: str | os.PathLike[str], *, include_failed: bool = False,
               keep_chunk_times: bool = False, with_records: bool = True) -> SweepRecords:  # fmt: skip
    """Read a sweep folder (or any folder of record shards) by the rules of the module docstring.

    ``with_records=False`` reads only the metadata and the failed cells (cheap: no record shard is opened);
    :attr:`SweepRecords.records` is then empty.

    ``include_failed`` also returns the (fenced) records of failed cells, labelled ``cell_status="failed"``,
    for diagnosis only: never analyse them.
    """
    root = Path(path)
    if root.is_file() and root.name == MANIFEST:
        root = root.parent
    if not root.exists():
        raise SweepError(f"sweep folder {root} does not exist")
    manifest = Manifest.load(root / MANIFEST) if root.is_dir() else None
    notes: list[str] = []
    if manifest is None:
        records = load_records(root, keep_chunk_times=keep_chunk_times)
        for col in CELL_COLUMNS:
            records[col] = None
        records["cell_status"] = DONE
        return SweepRecords(root=root, records=records, failed=pd.DataFrame(columns=list(FAILED_COLUMNS)),
                            notes=["no manifest: every record below the folder is used"])  # fmt: skip
    cells = plan_cells(root)
    wanted = {DONE, FAILED} if include_failed else {DONE}
    frames, failed_rows = [], []
    fenced_out = 0
    n_done = 0
    for cell_id in manifest.ordered():
        entry = manifest.cells.get(cell_id) or {}
        status = entry.get("status")
        info = cells.get(cell_id, {})
        folder = root / "cells" / cell_id
        if status == FAILED:
            stats = _summary(folder).get("stats", {})
            failed_rows.append({
                "cell_id": cell_id, "model_id": info.get("model_id", entry.get("model_id")),
                "tier": info.get("tier", entry.get("tier")), "prompt_size": info.get("prompt_size", entry.get("prompt_size")),
                "users": info.get("users", entry.get("users")), "rate_rps": info.get("rate_rps", entry.get("rate_rps")),
                "status": status, "reason": failure_reason(entry),
                "requests": entry.get("requests", stats.get("requests")), "ok": entry.get("ok", stats.get("ok")),
            })  # fmt: skip
        if status == DONE:
            n_done += 1
        if not with_records or status not in wanted or not (folder / "records").is_dir():
            continue
        df = load_records(folder / "records", keep_chunk_times=keep_chunk_times)
        run_id = entry.get("run_id")
        if run_id and len(df):
            keep = df["run_id"] == run_id
            fenced_out += int((~keep).sum())
            df = df[keep].reset_index(drop=True)
        for col in CELL_COLUMNS:
            df[col] = info.get(col)
        df["cell_status"] = status
        frames.append(df)
    if fenced_out:
        notes.append(f"{fenced_out} record(s) of earlier, killed attempts were ignored (not the cell's run id)")
    if failed_rows:
        notes.append(f"{len(failed_rows)} failed cell(s) left out of every table and chart")
    if frames:
        records = pd.concat(frames, ignore_index=True)
    else:  # an empty frame with the record columns (no shard is read)
        records = ARROW_SCHEMA.empty_table().select(
            [c for c in COLUMNS if keep_chunk_times or c != "chunk_times"]).to_pandas()  # fmt: skip
        for col in (*CELL_COLUMNS, "cell_status"):
            records[col] = pd.Series(dtype=object)
    sweep_file = find_sweep_file(root, manifest.data)
    plan = read_json(root / PLAN) if (root / PLAN).is_file() else None
    return SweepRecords(
        root=root, records=records, failed=pd.DataFrame(failed_rows, columns=list(FAILED_COLUMNS)),
        manifest=manifest.data, plan=plan if isinstance(plan, dict) else None,
        sweep_config=_read_yaml(sweep_file) if sweep_file else None, sweep_file=sweep_file, notes=notes,
        n_done=n_done,
    )  # fmt: skip

"""Per-request records: the one row per request that every engine writes and every analysis reads.

Schema version 1. Times are seconds. ``start`` and ``intended_start`` are Unix epoch seconds (wall clock,
for ordering and joining with server logs); every duration is measured with a monotonic clock.

Latencies (``ttft_s``, ``e2e_s``) are measured from ``intended_start`` when the run is open loop (so a
client that falls behind its schedule cannot hide queueing: no coordinated omission) and from ``start``
otherwise. ``schedule_lag_s = start - intended_start`` says how late the client was.

Records are written as parquet shards, each one atomically (temp file + ``os.replace``), so a crash or a
SIGKILL never leaves a half-written shard that breaks reading: at worst the rows buffered since the last
flush are lost. :func:`load_records` reads every shard below a folder into one DataFrame.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bedrock_lab._files import atomic_path
from bedrock_lab.errors import RecordsError

SCHEMA_VERSION = 1

#: error kinds an engine may assign (None for a success)
ERROR_KINDS = ("throttled", "server", "timeout", "validation", "stream", "connection", "client")


@dataclass(slots=True)
class RequestRecord:
    """One request, as measured by the client. Field docs are the schema documentation."""

    # identity
    run_id: str  #: one engine run (a burst or a Locust run)
    cell_id: str  #: sweep cell this run belongs to ("" outside a sweep)
    engine: str  #: "burst" or "locust"
    worker: str  #: worker that sent it (process/greenlet/task id)
    seq: int  #: sequence number within the worker
    api: str  #: one of bedrock_lab.catalog.APIS
    model_id: str  #: model id as sent (with region prefix or ARN)
    tier_requested: str | None  #: service tier asked for (None = not sent)
    tier_served: str | None  #: service tier echoed by the service
    prompt_id: str  #: prompt/workload item id
    prompt_size: str  #: size class: small/medium/large/chat/summarise/...
    users: int | None  #: closed loop: concurrency of the run
    rate_rps: float | None  #: open loop: target arrival rate
    # timing
    intended_start: float | None  #: epoch s the schedule wanted (open loop), else None
    start: float  #: epoch s the request was actually sent
    schedule_lag_s: float | None  #: start - intended_start (open loop)
    ttft_s: float | None  #: time to first content token (streaming) / None for non-streaming
    e2e_s: float | None  #: end-to-end latency until the last byte (None if it never ended)
    itl_mean_s: float | None = None  #: inter-token (inter-chunk) gap statistics, streaming only
    itl_p50_s: float | None = None
    itl_p95_s: float | None = None
    itl_max_s: float | None = None
    n_chunks: int | None = None  #: content chunks received
    tpot_s: float | None = None  #: time per output token: (e2e_s - ttft_s) / (output_tokens - 1), streaming only
    chunk_times: list[float] | None = None  #: optional: offsets (s) of each content chunk from start
    # tokens (from the service's usage / invocation metrics)
    input_tokens: int | None = None
    output_tokens: int | None = None
    # outcome
    status: str = "ok"  #: "ok" or "error"
    error_kind: str | None = None  #: one of ERROR_KINDS
    error_code: str | None = None  #: e.g. ThrottlingException, modelStreamErrorException, ReadTimeout
    error_message: str | None = None  #: the service's (or the transport's) message, one line, secrets masked
    http_status: int | None = None
    retries: int = 0  #: retries the client made (botocore RetryAttempts)
    # server ground truth (emulator headers; None against AWS)
    server_request_id: str | None = None
    server_queue_s: float | None = None
    server_ttft_s: float | None = None
    server_decode_s: float | None = None
    server_latency_s: float | None = None  #: service-reported latency (metrics.latencyMs / invocation latency)
    # production features (optional within schema v1: older shards read them as nulls)
    cache_read_tokens: int | None = None  #: input tokens read from the prompt cache (usage cacheReadInputTokens)
    cache_write_tokens: int | None = None  #: input tokens written to the prompt cache (cacheWriteInputTokens)
    stop_reason: str | None = None  #: why the answer ended: end_turn, tool_use, max_tokens, stop_sequence, ...
    answered_model: str | None = None  #: model id that answered (differs from model_id after a fallback)
    fallback: bool | None = None  #: True: the primary was throttled / failed and the fallback model or tier was asked
    task_id: str | None = None  #: agent workload: the task (user session) this turn belongs to
    turn: int | None = None  #: agent workload: 1-based turn within the task
    #: shared capacity (issue 15): other customers' demand on the emulator during the run, share of capacity
    background_load: float | None = None
    schema_version: int = field(default=SCHEMA_VERSION)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def _arrow_type(name: str) -> pa.DataType:
    ints = {"seq", "users", "n_chunks", "input_tokens", "output_tokens", "http_status", "retries", "schema_version",
            "cache_read_tokens", "cache_write_tokens", "turn"}  # fmt: skip
    strings = {
        "run_id", "cell_id", "engine", "worker", "api", "model_id", "tier_requested", "tier_served",
        "prompt_id", "prompt_size", "status", "error_kind", "error_code", "error_message", "server_request_id",
        "stop_reason", "answered_model", "task_id",
    }  # fmt: skip
    if name in ints:
        return pa.int64()
    if name == "fallback":
        return pa.bool_()
    if name in strings:
        return pa.string()
    if name == "chunk_times":
        return pa.list_(pa.float64())
    return pa.float64()


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))
ARROW_SCHEMA = pa.schema([pa.field(c, _arrow_type(c)) for c in COLUMNS])


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: one record's values in :data:`COLUMNS` order, read straight from its slots (no per-row dict, no deep copy)
_values = attrgetter(*COLUMNS)


def _column_array(name: str, values: list[Any]) -> pa.Array:
    """One column; a NaN (pandas' missing value in mapping rows) becomes null, as in every reader."""
    field_ = ARROW_SCHEMA.field(name)
    if name == "chunk_times":  # only the top level: NaN inside a list is a value
        return pa.array([_clean(v) for v in values], type=field_.type)
    return pa.array(values, type=field_.type, from_pandas=True)


def records_table(rows: Iterable[RequestRecord | Mapping[str, Any]]) -> pa.Table:
    """The arrow table of ``rows`` (records or mappings of schema fields), built column by column.

    Why not ``asdict`` per row: it deep-copies every field and cost ~27 ms per 500 records in pure Python,
    holding the GIL and stalling the engine's event loop; reading the slots is ~20x cheaper."""
    rows = list(rows)
    if all(isinstance(r, RequestRecord) for r in rows):
        cols = list(zip(*map(_values, rows), strict=True)) if rows else [() for _ in COLUMNS]
        return pa.Table.from_arrays([_column_array(c, list(v)) for c, v in zip(COLUMNS, cols, strict=True)],
                                    schema=ARROW_SCHEMA)  # fmt: skip
    dicts = [dict(zip(COLUMNS, _values(r), strict=True)) if isinstance(r, RequestRecord) else dict(r) for r in rows]
    unknown = {k for d in dicts for k in d} - set(COLUMNS)
    if unknown:
        raise RecordsError(f"unknown record fields {sorted(unknown)}; schema v{SCHEMA_VERSION} has {list(COLUMNS)}")
    return pa.Table.from_arrays([_column_array(c, [d.get(c) for d in dicts]) for c in COLUMNS], schema=ARROW_SCHEMA)


def write_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Encode and write one shard atomically (pyarrow releases the GIL here: fine on a thread)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def warm_up() -> None:
    """Build and encode one throw-away shard in memory: the first table pyarrow builds in a process costs
    ~5x a later one (lazy set-up), which an engine should pay before its run, not at its first flush."""
    rec = RequestRecord(run_id="", cell_id="", engine="", worker="", seq=0, api="", model_id="", tier_requested=None,
                        tier_served=None, prompt_id="", prompt_size="", users=None, rate_rps=None,
                        intended_start=None, start=0.0, schedule_lag_s=None, ttft_s=None, e2e_s=None,
                        chunk_times=[0.0])  # fmt: skip
    pq.write_table(records_table([rec]), pa.BufferOutputStream())


def write_shard(rows: Iterable[RequestRecord | Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write rows to one parquet shard atomically; returns the final path."""
    return write_table(records_table(rows), path)


class RecordWriter:
    """Buffers records and flushes them as numbered shards ``records-<worker>-<n>.parquet`` in ``folder``.

    Thread-safe. Flushes every ``flush_rows`` rows or ``flush_seconds`` seconds (checked on ``add``), and on
    ``close``; use it as a context manager so an interrupt still writes what was measured. Every
    ``batch_rows`` added rows become an arrow table at once (~0.2 ms per 100 rows), so a flush only joins
    tables: measured in the burst engine at 250 users, building 500 rows at a flush stalled its loop 5-15 ms.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        worker: str = "w0",
        *,
        flush_rows: int = 500,
        flush_seconds: float = 5.0,
        batch_rows: int = 100,
    ) -> None:
        self.folder = Path(folder)
        self.worker = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in worker)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.batch_rows = max(1, batch_rows)
        self._buf: list[RequestRecord] = []
        self._tables: list[pa.Table] = []  #: batches already converted, in order
        self._pending = 0  #: rows in _tables and _buf
        self._lock = threading.Lock()
        self._n = 0
        self._last = time.monotonic()
        self.rows_written = 0
        self.shards: list[Path] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._buf.append(record)
            self._pending += 1
            if len(self._buf) >= self.batch_rows:
                self._tables.append(records_table(self._buf))
                self._buf = []
            due = self._pending >= self.flush_rows or time.monotonic() - self._last >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        job = self.prepare()
        if job is not None:
            job()

    def prepare(self) -> Callable[[], None] | None:
        """Take the buffered rows and finish their table here; return the write (None if nothing is buffered).

        An event loop calls this itself (the rest since the last batch, and a join) and runs the returned write
        on a thread: pyarrow releases the GIL while it encodes and writes, so the loop keeps running (building
        the table on the thread instead would make the loop wait for the GIL, up to the 5 ms switch interval)."""
        with self._lock:
            tables, rows, n_rows = self._tables, self._buf, self._pending
            self._tables, self._buf, self._pending = [], [], 0
            self._last = time.monotonic()
            if not n_rows:
                return None
            n = self._n
            self._n += 1
            if rows:
                tables.append(records_table(rows))
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        path = self.folder / f"records-{self.worker}-{os.getpid()}-{n:05d}.parquet"

        def write() -> None:
            write_table(table, path)
            with self._lock:
                self.rows_written += n_rows
                self.shards.append(path)

        return write

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def shard_paths(root: str | os.PathLike[str]) -> list[Path]:
    """Every finished shard below ``root`` (temp files of interrupted writes are ignored)."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.exists():
        raise RecordsError(f"records folder {root} does not exist")
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def load_records(root: str | os.PathLike[str], *, keep_chunk_times: bool = False) -> pd.DataFrame:
    """Load every record shard below ``root`` (a folder, a sweep, or one file) into one DataFrame.

    Columns follow :data:`COLUMNS`; an empty folder gives an empty frame with those columns. Shards of an
    unknown schema version raise :class:`RecordsError`.
    """
    paths = shard_paths(root)
    columns = [c for c in COLUMNS if keep_chunk_times or c != "chunk_times"]
    if not paths:
        return ARROW_SCHEMA.empty_table().select(columns).to_pandas()
    tables = []
    for p in paths:
        try:
            present = set(pq.read_schema(p).names)
            t = pq.read_table(p, columns=[c for c in columns if c in present])
        except Exception as exc:  # pyarrow raises several types
            raise RecordsError(f"cannot read record shard {p}: {exc}") from exc
        for c in columns:  # optional columns added within schema v1 (error_message, cache_*, ...) read as nulls from older shards
            if c not in present:
                t = t.append_column(ARROW_SCHEMA.field(c), pa.nulls(len(t), ARROW_SCHEMA.field(c).type))
        tables.append(t.select(columns))
    table = pa.concat_tables(tables, promote_options="default")
    versions = set(table.column("schema_version").to_pylist())
    if versions - {SCHEMA_VERSION}:
        raise RecordsError(f"record shards below {root} have schema versions {sorted(versions)}; "
                           f"this bedrock-lab reads version {SCHEMA_VERSION}")
    return table.to_pandas()

"""Record shards: round trip, atomic writes, schema checks."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from bedrock_lab.errors import RecordsError
from bedrock_lab.records import (
    COLUMNS,
    SCHEMA_VERSION,
    RecordWriter,
    RequestRecord,
    load_records,
    write_shard,
)


def _rec(seq: int, **kw: object) -> RequestRecord:
    base: dict[str, object] = dict(
        run_id="r1", cell_id="c1", engine="burst", worker="w0", seq=seq, api="converse-stream",
        model_id="amazon.nova-lite-v1:0", tier_requested="priority", tier_served="priority",
        prompt_id="small-1", prompt_size="small", users=4, rate_rps=None, intended_start=None,
        start=1_700_000_000.0 + seq, schedule_lag_s=None, ttft_s=0.25 + seq / 100, e2e_s=1.5,
        output_tokens=100, input_tokens=12,
    )  # fmt: skip
    base.update(kw)
    return RequestRecord(**base)  # type: ignore[arg-type]


def test_round_trip_keeps_values_and_types(tmp_path: Path) -> None:
    with RecordWriter(tmp_path, worker="w0", flush_rows=3) as w:
        for i in range(7):
            w.add(_rec(i, chunk_times=[0.1, 0.2] if i == 0 else None))
        w.add(_rec(7, status="error", error_kind="throttled", error_code="ThrottlingException", ttft_s=None))
    assert w.rows_written == 8
    assert len(w.shards) == 3  # 3 + 3 + 2
    df = load_records(tmp_path)
    assert list(df.columns) == [c for c in COLUMNS if c != "chunk_times"]
    assert len(df) == 8
    assert sorted(df["seq"]) == list(range(8))
    row = df.set_index("seq").loc[7]
    assert row["error_kind"] == "throttled" and row["status"] == "error"
    assert math.isnan(row["ttft_s"])
    assert df["schema_version"].eq(SCHEMA_VERSION).all()
    full = load_records(tmp_path, keep_chunk_times=True)
    assert list(full.set_index("seq").loc[0, "chunk_times"]) == [0.1, 0.2]


def test_unfinished_temp_files_are_ignored(tmp_path: Path) -> None:
    write_shard([_rec(0)], tmp_path / "records-a.parquet")
    # what a SIGKILL during a write leaves behind: a truncated temp file
    (tmp_path / ".records-b.parquet.deadbeef.tmp").write_bytes(b"PAR1\x00\x01")
    df = load_records(tmp_path)
    assert len(df) == 1


def test_corrupt_shard_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "records-x.parquet").write_bytes(b"not parquet")
    with pytest.raises(RecordsError, match="records-x.parquet"):
        load_records(tmp_path)


def test_unknown_field_is_rejected(tmp_path: Path) -> None:
    row = _rec(0).to_row() | {"api_key": "nope"}
    with pytest.raises(RecordsError, match="api_key"):
        write_shard([row], tmp_path / "r.parquet")
    assert not list(tmp_path.iterdir())


def test_future_schema_version_is_refused(tmp_path: Path) -> None:
    write_shard([_rec(0, schema_version=SCHEMA_VERSION + 1)], tmp_path / "r.parquet")
    with pytest.raises(RecordsError, match="schema versions"):
        load_records(tmp_path)


def test_empty_folder_gives_empty_frame_with_columns(tmp_path: Path) -> None:
    df = load_records(tmp_path)
    assert df.empty and "ttft_s" in df.columns


def test_missing_folder_is_a_records_error(tmp_path: Path) -> None:
    with pytest.raises(RecordsError, match="does not exist"):
        load_records(tmp_path / "nope")


def test_time_based_flush(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path, flush_rows=10_000, flush_seconds=0.0)
    w.add(_rec(0))
    assert w.rows_written == 1  # flushed on add because the interval (0 s) had passed
    assert isinstance(load_records(tmp_path), pd.DataFrame)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

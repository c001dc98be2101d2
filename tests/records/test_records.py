"""Record shards: round trip, atomic writes, schema checks."""

from __future__ import annotations

import math
import os
import random
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bedrock_lab._files import atomic_path
from bedrock_lab.errors import RecordsError
from bedrock_lab.records import (
    ARROW_SCHEMA,
    COLUMNS,
    SCHEMA_VERSION,
    RecordWriter,
    RequestRecord,
    load_records,
    records_table,
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


def _asdict_table(rows: list[RequestRecord | dict[str, object]]) -> pa.Table:
    """The writer before it read slots: one ``asdict`` per row, NaN cleaned to null (the oracle)."""
    dicts = [asdict(r) if isinstance(r, RequestRecord) else dict(r) for r in rows]

    def clean(v: object) -> object:
        return None if isinstance(v, float) and math.isnan(v) else v

    return pa.Table.from_pydict({c: [clean(d.get(c)) for d in dicts] for c in COLUMNS}, schema=ARROW_SCHEMA)


def _varied(n: int) -> list[RequestRecord]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        err = rng.random() < 0.3
        out.append(_rec(
            i, worker=f"w{i % 5}", tier_requested=rng.choice([None, "flex", "priority"]), users=rng.choice([None, 8]),
            rate_rps=rng.choice([None, 2.5]), intended_start=rng.choice([None, 1.7e9 + i]),
            ttft_s=None if err else rng.random(), e2e_s=rng.choice([None, float("nan"), rng.random()]),
            itl_p95_s=rng.random(), n_chunks=rng.randint(0, 40), status="error" if err else "ok",
            error_kind="throttled" if err else None, error_message="m\u00e9ssage" if err else None,
            chunk_times=rng.choice([None, [], [rng.random() for _ in range(rng.randint(1, 9))]]),
            server_ttft_s=rng.choice([None, 0.25]),
        ))  # fmt: skip
    return out


def test_column_writer_matches_the_asdict_writer(tmp_path: Path) -> None:
    recs = _varied(300)
    assert records_table(recs).equals(_asdict_table(list(recs)))
    # mapping rows (what a DataFrame gives: NaN for missing values) and mixed rows too
    frame_rows = pd.DataFrame([r.to_row() for r in recs]).drop(columns=["chunk_times"]).to_dict("records")
    assert records_table(frame_rows).equals(_asdict_table(frame_rows))
    mixed: list[RequestRecord | dict[str, object]] = [recs[0], recs[1].to_row()]
    assert records_table(mixed).equals(_asdict_table(mixed))
    # and what reaches disk reads back the same through load_records
    write_shard(recs, tmp_path / "new.parquet")
    with atomic_path(tmp_path / "old" / "old.parquet") as tmp:
        pq.write_table(_asdict_table(list(recs)), tmp)
    pd.testing.assert_frame_equal(load_records(tmp_path / "new.parquet", keep_chunk_times=True),
                                  load_records(tmp_path / "old", keep_chunk_times=True))  # fmt: skip


def test_empty_rows_give_an_empty_table_with_the_schema() -> None:
    t = records_table([])
    assert t.num_rows == 0 and t.schema.equals(ARROW_SCHEMA)


def test_prepare_takes_the_rows_now_and_writes_later(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path, flush_rows=10_000, flush_seconds=1e9)
    assert w.prepare() is None  # nothing buffered, nothing to write
    w.add(_rec(0))
    w.add(_rec(1))
    write = w.prepare()
    assert write is not None
    w.add(_rec(2))  # lands in the next shard, not in the table already taken
    assert w.rows_written == 0 and not list(tmp_path.iterdir())
    write()
    assert w.rows_written == 2 and sorted(load_records(tmp_path)["seq"]) == [0, 1]
    w.close()
    assert w.rows_written == 3 and len(w.shards) == 2


def test_warm_up_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bedrock_lab.records import warm_up

    monkeypatch.chdir(tmp_path)
    warm_up()
    assert not list(tmp_path.iterdir())


def test_batched_rows_make_the_same_shards(tmp_path: Path) -> None:
    recs = _varied(53)
    with RecordWriter(tmp_path / "batched", flush_rows=20, batch_rows=3) as w:
        for r in recs:
            w.add(r)
    with RecordWriter(tmp_path / "whole", flush_rows=20, batch_rows=1000) as whole:
        for r in recs:
            whole.add(r)
    assert w.rows_written == whole.rows_written == 53 and len(w.shards) == len(whole.shards) == 3
    for a, b in zip(w.shards, whole.shards, strict=True):
        assert pq.read_table(a).equals(pq.read_table(b))  # same rows, same order, same values per shard

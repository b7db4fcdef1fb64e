"""The cheaper write path keeps idempotency: every reading is stored exactly once, whatever the path.

Real TimescaleDB. A batch that is provably new is copied straight into ``readings``; the primary key
refuses a COPY that meets a stored row and the store falls back to the staging path in a savepoint.
Covered: duplicates across batches of one instance, the same batch from two instances (one after the
other and concurrently), a redelivery after a crash (a fresh instance with an empty recent-times cache),
duplicates inside one batch, and the change log of a direct COPY. Pure tests check the COPY buffer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import Batch, ReadingStore
from ingest._batch import RowKey
from ingest._copy_rows import COPY_HEADER, COPY_TRAILER, RecentTimes, prepare_rows
from schemas import build_topic
from schemas.payload_fast import PG_EPOCH, MetricColumns

NOW = datetime.now(UTC).replace(microsecond=0)


def _payload(device: str, seq: int, start: datetime, n: int = 20) -> bytes:
    readings = [{"ts": (start + timedelta(minutes=i)).isoformat(), "metric": "active_energy_import",
                 "value": 1000.0 + seq * n + i * 0.25, "unit": "kWh"} for i in range(n)]
    return json.dumps({"v": 1, "device": device, "seq": seq, "readings": readings}).encode()


def _batch(park: str, messages: list[tuple[str, int]], start: datetime, n: int = 20) -> Batch:
    batch = Batch()
    for device, seq in messages:
        batch.add(build_topic(park, device), _payload(device, seq, start + timedelta(minutes=seq * n), n),
                  received_at=NOW, ack=None)
    return batch


def _stored(database_url: str, park: str) -> tuple[int, int, int]:
    """(rows in readings, distinct (series, ts), change-log rows) of ``park``."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """SELECT count(*), count(DISTINCT (r.series_id, r.ts)),
                      (SELECT coalesce(sum(n_rows), 0) FROM reading_changes c JOIN series s2 USING (series_id)
                       JOIN devices d2 USING (device_key) WHERE d2.park_id = %(p)s)
               FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
               WHERE d.park_id = %(p)s""", {"p": park}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


async def _write(store: ReadingStore, batch: Batch) -> Any:
    try:
        return await store.write(batch)
    finally:
        await store.close()


START = NOW - timedelta(days=3)


def test_duplicates_across_batches_of_one_instance_are_stored_once(database_url: str, park_id: str) -> None:
    async def scenario() -> list[Any]:
        store = ReadingStore(database_url)
        try:
            first = await store.write(_batch(park_id, [("m-1", 0), ("m-2", 0)], START))
            # m-1/0 redelivered next to new messages: not provably new, so the staging path skips it
            second = await store.write(_batch(park_id, [("m-1", 0), ("m-1", 1), ("m-2", 1)], START))
            third = await store.write(_batch(park_id, [("m-1", 2), ("m-2", 2)], START))
            return [first, second, third]
        finally:
            await store.close()

    first, second, third = asyncio.run(scenario())
    assert (first.direct, first.stored, first.duplicates) == (True, 40, 0)
    assert (second.direct, second.stored, second.duplicates) == (False, 40, 20)
    assert (third.direct, third.stored) == (True, 40)
    rows, distinct, changes = _stored(database_url, park_id)
    assert (rows, distinct) == (120, 120)
    assert changes >= 120  # a staged batch's change-log row counts its staged rows (duplicates included)


def test_same_batch_from_two_instances_is_stored_once(database_url: str, park_id: str) -> None:
    """Instance B holds the batch A already stored (a redelivery to another instance): B's cache knows
    nothing, so it tries the direct COPY, the primary key refuses it, and the staging path skips it."""
    messages = [("m-1", 0), ("m-2", 0), ("m-3", 0)]
    a = asyncio.run(_write(ReadingStore(database_url), _batch(park_id, messages, START)))
    b = asyncio.run(_write(ReadingStore(database_url), _batch(park_id, messages, START)))
    assert (a.direct, a.stored) == (True, 60)
    assert (b.direct, b.stored, b.duplicates) == (False, 0, 60)
    assert _stored(database_url, park_id) == (60, 60, 60)


def test_same_batch_from_two_instances_at_once_is_stored_once(database_url: str, park_id: str) -> None:
    """Both COPY at the same moment: one waits on the other's uncommitted keys, then is refused and stages."""
    messages = [(f"m-{i}", s) for i in range(5) for s in range(3)]

    async def both() -> list[Any]:
        stores = [ReadingStore(database_url), ReadingStore(database_url)]
        await asyncio.gather(*(s.connect() for s in stores))
        await _write(ReadingStore(database_url), _batch(park_id, [("m-0", 9)], START))  # devices exist first
        try:
            return list(await asyncio.gather(*(s.write(_batch(park_id, messages, START)) for s in stores)))
        finally:
            await asyncio.gather(*(s.close() for s in stores))

    results = asyncio.run(both())
    assert sorted(r.stored for r in results) == [0, 300]
    assert sum(r.duplicates for r in results) == 300
    rows, distinct, _changes = _stored(database_url, park_id)
    assert (rows, distinct) == (320, 320)


def test_redelivered_batch_after_a_crash_is_stored_once(database_url: str, park_id: str) -> None:
    """The instance committed, crashed before acknowledging; its successor (empty cache) gets the batch again."""
    messages = [("m-1", 0), ("m-1", 1)]
    asyncio.run(_write(ReadingStore(database_url), _batch(park_id, messages, START)))
    again = asyncio.run(_write(ReadingStore(database_url), _batch(park_id, [*messages, ("m-1", 2)], START)))
    assert (again.direct, again.stored, again.duplicates) == (False, 20, 40)
    assert _stored(database_url, park_id)[:2] == (60, 60)


def test_duplicates_inside_one_batch_take_the_staging_path(database_url: str, park_id: str) -> None:
    result = asyncio.run(_write(ReadingStore(database_url), _batch(park_id, [("m-1", 0), ("m-1", 0)], START)))
    assert (result.direct, result.stored, result.duplicates) == (False, 20, 20)
    assert _stored(database_url, park_id)[:2] == (20, 20)


def test_direct_copy_stores_exact_values_and_its_change_log(database_url: str, park_id: str) -> None:
    start = START.replace(microsecond=123_456)
    result = asyncio.run(_write(ReadingStore(database_url), _batch(park_id, [("m-1", 0), ("m-2", 0)], start, 5)))
    assert result.direct
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            """SELECT d.device_id, r.ts, r.value, r.quality FROM readings r JOIN series s USING (series_id)
               JOIN devices d USING (device_key) WHERE d.park_id = %s ORDER BY 1, 2""", (park_id,)).fetchall()
        changes = conn.execute(
            """SELECT d.device_id, c.ts_min, c.ts_max, c.n_rows FROM reading_changes c JOIN series s USING (series_id)
               JOIN devices d USING (device_key) WHERE d.park_id = %s ORDER BY 1""", (park_id,)).fetchall()
    expected = [(dev, start + timedelta(minutes=i), 1000.0 + i * 0.25, 0) for dev in ("m-1", "m-2") for i in range(5)]
    assert rows == expected
    assert changes == [(dev, start, start + timedelta(minutes=4), 5) for dev in ("m-1", "m-2")]


# -- pure: the COPY buffer and the "is it new" check -------------------------------------------------
def _columns(ts: list[int], values: list[float], quality: list[int]) -> MetricColumns:
    return MetricColumns("active_power", np.array(ts, np.int64), np.array(values, np.float64),
                         np.array(quality, np.int16))


def _parse(copy_data: bytes) -> list[tuple[int, int, float, int]]:
    """Read a binary COPY buffer back, field by field (the format PostgreSQL documents)."""
    assert copy_data.startswith(COPY_HEADER)
    assert copy_data.endswith(COPY_TRAILER)
    body, rows = memoryview(copy_data)[len(COPY_HEADER):-len(COPY_TRAILER)], []
    offset = 0
    while offset < len(body):
        (fields,) = struct.unpack_from(">h", body, offset)
        assert fields == 4
        sid, ts, value, quality = struct.unpack_from(">xxxxixxxxqxxxxdxxxxh", body, offset + 2)
        rows.append((sid, ts, value, quality))
        offset += 2 + 8 + 12 + 12 + 6
    return rows


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(-(2**62), 2**62), st.floats(allow_nan=False),
                                   st.integers(0, 3)), max_size=6), max_size=5))
def test_copy_buffer_holds_every_row_in_order(series_rows: list[list[tuple[int, float, int]]]) -> None:
    rows = {RowKey("p", f"d{i}", "active_power"): [_columns(*map(list, zip(*r, strict=True)))] if r else []
            for i, r in enumerate(series_rows)}
    ids = {key: 100 + i for i, key in enumerate(rows)}
    prepared = prepare_rows(rows, ids)
    expected = [(ids[k], ts, v, q) for k, chunks in rows.items() for c in chunks
                for ts, v, q in zip(c.ts_us.tolist(), c.value.tolist(), c.quality.tolist(), strict=True)]
    assert _parse(prepared.copy_data) == expected
    assert prepared.n_rows == len(expected)
    per_series = {ids[k]: [ts for c in chunks for ts in c.ts_us.tolist()] for k, chunks in rows.items() if chunks
                  and len(chunks[0].ts_us)}
    assert prepared.series_ids.tolist() == list(per_series)
    assert prepared.ts_min.tolist() == [min(t) for t in per_series.values()]
    assert prepared.ts_max.tolist() == [max(t) for t in per_series.values()]
    strictly = all(all(b > a for a, b in itertools.pairwise(t)) for t in per_series.values())
    assert prepared.increasing == strictly


def test_recent_times_says_new_only_after_the_committed_end() -> None:
    key = RowKey("p", "d", "active_power")
    recent = RecentTimes()
    first = prepare_rows({key: [_columns([10, 20, 30], [1.0, 2.0, 3.0], [0, 0, 0])]}, {key: 7})
    assert recent.all_new(first)  # nothing known yet: try the direct path (the primary key guards it)
    recent.committed(first)
    assert not recent.all_new(first)
    later = prepare_rows({key: [_columns([31, 40], [1.0, 2.0], [0, 0])]}, {key: 7})
    overlapping = prepare_rows({key: [_columns([30, 40], [1.0, 2.0], [0, 0])]}, {key: 7})
    assert recent.all_new(later)
    assert not recent.all_new(overlapping)


def test_pg_epoch_is_postgres_epoch() -> None:
    assert datetime(2000, 1, 1, tzinfo=UTC) == PG_EPOCH


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_row_batches(n: int) -> None:
    key = RowKey("p", "d", "active_power")
    prepared = prepare_rows({key: [_columns([5] * n, [1.0] * n, [0] * n)]}, {key: 1})
    assert prepared.n_rows == n
    assert prepared.increasing
    assert len(_parse(prepared.copy_data)) == n

"""The backfill's performance paths change no result: parallel reads/writes, append-only after TRUNCATE.

A full rebuild of every park (TRUNCATE, batches of one meter, two readers and two writers, no range
deletes) must store exactly what a per-park rebuild stores (one batch, range delete + insert on one
connection). Plus the building blocks: ordered prefetch, writers that commit per task and re-raise, the
phase timer.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from aggregation._bulk import Bulk
from aggregation._jobs import AggregationJob
from aggregation._pipeline import Prefetcher, Writers
from aggregation._profile import PhaseTimer
from aggregation._settings import AggregationSettings
from infra.db import SiteRecord, migrate
from tests.aggregation._seed import Meter, create_park, create_series, register_rows, write_readings

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 9, 1, tzinfo=SH).astimezone(UTC)
END = START + timedelta(days=12)
Q = timedelta(minutes=15)

METERS = [
    Meter("m1", per_interval=41.0, level=1, role="park_boundary", rated_power_kw=4000),
    Meter("m2-office", per_interval=10.0, level=2, site="office", rated_power_kw=600),
    Meter("m2-ws", per_interval=lambda ts: 15.0 + (ts.hour % 5), level=2, site="workshop", rated_power_kw=1600),
    Meter("m2-dc", per_interval=15.0, level=2, site="dc", role="dc_facility", rated_power_kw=400),
    Meter("m3-it", per_interval=10.0, level=3, site="dc", role="dc_it", metadata={"pue_category": "2"}),
    Meter("wrap", per_interval=7.5, level=3, site="office", register_max=1000.0, start_value=100.0),
    Meter("pv", metric="generated_energy", per_interval=5.0, role="pv", site="office"),
]
SITES = [SiteRecord("office", is_public_building=True, floor_area_m2=12_000), SiteRecord("workshop"),
         SiteRecord("dc", kind="data_centre")]

SNAPSHOTS = {
    "interval_energy": "SELECT series_id, ts, energy, quality, flags, estimated_share, coverage FROM interval_energy "
                       "ORDER BY 1, 2",
    "meter_rollups": "SELECT series_id, grain, period_start, energy, estimated_energy, n_intervals, n_estimated, "
                     "n_expected FROM meter_rollups ORDER BY 1, 2, 3",
    "group_rollups": "SELECT park_id, grain, period_start, dimension, member, carrier, metric, energy "
                     "FROM group_rollups ORDER BY 1, 2, 3, 4, 5, 6, 7",
    "balance_checks": "SELECT park_id, grain, period_start, carrier, metric, level1_energy, level2_energy, alarm "
                      "FROM balance_checks ORDER BY 1, 2, 3, 4, 5",
    "pue_results": "SELECT park_id, site_id, grain, period_start, pue FROM pue_results ORDER BY 1, 2, 3, 4",
}


def _seed(url: str, park_id: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        create_park(conn, park_id, SITES)
        for m in METERS:
            sid = create_series(conn, park_id, m)
            rows = register_rows(m, START, END, Q)
            if m.device_id == "m2-office":
                # a 6-hour hole on day 9: estimated from a like day, so the history read runs too
                hole_lo, hole_hi = START + timedelta(days=9, hours=2), START + timedelta(days=9, hours=8)
                rows = [r for r in rows if not hole_lo < r[0] < hole_hi]
            write_readings(conn, sid, rows)


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in SNAPSHOTS.items()}


def _job(url: str, **kw: Any) -> AggregationJob:
    return AggregationJob(AggregationSettings(database_url=url, aggregation_gap_timeout_s=0.0, **kw))


def _same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-9) if all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in x if v is not None) else x == y


@pytest.mark.services
def test_pipelined_full_rebuild_stores_what_a_serial_per_park_rebuild_stores(scratch_database_url: str) -> None:
    url = scratch_database_url
    migrate(url)
    _seed(url, "perf-a")
    _seed(url, "perf-b")
    pipelined = _job(url, aggregation_series_per_batch=1, aggregation_read_connections=2,
                     aggregation_write_connections=2)
    report = pipelined.run(rebuild=True)                   # all parks: TRUNCATE, append-only first pass
    assert report.n_intervals == 2 * len(METERS) * 12 * 96
    assert report.phases.calls()["meters.write (writer threads)"] >= 2 * len(METERS)
    full = _snapshot(url)
    assert len(full["interval_energy"]) == report.n_intervals
    assert any(row[3] != 0 for row in full["interval_energy"])              # the hole was estimated
    assert full["pue_results"]
    assert full["balance_checks"]
    assert full["group_rollups"]

    serial = _job(url, aggregation_series_per_batch=1000, aggregation_read_connections=1,
                  aggregation_write_connections=1)
    for park in ("perf-a", "perf-b"):
        serial.run(rebuild=True, park_id=park)             # range deletes + inserts, one batch, one connection
    again = _snapshot(url)
    for name in SNAPSHOTS:
        _same(again[name], full[name])


@pytest.mark.services
def test_prefetcher_returns_results_in_order_on_distinct_connections(database_url: str) -> None:
    busy: set[int] = set()
    overlap = threading.Event()
    lock = threading.Lock()

    def fetch(bulk: Bulk, i: int) -> tuple[int, int]:
        with lock:
            if busy:
                overlap.set()
            assert id(bulk) not in busy, "a connection was lent to two reads at once"
            busy.add(id(bulk))
        try:
            time.sleep(0.02 * (3 - i % 3))                 # later items finish first
            value = bulk.read(f"SELECT {i}::int4 AS v").item()
            bulk.commit()
            return i, int(value)
        finally:
            with lock:
                busy.discard(id(bulk))

    with Prefetcher(database_url, 3, fetch) as reader:
        out = list(reader.map(range(10)))
    assert out == [(i, i) for i in range(10)]
    assert overlap.is_set()


@pytest.mark.services
def test_writers_commit_each_task_and_reraise_the_first_failure(scratch_database_url: str) -> None:
    url = scratch_database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE perf_w (k int PRIMARY KEY)")

    def insert(k: int, fail: bool = False) -> Any:
        def write(bulk: Bulk) -> None:
            bulk.execute(f"INSERT INTO perf_w VALUES ({k})")
            if fail:
                raise RuntimeError(f"task {k} failed")
        return write

    with Writers(url, 2) as writers:
        for k in range(5):
            writers.submit(insert(k))
        writers.submit(insert(99, fail=True))
        with pytest.raises(RuntimeError, match="task 99"):
            writers.drain()
    with psycopg.connect(url) as conn:
        keys = [r[0] for r in conn.execute("SELECT k FROM perf_w ORDER BY k")]
    assert keys == [0, 1, 2, 3, 4]                          # the failed task rolled back, the others committed


def test_phase_timer_adds_sections_across_threads_and_counts_failures() -> None:
    timer = PhaseTimer()
    with timer.section("a"):
        time.sleep(0.01)
    with pytest.raises(ValueError, match="still timed"), timer.section("a"):
        raise ValueError("still timed")
    threads = [threading.Thread(target=lambda: timer.add("b", 0.5)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert timer.calls() == {"a": 2, "b": 8}
    assert timer.seconds()["b"] == pytest.approx(4.0)
    assert timer.seconds()["a"] >= 0.01
    timer.clear()
    assert timer.seconds() == {}

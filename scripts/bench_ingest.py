"""Ingest benchmark: MQTT QoS 1 → ParkPulse ingest → TimescaleDB, against the raw COPY ceiling and a naive consumer.

Run with ``parkpulse bench ingest`` (or ``python scripts/bench_ingest.py``) after ``parkpulse services up``.
Everything runs on this machine in one run, so the ratios compare like with like:

1. **ParkPulse ingest**: ``--instances`` ``parkpulse ingest`` processes (partitioned plain subscriptions) and
   a publisher process at QoS 1 (``--per-message`` readings per MQTT message, at most ``--inflight``
   unacknowledged). Two modes:

   * fixed rate (default): ``--rate`` readings/s for ``--duration`` seconds. Throughput is measured from
     the first publish to the last commit; latency per message from its publish time to the commit of its
     change-log row (``reading_changes.committed_at``);
   * ``--saturate``: the highest rate sustained with 0 lost, found by a closed-loop probe, a bisection and a
     confirmation step, then the latency curve below it (:mod:`bench_ingest_saturate`).

   Above saturation nothing crashes: a PUBACK that does not come within ``--publish-timeout`` is counted as
   unacknowledged, the backlog and the time to drain it are reported, and the publisher's result comes back
   over a pipe (no file to go missing). CPU per reading of the ingest processes, the PostgreSQL server and
   the broker is read from /proc (whole-server figures: meaningful on an otherwise quiet machine).
2. **COPY ceiling**: the same number of rows (capped by ``--ceiling-rows``) written by one binary COPY
   straight into the same ``readings`` table: no broker, no validation, no idempotency.
3. **Naive consumer**: one process subscribing and doing one autocommit ``INSERT`` per reading, for
   ``--naive-seconds``.

The benchmark uses its own database (``<db>_bench``), created and dropped by the run. The last line printed
is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiomqtt
import psycopg
from bench_publisher import PARK, Payloads, PublishSpec, publish_step

from infra.db import migrate
from infra.settings import ServiceSettings, parse_mqtt_url
from schemas import build_topic


def _bench_db_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(_bench_db_url(admin_url, name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _metric_value(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"parkpulse_ingest_{name} "):
                return float(line.split()[-1])
    return 0.0


# -- naive consumer ----------------------------------------------------------------------------------
async def _naive(mqtt_url: str, database_url: str, seconds: float, origin: datetime) -> float:
    ep = parse_mqtt_url(mqtt_url)
    topic = build_topic("bench-naive", "m-0000")
    inserted = 0
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO parks (park_id) VALUES ('bench-naive') ON CONFLICT DO NOTHING")
        await conn.execute("INSERT INTO devices (park_id, device_id) VALUES ('bench-naive', 'm-0000') "
                           "ON CONFLICT DO NOTHING")
        row = await (await conn.execute(
            """INSERT INTO series (device_key, metric, unit) SELECT device_key, 'active_energy_import', 'kWh'
               FROM devices WHERE park_id = 'bench-naive' RETURNING series_id""")).fetchone()
        assert row is not None
        series_id = row[0]
        v5 = aiomqtt.ProtocolVersion.V5
        async with aiomqtt.Client(ep.host, ep.port, protocol=v5, identifier="bench-naive-sub") as sub, \
                aiomqtt.Client(ep.host, ep.port, protocol=v5, identifier="bench-naive-pub") as pub:
            await sub.subscribe(topic, qos=1)
            pub.pending_calls_threshold = 100_000
            build = Payloads(origin, 100, 60.0).build
            payloads = [build("m-0000", seq) for seq in range(2000)]
            publishing = asyncio.gather(*(pub.publish(topic, p, qos=1, timeout=60) for p in payloads),
                                        return_exceptions=True)  # a slow broker must not end the run
            started = time.perf_counter()
            async for message in sub.messages:
                doc = json.loads(message.payload)
                for r in doc["readings"]:
                    await conn.execute(
                        "INSERT INTO readings (series_id, ts, value, quality) VALUES (%s, %s, %s, 0) "
                        "ON CONFLICT DO NOTHING", (series_id, datetime.fromisoformat(r["ts"]), float(r["value"])))
                    inserted += 1
                if time.perf_counter() - started >= seconds:
                    break
            elapsed = time.perf_counter() - started
            await publishing
    return inserted / elapsed


# -- COPY ceiling ------------------------------------------------------------------------------------
def _copy_ceiling(database_url: str, rows: int, origin: datetime) -> float:
    n_series = 1000
    per_series = max(rows // n_series, 1)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO parks (park_id) VALUES ('bench-copy') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO devices (park_id, device_id) "
                     "SELECT 'bench-copy', 'c-' || g FROM generate_series(1, %s) g", (n_series,))
        ids = [r[0] for r in conn.execute(
            """INSERT INTO series (device_key, metric, unit) SELECT device_key, 'active_energy_import', 'kWh'
               FROM devices WHERE park_id = 'bench-copy' RETURNING series_id""").fetchall()]
        conn.commit()
        stamps = [origin + timedelta(minutes=i) for i in range(per_series)]
        started = time.perf_counter()
        copy_sql = "COPY readings (series_id, ts, value, quality) FROM STDIN (FORMAT BINARY)"
        with conn.cursor() as cur, cur.copy(copy_sql) as cp:
            cp.set_types(["int4", "timestamptz", "float8", "int2"])
            for sid in ids:
                for i, ts in enumerate(stamps):
                    cp.write_row((sid, ts, i * 0.25, 0))
        conn.commit()
        elapsed = time.perf_counter() - started
    return n_series * per_series / elapsed


# -- orchestration -----------------------------------------------------------------------------------
def _start_ingest(client_id: str, partition: tuple[int, int], database_url: str, mqtt_url: str, port: int,
                  log_dir: Path) -> subprocess.Popen[bytes]:
    """One ingest process storing partition ``partition[0]`` of ``partition[1]`` (plain subscriptions)."""
    env = {**os.environ, "PARKPULSE_DATABASE_URL": database_url, "PARKPULSE_MQTT_URL": mqtt_url,
           "PARKPULSE_PARTITION_INDEX": str(partition[0]), "PARKPULSE_PARTITION_COUNT": str(partition[1]),
           "PARKPULSE_LOG_LEVEL": "WARNING"}
    with (log_dir / f"{client_id}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "parkpulse.cli", "ingest", "--client-id", client_id, "--park", PARK,
             "--metrics-port", str(port), "--no-migrate"], env=env, stdout=log, stderr=log)


async def _forget_sessions(mqtt_url: str, client_ids: list[str]) -> None:
    """Delete the benchmark instances' persistent sessions, so no later run shares a group with a ghost."""
    ep = parse_mqtt_url(mqtt_url)
    for client_id in client_ids:
        async with aiomqtt.Client(ep.host, ep.port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V5,
                                  clean_start=True):
            pass


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _count(database_url: str) -> int:
    """Readings stored so far. Until the baselines run, every change-log row is the benchmark park's, so
    no join is needed (the poll runs every 0.25 s next to the instances it measures)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT coalesce(sum(n_rows), 0) FROM reading_changes").fetchone()
        return int(row[0]) if row else 0


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds used so far by each of ``pids`` that still runs (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15 of the line)
    return used


def _pids_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (e.g. all PostgreSQL server processes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _delta(after: dict[int, float], before: dict[int, float]) -> float:
    """CPU used between two samples by the processes alive at the second (one that exited meanwhile is lost,
    so a figure can only be an underestimate, never negative)."""
    return sum(max(used - before.get(pid, 0.0), 0.0) for pid, used in after.items())


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU seconds used so far, per process, by the ingest instances, the PostgreSQL server and the broker."""

    ingest: dict[int, float]
    postgres: dict[int, float]
    broker: dict[int, float]

    def per_reading_us(self, since: CpuSample, readings: int) -> dict[str, float]:
        """µs of CPU per reading of each part between ``since`` and this sample."""
        n = max(readings, 1)
        return {part: round(_delta(getattr(self, part), getattr(since, part)) / n * 1e6, 3)
                for part in ("ingest", "postgres", "broker")}


@dataclass(slots=True)
class BenchCluster:
    """The benchmark database, its ingest instances and the run's fixed time origin."""

    admin_url: str
    db_name: str
    bench_url: str
    mqtt_url: str
    ports: list[int]
    origin: datetime
    ingest_pids: list[int]

    def cpu(self) -> CpuSample:
        """CPU used so far (the PostgreSQL and broker figures are whole-server: run on a quiet machine)."""
        return CpuSample(_cpu_by_pid(self.ingest_pids), _cpu_by_pid(_pids_named("postgres")),
                         _cpu_by_pid(_pids_named("mosquitto")))

    def stored(self) -> int:
        """Readings stored so far for the benchmark park (from the change log)."""
        return _count(self.bench_url)

    def metric(self, name: str) -> float:
        """One ingest counter summed over the instances (0 for an instance that does not answer)."""
        total = 0.0
        for port in self.ports:
            try:
                total += _metric_value(port, name)
            except OSError:
                continue
        return total

    def last_change_id(self) -> int:
        """The newest change-log id: latency queries of a step look only at changes after it."""
        with psycopg.connect(self.bench_url) as conn:
            row = conn.execute("SELECT coalesce(max(change_id), 0) FROM reading_changes").fetchone()
            return int(row[0]) if row else 0


@contextmanager
def ingest_cluster(args: argparse.Namespace, origin: datetime) -> Iterator[BenchCluster]:
    """A fresh benchmark database with ``args.instances`` ingest processes running; stopped on exit.

    The database outlives the block (the baselines run in it afterwards): :func:`drop_bench_database`.
    """
    settings = ServiceSettings()  # type: ignore[call-arg]
    admin_url, mqtt_url = settings.database_url, settings.mqtt_url
    db_name = (urlsplit(admin_url).path.lstrip("/") or "parkpulse") + "_bench"
    bench_url = _bench_db_url(admin_url, db_name)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    _recreate_database(admin_url, db_name)
    migrate(bench_url)
    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (PARK,))
    ports = [_free_port() for _ in range(args.instances)]
    run_id = os.urandom(3).hex()
    client_ids = [f"bench-ingest-{run_id}-{i}" for i in range(args.instances)]
    procs = [_start_ingest(cid, (i, args.instances), bench_url, mqtt_url, port, log_dir)
             for i, (cid, port) in enumerate(zip(client_ids, ports, strict=True))]
    try:
        _wait(lambda: all(_healthy(p) for p in ports), 60, "ingest instances")
        yield BenchCluster(admin_url, db_name, bench_url, mqtt_url, ports, origin, [p.pid for p in procs])
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        asyncio.run(_forget_sessions(mqtt_url, client_ids))


def drop_bench_database(cluster: BenchCluster) -> None:
    """Drop the benchmark database."""
    _drop_database(cluster.admin_url, cluster.db_name)


def wait_stored(cluster: BenchCluster, expected: int, *, idle_s: float, limit_s: float,
                progress: bool = True) -> tuple[int, float]:
    """Poll until ``expected`` readings are stored, nothing new was stored for ``idle_s``, or ``limit_s`` passed.

    Returns the stored count and the seconds waited.
    """
    started = last_change = last_report = time.monotonic()
    stored = cluster.stored()
    while stored < expected:
        now = time.monotonic()
        if now - last_change > idle_s or now - started > limit_s:
            break
        if progress and now - last_report > 10:
            print(f"  stored {stored:,} / {expected:,}", flush=True)
            last_report = now
        time.sleep(0.25)
        current = cluster.stored()
        if current != stored:
            stored, last_change = current, time.monotonic()
    return stored, time.monotonic() - started


def latencies(cluster: BenchCluster, log: list[tuple[int, int, float]], *, per_message: int, spacing_s: float,
              after_change_id: int = 0) -> list[float]:
    """Publish → commit latency (s) of each logged message whose readings were committed, sorted.

    A message's commit time is the first change-log row of its series covering its whole time range.
    """
    if not log:
        return []
    with psycopg.connect(cluster.bench_url) as conn:
        conn.execute("CREATE TEMP TABLE publog (device text, seq int, t_pub double precision)")
        with conn.cursor() as cur, cur.copy("COPY publog FROM STDIN") as cp:
            for device, seq, t_pub in log:
                cp.write_row((f"m-{device:04d}", seq, t_pub))
        rows = conn.execute(
            """SELECT extract(epoch FROM min(c.committed_at)) - p.t_pub
               FROM publog p JOIN devices d ON d.park_id = %(park)s AND d.device_id = p.device
               JOIN series s ON s.device_key = d.device_key
               JOIN reading_changes c ON c.series_id = s.series_id AND c.change_id > %(after)s
                    AND c.ts_min <= %(origin)s + make_interval(secs => p.seq * %(n)s * %(dt)s)
                    AND c.ts_max >= %(origin)s + make_interval(secs => (p.seq * %(n)s + %(n)s - 1) * %(dt)s)
               GROUP BY p.device, p.seq, p.t_pub""",
            {"park": PARK, "after": after_change_id, "origin": cluster.origin, "n": per_message,
             "dt": spacing_s}).fetchall()
    return sorted(float(r[0]) for r in rows)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``values`` (nearest rank), NaN when empty."""
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else float("nan")


def baselines(cluster: BenchCluster, args: argparse.Namespace, rows: int) -> dict[str, int]:
    """The same-run baselines: raw binary COPY ceiling (rows/s) and the naive consumer (readings/s)."""
    ceiling = _copy_ceiling(cluster.bench_url, max(min(rows, args.ceiling_rows), 100_000), cluster.origin)
    print(f"raw binary COPY into readings: {ceiling:,.0f} rows/s", flush=True)
    try:
        naive = asyncio.run(_naive(cluster.mqtt_url, cluster.bench_url, args.naive_seconds, cluster.origin))
    except (aiomqtt.MqttError, psycopg.Error) as exc:  # a figure, never a traceback
        print(f"naive consumer failed: {exc}", flush=True)
        naive = 0.0
    print(f"naive consumer (one INSERT per reading): {naive:,.0f} readings/s", flush=True)
    return {"copy_ceiling_rows_per_s": round(ceiling), "naive_readings_per_s": round(naive)}


def bench_origin(args: argparse.Namespace) -> datetime:
    """First reading time: far enough back that every step's readings stay in the past, within max_age."""
    return (datetime.now(UTC) - timedelta(days=args.origin_days)).replace(second=0, microsecond=0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fixed offered rate: publish ``rate`` for ``duration`` seconds, then the baselines; return the figures."""
    origin = bench_origin(args)
    expected_messages = int(args.rate * args.duration / args.per_message)
    expected = expected_messages * args.per_message
    print(f"offering {args.rate:,.0f} readings/s for {args.duration:.0f} s: {expected_messages:,} messages x "
          f"{args.per_message} readings = {expected:,} readings; {args.instances} ingest instance(s)", flush=True)
    with ingest_cluster(args, origin) as cluster:
        cpu_before = cluster.cpu()
        result = publish_step(PublishSpec(
            cluster.mqtt_url, origin.isoformat(), args.devices, args.per_message, args.spacing_s, args.rate,
            args.duration * 3 + 30, max_messages=expected_messages, inflight=args.inflight,
            timeout_s=args.publish_timeout))
        attempted = result["attempted"] * args.per_message
        stored, _ = wait_stored(cluster, attempted, idle_s=args.drain_idle, limit_s=args.duration * 4 + 120)
        cpu = cluster.cpu().per_reading_us(cpu_before, stored)
        duplicates = cluster.metric("readings_duplicate_total")
        quarantined = cluster.metric("readings_received_total") - stored - duplicates
    log = result["log"]
    lat = latencies(cluster, log, per_message=args.per_message, spacing_s=args.spacing_s)
    with psycopg.connect(cluster.bench_url) as conn:
        row = conn.execute("SELECT extract(epoch FROM max(committed_at)) FROM reading_changes").fetchone()
    first_pub = min((t for _, _, t in log), default=time.time())
    last_commit = float(row[0]) if row and row[0] is not None else time.time()
    ours = stored / max(last_commit - first_pub, 1e-9)
    print(f"ParkPulse ingest: {stored:,} readings stored in {last_commit - first_pub:.1f} s → {ours:,.0f} readings/s",
          flush=True)
    base = baselines(cluster, args, stored)
    if not args.keep_db:
        drop_bench_database(cluster)
    return {
        "benchmark": "ingest",
        "instances": args.instances,
        "offered_readings_per_s": args.rate,
        "readings_expected": expected,
        "readings_published": attempted,
        "messages_unacknowledged": result["unacked"],
        "publisher_errors": result["errors"],
        "readings_stored": stored,
        "readings_lost": attempted - stored,
        "readings_not_published": expected - attempted,
        "duplicates_skipped": int(duplicates),
        "quarantined": int(quarantined),
        "duration_s": round(last_commit - first_pub, 2),
        "readings_per_s": round(ours),
        "messages_latency_measured": len(lat),
        "p50_latency_s": percentile(lat, 0.50),
        "p99_latency_s": percentile(lat, 0.99),
        "max_latency_s": round(lat[-1], 3) if lat else float("nan"),
        "mean_latency_s": round(statistics.fmean(lat), 3) if lat else float("nan"),
        "cpu_us_per_reading": cpu,
        **base,
        "copy_ceiling_ratio": round(ours / base["copy_ceiling_rows_per_s"], 3),
        "naive_ratio": round(ours / max(base["naive_readings_per_s"], 1), 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring and :mod:`bench_ingest_saturate`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=110_000, help="offered readings per second (fixed mode)")
    parser.add_argument("--duration", type=float, default=60, help="seconds of offered load (fixed mode)")
    parser.add_argument("--per-message", type=int, default=200, help="readings per MQTT message")
    parser.add_argument("--devices", type=int, default=500, help="distinct devices (topics)")
    parser.add_argument("--instances", type=int, default=2, help="ingest processes (partitioned)")
    parser.add_argument("--spacing-s", type=float, default=60.0, help="seconds between a device's readings")
    parser.add_argument("--origin-days", type=float, default=390.0, help="first reading this many days ago")
    parser.add_argument("--inflight", type=int, default=1000, help="publisher's unacknowledged messages at most")
    parser.add_argument("--publish-timeout", type=float, default=10.0, help="seconds to wait for one PUBACK")
    parser.add_argument("--drain-idle", type=float, default=15.0,
                        help="after publishing, stop waiting for commits when nothing was stored for this long")
    parser.add_argument("--ceiling-rows", type=int, default=3_000_000, help="rows for the COPY ceiling")
    parser.add_argument("--naive-seconds", type=float, default=15, help="how long the naive consumer runs")
    parser.add_argument("--log-dir", default=".cache/bench", help="where the ingest instances' logs go")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database afterwards")
    sat = parser.add_argument_group("saturation search (--saturate)")
    sat.add_argument("--saturate", action="store_true",
                     help="find the highest rate sustained with 0 lost, then the latency curve below it")
    sat.add_argument("--step-s", type=float, default=10.0, help="seconds per search step")
    sat.add_argument("--bisect-steps", type=int, default=4, help="bisection steps after the closed-loop probe")
    sat.add_argument("--confirm-s", type=float, default=60.0, help="seconds of the final confirmation step")
    sat.add_argument("--confirm-attempts", type=int, default=5,
                     help="confirmation steps, each lower than the failed one, before reporting 0")
    sat.add_argument("--curve-s", type=float, default=10.0, help="seconds per latency-curve point")
    sat.add_argument("--max-lag-s", type=float, default=2.0,
                     help="a step is sustained only if its last readings commit within this after publishing ends")
    sat.add_argument("--min-rate", type=float, default=1_000.0, help="lowest rate the search tries")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point: print progress, then the figures as one JSON line."""
    args = parse_args(argv)
    if args.saturate:
        from bench_ingest_saturate import run_saturate  # noqa: PLC0415 -- sibling script, only for this mode

        figures = run_saturate(args)
    else:
        figures = run(args)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Ingest benchmark: MQTT QoS 1 → ParkPulse ingest → TimescaleDB, against the raw COPY ceiling and a naive consumer.

Run with ``parkpulse bench ingest`` (or ``python scripts/bench_ingest.py``) after ``parkpulse services up``.
Everything runs on this machine in one run, so the ratios compare like with like:

1. **ParkPulse ingest**: ``--instances`` ``parkpulse ingest`` processes in one shared-subscription group, a
   publisher process offering ``--rate`` readings/s at QoS 1 (``--per-message`` readings per MQTT message)
   for ``--duration`` seconds. Throughput is measured from the first publish to the last commit; latency per
   message from its publish time to the commit of its change-log row (``reading_changes.committed_at``).
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
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiomqtt
import orjson
import psycopg

from infra.db import migrate
from infra.settings import ServiceSettings, parse_mqtt_url
from schemas import build_topic

PARK = "bench-park"


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


# -- publisher process -------------------------------------------------------------------------------
class _Payloads:
    """Builds readings messages fast: timestamp strings are formatted once, not once per reading."""

    def __init__(self, origin: datetime, minutes: int) -> None:
        self._stamps = [(origin + timedelta(minutes=m)).isoformat() for m in range(minutes)]

    def build(self, device: str, seq: int, n: int) -> bytes:
        first = seq * n
        stamps = self._stamps[first:first + n]
        readings = [{"ts": ts, "metric": "active_energy_import", "value": (first + i) * 0.25, "unit": "kWh"}
                    for i, ts in enumerate(stamps)]
        return orjson.dumps({"v": 1, "device": device, "seq": seq, "sent_at": datetime.now(UTC).isoformat(),
                             "readings": readings})


async def _publish(mqtt_url: str, devices: int, per_message: int, rate: float, duration: float,
                   origin_iso: str) -> list[tuple[int, int, float]]:
    ep = parse_mqtt_url(mqtt_url)
    origin = datetime.fromisoformat(origin_iso)
    n_messages = int(rate * duration / per_message)
    interval = per_message / rate
    log: list[tuple[int, int, float]] = []
    payloads = _Payloads(origin, (n_messages // devices + 1) * per_message)
    async with aiomqtt.Client(ep.host, ep.port, protocol=aiomqtt.ProtocolVersion.V5, identifier="bench-publisher",
                              max_inflight_messages=1000) as client:
        client.pending_calls_threshold = 100_000
        pending: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        for k in range(n_messages):
            device, seq = k % devices, k // devices
            payload = payloads.build(f"m-{device:04d}", seq, per_message)
            due = started + k * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            log.append((device, seq, time.time()))
            task = asyncio.create_task(client.publish(build_topic(PARK, f"m-{device:04d}"), payload, qos=1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if len(pending) > 2000:
                await asyncio.gather(*list(pending))
        await asyncio.gather(*list(pending))
    return log


def _publisher_main(mqtt_url: str, devices: int, per_message: int, rate: float, duration: float, log_path: str,
                    origin_iso: str) -> None:
    log = asyncio.run(_publish(mqtt_url, devices, per_message, rate, duration, origin_iso))
    Path(log_path).write_bytes(orjson.dumps(log))


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
            build = _Payloads(origin, 2000 * 100).build
            payloads = [build("m-0000", seq, 100) for seq in range(2000)]
            publishing = asyncio.gather(*(pub.publish(topic, p, qos=1) for p in payloads))
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


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            """SELECT coalesce(sum(n_rows), 0) FROM reading_changes c JOIN series s USING (series_id)
               JOIN devices d USING (device_key) WHERE d.park_id = %s""", (PARK,)).fetchone()
        return int(row[0]) if row else 0


def run(args: argparse.Namespace) -> dict[str, float | int | str]:
    """Run all three measurements and return the figures."""
    settings = ServiceSettings()  # type: ignore[call-arg]
    admin_url, mqtt_url = settings.database_url, settings.mqtt_url
    db_name = (urlsplit(admin_url).path.lstrip("/") or "parkpulse") + "_bench"
    bench_url = _bench_db_url(admin_url, db_name)
    log_dir = Path(args.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    _recreate_database(admin_url, db_name)
    migrate(bench_url)
    origin = (datetime.now(UTC) - timedelta(days=300)).replace(second=0, microsecond=0)
    expected_messages = int(args.rate * args.duration / args.per_message)
    expected = expected_messages * args.per_message
    print(f"offering {args.rate:,.0f} readings/s for {args.duration:.0f} s: {expected_messages:,} messages x "
          f"{args.per_message} readings = {expected:,} readings; {args.instances} ingest instance(s)", flush=True)

    ports = [_free_port() for _ in range(args.instances)]
    run_id = os.urandom(3).hex()
    client_ids = [f"bench-ingest-{run_id}-{i}" for i in range(args.instances)]
    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (PARK,))
    procs = [_start_ingest(cid, (i, args.instances), bench_url, mqtt_url, port, log_dir)
             for i, (cid, port) in enumerate(zip(client_ids, ports, strict=True))]
    try:
        _wait(lambda: all(_healthy(p) for p in ports), 60, "ingest instances")
        publog = str(log_dir / "publish-log.json")
        publisher = mp.get_context("spawn").Process(
            target=_publisher_main,
            args=(mqtt_url, args.devices, args.per_message, args.rate, args.duration, publog, origin.isoformat()))
        publisher.start()
        deadline = time.monotonic() + args.duration * 4 + 120
        last_report = 0.0
        while (stored := _count(bench_url)) < expected and time.monotonic() < deadline:
            if time.monotonic() - last_report > 10:
                print(f"  stored {stored:,} / {expected:,}", flush=True)
                last_report = time.monotonic()
            time.sleep(0.5)
        publisher.join(timeout=60)
        stored = _count(bench_url)
        duplicates = sum(_metric_value(p, "readings_duplicate_total") for p in ports)
        quarantined = sum(_metric_value(p, "readings_received_total") for p in ports) - stored - duplicates
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        asyncio.run(_forget_sessions(mqtt_url, client_ids))

    log = orjson.loads(Path(publog).read_bytes())
    with psycopg.connect(bench_url) as conn:
        conn.execute("CREATE TEMP TABLE publog (device text, seq int, t_pub double precision)")
        with conn.cursor() as cur, cur.copy("COPY publog FROM STDIN") as cp:
            for device, seq, t_pub in log:
                cp.write_row((f"m-{device:04d}", seq, t_pub))
        rows = conn.execute(
            """SELECT extract(epoch FROM min(c.committed_at)) - p.t_pub
               FROM publog p JOIN devices d ON d.park_id = %s AND d.device_id = p.device
               JOIN series s ON s.device_key = d.device_key
               JOIN reading_changes c ON c.series_id = s.series_id
                    AND c.ts_min <= %s + make_interval(mins => p.seq * %s)
                    AND c.ts_max >= %s + make_interval(mins => p.seq * %s + %s - 1)
               GROUP BY p.device, p.seq, p.t_pub""",
            (PARK, origin, args.per_message, origin, args.per_message, args.per_message)).fetchall()
        first_pub = min(t for _, _, t in log)
        last_commit_row = conn.execute(
            "SELECT extract(epoch FROM max(committed_at)) FROM reading_changes").fetchone()
    latencies = sorted(float(r[0]) for r in rows)
    last_commit = float(last_commit_row[0]) if last_commit_row and last_commit_row[0] is not None else time.time()
    ours = stored / (last_commit - first_pub)

    print(f"ParkPulse ingest: {stored:,} readings stored in {last_commit - first_pub:.1f} s → {ours:,.0f} readings/s",
          flush=True)
    ceiling = _copy_ceiling(bench_url, min(stored, args.ceiling_rows), origin)
    print(f"raw binary COPY into readings: {ceiling:,.0f} rows/s", flush=True)
    naive = asyncio.run(_naive(mqtt_url, bench_url, args.naive_seconds, origin))
    print(f"naive consumer (one INSERT per reading): {naive:,.0f} readings/s", flush=True)
    if not args.keep_db:
        _drop_database(admin_url, db_name)

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    return {
        "benchmark": "ingest",
        "instances": args.instances,
        "offered_readings_per_s": args.rate,
        "readings_expected": expected,
        "readings_stored": stored,
        "readings_lost": expected - stored,
        "duplicates_skipped": int(duplicates),
        "quarantined": int(quarantined),
        "duration_s": round(last_commit - first_pub, 2),
        "readings_per_s": round(ours),
        "messages_latency_measured": len(latencies),
        "p50_latency_s": round(pct(0.50), 3),
        "p99_latency_s": round(pct(0.99), 3),
        "max_latency_s": round(latencies[-1], 3) if latencies else float("nan"),
        "mean_latency_s": round(statistics.fmean(latencies), 3) if latencies else float("nan"),
        "copy_ceiling_rows_per_s": round(ceiling),
        "copy_ceiling_ratio": round(ours / ceiling, 3),
        "naive_readings_per_s": round(naive),
        "naive_ratio": round(ours / naive, 1),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=110_000, help="offered readings per second")
    parser.add_argument("--duration", type=float, default=60, help="seconds of offered load")
    parser.add_argument("--per-message", type=int, default=200, help="readings per MQTT message")
    parser.add_argument("--devices", type=int, default=500, help="distinct devices (topics)")
    parser.add_argument("--instances", type=int, default=2, help="ingest processes in the shared group")
    parser.add_argument("--ceiling-rows", type=int, default=3_000_000, help="rows for the COPY ceiling")
    parser.add_argument("--naive-seconds", type=float, default=15, help="how long the naive consumer runs")
    parser.add_argument("--log-dir", default=".cache/bench", help="where ingest logs and the publish log go")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database afterwards")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point: print progress, then the figures as one JSON line."""
    figures = run(parse_args(argv))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

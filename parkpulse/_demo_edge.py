"""The demo's edge step: the park's second gas connection is a CJ/T 188 meter that the edge agent reads.

The scenario's other devices are published straight from the simulator; this one goes the way a real
gateway's meters go: a CJ/T 188 simulator (gas physics) behind a TCP serial server, the edge agent polling
it every few seconds, its SQLite outbox, MQTT, and the ingest service the demo is running. It runs in real
time for a few seconds after the simulated day, so its readings carry today's timestamps and land in the
current month's indicators as a level-1 gas meter (a second gas connection of the park).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.outbox import read_stats
from infra.db import DeviceRegistration, register_device
from simulators.protocol.cjt188 import build_cjt188_line

#: The CJ/T 188 meter's device id (``{prefix}-gas-001`` of the simulator's line).
EDGE_GAS_METER = "demo-cjt188-gas-001"


@dataclass(frozen=True, slots=True)
class EdgeStep:
    """What the edge agent read and what ingest stored of it."""

    device_id: str
    polls_s: float
    readings_published: int
    readings_stored: int
    pending: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stored(database_url: str, park_id: str, since_ts: float) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("""SELECT count(*) FROM readings r JOIN series s USING (series_id)
                              JOIN devices d USING (device_key)
                              WHERE d.park_id = %s AND d.device_id = %s AND r.ts >= to_timestamp(%s)""",
                           (park_id, EDGE_GAS_METER, since_ts)).fetchone()
    return int(row[0]) if row else 0


def _fresh_outbox(work_dir: Path) -> Path:
    """The agent's outbox file for this run (an earlier run's is removed: its readings are stored)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    outbox = work_dir / "demo-edge-outbox.sqlite"
    for path in (outbox, outbox.with_name(outbox.name + "-wal"), outbox.with_name(outbox.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return outbox


async def read_cjt188_gas_meter(park_id: str, mqtt_url: str, database_url: str, work_dir: Path, *,
                                seconds: float = 12.0, poll_interval_s: float = 2.0) -> EdgeStep:
    """Run the CJ/T 188 simulator and an edge agent for ``seconds``; wait until ingest stored what it sent."""
    line = build_cjt188_line(gas=1, heat=0, port=_free_port(), prefix="demo-cjt188")
    entries = line.device_entries(poll_interval_s=poll_interval_s, timeout_s=1.0)
    for entry in entries:
        entry.update(metering_level=1, role="park_boundary")
    with psycopg.connect(database_url, autocommit=True) as conn:
        register_device(conn, DeviceRegistration(park_id, EDGE_GAS_METER, kind="gas_meter", carrier="gas",
                                                 metering_level=1, role="park_boundary"))
    outbox = await asyncio.to_thread(_fresh_outbox, work_dir)
    config = parse_config({
        "agent_id": "demo-edge", "park_id": park_id, "mqtt": {"url": mqtt_url}, "outbox": {"path": str(outbox)},
        "status_interval_s": 5.0, "shutdown_grace_s": 10.0, "devices": entries,
    })
    started = time.time()
    await line.server.start()
    try:
        stop = asyncio.Event()
        agent = EdgeAgent(config)
        task = asyncio.create_task(agent.run(stop), name="demo-edge-agent")
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    finally:
        await line.server.stop()
    stats = read_stats(outbox)
    deadline = time.monotonic() + 30
    stored = _stored(database_url, park_id, started - 1)
    while stored < stats.published_readings and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        stored = _stored(database_url, park_id, started - 1)
    return EdgeStep(EDGE_GAS_METER, seconds, stats.published_readings, stored, stats.pending_readings)

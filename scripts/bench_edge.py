"""Edge agent benchmark: prints figures, asserts nothing.

1. agent CPU per 1,000 device reads (the whole agent: poll, decode, outbox commit, QoS 1 publish);
2. outbox insert and drain rates (SQLite WAL, synchronous FULL and NORMAL);
3. time to drain a one-hour backlog of a 100-meter site (15 s polls) while live polling continues, and
   the worst live-message delay seen meanwhile.

Protocol simulators run in a child process (their CPU is not the agent's); a private Mosquitto runs on a
free port. Usage::

    .venv/bin/python scripts/bench_edge.py            # full run, about 2-3 minutes
    .venv/bin/python scripts/bench_edge.py --quick    # smaller figures in ~30 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from rich.console import Console
from rich.table import Table

from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.outbox import Durability, NewMessage, Outbox
from edge.payload import Reading, encode_readings

console = Console()
SIM_CHILD = """
import asyncio, json, signal, sys
from simulators.protocol.site import build_site
n_mb, n_dl, mb_port, dl_port = (int(a) for a in sys.argv[1:5])
async def main():
    site = build_site(n_modbus=n_mb, n_dlt645=n_dl, modbus_port=mb_port, dlt645_port=dl_port, prefix="b")
    await site.start()
    print(json.dumps(site.device_entries(timeout_s=3.0)), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await site.stop()
asyncio.run(main())
"""


def free_port() -> int:
    """A currently unused TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A private broker on a free port."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise SystemExit("mosquitto is not installed (parkpulse services up installs it)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                    f"max_inflight_messages 100\nset_tcp_nodelay true\npersistence false\n", encoding="utf-8")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@contextlib.contextmanager
def simulators(n_modbus: int, n_dlt645: int) -> Iterator[list[dict[str, Any]]]:
    """Protocol simulators in a child process; yields the matching edge.yaml device entries."""
    args = [str(n_modbus), str(n_dlt645), str(free_port()), str(free_port())]
    proc = subprocess.Popen([sys.executable, "-c", SIM_CHILD, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        entries: list[dict[str, Any]] = json.loads(proc.stdout.readline())
        yield entries
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def agent_yaml(entries: list[dict[str, Any]], port: int, outbox: Path, *, poll_s: float,
               rate: float) -> dict[str, Any]:
    """An agent configuration for the benchmark site."""
    devices = [{**e, "poll_interval_s": poll_s} for e in entries]
    return {"agent_id": "bench", "park_id": "bench-park", "status_interval_s": 60.0, "shutdown_grace_s": 10.0,
            "mqtt": {"url": f"mqtt://127.0.0.1:{port}"},
            "outbox": {"path": str(outbox), "durability": "full"},
            "drain": {"backlog_rate_msgs_per_s": rate, "batch_size": 100}, "devices": devices}


async def run_agent_for(config: dict[str, Any], seconds: float) -> tuple[EdgeAgent, float]:
    """Run an agent for ``seconds``; return it and the CPU seconds this process spent meanwhile."""
    agent = EdgeAgent(parse_config(config))
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await agent.running.wait()
    start = cpu_seconds()
    await asyncio.sleep(seconds)
    used = cpu_seconds() - start
    stop.set()
    await task
    return agent, used


# -- 1. CPU per 1,000 reads ---------------------------------------------------------------------------


async def bench_cpu(workdir: Path, n_meters: int, seconds: float) -> dict[str, str]:
    """Poll ``n_meters`` every second for ``seconds`` and report agent CPU per 1,000 device reads."""
    with simulators(n_meters // 2, n_meters - n_meters // 2) as entries, mosquitto(workdir) as port:
        config = agent_yaml(entries, port, workdir / "cpu.sqlite", poll_s=1.0, rate=1000.0)
        agent, used = await run_agent_for(config, seconds)
    reads = sum(h.reads_ok for h in agent.health.values())
    failed = sum(h.reads_failed for h in agent.health.values())
    readings = sum(h.readings_read for h in agent.health.values())
    return {
        "meters polled every 1 s": f"{n_meters} ({n_meters // 2} Modbus, {n_meters - n_meters // 2} DL/T 645)",
        "device reads (failed)": f"{reads:,} ({failed})",
        "readings published": f"{readings:,}",
        "agent CPU": f"{used:.2f} s over {seconds:.0f} s wall",
        "agent CPU per 1,000 device reads": f"{1000 * used / max(reads, 1):.2f} s",
    }


# -- 2. outbox rates -----------------------------------------------------------------------------------


def _message(device: str, ts: datetime) -> NewMessage:
    readings = [Reading(ts, m, 230.0 + i, "V") for i, m in enumerate(
        ("voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "current_l2", "current_l3", "active_power",
         "reactive_power", "power_factor", "frequency", "active_energy_import", "active_energy_export"))]
    return NewMessage(device, encode_readings(readings), len(readings))


def bench_outbox(workdir: Path, n_messages: int) -> dict[str, str]:
    """Insert ``n_messages`` (batches of 100) and drain them (fetch 500, ack) for both durabilities."""
    out: dict[str, str] = {}
    ts = datetime.now(UTC)
    batch = [_message(f"m-{i % 100:03d}", ts) for i in range(100)]
    size = sum(len(m.body) for m in batch) / len(batch)
    out["message size"] = f"{size:.0f} B (12 readings)"
    for durability in (Durability.FULL, Durability.NORMAL):
        path = workdir / f"outbox-{durability.value}.sqlite"
        with Outbox(path, durability=durability) as box:
            start = time.perf_counter()
            for _ in range(n_messages // 100):
                box.enqueue(batch)
            insert_s = time.perf_counter() - start
            start = time.perf_counter()
            drained = 0
            for device in {m.device_id for m in batch}:
                while rows := box.fetch(device, limit=500):
                    box.ack([r.id for r in rows])
                    drained += len(rows)
            drain_s = time.perf_counter() - start
        out[f"insert, synchronous={durability.value}"] = f"{n_messages / insert_s:,.0f} msg/s (batches of 100)"
        out[f"drain (fetch 500 + delete), {durability.value}"] = f"{drained / drain_s:,.0f} msg/s"
        start = time.perf_counter()
        with Outbox(workdir / f"single-{durability.value}.sqlite", durability=durability) as box:
            for _ in range(500):
                box.enqueue([batch[0]])
        out[f"insert one message per commit, {durability.value}"] = f"{500 / (time.perf_counter() - start):,.0f} msg/s"
    return out


# -- 3. one-hour backlog of a 100-meter site --------------------------------------------------------------


async def bench_backlog(workdir: Path, n_meters: int, backlog_hours: float, rate: float) -> dict[str, str]:
    """Pre-fill the outbox with ``backlog_hours`` of 15 s polls, then drain it while polling live."""
    outbox = workdir / "backlog.sqlite"
    with simulators(n_meters // 2, n_meters - n_meters // 2) as entries, mosquitto(workdir) as port:
        polls = int(backlog_hours * 3600 / 15)
        start_ts = datetime.now(UTC) - timedelta(hours=backlog_hours)
        with Outbox(outbox, durability=Durability.NORMAL) as box:
            for k in range(polls):
                box.enqueue([_message(e["id"], start_ts + timedelta(seconds=15 * k)) for e in entries])
            backlog = box.stats().pending_messages
        config = agent_yaml(entries, port, outbox, poll_s=15.0, rate=rate)
        live_delays: list[float] = []
        received = 0

        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe("parkpulse/v1/bench-park/+/readings", qos=1)
            agent = EdgeAgent(parse_config(config))
            stop = asyncio.Event()
            started = time.perf_counter()

            async def watch() -> None:
                nonlocal received
                async for message in sub.messages:
                    received += 1
                    body = orjson.loads(bytes(message.payload))  # type: ignore[arg-type, unused-ignore]
                    read_at = datetime.fromisoformat(body["readings"][0]["ts"])
                    if read_at > start_ts + timedelta(hours=backlog_hours):  # a live poll, not backlog
                        live_delays.append((datetime.now(UTC) - read_at).total_seconds())

            watcher = asyncio.create_task(watch())
            task = asyncio.create_task(agent.run(stop))
            await agent.running.wait()
            assert agent.store is not None
            while (await agent.store.stats()).pending_messages > 0:  # noqa: ASYNC110 - polling a figure
                await asyncio.sleep(0.2)
            drain_s = time.perf_counter() - started
            await asyncio.sleep(1.0)
            stop.set()
            await task
            watcher.cancel()
    return {
        "site": f"{n_meters} meters, 15 s polls, {backlog_hours:g} h outage",
        "backlog": f"{backlog:,} messages ({backlog * 12:,} readings)",
        "pace limit (backlog only)": f"{rate:,.0f} msg/s",
        "time to drain": f"{drain_s:.1f} s ({backlog / drain_s:,.0f} msg/s)",
        "messages received meanwhile": f"{received:,}",
        "live polls during the drain": f"{len(live_delays)}",
        "worst live delay (read -> broker -> subscriber)": f"{max(live_delays, default=0.0):.2f} s",
    }


def show(title: str, figures: dict[str, str]) -> None:
    """Print one table of figures."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, value)
    console.print(table)


async def main() -> None:
    """Run the three benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller site and shorter runs")
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--rate", type=float, default=1000.0, help="backlog pace, messages per second")
    parser.add_argument("--parts", default="cpu,outbox,backlog", help="comma-separated subset to run")
    args = parser.parse_args()
    meters = 20 if args.quick else args.meters
    logging.basicConfig(level=logging.ERROR)  # only data-loss errors on screen
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        workdir = Path(tmp)
        parts = set(args.parts.split(","))
        if "cpu" in parts:
            show("1. agent CPU per 1,000 device reads",
                 await bench_cpu(workdir, meters, 10.0 if args.quick else 30.0))
        if "outbox" in parts:
            show("2. outbox (SQLite WAL)", bench_outbox(workdir, 20_000 if args.quick else 100_000))
        if "backlog" in parts:
            show("3. one-hour backlog drained while live polling continues",
                 await bench_backlog(workdir, meters, 1.0, args.rate))


if __name__ == "__main__":
    asyncio.run(main())

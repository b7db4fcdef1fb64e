"""OPC UA reader benchmark: prints figures, asserts nothing.

1. Reader CPU per polled reading: ``--devices`` OPC UA devices (the simulator's boiler and chiller node sets
   in turn, 5-6 nodes each) on one shared session, polled together like the agent's poll tasks do, for
   ``--cycles`` cycles; the same for as many Modbus TCP meters (SDM630/DTSU666) as a yardstick.
2. Reader CPU per reading delivered by subscriptions: the same devices subscribed (sampling 100 ms,
   publishing 500 ms) while the server changes every value every 100 ms; the buffers are emptied once a
   second, as the agent's polls do.
3. The whole agent (poll, outbox commit, QoS 1 publish to a private Mosquitto) per polled OPC UA reading,
   when this agent builds OPC UA devices.

The OPC UA server and the Modbus simulator run in child processes, so their CPU is not counted. Usage::

    .venv/bin/python scripts/bench_opcua.py              # about a minute
    .venv/bin/python scripts/bench_opcua.py --cycles 20  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_edge import free_port, mosquitto, run_agent_for, simulators  # this folder (run as a script)
from rich.console import Console
from rich.table import Table

from edge.config import OpcUaTransport, parse_config
from edge.errors import ConfigError, DeviceError
from edge.readers import DeviceReader, EndpointPool, build_reader

console = Console()
OPCUA_CHILD = """
import asyncio, json, signal, sys
from simulators.protocol.opcua import OpcUaSimServer, opcua_device_entries
port, update_s = int(sys.argv[1]), float(sys.argv[2])
async def main():
    sim = OpcUaSimServer(port=port, update_interval_s=update_s)
    await sim.start()
    print(json.dumps(opcua_device_entries(sim.url)), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await sim.stop()
asyncio.run(main())
"""


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


@contextlib.contextmanager
def opcua_server(update_s: float) -> Iterator[list[dict[str, Any]]]:
    """The OPC UA simulator in a child process; yields its two edge.yaml device entries."""
    proc = subprocess.Popen([sys.executable, "-c", OPCUA_CHILD, str(free_port()), str(update_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def opcua_devices(entries: list[dict[str, Any]], n: int, acquisition: str) -> list[dict[str, Any]]:
    """``n`` device entries alternating the boiler's and the chiller's nodes."""
    devices = []
    for i in range(n):
        base = entries[i % 2]
        transport = {**base["transport"], "acquisition": acquisition, "sampling_interval_ms": 100,
                     "publishing_interval_ms": 500}
        devices.append({**base, "id": f"{base['id']}-{i}", "transport": transport})
    return devices


def build(devices: list[dict[str, Any]]) -> tuple[list[DeviceReader], EndpointPool]:
    """Readers for the device entries, sharing one pool (and so one OPC UA session)."""
    config = parse_config({"agent_id": "bench", "park_id": "bench", "devices": devices})
    pool = EndpointPool()
    from edge.profile import find_profiles  # noqa: PLC0415 - only the Modbus yardstick has profiles

    profiles = find_profiles([])
    readers = [build_reader(d, None if isinstance(d.transport, OpcUaTransport) else profiles[d.profile], pool)
               for d in config.devices]
    return readers, pool


async def poll_cycle(readers: list[DeviceReader]) -> tuple[int, int]:
    """Read every device concurrently once: (readings, failed polls)."""
    ts = datetime.now(UTC)
    results = await asyncio.gather(*(r.read(ts) for r in readers), return_exceptions=True)
    readings = sum(len(r.readings) for r in results if not isinstance(r, BaseException))
    failed = sum(1 for r in results if isinstance(r, DeviceError))
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, DeviceError):
            raise r
    return readings, failed


def cell(readings: int, failed: int, user: float, system: float, extra: str = "") -> str:
    """CPU per reading as a table cell."""
    per = 1e6 / max(readings, 1)
    return (f"{per * (user + system):.0f} µs (user {per * user:.0f} + system {per * system:.0f}; "
            f"{readings:,} readings, {failed} failed polls{extra})")


async def polled(readers: list[DeviceReader], cycles: int) -> str:
    """CPU per reading over ``cycles`` poll cycles, after one warm-up cycle (connect, resolve)."""
    await poll_cycle(readers)
    (u0, s0), total, failed = cpu_seconds(), 0, 0
    for _ in range(cycles):
        n, f = await poll_cycle(readers)
        total, failed = total + n, failed + f
    u1, s1 = cpu_seconds()
    return cell(total, failed, u1 - u0, s1 - s0)


async def bench_poll(n_devices: int, cycles: int) -> dict[str, str]:
    """Part 1: polled OPC UA readings against Modbus TCP readings."""
    out: dict[str, str] = {}
    with opcua_server(update_s=1.0) as entries:
        readers, pool = build(opcua_devices(entries, n_devices, "poll"))
        out[f"OPC UA, poll ({n_devices} devices, one session)"] = await polled(readers, cycles)
        await pool.aclose()
    with simulators(n_devices, 0) as entries:
        readers, pool = build(entries)
        out[f"Modbus TCP, SDM630/DTSU666 ({len(readers)} meters), yardstick"] = await polled(readers, cycles)
        pool.close()
    return out


async def bench_subscription(n_devices: int, seconds: int) -> dict[str, str]:
    """Part 2: readings delivered by subscriptions, drained once a second."""
    with opcua_server(update_s=0.1) as entries:
        readers, pool = build(opcua_devices(entries, n_devices, "subscription"))
        await poll_cycle(readers)  # starts the subscriptions
        await asyncio.sleep(3.0)
        await poll_cycle(readers)  # initial values out of the way
        (u0, s0), total, failed = cpu_seconds(), 0, 0
        for _ in range(seconds):
            await asyncio.sleep(1.0)
            n, f = await poll_cycle(readers)
            total, failed = total + n, failed + f
        u1, s1 = cpu_seconds()
        await pool.aclose()
    return {f"OPC UA, subscription ({n_devices} devices, {seconds} s)": cell(
        total, failed, u1 - u0, s1 - s0, f", {total / seconds:.0f} readings/s")}


async def bench_agent(folder: Path, n_devices: int, seconds: float) -> dict[str, str]:
    """Part 3: the whole agent polling OPC UA devices every second."""
    with opcua_server(update_s=1.0) as entries, mosquitto(folder) as port:
        devices = [{**d, "poll_interval_s": 1.0} for d in opcua_devices(entries, n_devices, "poll")]
        config = {"agent_id": "bench", "park_id": "bench-park", "status_interval_s": 60.0,
                  "mqtt": {"url": f"mqtt://127.0.0.1:{port}"}, "outbox": {"path": str(folder / "outbox.sqlite")},
                  "devices": devices}
        try:
            agent, used = await run_agent_for(config, seconds)
        except ConfigError as exc:
            return {"whole agent": f"not measured: {exc}"}
    readings = sum(h.readings_read for h in agent.health.values())
    failed = sum(h.reads_failed for h in agent.health.values())
    return {f"whole agent, {n_devices} OPC UA devices polled every 1 s for {seconds:.0f} s":
            f"{1e6 * used / max(readings, 1):.0f} µs per reading ({readings:,} readings, {failed} failed polls)"}


def show(title: str, figures: dict[str, str]) -> None:
    """Print one table of figures."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, value)
    console.print(table)


async def main() -> None:
    """Run the parts and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--cycles", type=int, default=50, help="poll cycles for part 1")
    parser.add_argument("--seconds", type=int, default=20, help="duration of parts 2 and 3")
    parser.add_argument("--parts", default="poll,subscription,agent", help="comma-separated subset to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    parts = set(args.parts.split(","))
    if "poll" in parts:
        show("1. reader CPU per polled reading (reader + client library, server in a child process)",
             await bench_poll(args.devices, args.cycles))
    if "subscription" in parts:
        show("2. reader CPU per reading delivered by a subscription",
             await bench_subscription(args.devices, args.seconds))
    if "agent" in parts:
        with tempfile.TemporaryDirectory(prefix="bench-opcua-") as tmp:
            show("3. whole-agent CPU per polled OPC UA reading (outbox commit and QoS 1 publish included)",
                 await bench_agent(Path(tmp), args.devices, float(args.seconds)))


if __name__ == "__main__":
    asyncio.run(main())

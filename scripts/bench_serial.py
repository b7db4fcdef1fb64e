"""RS-485 benchmark: prints figures, asserts nothing.

1. One bus at 9600 baud 8E1 with 32 DL/T 645-2007 meters (11 data identifiers each, the
   ``dlt645_2007_3p`` profile): the full poll cycle against the line's theoretical minimum, i.e. the bytes
   on the wire (requests and replies, FE preambles included) / (9600 / 11 bytes per second), as a ratio.
2. The agent's CPU per polled reading, reader and transport included, for the same meters read over TCP
   (a transparent gateway) and over the serial bus; the same for Modbus (TCP vs RTU).

The line is a ``socat`` pty pair (``apt-get install socat``). A pty moves bytes instantly, so for part 1 the
simulator holds each answer back by the wire time of the request and the reply at 9600 baud 8E1, i.e. it
behaves like a line whose meters answer instantly (``--meter-latency-ms`` adds a meter's own reaction time).
Simulators run in a child process, so their CPU is not counted. Usage::

    .venv/bin/python scripts/bench_serial.py            # about a minute
    .venv/bin/python scripts/bench_serial.py --cycles 3 # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge.config import Dlt645SerialTransport, Dlt645TcpTransport, ModbusRtuTransport, ModbusTcpTransport
from edge.profile import Dlt645Profile, ModbusProfile, builtin_profiles
from edge.readers import (
    DeviceReader,
    Dlt645Endpoint,
    Dlt645Reader,
    Dlt645SerialEndpoint,
    ModbusEndpoint,
    ModbusReader,
    ModbusRtuEndpoint,
)
from edge.serial_bus import SerialBus, SerialBusSettings

console = Console()
BAUD, PARITY = 9600, "E"
SIM_CHILD = """
import asyncio, signal, sys
from edge.profile import builtin_profiles
from edge.serial_bus import SerialBusSettings
from simulators.protocol import Dlt645SimMeter, Dlt645SimServer, ModbusSimDevice, ModbusSimServer, SimMeter
kind, where, n, pace, latency_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", float(sys.argv[5])
profiles = builtin_profiles()
async def main():
    line = SerialBusSettings(id="sim", port=where, baudrate=9600, parity="E" if kind.startswith("dl") else "N")
    if kind.startswith("dl"):
        meters = [Dlt645SimMeter(f"{i + 1:012d}", profiles["dlt645_2007_3p"], SimMeter(seed=i), ct_ratio=50.0)
                  for i in range(n)]
        for m in meters:
            m.meter.faults.reply_delay_s = latency_s
        sim = Dlt645SimServer(meters, port=0 if kind.endswith("serial") else int(where))
        await (sim.start_serial(line, pace=pace) if kind.endswith("serial") else sim.start())
    else:
        devices = [ModbusSimDevice(i + 1, profiles["eastron_sdm630"], SimMeter(seed=i)) for i in range(n)]
        sim = ModbusSimServer(devices, port=0 if kind.endswith("serial") else int(where))
        await (sim.start_serial(line) if kind.endswith("serial") else sim.start())
    print("ready", flush=True)
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


def free_port() -> int:
    """A currently unused TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def pty_pair(folder: Path) -> Iterator[tuple[str, str]]:
    """A socat pty pair: (simulator's end, agent's end)."""
    socat = shutil.which("socat")
    if socat is None:
        raise SystemExit("socat is not installed: apt-get install socat")
    sim_end, agent_end = folder / "tty-sim", folder / "tty-agent"
    proc = subprocess.Popen([socat, "-d", "-d", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={agent_end}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not (sim_end.exists() and agent_end.exists()):
            if time.monotonic() > deadline:
                raise SystemExit("socat did not create the pty pair")
            time.sleep(0.01)
        yield str(sim_end), str(agent_end)
    finally:
        proc.terminate()
        proc.wait(timeout=5)


@contextlib.contextmanager
def simulator(kind: str, where: str, n: int, *, pace: bool = False, latency_s: float = 0.0) -> Iterator[None]:
    """The simulator of ``kind`` (dl-serial, dl-tcp, mb-serial, mb-tcp) in a child process."""
    proc = subprocess.Popen([sys.executable, "-c", SIM_CHILD, kind, where, str(n), "1" if pace else "0",
                             str(latency_s)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"simulator {kind} did not start")
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _profiles() -> tuple[Dlt645Profile, ModbusProfile]:
    dlt, sdm = builtin_profiles()["dlt645_2007_3p"], builtin_profiles()["eastron_sdm630"]
    assert isinstance(dlt, Dlt645Profile)
    assert isinstance(sdm, ModbusProfile)
    return dlt, sdm


DLT, SDM = _profiles()


def bus_for(port: str, parity: str) -> SerialBus:
    """The agent's bus on ``port`` at 9600 baud."""
    return SerialBus(SerialBusSettings(id="bench", port=port, baudrate=BAUD, parity=parity,  # type: ignore[arg-type]
                                       timeout_s=1.0, retries=1))


def dlt_readers(endpoint: Dlt645SerialEndpoint | Dlt645Endpoint, n: int) -> list[DeviceReader]:
    """One reader per simulated meter (addresses 000000000001 ...)."""
    readers: list[DeviceReader] = []
    for i in range(n):
        address = f"{i + 1:012d}"
        if isinstance(endpoint, Dlt645SerialEndpoint):
            transport: Dlt645SerialTransport | Dlt645TcpTransport = Dlt645SerialTransport(
                kind="dlt645_serial", bus="bench", address=address, read_clock=False)
        else:
            transport = Dlt645TcpTransport(kind="dlt645_tcp", host=endpoint.host, port=endpoint.port, address=address,
                                           read_clock=False)
        readers.append(Dlt645Reader(f"dl-{i}", DLT, transport, endpoint, ct_ratio=50.0))
    return readers


def mb_readers(endpoint: ModbusRtuEndpoint | ModbusEndpoint, n: int) -> list[DeviceReader]:
    """One SDM630 reader per simulated unit (1 ...)."""
    readers: list[DeviceReader] = []
    for i in range(n):
        if isinstance(endpoint, ModbusRtuEndpoint):
            transport: ModbusRtuTransport | ModbusTcpTransport = ModbusRtuTransport(kind="modbus_rtu", bus="bench",
                                                                                    unit_id=i + 1)
        else:
            transport = ModbusTcpTransport(kind="modbus_tcp", host=endpoint.host, port=endpoint.port, unit_id=i + 1)
        readers.append(ModbusReader(f"mb-{i}", SDM, transport, endpoint))
    return readers


async def poll_cycle(readers: list[DeviceReader]) -> tuple[float, int, int]:
    """Poll every reader once, concurrently (the bus serialises them); (wall s, readings, failed polls)."""
    started = time.perf_counter()
    results = await asyncio.gather(*(r.read(datetime.now(UTC)) for r in readers), return_exceptions=True)
    wall = time.perf_counter() - started
    readings = sum(len(r.readings) for r in results if not isinstance(r, BaseException))
    return wall, readings, sum(isinstance(r, BaseException) for r in results)


# -- 1. poll cycle vs the line's minimum ---------------------------------------------------------------


async def bench_cycle(folder: Path, n_meters: int, cycles: int, latency_ms: float) -> dict[str, str]:
    """32 meters on one paced 9600 8E1 line: cycle time / (bytes on the wire x 11 bits / 9600)."""
    with pty_pair(folder) as (sim_end, agent_end), simulator("dl-serial", sim_end, n_meters, pace=True,
                                                            latency_s=latency_ms / 1000):
        bus = bus_for(agent_end, PARITY)
        readers = dlt_readers(Dlt645SerialEndpoint(bus), n_meters)
        await poll_cycle(readers)  # open the port, warm up
        walls, wire_bytes, requests, readings, failed = [], [], [], 0, 0
        for _ in range(cycles):
            before = (bus.bytes_written + bus.bytes_read, bus.requests)
            wall, n_read, n_failed = await poll_cycle(readers)
            walls.append(wall)
            wire_bytes.append(bus.bytes_written + bus.bytes_read - before[0])
            requests.append(bus.requests - before[1])
            readings += n_read
            failed += n_failed
        bus.close()
    settings = bus.settings
    cycle_s = statistics.median(walls)
    per_cycle_bytes = statistics.median(wire_bytes)
    minimum_s = settings.wire_time_s(int(per_cycle_bytes))
    exchanges = statistics.median(requests)
    no_preamble_s = settings.wire_time_s(int(per_cycle_bytes - 8 * exchanges))  # FE x4 each way
    return {
        "meters / data identifiers per meter": f"{n_meters} / {len(DLT.points)}",
        "line": f"{BAUD} baud 8E1 (11 bits per byte), meter latency {latency_ms:g} ms",
        "exchanges per cycle (retries)": f"{exchanges:.0f} ({bus.retries_used})",
        "bytes on the wire per cycle": f"{per_cycle_bytes:,.0f}",
        "theoretical minimum (bytes x 11 / 9600)": f"{minimum_s:.2f} s",
        f"full poll cycle (median of {cycles})": f"{cycle_s:.2f} s  (min {min(walls):.2f}, max {max(walls):.2f})",
        "cycle / minimum": f"{cycle_s / minimum_s:.2f}",
        "cycle / minimum without FE preambles": f"{cycle_s / no_preamble_s:.2f}",
        "per exchange: measured / on the wire": f"{1000 * cycle_s / exchanges:.1f} ms / "
                                               f"{1000 * minimum_s / exchanges:.1f} ms",
        "readings per cycle (failed polls)": f"{readings / cycles:.0f} ({failed})",
    }


# -- 2. CPU per reading, TCP vs serial ------------------------------------------------------------------


async def _cpu(readers: list[DeviceReader], cycles: int) -> str:
    """Poll ``cycles`` times; the CPU per reading, user and system, as a table cell."""
    await poll_cycle(readers)  # connect / open, warm up
    (user0, sys0), total, failed = cpu_seconds(), 0, 0
    for _ in range(cycles):
        _, n, f = await poll_cycle(readers)
        total += n
        failed += f
    user1, sys1 = cpu_seconds()
    per = 1e6 / max(total, 1)
    return (f"{per * (user1 - user0 + sys1 - sys0):.0f} µs (user {per * (user1 - user0):.0f} + system "
            f"{per * (sys1 - sys0):.0f}; {total:,} readings, {failed} failed polls)")


async def bench_cpu(folder: Path, n_meters: int, cycles: int) -> dict[str, str]:
    """CPU per reading of the same meters read over TCP and over a serial line (unpaced: CPU, not wall)."""
    out: dict[str, str] = {}
    port = free_port()
    with simulator("dl-tcp", str(port), n_meters):
        endpoint = Dlt645Endpoint("127.0.0.1", port, timeout_s=3.0)
        out["DL/T 645 over TCP (transparent gateway)"] = await _cpu(dlt_readers(endpoint, n_meters), cycles)
        endpoint.close()
    with pty_pair(folder / "dl") as (sim_end, agent_end), simulator("dl-serial", sim_end, n_meters):
        bus = bus_for(agent_end, PARITY)
        out["DL/T 645 over RS-485 (serial bus)"] = await _cpu(dlt_readers(Dlt645SerialEndpoint(bus), n_meters), cycles)
        bus.close()
    port = free_port()
    with simulator("mb-tcp", str(port), n_meters):
        mb_endpoint = ModbusEndpoint("127.0.0.1", port, timeout_s=3.0)
        out["Modbus TCP (SDM630 profile)"] = await _cpu(mb_readers(mb_endpoint, n_meters), cycles)
        mb_endpoint.close()
    with pty_pair(folder / "mb") as (sim_end, agent_end), simulator("mb-serial", sim_end, n_meters):
        bus = bus_for(agent_end, "N")
        out["Modbus RTU (SDM630 profile, serial)"] = await _cpu(mb_readers(ModbusRtuEndpoint(bus), n_meters), cycles)
        bus.close()
    return out


def show(title: str, figures: dict[str, str]) -> None:
    """Print one table of figures."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in figures.items():
        table.add_row(name, value)
    console.print(table)


async def main() -> None:
    """Run both parts and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=5, help="poll cycles per measurement")
    parser.add_argument("--meter-latency-ms", type=float, default=0.0, help="each meter's reaction time")
    parser.add_argument("--parts", default="cycle,cpu", help="comma-separated subset to run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-serial-") as tmp:
        folder = Path(tmp)
        if "cycle" in parts:
            (folder / "cycle").mkdir()
            show(f"1. one RS-485 bus, {args.meters} DL/T 645 meters, full poll cycle vs the line's minimum",
                 await bench_cycle(folder / "cycle", args.meters, args.cycles, args.meter_latency_ms))
        if "cpu" in parts:
            for sub in ("cpu", "cpu/dl", "cpu/mb"):
                (folder / sub).mkdir()
            show(f"2. agent CPU per polled reading ({args.meters} meters x {args.cycles * 4} cycles, reader + "
                 "transport)", await bench_cpu(folder / "cpu", args.meters, args.cycles * 4))


if __name__ == "__main__":
    asyncio.run(main())

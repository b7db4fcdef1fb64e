"""``parkpulse protocol-sim``: serve simulated Modbus and DL/T 645 meters for an edge agent.

Over TCP by default; ``--serial PORT`` puts the meters of one protocol (``--serial-protocol``) on a serial
port instead: an RS-485 adapter, or ``--serial pty`` for a linked pseudo-terminal pair made with ``socat``
(the agent opens the other end, which ``--write-config`` names).

Mount with ``from simulators.protocol._cli import protocol_sim_command`` and
``app.command("protocol-sim")(protocol_sim_command)``.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from edge.serial_bus import SerialBusSettings
    from simulators.protocol.site import SimSite


class SerialProtocol(StrEnum):
    """Which meters go on the serial port."""

    DLT645 = "dlt645"
    MODBUS = "modbus"
    CJT188 = "cjt188"


_LINE_DEFAULTS = {SerialProtocol.DLT645: (2400, "E"), SerialProtocol.MODBUS: (9600, "N"),
                  SerialProtocol.CJT188: (2400, "E")}
SERIAL_BUS_ID = "bus-1"


def protocol_sim_command(
    protocol: Annotated[str | None, typer.Argument(
        help="'opcua': serve a simulated boiler and chiller over OPC UA instead (pip install "
             "'parkpulse[edge,opcua]'); 'flex': a battery, EV chargers and a chiller that take setpoints over "
             "Modbus TCP (--modbus-port), behind a boundary meter; --port, --host, --write-config apply",
        show_default=False)] = None,
    *,
    port: Annotated[int, typer.Option(help="OPC UA port (with 'opcua')")] = 4840,
    modbus: Annotated[int, typer.Option(help="Modbus meters (alternating SDM630 / DTSU666)")] = 2,
    dlt645: Annotated[int, typer.Option(help="DL/T 645-2007 meters on one bus")] = 1,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port")] = 5020,
    dlt645_port: Annotated[int, typer.Option(help="DL/T 645 TCP port")] = 8899,
    cjt188: Annotated[int, typer.Option(help="CJ/T 188 meters on one line (gas, heat, water in turn)")] = 0,
    cjt188_port: Annotated[int, typer.Option(help="CJ/T 188 TCP port")] = 9188,
    serial: Annotated[str | None, typer.Option(
        help="Serve the --serial-protocol meters on this serial port instead of TCP (e.g. /dev/ttyUSB0), "
             "or 'pty': a socat pseudo-terminal pair whose other end the agent opens")] = None,
    serial_protocol: Annotated[SerialProtocol, typer.Option(help="Meters on the serial port")] = SerialProtocol.DLT645,
    baudrate: Annotated[int | None, typer.Option(help="Serial baud rate (default: 2400 DL/T 645, 9600 Modbus)")] = None,
    parity: Annotated[str | None, typer.Option(help="Serial parity N, E or O (default: E DL/T 645, N Modbus)")] = None,
    agent_port: Annotated[str | None, typer.Option(
        help="The serial port the agent opens, written into --write-config (default: the pty's other end, "
             "else --serial)")] = None,
    pace: Annotated[bool, typer.Option(help="DL/T 645 on serial: answer at the line's pace (a pty is instant)")] = True,
    park_id: Annotated[str, typer.Option(help="park_id written into --write-config")] = "demo-park",
    poll_interval_s: Annotated[float, typer.Option(help="poll interval written into --write-config")] = 5.0,
    write_config: Annotated[Path | None, typer.Option(help="Write an edge.yaml that polls these meters")] = None,
) -> None:
    """Run protocol simulators until Ctrl-C (the agent under test talks to them like to real meters)."""
    import yaml

    if protocol == "flex":
        _serve_flex(host=host, port=modbus_port, park_id=park_id,
                    poll_interval_s=poll_interval_s, write_config=write_config)
        return
    if protocol is not None:
        _serve_opcua(protocol, host=host, port=port, park_id=park_id, poll_interval_s=poll_interval_s,
                     write_config=write_config)
        return
    from infra.logconfig import configure_logging
    from simulators.protocol.cjt188 import cli_line
    from simulators.protocol.site import build_site

    configure_logging()
    site = build_site(n_modbus=modbus, n_dlt645=dlt645, host=host, modbus_port=modbus_port,
                      dlt645_port=dlt645_port)
    cjt = cli_line(cjt188, host=host, port=cjt188_port)
    socat: subprocess.Popen[bytes] | None = None
    line: SerialBusSettings | None = None
    if serial is not None:
        if serial == "pty":
            socat, serial, pty_agent_end = _socat_pair()
            agent_port = agent_port or pty_agent_end
        line = _line(serial, serial_protocol, baudrate, parity)
    config: dict[str, Any] = {"agent_id": "sim-agent", "park_id": park_id, "outbox": {"path": "edge-outbox.sqlite"},
                              "devices": site.device_entries(poll_interval_s=poll_interval_s)
                              + cjt.device_entries(poll_interval_s=poll_interval_s)}
    if line is not None:
        agent_line = line.model_copy(update={"port": agent_port or line.port, "id": SERIAL_BUS_ID})
        config = serial_config(config, agent_line, serial_protocol)
    if write_config is not None:
        write_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        typer.echo(f"wrote {write_config}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await _start(site, line, serial_protocol, pace=pace)
        if cjt.meters and line is not None and serial_protocol is SerialProtocol.CJT188:
            await cjt.server.start_serial(line, pace=pace)
        elif cjt.meters:
            await cjt.server.start()
        typer.echo(f"serving {len(site.meters) + len(cjt.meters)} meter(s): " + ", ".join([*site.meters, *cjt.meters]))
        if line is not None:
            typer.echo(f"{serial_protocol.value} meters on serial {line.port} ({line.line}); "
                       f"the agent opens {agent_port or line.port}")
        await stop.wait()
        await site.stop()
        await cjt.server.stop()

    try:
        asyncio.run(serve())
    finally:
        if socat is not None:
            socat.terminate()
            socat.wait(timeout=5)


def _serve_flex(*, host: str, port: int, park_id: str, poll_interval_s: float, write_config: Path | None) -> None:
    """``protocol-sim flex``: dispatchable devices (simulators.protocol.assets) on one Modbus TCP port until Ctrl-C."""
    import yaml

    from infra.logconfig import configure_logging
    from simulators.protocol.site import build_flex_site

    configure_logging()
    site = build_flex_site(host=host, port=port)
    if write_config is not None:
        config = {"agent_id": "sim-agent", "park_id": park_id, "outbox": {"path": "edge-outbox.sqlite"},
                  "devices": site.device_entries(poll_interval_s=poll_interval_s)}
        write_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        typer.echo(f"wrote {write_config}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await site.start()
        typer.echo(f"serving {', '.join([*site.meters, *site.assets])} over Modbus TCP at {host}:{port} "
                   "(setpoint registers: edge/profiles/generic_*_modbus.yaml)")
        await stop.wait()
        await site.stop()

    asyncio.run(serve())


def _serve_opcua(protocol: str, *, host: str, port: int, park_id: str, poll_interval_s: float,
                 write_config: Path | None) -> None:
    """``protocol-sim opcua``: the OPC UA boiler and chiller (simulators.protocol.opcua) until Ctrl-C."""
    import logging

    import yaml

    if protocol != "opcua":
        raise typer.BadParameter(f"unknown protocol {protocol!r}: 'opcua' is the one served this way "
                                 "(Modbus, DL/T 645 and CJ/T 188 meters: --modbus N, --dlt645 N, --cjt188 N)")
    try:
        from simulators.protocol.opcua import OpcUaSimServer, opcua_device_entries
    except ImportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    from infra.logconfig import configure_logging
    from simulators.errors import SimulatorError

    configure_logging()
    logging.getLogger("asyncua").setLevel(logging.WARNING)  # its INFO is one line per node at start
    sim = OpcUaSimServer(host=host, port=port)
    if write_config is not None:
        config = {"agent_id": "sim-agent", "park_id": park_id, "outbox": {"path": "edge-outbox.sqlite"},
                  "devices": opcua_device_entries(sim.url, poll_interval_s=poll_interval_s)}
        write_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        typer.echo(f"wrote {write_config}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await sim.start()
        typer.echo(f"serving a boiler and a chiller over OPC UA at {sim.url}")
        await stop.wait()
        await sim.stop()

    try:
        asyncio.run(serve())
    except SimulatorError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _line(port: str, protocol: SerialProtocol, baudrate: int | None, parity: str | None) -> SerialBusSettings:
    from pydantic import ValidationError

    from edge.serial_bus import SerialBusSettings

    default_baud, default_parity = _LINE_DEFAULTS[protocol]
    try:
        return SerialBusSettings(id="sim", port=port, baudrate=baudrate or default_baud,
                                 parity=(parity or default_parity).upper())  # type: ignore[arg-type]
    except ValidationError as exc:
        raise typer.BadParameter(f"serial line: {exc.errors()[0]['msg']} (baud 300-921600, parity N, E or O)") from None


def serial_config(config: dict[str, Any], line: SerialBusSettings, protocol: SerialProtocol) -> dict[str, Any]:
    """``config`` with the ``protocol`` meters moved onto serial bus ``line`` (``serial_buses`` + transports)."""
    devices = []
    for entry in config["devices"]:
        transport = dict(entry["transport"])
        if protocol is SerialProtocol.DLT645 and transport["kind"] == "dlt645_tcp":
            transport = {"kind": "dlt645_serial", "bus": line.id, "address": transport["address"]}
        elif protocol is SerialProtocol.CJT188 and transport["kind"] == "cjt188_tcp":
            transport = {"kind": "cjt188_serial", "bus": line.id, "address": transport["address"]}
        elif protocol is SerialProtocol.MODBUS and transport["kind"] == "modbus_tcp":
            transport = {"kind": "modbus_rtu", "bus": line.id, "unit_id": transport["unit_id"]}
        devices.append({**entry, "transport": transport})
    bus = line.model_dump(exclude_none=True)
    return {**config, "serial_buses": [bus], "devices": devices}


async def _start(site: SimSite, line: SerialBusSettings | None, protocol: SerialProtocol, *, pace: bool) -> None:
    if line is None:
        await site.start()
        return
    from edge.errors import DeviceConnectionError

    try:
        if protocol is SerialProtocol.DLT645 and site.dlt645 is not None:
            await site.dlt645.start_serial(line, pace=pace)
            if site.modbus is not None:
                await site.modbus.start()
        elif protocol is SerialProtocol.MODBUS and site.modbus is not None:
            await site.modbus.start_serial(line)
            if site.dlt645 is not None:
                await site.dlt645.start()
        elif protocol is SerialProtocol.CJT188:  # started by the caller; the other protocols stay on TCP
            await site.start()
        else:
            raise typer.BadParameter(f"no {protocol.value} meters to put on the serial port (use --{protocol.value} N)")
    except DeviceConnectionError as exc:
        raise typer.BadParameter(str(exc)) from None


def _socat_pair() -> tuple[subprocess.Popen[bytes], str, str]:
    """Start ``socat`` with two linked ptys: (process, simulator's end, agent's end)."""
    socat = shutil.which("socat")
    if socat is None:
        raise typer.BadParameter("--serial pty needs socat: install it (Debian: sudo apt-get install socat)")
    folder = Path(tempfile.mkdtemp(prefix="parkpulse-pty-"))
    sim_end, agent_end = folder / "tty-sim", folder / "tty-agent"
    process = subprocess.Popen(  # noqa: S603 - a fixed argument list, no shell
        [socat, "-d", "-d", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={agent_end}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5.0
    while not (sim_end.exists() and agent_end.exists()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise typer.BadParameter("socat did not create the pseudo-terminal pair")
        time.sleep(0.01)
    return process, str(sim_end), str(agent_end)


__all__ = ["SerialProtocol", "protocol_sim_command", "serial_config"]

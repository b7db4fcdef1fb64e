"""Command-line entry points of the edge agent (mounted by ``parkpulse.cli``).

Mount with::

    from edge._cli import edge_command, edge_discover_command, edge_outbox_command
    app.command("edge")(edge_command)
    app.command("edge-outbox")(edge_outbox_command)
    app.command("edge-discover")(edge_discover_command)

``python -m edge --config edge.yaml`` runs the same agent without the rest of the CLI.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edge.agent import EdgeAgent
    from edge.serial_bus import SerialBusSettings

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", exists=True, dir_okay=False, readable=True,
                       help="The agent's edge.yaml (devices, outbox, broker)."),
]


def edge_command(
    config: ConfigOption,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING... (default: settings)")] = None,
) -> None:
    """Run the edge agent: poll meters (Modbus TCP, DL/T 645), store locally, publish at QoS 1.

    Stops cleanly on SIGTERM or Ctrl-C: polling ends, queued readings are drained for up to
    ``shutdown_grace_s``, each device's status goes ``online: false``; anything not yet sent stays in the
    outbox for the next start.
    """
    from edge.agent import EdgeAgent
    from edge.config import EdgeSettings, load_config
    from edge.errors import ConfigError, OutboxError
    from infra.logconfig import configure_logging

    settings = EdgeSettings()
    configure_logging(log_level or settings.log_level)
    # pymodbus logs every refused connection at WARNING; the agent reports device health itself
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    try:
        agent = EdgeAgent(load_config(config), settings=settings, base_dir=config.resolve().parent)
        asyncio.run(_run_until_signal(agent))
    except (ConfigError, OutboxError) as exc:
        typer.secho(f"edge agent: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


async def _run_until_signal(agent: EdgeAgent) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)


def edge_outbox_command(config: ConfigOption) -> None:
    """Show the agent's outbox: backlog, oldest message, lifetime counters, drops (safe while it runs)."""
    from rich.console import Console
    from rich.table import Table

    from edge.config import load_config
    from edge.errors import ConfigError, OutboxError
    from edge.outbox import read_stats

    try:
        cfg = load_config(config)
        stats = read_stats(cfg.outbox.path)
    except (ConfigError, OutboxError) as exc:
        typer.secho(f"edge outbox: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"outbox {cfg.outbox.path}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    oldest = (datetime.fromtimestamp(stats.oldest_created_at, UTC).isoformat(timespec="seconds")
              if stats.oldest_created_at else "-")
    rows = [
        ("pending messages", f"{stats.pending_messages:,}"),
        ("pending readings", f"{stats.pending_readings:,}"),
        ("pending bytes", f"{stats.pending_bytes:,} of {cfg.outbox.max_bytes:,}"),
        ("oldest pending (UTC)", oldest),
        ("enqueued messages / readings", f"{stats.enqueued_messages:,} / {stats.enqueued_readings:,}"),
        ("published messages / readings", f"{stats.published_messages:,} / {stats.published_readings:,}"),
        (f"dropped ({cfg.outbox.full_policy.value})", f"{stats.dropped_messages:,} / {stats.dropped_readings:,}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console().print(table)


def edge_discover_command(
    *,
    port: Annotated[str, typer.Option(help="Serial port of the RS-485 adapter, e.g. /dev/ttyUSB0")],
    baud: Annotated[int, typer.Option(help="Baud rate; DL/T 645-2007 meters mostly use 2400")] = 2400,
    parity: Annotated[str, typer.Option(help="Parity: N, E or O (DL/T 645: E)")] = "E",
    stopbits: Annotated[int, typer.Option(help="Stop bits: 1 or 2")] = 1,
    window_s: Annotated[float, typer.Option(help="How long to listen for answers, in seconds")] = 2.0,
    probe: Annotated[bool, typer.Option(help="Also read forward active energy (00010000) from each address")] = True,
) -> None:
    """Commissioning: ask the DL/T 645 meter on a serial line for its address (13H to AAAAAAAAAAAA).

    Connect one meter at a time: every meter answers the wildcard query, so several at once collide on the
    line. Prints each address found (put it into the device's ``transport.address`` in edge.yaml).
    """
    from pydantic import ValidationError

    from edge.serial_bus import SerialBusSettings

    try:
        line = SerialBusSettings(id="discover", port=port, baudrate=baud, parity=parity.upper(),  # type: ignore[arg-type]
                                 stopbits=stopbits, timeout_s=max(window_s, 0.1), retries=0)  # type: ignore[arg-type]
    except ValidationError as exc:
        typer.secho(f"edge discover: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']} "
                    "(baud 300-921600, parity N/E/O, stop bits 1/2)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    found, energy = asyncio.run(_discover(line, window_s=window_s, probe=probe))
    if not found:
        typer.secho(f"no DL/T 645 meter answered on {port} at {line.line} within {window_s:g}s: check the A/B "
                    "wiring, the baud rate and parity (try --baud 1200/4800/9600), and that one meter is connected",
                    fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(1)
    for address in found:
        reading = energy.get(address)
        suffix = f"  forward active energy {reading}" if reading else ""
        typer.echo(f"{address}{suffix}")


async def _discover(line: SerialBusSettings, *, window_s: float, probe: bool) -> tuple[list[str], dict[str, str]]:
    from edge.dlt645 import decode_bcd
    from edge.errors import DeviceError
    from edge.readers.dlt645 import Dlt645SerialEndpoint
    from edge.serial_bus import SerialBus

    bus = SerialBus(line)
    endpoint = Dlt645SerialEndpoint(bus)
    energy: dict[str, str] = {}
    try:
        try:
            found = await endpoint.discover(window_s=window_s)
        except DeviceError as exc:
            typer.secho(f"edge discover: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        for address in found if probe else []:
            try:
                value = await endpoint.request(address, 0x00010000, device_id=address)
                energy[address] = f"{decode_bcd(value[:4], decimals=2):.2f} kWh (secondary, before CT x PT)"
            except DeviceError as exc:
                energy[address] = f"not readable: {exc}"
    finally:
        bus.close()
    return found, energy


__all__ = ["edge_command", "edge_discover_command", "edge_outbox_command"]

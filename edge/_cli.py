"""Command-line entry points of the edge agent (mounted by ``parkpulse.cli``).

Mount with::

    from edge._cli import edge_command, edge_outbox_command
    app.command("edge")(edge_command)
    app.command("edge-outbox")(edge_outbox_command)

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


__all__ = ["edge_command", "edge_outbox_command"]

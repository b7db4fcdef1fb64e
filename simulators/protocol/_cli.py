"""``parkpulse protocol-sim``: serve simulated Modbus TCP and DL/T 645 meters for an edge agent.

Mount with ``from simulators.protocol._cli import protocol_sim_command`` and
``app.command("protocol-sim")(protocol_sim_command)``.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer


def protocol_sim_command(
    *,
    modbus: Annotated[int, typer.Option(help="Modbus meters (alternating SDM630 / DTSU666)")] = 2,
    dlt645: Annotated[int, typer.Option(help="DL/T 645-2007 meters on one bus")] = 1,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    modbus_port: Annotated[int, typer.Option(help="Modbus TCP port")] = 5020,
    dlt645_port: Annotated[int, typer.Option(help="DL/T 645 TCP port")] = 8899,
    park_id: Annotated[str, typer.Option(help="park_id written into --write-config")] = "demo-park",
    poll_interval_s: Annotated[float, typer.Option(help="poll interval written into --write-config")] = 5.0,
    write_config: Annotated[Path | None, typer.Option(help="Write an edge.yaml that polls these meters")] = None,
) -> None:
    """Run protocol simulators until Ctrl-C (the agent under test talks to them like to real meters)."""
    import yaml

    from infra.logconfig import configure_logging
    from simulators.protocol.site import build_site

    configure_logging()
    site = build_site(n_modbus=modbus, n_dlt645=dlt645, host=host, modbus_port=modbus_port,
                      dlt645_port=dlt645_port)
    if write_config is not None:
        config = {"agent_id": "sim-agent", "park_id": park_id,
                  "outbox": {"path": "edge-outbox.sqlite"},
                  "devices": site.device_entries(poll_interval_s=poll_interval_s)}
        write_config.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        typer.echo(f"wrote {write_config}")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await site.start()
        typer.echo(f"serving {len(site.meters)} meter(s): " + ", ".join(site.meters))
        await stop.wait()
        await site.stop()

    asyncio.run(serve())


__all__ = ["protocol_sim_command"]

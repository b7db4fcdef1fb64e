"""``parkpulse vpp run`` and ``parkpulse vpp mv show``: the VPP service and an event's live M&V.

Heavy imports (psycopg, Polars, the services) load inside the commands so ``parkpulse --help`` stays instant.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from vpp._live_mv_store import LiveMvStore

console = Console()


def _fail(message: str) -> typer.Exit:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code=1)


def _open_store() -> LiveMvStore:
    import psycopg

    from flex._settings import DrServiceSettings
    from vpp._live_mv_store import LiveMvStore

    settings = DrServiceSettings()  # type: ignore[call-arg]
    try:
        return LiveMvStore(settings.database_url)
    except psycopg.Error as exc:
        raise _fail(f"cannot reach the database: {exc}; start it with `make services`") from None


def _fmt(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:,.1f}{unit}"


def show(
    event: Annotated[str, typer.Option("--event", help="ParkPulse DR event id (see `parkpulse dr events PARK`)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the performance as JSON")] = False,
) -> None:
    """Live M&V of one event: baseline fixed at notification, metered, planned and delivered per interval."""
    from rich.table import Table

    from vpp._live_mv_doc import performance_document

    store = _open_store()
    try:
        found = store.get_event(event)
        rows = store.intervals(event) if found else []
    finally:
        store.close()
    if found is None:
        raise _fail(f"no live M&V for event {event!r}: only events received through `parkpulse vpp run` are "
                    "measured live; for others use `parkpulse dr evaluate`")
    doc = performance_document(found, rows)
    if as_json:
        typer.echo(json.dumps(doc))
        return
    console.print(f"event {doc['event_id']} ({doc['park_id']}, {doc['status']}): committed "
                  f"{_fmt(doc['committed_kw'], ' kW')}, baseline {doc['baseline']['method']} fixed "
                  f"{doc['baseline']['fixed_at']}")
    table = Table("interval", "baseline kW", "planned kW", "metered kW", "reduction kW")
    for r in doc["intervals"]:
        table.add_row(r["ts"], _fmt(r["baseline_kw"]), _fmt(r["planned_kw"]), _fmt(r["metered_kw"]),
                      _fmt(r["reduction_kw"]) + ("" if r["complete"] else " …"))
    console.print(table)
    ratio = doc["delivered_ratio"]
    console.print(f"delivered {_fmt(doc['delivered_kwh'], ' kWh')} of {_fmt(doc['planned_kwh'], ' kWh')} planned; "
                  f"forecast {_fmt(doc['forecast_kwh'], ' kWh')}; delivered ÷ committed "
                  f"{'—' if ratio is None else f'{ratio:.0%}'}")
    if doc["quality_reasons"]:
        console.print("quality: " + "; ".join(doc["quality_reasons"]))


def run() -> None:
    """Run the VEN(s), the dispatcher and live M&V until interrupted (settings: PARKPULSE_VPP_*)."""
    import asyncio
    import signal

    from infra.logconfig import configure_logging
    from vpp._service import VppService
    from vpp._settings import VppSettings
    from vpp.errors import VppServiceError

    settings = VppSettings()  # type: ignore[call-arg]
    configure_logging(settings.log_level)

    async def main() -> None:
        async with VppService(settings) as service:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, service.stop)
            await service.wait()

    try:
        asyncio.run(main())
    except VppServiceError as exc:
        raise _fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``vpp run`` and ``vpp mv show`` to ``app``."""
    app.command("run")(run)
    mv_app = typer.Typer(help="Live M&V of DR events received through the VPP loop.", no_args_is_help=True)
    mv_app.command("show")(show)
    app.add_typer(mv_app, name="mv")

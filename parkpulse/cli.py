"""The ``parkpulse`` command line: one sub-command per service or job.

Heavy imports happen inside the commands so ``parkpulse --help`` stays instant.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from aggregation._cli import aggregate, register_import_commands, report_app
from api._cli import keys_app, serve, ven_app
from dashboards._cli import dashboards_app
from edge._cli import edge_command, edge_outbox_command
from flex._cli import dr_app
from ingest._cli import quarantine_app
from parkpulse._registry_cli import registry_app
from parkpulse.logconfig import configure_logging
from parkpulse.services import services_app
from simulators import simulate
from simulators.protocol._cli import protocol_sim_command

app = typer.Typer(name="parkpulse", help="ParkPulse: energy and carbon metering for industrial parks.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
schema_app = typer.Typer(help="Message contracts.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
import_app = typer.Typer(help="Import historical readings and declared (non-metered) data.", no_args_is_help=True)
app.add_typer(services_app, name="services", help="Start, stop and inspect local Mosquitto and TimescaleDB.")
app.add_typer(db_app, name="db")
app.add_typer(schema_app, name="schema")
app.add_typer(bench_app, name="bench")
app.add_typer(import_app, name="import")
app.command("aggregate")(aggregate)
app.add_typer(report_app, name="report")
register_import_commands(import_app)
app.command("simulate")(simulate)
app.add_typer(dr_app, name="dr")
app.command("api")(serve)
app.add_typer(keys_app, name="api-keys")
app.add_typer(ven_app, name="ven")
app.command("edge")(edge_command)
app.command("edge-outbox")(edge_outbox_command)
app.command("protocol-sim")(protocol_sim_command)
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(registry_app, name="registry")


@db_app.command("migrate")
def db_migrate(
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings)")] = None,
) -> None:
    """Apply pending SQL migrations (recorded; safe to re-run)."""
    from parkpulse.db import migrate
    from parkpulse.settings import ServiceSettings

    configure_logging()
    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    applied = migrate(url)
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database schema is up to date")


@schema_app.command("export")
def schema_export(
    out: Annotated[Path | None, typer.Option(help="Directory for one JSON Schema file per payload")] = None,
) -> None:
    """Print (or write) the JSON Schema of every MQTT payload, for device vendors."""
    from schemas import payload_json_schemas

    schemas = payload_json_schemas()
    if out is None:
        typer.echo(json.dumps(schemas, indent=2, ensure_ascii=False))
        return
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        path = out / f"parkpulse-{name}-v1.schema.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        typer.echo(f"wrote {path}")


@app.command("ingest")
def ingest(
    *,
    client_id: Annotated[str | None, typer.Option(help="Stable MQTT client id of this instance")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus endpoint port (-1: off)")] = None,
    park: Annotated[str | None, typer.Option(help="Only ingest this park's topics")] = None,
    partition_count: Annotated[int | None, typer.Option(min=1, help="Instances sharing the load")] = None,
    partition_index: Annotated[int | None, typer.Option(min=0, help="This instance's share (0 … count-1)")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Apply migrations first")] = True,
) -> None:
    """Run an ingest instance: MQTT persistent subscription → validated, idempotent batches in TimescaleDB.

    Scale out with N instances, each with its own --client-id and --partition-index, and the same
    --partition-count.
    """
    from pydantic import ValidationError

    from ingest import IngestSettings, run_ingest
    from parkpulse.db import migrate

    overrides: dict[str, object] = {}
    if client_id:
        overrides["client_id"] = client_id
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    if park:
        overrides["park_filter"] = park
    if partition_count is not None:
        overrides["partition_count"] = partition_count
    if partition_index is not None:
        overrides["partition_index"] = partition_index
    try:
        settings = IngestSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise typer.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None
    configure_logging(settings.log_level)
    if migrate_first:
        migrate(settings.database_url)
    asyncio.run(run_ingest(settings))


@import_app.command("readings")
def import_readings(
    file: Annotated[Path, typer.Argument(help="CSV: device_id,ts,metric,value,unit[,quality][,park_id]",
                                         exists=True, dir_okay=False)],
    park: Annotated[str | None, typer.Option(help="Park id for every row (if the file has no park_id column)")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings)")] = None,
) -> None:
    """Backfill a meter export through the same validation, quarantine and idempotent write as MQTT."""
    from rich.console import Console

    from ingest import CsvFormatError, ReadingStore, import_readings_csv, read_csv_text
    from parkpulse.settings import ServiceSettings

    configure_logging("WARNING")
    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]

    async def run() -> None:
        store = ReadingStore(url)
        try:
            report = await import_readings_csv(read_csv_text(file), store, park_id=park)
        finally:
            await store.close()
        console = Console()
        console.print(f"{file}: {report.rows:,} rows in {report.messages:,} device chunks: {report.stored:,} stored, "
                      f"{report.duplicates:,} already present, {report.rejected_rows:,} rejected")
        where = f" --park {park}" if park else ""
        for reason, n in sorted(report.reasons.items()):
            console.print(f"  quarantined ({reason}): {n:,} rows — list them with "
                          f"`parkpulse quarantine list{where} --source import --reason {reason}`", markup=False,
                          soft_wrap=True)

    try:
        asyncio.run(run())
    except CsvFormatError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None


@app.command("demo")
def demo(
    duration: Annotated[str, typer.Option(help="Simulated span ending now (15m, 2h, 1d)")] = "1d",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second (1440: a day a minute)")] = 1440.0,
    meters: Annotated[int | None, typer.Option(help="Extra level-3 meters (park size)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
) -> None:
    """Run a simulated park end to end on local services and print what was stored."""
    from rich.console import Console

    from parkpulse.demo import print_result, run_demo, run_indicators
    from parkpulse.settings import ServiceSettings
    from simulators import load_scenario

    configure_logging("WARNING")
    console = Console()
    scenario = load_scenario().with_overrides(extra_meters=meters, duplicate_message_rate=0.01,
                                              malformed_message_rate=0.005)
    result = asyncio.run(run_demo(scenario, duration=duration, speed=speed, seed=seed, console=console))
    print_result(result, console)
    if not result.complete:
        raise typer.Exit(1)
    run_indicators(ServiceSettings().database_url, result.report, scenario.park.timezone, console)  # type: ignore[call-arg]


@bench_app.command("ingest", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_ingest(ctx: typer.Context) -> None:
    """MQTT → ingest → TimescaleDB throughput and latency vs the COPY ceiling and a naive consumer.

    Options are passed to scripts/bench_ingest.py (--rate, --duration, --instances, --per-message ...).
    """
    import subprocess
    import sys

    from parkpulse.paths import project_root

    script = project_root() / "scripts" / "bench_ingest.py"
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))  # noqa: S603


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()

"""The server's commands: everything that needs the database, Polars or the web stack.

Imported by :mod:`parkpulse.cli` only in the server install; the edge install shows stand-ins instead
(:mod:`parkpulse._install`). Heavy imports happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aggregation._cli import AFTER_RUN, aggregate, register_import_commands, report_app
from aggregation._events_cli import meter_events_app
from alarms._alarms_cli import alarms_app
from alarms._notify_cli import deliveries, notify
from alarms._targets_cli import report_projection, targets_app
from api._cli import create_key, keys_app, serve, ven_app
from dashboards._cli import dashboards_app
from flex._cli import dr_app
from infra.logconfig import configure_logging
from ingest._cli import quarantine_app
from parkpulse._registry_cli import registry_app
from parkpulse.services import services_app
from reports._cli import register_report_commands
from simulators.platform._cli import platform_sim_command
from uplink._cli import uplink_app
from vpp._cli import vpp_app

if TYPE_CHECKING:
    from aggregation._jobs import RunReport
    from simulators import SimulationReport

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
import_app = typer.Typer(help="Import historical readings and declared (non-metered) data.", no_args_is_help=True)
#: The demo scenario's meter that goes silent (simulators/scenarios/demo_park.yaml): office HVAC, level 3.
DEMO_SILENT_METER = "hvac-office-1"
app = typer.Typer()  # the commands defined in this module; register_server_commands copies them over


def register_server_commands(top: typer.Typer) -> None:
    """Mount every server command and group on the top-level app."""
    top.add_typer(services_app, name="services", help="Start, stop and inspect local Mosquitto and TimescaleDB.")
    top.add_typer(db_app, name="db")
    top.add_typer(bench_app, name="bench")
    top.add_typer(import_app, name="import")
    register_import_commands(import_app)
    top.command("aggregate")(aggregate)
    top.add_typer(report_app, name="report")
    register_report_commands(report_app)
    top.add_typer(dr_app, name="dr")
    dr_app.command("create-key", help="Create a utility API key scoped to parks (same as `parkpulse api-keys create`)."
                   )(create_key)
    top.command("api")(serve)
    top.add_typer(keys_app, name="api-keys")
    top.add_typer(ven_app, name="ven")
    top.add_typer(dashboards_app, name="dashboards")
    top.add_typer(quarantine_app, name="quarantine")
    top.add_typer(registry_app, name="registry")
    top.add_typer(meter_events_app, name="meter-event")
    top.registered_commands.extend(app.registered_commands)
    top.add_typer(alarms_app, name="alarms")
    alarms_app.command("notify")(notify)
    alarms_app.command("deliveries")(deliveries)
    top.add_typer(targets_app, name="targets")
    report_app.command("projection")(report_projection)
    top.add_typer(uplink_app, name="uplink")
    uplink_app.command("platform-sim")(platform_sim_command)
    top.add_typer(vpp_app, name="vpp")
    for hook in (_write_monthly_reports, _evaluate_alarms, _evaluate_targets, _enqueue_uplink):
        if hook not in AFTER_RUN:
            AFTER_RUN.append(hook)


def _evaluate_alarms(database_url: str, reports_dir: Path | None, run: RunReport) -> list[str]:
    """After each aggregation run: the operational alarm rules of the parks that changed."""
    del run
    from alarms._evaluate import after_aggregate

    return after_aggregate(database_url, reports_dir)


def _enqueue_uplink(database_url: str, reports_dir: Path | None, run: RunReport) -> list[str]:
    """After each aggregation run: recompute the platform records from the run's earliest change and queue new
    or changed ones."""
    from uplink._enqueue import after_aggregate

    return after_aggregate(database_url, reports_dir, earliest_change=run.earliest_change)


def _evaluate_targets(database_url: str, reports_dir: Path | None, run: RunReport) -> list[str]:
    """After each aggregation run: the 预警 level of every park's targets (changes stored and notified)."""
    del reports_dir, run
    from alarms._warning_hook import after_aggregate

    return after_aggregate(database_url)


def _write_monthly_reports(database_url: str, reports_dir: Path | None, run: RunReport) -> list[str]:
    """``aggregate --reports-dir``: the closed months' report files, one line per file written or failed."""
    del run
    if reports_dir is None:
        return []
    from reports._schedule import after_aggregate

    lines = []
    for w in after_aggregate(database_url, reports_dir):
        if w.error:
            lines.append(f"report {w.park_id} {w.period} {w.format}: not written ({w.error})")
        else:
            lines.append(f"report {w.park_id} {w.period} {w.format}: {w.path} ({w.size_bytes:,} bytes, {w.reason})")
    return lines


@db_app.command("migrate")
def db_migrate(
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings)")] = None,
) -> None:
    """Apply pending SQL migrations (recorded; safe to re-run)."""
    from infra.db import migrate
    from infra.settings import ServiceSettings

    configure_logging()
    url = database_url or ServiceSettings().database_url  # type: ignore[call-arg]
    applied = migrate(url)
    typer.echo(f"applied: {', '.join(applied)}" if applied else "database schema is up to date")


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

    from infra.db import migrate
    from ingest import IngestSettings, run_ingest

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

    from infra.settings import ServiceSettings
    from ingest import CsvFormatError, ReadingStore, import_readings_csv, read_csv_text

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
    *,
    duration: Annotated[str, typer.Option(help="Simulated span ending now (15m, 2h, 1d)")] = "1d",
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second (1440: a day a minute)")] = 1440.0,
    meters: Annotated[int | None, typer.Option(help="Extra level-3 meters (park size)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed")] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="A row per device (default: only devices not fully stored)")] = False,
    dr: Annotated[bool, typer.Option("--dr", help="Instead: one OpenADR 2.0b event from a local openleadr VTN "
                                     "through the whole VPP loop (about 4 min); prints planned vs delivered")] = False,
) -> None:
    """Run a simulated park end to end on local services and print what was stored."""
    from rich.console import Console

    from infra.settings import ServiceSettings

    if dr:
        from parkpulse._demo_dr import run_demo_dr

        configure_logging("WARNING")
        endpoints = ServiceSettings()  # type: ignore[call-arg]
        Console().print(run_demo_dr(endpoints.database_url, endpoints.mqtt_url))
        return
    from parkpulse._demo_alarms import run_targets_and_alarms
    from parkpulse.demo import print_result, run_demo, run_indicators
    from simulators import load_scenario

    configure_logging("WARNING")
    console = Console()
    # one meter goes silent for the last 3 hours, so the alarm step has something real to report
    scenario = load_scenario().with_overrides(extra_meters=meters, duplicate_message_rate=0.01,
                                              malformed_message_rate=0.005, silent_device=DEMO_SILENT_METER,
                                              silent_last_s=3 * 3600)
    result = asyncio.run(run_demo(scenario, duration=duration, speed=speed, seed=seed, console=console))
    print_result(result, console, verbose=verbose)
    if not result.complete:
        raise typer.Exit(1)
    database_url = ServiceSettings().database_url  # type: ignore[call-arg]
    run_indicators(database_url, result.report, scenario.park.timezone, console)
    run_targets_and_alarms(database_url, scenario.park.id, result.report.simulated_end, console)
    run_uplink_step(database_url, scenario.park.id, scenario.park.timezone, result.report)


def run_uplink_step(database_url: str, park_id: str, timezone: str, report: SimulationReport) -> None:
    """The demo's uplink step: the local day that most of the simulated window fell on goes to a platform simulator."""
    from zoneinfo import ZoneInfo

    from parkpulse._demo_uplink import run_demo_uplink

    middle = report.simulated_start + (report.simulated_end - report.simulated_start) / 2
    run_demo_uplink(database_url, park_id, middle.astimezone(ZoneInfo(timezone)).date())


@bench_app.command("ingest", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_ingest(ctx: typer.Context) -> None:
    """MQTT → ingest → TimescaleDB throughput and latency vs the COPY ceiling and a naive consumer.

    Options are passed to scripts/bench_ingest.py (--rate, --duration, --instances, --per-message ...);
    --saturate finds the highest rate sustained with 0 lost
    (--step-s, --bisect-steps, --confirm-s, --confirm-attempts, --curve-s).
    Prints one JSON line with every figure.
    """
    raise typer.Exit(_run_bench_script("bench_ingest.py", ctx.args))


@bench_app.command("aggregation", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_aggregation(ctx: typer.Context) -> None:
    """Aggregation on 1,000 meters × 1 year: Polars vs one SQL query, full backfill, incremental runs.

    Options are passed to scripts/bench_aggregation.py (--meters, --days, --incremental-runs, --profile,
    --reuse ...). It loads its own database (<db>_aggbench) and prints one JSON line with every figure.
    """
    raise typer.Exit(_run_bench_script("bench_aggregation.py", ctx.args))


def _run_bench_script(name: str, args: list[str]) -> int:
    """Run one of the project's benchmark scripts with this interpreter; returns its exit code."""
    import subprocess
    import sys

    from infra.paths import project_root

    script = project_root() / "scripts" / name
    return subprocess.call([sys.executable, str(script), *args])  # noqa: S603

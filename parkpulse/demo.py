"""``parkpulse demo``: a simulated park end to end on local services, then what was stored and computed.

Services up → migrate → register the park → an ingest instance → one simulated day published over MQTT
(with a progress bar, a few duplicates and malformed messages on purpose) → wait until every valid reading
is committed → a table of published vs stored readings per device and metric, and the quarantine count →
declared inputs for the simulated days, the aggregation job, and the park indicator report.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from aggregation import AggregationSettings, default_registry, parse_declared_csv, parse_period
from aggregation._bulk import Bulk
from aggregation._inputs import load_park, store_declared
from aggregation._jobs import AggregationJob
from aggregation._render import report_rows
from aggregation._report import compute_report
from aggregation._store import load_meta
from infra.db import DeviceRegistration, migrate, register_device, upsert_park
from infra.paths import cache_dir
from ingest import IngestService, IngestSettings
from parkpulse.services import up
from simulators import Scenario, SimulationReport, run_simulation


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo published and what the database holds for the simulated window."""

    report: SimulationReport
    stored: dict[tuple[str, str], int]
    quarantined: dict[str, int]
    complete: bool


def _stored_counts(conn: psycopg.Connection, report: SimulationReport) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        """SELECT d.device_id, s.metric, count(*) FROM readings r JOIN series s USING (series_id)
           JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND r.ts > %s AND r.ts <= %s GROUP BY 1, 2""",  # samples are stamped at their end
        (report.park_id, report.simulated_start, report.simulated_end)).fetchall()
    return {(str(dev), str(metric)): int(n) for dev, metric, n in rows}


async def run_demo(scenario: Scenario, *, duration: str, speed: float, seed: int, console: Console,
                   settle_timeout_s: float = 120.0) -> DemoResult:
    """Run the whole pipeline once and return published vs stored figures."""
    console.print("[bold]1/7[/] services (Mosquitto, TimescaleDB)")
    endpoints = up(cache_dir(), progress=lambda line: console.print(f"    {line}"))
    console.print(f"    database {endpoints.database_url}\n    broker   {endpoints.mqtt_url}")
    console.print("[bold]2/7[/] database migrations")
    applied = migrate(endpoints.database_url)
    console.print(f"    {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    console.print(f"[bold]3/7[/] park {scenario.park.id}: sites and calendar")
    with psycopg.connect(endpoints.database_url) as conn:
        upsert_park(conn, scenario.park_record(), scenario.site_records())
        for device in scenario.all_devices():  # ingest stores readings of registered devices only
            register_device(conn, DeviceRegistration(scenario.park.id, device.id))
    settings = IngestSettings(database_url=endpoints.database_url, mqtt_url=endpoints.mqtt_url,
                              client_id=f"demo-ingest-{scenario.park.id}", park_filter=scenario.park.id,
                              metrics_port=-1)
    started_at = datetime.now(UTC)
    # The simulated window ends at the park's last local midnight: the same day gives the same window and,
    # the physics being seeded, the same readings, so re-running the demo is idempotent (duplicates only).
    tz = ZoneInfo(scenario.park.timezone)
    window_end = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        console.print(f"[bold]4/7[/] ingest running; simulating {duration} of park time at {speed:g}x")
        with Progress(TextColumn("    {task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                      TimeRemainingColumn(), console=console, transient=False) as bar:
            task = bar.add_task("simulated time", total=1.0)

            def progress(done_s: float, total_s: float) -> None:
                bar.update(task, completed=done_s / total_s if total_s else 1.0)

            report = await run_simulation(scenario, endpoints.mqtt_url, duration=duration, speed=speed, seed=seed,
                                          progress=progress, now=window_end)
        console.print("[bold]5/7[/] waiting for every valid reading to be committed")
        deadline = time.monotonic() + settle_timeout_s
        with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
            while True:
                stored = _stored_counts(conn, report)
                if sum(stored.values()) >= report.readings_published or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # let the last quarantine rows commit too
            stored = _stored_counts(conn, report)
            quarantined = {str(reason): int(n) for reason, n in conn.execute(
                "SELECT reason, count(*) FROM quarantine WHERE park_id = %s AND received_at >= %s GROUP BY 1",
                (scenario.park.id, started_at)).fetchall()}
        console.print(f"    ingest: {service.metrics.readings_stored:,} stored, "
                      f"{service.metrics.readings_duplicate:,} duplicates skipped")
    complete = all(stored.get(key, 0) == n for key, n in report.counts.items())
    return DemoResult(report=report, stored=stored, quarantined=quarantined, complete=complete)


def print_result(result: DemoResult, console: Console) -> None:
    """Published vs stored per device and metric, then totals and the quarantine."""
    report = result.report
    table = Table(title=f"Stored readings, park {report.park_id}, "
                        f"{report.simulated_start:%Y-%m-%d %H:%M} .. {report.simulated_end:%Y-%m-%d %H:%M} UTC")
    for column in ("device", "metric", "published", "stored", ""):
        table.add_column(column, justify="right" if column in ("published", "stored") else "left")
    for (device, metric), published in sorted(report.counts.items()):
        stored = result.stored.get((device, metric), 0)
        table.add_row(device, metric, f"{published:,}", f"{stored:,}", "ok" if stored == published else "MISSING")
    console.print(table)
    console.print(f"readings published {report.readings_published:,} in {report.messages_published:,} messages "
                  f"(+{report.duplicates_published} duplicate and {report.malformed_published} malformed messages); "
                  f"stored {sum(result.stored.values()):,}")
    total_q = sum(result.quarantined.values())
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(result.quarantined.items())) or "none"
    console.print(f"quarantined messages: {total_q} ({detail})")
    console.print("[green]every published reading is stored exactly once[/]" if result.complete
                  else "[red]some published readings are missing[/]")


DECLARED_FILE = Path(__file__).resolve().parent.parent / "simulators" / "scenarios" / "demo_park_declared.yaml"


def declared_csv(park_id: str, first_day: str, end_day: str, days: int, spec: dict[str, Any]) -> str:
    """The demo's declared inputs as an import CSV: annual flows pro rata for the simulated days.

    ``end_day`` is exclusive, as the import's ``start/end`` periods are.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "park_id", "period", "subject", "quantity", "unit", "source", "note"])
    for kind, row in spec["flows_per_year"].items():
        quantity = float(row["quantity"]) * days / 365
        writer.writerow([kind, park_id, f"{first_day}/{end_day}", "", f"{quantity:.6g}", row["unit"], spec["source"],
                         row.get("note", "")])
    for kind, row in spec["stocks"].items():
        writer.writerow([kind, park_id, row["valid_from"], "", row["quantity"], row["unit"], spec["source"],
                         row.get("note", "")])
    return out.getvalue()


def run_indicators(database_url: str, report: SimulationReport, timezone: str, console: Console) -> None:
    """Declare the demo inputs for the simulated days, aggregate the park, print this month's indicators."""
    tz = ZoneInfo(timezone)
    first = report.simulated_start.astimezone(tz).date()
    last = (report.simulated_end - timedelta(microseconds=1)).astimezone(tz).date()
    days = (last - first).days + 1
    spec = yaml.safe_load(DECLARED_FILE.read_text(encoding="utf-8"))
    text = declared_csv(report.park_id, first.isoformat(), (last + timedelta(days=1)).isoformat(), days, spec)
    registry = default_registry()
    console.print(f"[bold]6/7[/] declared inputs for {first} .. {last} ({spec['source']})")
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = store_declared(conn, parse_declared_csv(text, "demo_park_declared.yaml", "declared", registry),
                                "demo_park_declared.yaml")
        console.print(f"    {stored.inserted} new, {stored.replaced} replaced, {stored.unchanged} unchanged")
    console.print("[bold]7/7[/] aggregation (interval energy, rollups, PUE, indicators) and this month's report")
    settings = AggregationSettings(database_url=database_url, aggregation_park=report.park_id)
    run = AggregationJob(settings).run()
    console.print(f"    {run.n_series} meters, {run.n_intervals:,} intervals, {run.n_rollups:,} rollups, "
                  f"{run.n_indicators} indicator values")
    period = parse_period(f"{last:%Y-%m}", today=last)
    with psycopg.connect(database_url, autocommit=True) as conn, Bulk(database_url) as bulk:
        info = load_park(conn, report.park_id)
        assert info is not None  # registered in step 3
        rep = compute_report(bulk, conn, info, period, meta=load_meta(bulk, report.park_id), registry=registry,
                             policy=settings.policy(), basis=None)
        bulk.commit()
    table = Table(title=f"Park indicators, {report.park_id}, {rep.period.label} ({rep.timezone})")
    for column in ("指标 indicator", "variant", "value", "unit", "est. share", "status"):
        table.add_column(column, justify="right" if column in ("value", "est. share") else "left", overflow="fold")
    vintages: set[str] = set()
    for row in report_rows(rep):
        if not row["headline"]:
            continue
        vintages.update(row["factor_vintages"].values())
        value = "—" if row["value"] is None else f"{row['value']:.4g}"
        share = "—" if row["estimated_share"] is None else f"{row['estimated_share']:.1%}"
        name = row["name_zh"] + (f" [{row['subject']}]" if row["subject"] else "")
        table.add_row(name, row["variant"], value, row["unit"], share, row["status"])
    console.print(table)
    console.print(f"factor vintages: {'; '.join(sorted(vintages))}")
    console.print(f"the month so far holds only the simulated days; details: parkpulse report indicators "
                  f"--park {report.park_id} --period {last:%Y-%m} --all-variants")

"""``parkpulse demo``: a simulated park end to end on local services, then what was stored.

Services up → migrate → register the park → an ingest instance → one simulated day published over MQTT
(with a progress bar, a few duplicates and malformed messages on purpose) → wait until every valid reading
is committed → a table of published vs stored readings per device and metric, and the quarantine count.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ingest import IngestService, IngestSettings
from parkpulse.db import migrate, upsert_park
from parkpulse.paths import cache_dir
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
           WHERE d.park_id = %s AND r.ts >= %s AND r.ts <= %s GROUP BY 1, 2""",
        (report.park_id, report.simulated_start, report.simulated_end)).fetchall()
    return {(str(dev), str(metric)): int(n) for dev, metric, n in rows}


async def run_demo(scenario: Scenario, *, duration: str, speed: float, seed: int, console: Console,
                   settle_timeout_s: float = 120.0) -> DemoResult:
    """Run the whole pipeline once and return published vs stored figures."""
    console.print("[bold]1/5[/] services (Mosquitto, TimescaleDB)")
    endpoints = up(cache_dir(), progress=lambda line: console.print(f"    {line}"))
    console.print(f"    database {endpoints.database_url}\n    broker   {endpoints.mqtt_url}")
    console.print("[bold]2/5[/] database migrations")
    applied = migrate(endpoints.database_url)
    console.print(f"    {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    console.print(f"[bold]3/5[/] park {scenario.park.id}: sites and calendar")
    with psycopg.connect(endpoints.database_url) as conn:
        upsert_park(conn, scenario.park_record(), scenario.site_records())
    settings = IngestSettings(database_url=endpoints.database_url, mqtt_url=endpoints.mqtt_url,
                              client_id=f"demo-ingest-{scenario.park.id}", park_filter=scenario.park.id,
                              share_group="demo", metrics_port=-1)
    started_at = datetime.now(UTC)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        console.print(f"[bold]4/5[/] ingest running; simulating {duration} of park time at {speed:g}x")
        with Progress(TextColumn("    {task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                      TimeRemainingColumn(), console=console, transient=False) as bar:
            task = bar.add_task("simulated time", total=1.0)

            def progress(done_s: float, total_s: float) -> None:
                bar.update(task, completed=done_s / total_s if total_s else 1.0)

            report = await run_simulation(scenario, endpoints.mqtt_url, duration=duration, speed=speed, seed=seed,
                                          progress=progress)
        console.print("[bold]5/5[/] waiting for every valid reading to be committed")
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

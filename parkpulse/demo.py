"""``parkpulse demo``: a simulated park end to end on local services, then what was stored and computed.

Services up → migrate → register the park → an ingest instance → one simulated day published over MQTT
(with a progress bar, a few duplicates and malformed messages on purpose) → wait until every valid reading
is committed → a short summary (published, stored, duplicates dropped, quarantined by reason; a row per
device only where published ≠ stored, or for every device with ``--verbose``) → declared inputs for the
simulated days, the aggregation job, and the park indicator report.

Everything printed fits an 80-column terminal: the indicator report is shown as a compact table of its
own (:func:`indicator_tables`, from :func:`aggregation._render.report_rows`) whose value and unit columns
never wrap, with status and estimated share in a second table for the rows where they say something.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import psycopg
import yaml
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

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
from parkpulse._demo_edge import EDGE_GAS_METER, EdgeStep, read_cjt188_gas_meter
from parkpulse.services import up
from simulators import Scenario, SimulationReport, run_simulation


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the demo published and what the database holds for the simulated window."""

    report: SimulationReport
    stored: dict[tuple[str, str], int]
    quarantined: dict[str, int]
    complete: bool
    duplicates_dropped: int = 0  # readings ingest skipped as already stored (redeliveries, re-runs)
    edge: EdgeStep | None = None  # the CJ/T 188 gas meter the edge agent read (parkpulse._demo_edge)


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
    console.print("[bold]1/8[/] services (Mosquitto, TimescaleDB)")
    endpoints = up(cache_dir(), progress=lambda line: console.print(f"    {line}"))
    console.print(f"    database {endpoints.database_url}\n    broker   {endpoints.mqtt_url}")
    console.print("[bold]2/8[/] database migrations")
    applied = migrate(endpoints.database_url)
    console.print(f"    {'applied ' + ', '.join(applied) if applied else 'up to date'}")
    console.print(f"[bold]3/8[/] park {scenario.park.id}: sites and calendar")
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
        console.print(f"[bold]4/8[/] ingest running; simulating {duration} of park time at {speed:g}x")
        with Progress(TextColumn("    {task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                      TimeRemainingColumn(), console=console, transient=False) as bar:
            task = bar.add_task("simulated time", total=1.0)

            def progress(done_s: float, total_s: float) -> None:
                bar.update(task, completed=done_s / total_s if total_s else 1.0)

            report = await run_simulation(scenario, endpoints.mqtt_url, duration=duration, speed=speed, seed=seed,
                                          progress=progress, now=window_end)
        console.print(f"    edge agent: CJ/T 188 gas meter {EDGE_GAS_METER} over TCP, 12 s")
        edge = await read_cjt188_gas_meter(scenario.park.id, endpoints.mqtt_url, endpoints.database_url,
                                           cache_dir() / "demo")
        console.print(f"    edge agent: {edge.readings_published} readings published, {edge.readings_stored} "
                      f"stored, {edge.pending} in its outbox")
        console.print("[bold]5/8[/] waiting for every valid reading to be committed")
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
    complete = all(stored.get(key, 0) >= n for key, n in report.counts.items())  # extra: an earlier run
    complete = complete and edge.readings_stored >= edge.readings_published and edge.pending == 0
    return DemoResult(report=report, stored=stored, quarantined=quarantined, complete=complete,
                      duplicates_dropped=service.metrics.readings_duplicate, edge=edge)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """Published vs stored readings of one device (within the simulated window)."""

    device_id: str
    published: int
    stored: int
    short_metrics: tuple[str, ...]  # metrics with fewer readings stored than published
    extra_metrics: tuple[str, ...] = ()  # metrics with more stored (an earlier run of the same window)

    @property
    def complete(self) -> bool:
        """True when every published reading of the device is stored."""
        return not self.short_metrics


def device_rows(result: DemoResult, *, verbose: bool = False) -> list[DeviceRow]:
    """One row per device where published ≠ stored (every device with ``verbose``), by device id.

    Counts are per metric first: a device whose surplus in one metric hides a gap in another still shows.
    """
    published: dict[str, int] = {}
    stored: dict[str, int] = {}
    short: dict[str, list[str]] = {}
    extra: dict[str, list[str]] = {}
    for (device, metric), n in result.report.counts.items():
        got = result.stored.get((device, metric), 0)
        published[device] = published.get(device, 0) + n
        stored[device] = stored.get(device, 0) + got
        short.setdefault(device, [])
        extra.setdefault(device, [])
        if got < n:
            short[device].append(metric)
        elif got > n:
            extra[device].append(metric)
    rows = [DeviceRow(d, published[d], stored[d], tuple(sorted(short[d])), tuple(sorted(extra[d])))
            for d in sorted(published)]
    return rows if verbose else [r for r in rows if r.published != r.stored or not r.complete]


def print_result(result: DemoResult, console: Console, *, verbose: bool = False) -> None:
    """The summary: totals, quarantine by reason, and the devices whose readings are not all stored."""
    report = result.report
    n_devices = report.devices or len({device for device, _ in report.counts})
    console.print(f"[bold]Summary[/] park {report.park_id}, {report.simulated_start:%Y-%m-%d %H:%M} .. "
                  f"{report.simulated_end:%Y-%m-%d %H:%M} UTC, {n_devices} devices")
    total_q = sum(result.quarantined.values())
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(result.quarantined.items()))
    lines = [
        ("published", f"{report.readings_published:,} readings in {report.messages_published:,} messages "
                      f"(+{report.duplicates_published:,} duplicate, {report.malformed_published:,} malformed)"),
        ("stored", f"{sum(result.stored.values()):,} readings in the database for this window"),
        ("duplicates", f"{result.duplicates_dropped:,} readings dropped as already stored"),
        ("quarantined", f"{total_q:,} messages" + (f": {reasons}" if reasons else "")),
    ]
    summary = Table.grid(padding=(0, 2))
    summary.add_column(no_wrap=True)
    summary.add_column(overflow="fold")
    for label, text in lines:
        summary.add_row(f"  {label}", Text(text))
    console.print(summary)
    rows = device_rows(result, verbose=verbose)
    if rows:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0),
                      title=None if verbose else "devices where published ≠ stored")
        table.add_column("device", overflow="fold")
        table.add_column("published", justify="right", no_wrap=True)
        table.add_column("stored", justify="right", no_wrap=True)
        table.add_column("why", overflow="fold")
        for row in rows:
            why = [f"missing: {', '.join(row.short_metrics)}"] if row.short_metrics else []
            if row.extra_metrics:
                why.append(f"also stored by an earlier run: {', '.join(row.extra_metrics)}")
            table.add_row(Text(row.device_id), f"{row.published:,}", f"{row.stored:,}", Text("; ".join(why) or "ok"))
        console.print(table)
    elif not verbose:
        console.print("  (every device complete; --verbose lists them)")
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
    console.print(f"[bold]6/8[/] declared inputs for {first} .. {last} ({spec['source']})")
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = store_declared(conn, parse_declared_csv(text, "demo_park_declared.yaml", "declared", registry),
                                "demo_park_declared.yaml")
        console.print(f"    {stored.inserted} new, {stored.replaced} replaced, {stored.unchanged} unchanged")
    console.print("[bold]7/8[/] aggregation (interval energy, rollups, PUE, indicators) and this month's report")
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
    rows = [row for row in report_rows(rep) if row["headline"]]
    for renderable in indicator_tables(rows, f"Park indicators, {report.park_id}, {rep.period.label} "
                                             f"({rep.timezone})"):
        console.print(renderable)
    vintages = sorted({v for row in rows for v in row["factor_vintages"].values()})
    console.print(f"factor vintages: {'; '.join(vintages)}")
    console.print(f"the month so far holds only the simulated days; details: parkpulse report indicators "
                  f"--park {report.park_id} --period {last:%Y-%m} --all-variants")


NAME_MAX_COLUMNS: Final = 28


def _value_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _share_text(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def indicator_tables(rows: list[dict[str, Any]], title: str) -> list[Table | str]:
    """The indicator rows (:func:`aggregation._render.report_rows`) as tables that fit 80 columns.

    The first table has what a reader scans for: number, name, variant (after the subject, if any), value,
    unit. Value and unit never wrap; names of up to 28 columns never wrap either; variants fold. The second
    lists status, estimated share and the first note of the rows where the status is not ``ok`` or part of
    the value is estimated, keyed by the same number; a line says so when there are none.
    """
    values = [_value_text(r["value"]) for r in rows]
    main = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    # Fixed widths for all but the variant, which takes what is left and wraps: rich would otherwise also
    # shrink (and so crop) the no-wrap value and unit columns. Names up to 28 columns (the catalogue's
    # longest, 14 characters) stay on one line.
    main.add_column("#", justify="right", no_wrap=True, width=max(1, len(str(len(rows)))))
    main.add_column("指标 indicator", overflow="fold",
                    width=min(NAME_MAX_COLUMNS, max([cell_len(r["name_zh"]) for r in rows] + [cell_len("指标")])))
    main.add_column("variant", overflow="fold")
    main.add_column("value", justify="right", no_wrap=True, width=max([len(v) for v in values] + [5]))
    main.add_column("unit", no_wrap=True, width=max([cell_len(r["unit"]) for r in rows] + [4]))
    quality = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    quality.add_column("#", justify="right", no_wrap=True)
    quality.add_column("status", overflow="fold")
    quality.add_column("est.", justify="right", no_wrap=True)
    quality.add_column("note", overflow="fold", ratio=1)
    for number, (row, value) in enumerate(zip(rows, values, strict=True), start=1):
        variant = f"{row['subject']}: {row['variant']}" if row["subject"] else row["variant"]
        main.add_row(str(number), Text(row["name_zh"]), Text(variant), value, Text(row["unit"]))
        share = row["estimated_share"]
        if row["status"] != "ok" or (share is not None and share > 0):
            quality.add_row(str(number), Text(row["status"]), _share_text(share),
                            Text(row["notes"][0] if row["notes"] else ""))
    if not quality.rows:
        return [main, f"all {len(rows)} values: status ok, no estimated part"]
    return [main, quality]

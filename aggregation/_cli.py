"""Commands of the aggregation package: ``aggregate``, ``report …`` and the declared-data imports.

Mounting (in ``parkpulse/cli.py``)::

    from aggregation._cli import aggregate, register_import_commands, report_app
    app.command("aggregate")(aggregate)
    app.add_typer(report_app, name="report")
    register_import_commands(import_app)      # adds value-added, fuels, areas, … next to `import readings`

Heavy modules (Polars, the database drivers) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from aggregation._settings import AggregationSettings

report_app = typer.Typer(help="Park indicator reports (computed from rollups and declared data).",
                         no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _settings(database_url: str | None) -> AggregationSettings:
    from aggregation._settings import AggregationSettings

    if database_url:
        return AggregationSettings(database_url=database_url)
    return AggregationSettings()  # type: ignore[call-arg]


class _Bars:
    """Progress callback of a run: one rich bar per phase (meters, groups, indicators)."""

    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self._tasks:
            self._tasks[phase] = self._bar.add_task(phase, total=total)
        self._bar.update(self._tasks[phase], completed=done, total=total)


def aggregate(
    *,
    every: Annotated[float | None, typer.Option(
        help="Run every N minutes until interrupted (default: once).", min=0.05)] = None,
    rebuild: Annotated[bool, typer.Option(help="Recompute everything from the readings (ignores the watermark).")
                       ] = False,
    park: Annotated[str | None, typer.Option(help="With --rebuild: only this park.")] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Compute interval energy, rollups, PUE and indicators for everything that changed (incremental)."""
    from aggregation._jobs import AggregationJob
    from aggregation.errors import AggregationError, StoreUnavailableError
    from infra.logconfig import configure_logging

    configure_logging(log_level)
    job = AggregationJob(_settings(database_url))
    first = True
    while True:
        try:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err_console, transient=not rebuild) as bar:
                report = job.run(rebuild=rebuild and first, park_id=park if rebuild and first else None,
                                 progress=_Bars(bar))
            share = "—" if report.estimated_share is None else f"{report.estimated_share:.2%}"
            console.print(f"[bold]aggregate[/]: {report.n_changes} changes, {report.n_series} meters, "
                          f"{report.n_intervals} intervals, {report.n_rollups} rollups, "
                          f"{report.n_indicators} indicator values, estimated share {share}, "
                          f"watermark {report.watermark}, {report.elapsed_s:.2f} s")
        except StoreUnavailableError as exc:
            err_console.print(f"[yellow]database unavailable[/]: {exc}")
            if every is None:
                raise typer.Exit(2) from None
        except AggregationError as exc:
            err_console.print(f"[red]error[/]: {exc}")
            raise typer.Exit(1) from None
        first = False
        if every is None:
            return
        try:
            time.sleep(every * 60)
        except KeyboardInterrupt:
            return


Format = Literal["table", "json", "csv"]


@report_app.command("indicators")
def report_indicators(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    period: Annotated[str, typer.Option(help="2026-10, 2026-Q4, 2026, 2026-YTD or 2026-10-YTD.")],
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = "table",
    basis: Annotated[Literal["calorific", "coal_equivalent"] | None, typer.Option(
        help="Headline basis of energy intensity: calorific (当量值, default) or coal_equivalent (等价值).")] = None,
    all_variants: Annotated[bool, typer.Option(help="Table: show every variant, not only the headline.")] = False,
    publish: Annotated[bool, typer.Option(help="Also store the results in indicator_results.")] = False,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """Every park indicator for a period with units, factor vintages and the estimated-data share."""
    import psycopg

    from aggregation._bulk import Bulk
    from aggregation._factors import Basis, FactorRegistry, default_registry
    from aggregation._inputs import load_park
    from aggregation._periods import parse_period
    from aggregation._render import to_csv, to_json, to_table
    from aggregation._report import compute_report
    from aggregation._report import publish as publish_report
    from aggregation._store import load_meta
    from aggregation.errors import AggregationError

    settings = _settings(database_url)
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn, Bulk(settings.database_url) as bulk:
            info = load_park(conn, park)
            if info is None:
                err_console.print(f"[red]unknown park[/] {park!r}")
                raise typer.Exit(1)
            today = datetime.now(UTC).date()
            p = parse_period(period, today=today)
            registry = (FactorRegistry.from_file(settings.aggregation_factors_file)
                        if settings.aggregation_factors_file else default_registry())
            rep = compute_report(bulk, conn, info, p, meta=load_meta(bulk, park), registry=registry,
                                 policy=settings.policy(), basis=Basis(basis) if basis else None)
            bulk.commit()
            if publish:
                changed = publish_report(conn, rep)
                err_console.print(f"published {len(rep.results)} values ({changed} restated)")
    except AggregationError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None
    if fmt == "json":
        typer.echo(to_json(rep))
    elif fmt == "csv":
        typer.echo(to_csv(rep), nl=False)
    else:
        console.print(to_table(rep, all_variants=all_variants))


@report_app.command("balance")
def report_balance(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    grain: Annotated[Literal["day", "month"], typer.Option(help="day or month.")] = "month",
    limit: Annotated[int, typer.Option(help="Most recent periods to show.", min=1)] = 12,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """GB 17167 balance: level-1 energy vs the sum of level-2 meters, with the difference."""
    import psycopg
    from rich.table import Table

    settings = _settings(database_url)
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute("""SELECT b.period_start AT TIME ZONE p.timezone, b.carrier, b.metric, b.level1_energy,
                                      b.level2_energy, b.difference, b.difference_pct, b.alarm
                               FROM balance_checks b JOIN parks p USING (park_id)
                               WHERE b.park_id = %s AND b.grain = %s
                               ORDER BY b.period_start DESC, b.carrier, b.metric LIMIT %s""",
                            (park, grain, limit)).fetchall()
    table = Table(title=f"{park}: level 1 vs Σ level 2 ({grain})")
    for col in ("period (local)", "carrier", "metric", "level 1", "Σ level 2", "difference", "%", "alarm"):
        table.add_column(col)
    for start, carrier, metric, l1, l2, diff, pct, alarm in rows:
        table.add_row(start.date().isoformat(), carrier, metric, f"{l1:.6g}", f"{l2:.6g}", f"{diff:.6g}",
                      "—" if pct is None else f"{pct:.2f}", "[red]yes[/]" if alarm else "no")
    console.print(table)


@report_app.command("factors")
def report_factors(
    *,
    kind: Annotated[str | None, typer.Option(help="Only this kind, e.g. grid_emission_factor.")] = None,
) -> None:
    """The factor registry: every coefficient with unit, region, year, vintage, source and confidence."""
    from rich.table import Table

    from aggregation._factors import default_registry

    table = Table(title="factor registry (aggregation/data/factors.yaml)")
    for col in ("label", "value", "unit", "vintage", "conf.", "source"):
        table.add_column(col, overflow="fold")
    for f in default_registry().all_factors():
        if kind is None or f.kind == kind:
            table.add_row(f.label, f"{f.value:g}", f.unit, f.vintage, f.confidence, f.source)
    console.print(table)


def _import_command(command: str) -> Callable[..., None]:
    def run(
        file: Annotated[Path, typer.Argument(help="CSV file (columns: see aggregation/_declared.py).",
                                             exists=True, dir_okay=False)],
        *,
        recompute: Annotated[bool, typer.Option(help="Republish the affected monthly indicators.")] = True,
        database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
    ) -> None:
        import psycopg

        from aggregation._declared import affected_months, parse_declared_csv
        from aggregation._factors import default_registry
        from aggregation._inputs import store_declared
        from aggregation._jobs import AggregationJob
        from aggregation.errors import AggregationError

        settings = _settings(database_url)
        try:
            rows = parse_declared_csv(file.read_text(encoding="utf-8"), str(file), command, default_registry())
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                result = store_declared(conn, rows, file.name)
            console.print(f"{file.name}: {len(rows)} rows — {result.inserted} new, {result.replaced} replaced, "
                          f"{result.unchanged} unchanged")
            if recompute and (result.inserted or result.replaced):
                this_month = datetime.now(UTC).date().replace(day=1)
                months = {(p, m) for p, m in affected_months(rows) if m <= this_month}
                n = AggregationJob(settings).republish(months)
                console.print(f"republished {n} indicator values for {len(months)} park-months")
        except AggregationError as exc:
            err_console.print(f"[red]rejected[/]: {exc}")
            raise typer.Exit(1) from None

    run.__doc__ = f"Import declared data ({command}) from a CSV file, with its source, and republish indicators."
    return run


def register_import_commands(app: typer.Typer) -> None:
    """Add ``value-added``, ``fuels``, ``green-certificates``, ``process-emissions``, ``waste-heat``,
    ``renewable-heat``, ``areas`` and ``declared`` to the ``parkpulse import`` sub-app."""
    from aggregation._declared import COMMANDS

    for command in COMMANDS:
        app.command(command)(_import_command(command))

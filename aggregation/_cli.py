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
from typing import TYPE_CHECKING, Annotated, Final, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from aggregation._jobs import RunReport
    from aggregation._settings import AggregationSettings

report_app = typer.Typer(help="Reports: indicators, balance, factors, per-meter energy and the monthly report files.",
                         no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)
#: Called after each successful run with (database URL, --reports-dir or None, the run's report); each returns
#: lines to print (report files written, alarm changes). Their code lives in higher layers (reports/, alarms/,
#: uplink/), so the CLI registers the hooks here at start-up. A hook reports its own failures as lines; it never raises.
AFTER_RUN: list[Callable[[str, Path | None, RunReport], list[str]]] = []


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
    reports_dir: Annotated[Path | None, typer.Option(
        help="After each run, write the monthly report files (xlsx, pdf) of every closed month whose indicators "
             "are new or changed into this folder.", file_okay=False)] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Compute interval energy, rollups, PUE and indicators for everything that changed (incremental)."""
    from aggregation._jobs import AggregationJob
    from aggregation.errors import AggregationError, StoreUnavailableError
    from infra.logconfig import configure_logging

    configure_logging(log_level)
    settings = _settings(database_url)
    job = AggregationJob(settings)
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
            for hook in AFTER_RUN:
                for line in hook(settings.database_url, reports_dir, report):
                    console.print(line, markup=False, soft_wrap=True)
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
    from aggregation._factors import Basis, load_registry
    from aggregation._inputs import load_park
    from aggregation._periods import parse_period
    from aggregation._render import by_source_table, to_csv, to_json, to_table
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
            registry = load_registry(settings.aggregation_factors_file)
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
        sources = by_source_table(rep)
        if sources is not None:
            console.print(sources)
        for warning in rep.warnings:  # JSON has them under "warnings", CSV in each row's notes
            console.print(f"[yellow]warning[/]: {warning}")


_TERMS: Final = (("  level-1 import", "import_energy"), ("+ on-site generation", "generation_energy"),
                 ("− level-1 export", "export_energy"), ("= supply", "supply_energy"),
                 ("  Σ level-2 import", "level2_import_energy"), ("− Σ level-2 export", "level2_export_energy"),
                 ("= demand (Σ level 2)", "level2_energy"), ("supply − demand", "difference"))


def _energy(value: float | None, unit: str | None) -> str:
    """Thousands separators and 0.01 resolution (0.001 for GJ): a 700 MWh month shows every 0.1 kWh."""
    if value is None:
        return "—"
    return f"{value:,.3f}" if unit in ("GJ", "MWh", "t") else f"{value:,.2f}"


@report_app.command("balance")
def report_balance(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    grain: Annotated[Literal["hour", "day", "month"], typer.Option(help="hour, day or month.")] = "month",
    period: Annotated[str | None, typer.Option(
        help="Only periods inside this one: 2026-10, 2026-Q4, 2026 … (default: the most recent).")] = None,
    limit: Annotated[int, typer.Option(help="Most recent periods to show.", min=1)] = 12,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv (json/csv at full precision).")
                   ] = "table",
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """GB 17167 balance per carrier: import + on-site generation − export vs Σ level 2, every term shown."""
    import csv
    import io

    import orjson
    import psycopg
    from rich.table import Table

    from aggregation._periods import parse_period
    from aggregation._report import BALANCE_COLUMNS, load_balance
    from aggregation.errors import PeriodError

    settings = _settings(database_url)
    try:
        wanted = parse_period(period, today=datetime.now(UTC).date()) if period else None
    except PeriodError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    try:
        with psycopg.connect(settings.database_url) as conn:
            rows = load_balance(conn, park, grain, period=wanted, limit=limit)
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}")
        raise typer.Exit(2) from None
    if fmt == "json":
        typer.echo(orjson.dumps({"park_id": park, "grain": grain, "rows": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=BALANCE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows)
        typer.echo(buf.getvalue(), nl=False)
        return
    if not rows:
        err_console.print(f"no balance for park {park!r} ({grain}{', ' + period if period else ''}): a carrier needs "
                          "a level-1 and a level-2 meter; run `parkpulse aggregate` after importing readings")
        return
    table = Table(title=f"{park}: supply (import + generation − export) vs Σ level 2, per carrier ({grain})")
    for col, justify in (("period", "left"), ("carrier, metric", "left"), ("term", "left"), ("value", "right"),
                         ("unit", "left")):
        table.add_column(col, justify=justify, no_wrap=col == "value", overflow="fold")  # type: ignore[arg-type]
    for i, r in enumerate(rows):
        unit = r["unit"] or ""
        first = {0: (r["period"], r["carrier"]), 1: ("", f"[dim]{r['metric']}[/]")}
        for j, (label, key) in enumerate(_TERMS):
            period_cell, carrier_cell = first.get(j, ("", ""))
            table.add_row(period_cell, carrier_cell, label, _energy(r[key], r["unit"]), unit)
        pct = "—" if r["difference_pct"] is None else f"{r['difference_pct']:.2f} %"
        alarm = "[red]ALARM[/]" if r["alarm"] else "ok"
        table.add_row("", "", "difference %, alarm", pct, alarm, end_section=i + 1 < len(rows))
    console.print(table)
    if any(r["supply_energy"] is None for r in rows):
        err_console.print("[yellow]note[/]: rows computed before the per-carrier balance lack the terms; "
                          "run `parkpulse aggregate --rebuild --park " + park + "` to recompute them")


@report_app.command("factors")
def report_factors(
    *,
    park: Annotated[str | None, typer.Option(help="Park id: use its province / grid region.")] = None,
    year: Annotated[int | None, typer.Option(help="Reporting year (default: this year).", min=1990, max=2100)
                    ] = None,
    factors: Annotated[Path | None, typer.Option(
        "--factors", help="Factors file (default: PARKPULSE_AGGREGATION_FACTORS_FILE, else the built-in one).",
        dir_okay=False)] = None,
    show_all: Annotated[bool, typer.Option("--all", help="List every row of the registry instead.")] = False,
    kind: Annotated[str | None, typer.Option(help="List the registry rows of this kind, e.g. grid_emission_factor.")
                    ] = None,
    fmt: Annotated[Literal["table", "json"], typer.Option("--format", help="table or json.")] = "table",
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """The factors in effect: file, region chain, year asked, vintage used and FALLBACK warnings."""
    from rich.table import Table

    from aggregation._factors import effective_factors, factors_document, load_registry
    from aggregation.errors import RegistryError

    settings = _settings_or_none(database_url)
    path = factors or (settings.aggregation_factors_file if settings else None)
    try:
        registry = load_registry(path)
    except RegistryError as exc:
        err_console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(1) from None
    if show_all or kind is not None:
        console.print(f"factors file: [bold]{registry.source}[/]")
        table = Table(title="factor registry")
        for col in ("label", "value", "unit", "vintage", "conf.", "source"):
            table.add_column(col, overflow="fold")
        for f in registry.all_factors():
            if kind is None or f.kind == kind:
                table.add_row(f.label, f"{f.value:g}", f.unit, f.vintage, f.confidence, f.source)
        console.print(table)
        return
    province, grid_region = _park_region(park, settings)
    asked = year or datetime.now(UTC).year
    residual = settings.policy().indicators.market_residual_factor if settings else "excl_market_nonfossil"
    rows = effective_factors(registry, asked, province, grid_region, residual)
    if fmt == "json":
        import orjson

        typer.echo(orjson.dumps(factors_document(registry, rows, park=park, province=province,
                                                 grid_region=grid_region, year=asked),
                                option=orjson.OPT_INDENT_2).decode())
        return
    console.print(f"factors file: [bold]{registry.source}[/]")
    console.print(f"park: {park or '(none: national factors)'} · province {province or '—'} · grid region "
                  f"{grid_region or '—'} · region chain {' → '.join(registry.region_chain(province, grid_region))}")
    table = Table(title=f"factors in effect for reporting year {asked}")
    for col in ("use", "value", "unit", "used (region, year: vintage)", "conf."):
        table.add_column(col, overflow="fold")
    for e in rows:
        chosen = e.factor
        if chosen is None:
            table.add_row(e.use, "—", "", "[red]missing[/]", "")
            continue
        where = " ".join(p for p in (chosen.region if chosen.kind == "grid_emission_factor" else "",
                                     str(chosen.year) if chosen.year is not None else "") if p)
        used = f"{where}: {chosen.vintage}" if where else chosen.vintage
        table.add_row(e.use, f"{chosen.value:g}", chosen.unit, f"[yellow]{used}[/]" if e.warning else used,
                      chosen.confidence)
    console.print(table)
    for e in rows:
        if e.warning:
            console.print(f"[yellow]warning[/]: {e.warning}")


def _settings_or_none(database_url: str | None) -> AggregationSettings | None:
    """The settings, or ``None`` where no database is configured (``report factors`` works without one)."""
    from pydantic import ValidationError

    try:
        return _settings(database_url)
    except ValidationError:
        return None


def _park_region(park: str | None, settings: AggregationSettings | None) -> tuple[str | None, str | None]:
    """(province, grid region) of ``park`` from the database; exits with a hint when it cannot be read."""
    if park is None:
        return None, None
    import psycopg

    from aggregation._inputs import load_park

    if settings is None:
        err_console.print("[red]error[/]: --park needs the database: set PARKPULSE_DATABASE_URL or --database-url")
        raise typer.Exit(2)
    try:
        with psycopg.connect(settings.database_url) as conn:
            info = load_park(conn, park)
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}")
        raise typer.Exit(2) from None
    if info is None:
        err_console.print(f"[red]unknown park[/] {park!r}: list parks with `parkpulse registry` or drop --park")
        raise typer.Exit(1)
    return info.province, info.grid_region


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
        from aggregation._factors import load_registry
        from aggregation._inputs import store_declared
        from aggregation._jobs import AggregationJob
        from aggregation.errors import AggregationError

        settings = _settings(database_url)
        try:
            registry = load_registry(settings.aggregation_factors_file)
            rows = parse_declared_csv(file.read_text(encoding="utf-8"), str(file), command, registry)
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

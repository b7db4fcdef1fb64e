"""Report commands added to ``parkpulse report``: per-meter ``energy``, the ``monthly`` file, ``fonts``.

Mounting (in ``parkpulse/_server_cli.py``)::

    from reports._cli import register_report_commands
    register_report_commands(report_app)

Heavy modules (Polars, psycopg, XlsxWriter, ReportLab, matplotlib) are imported inside the commands, so
``parkpulse --help`` stays instant.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console

if TYPE_CHECKING:
    from reports._settings import ReportSettings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # commands in messages stay on one line


def _settings(database_url: str | None) -> ReportSettings:
    from reports._settings import ReportSettings

    if database_url:
        return ReportSettings(database_url=database_url)
    return ReportSettings()  # type: ignore[call-arg]


def _date(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-10-01",
                                 param_hint=option) from None


def report_energy(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    start: Annotated[str, typer.Option("--from", help="First local day (YYYY-MM-DD), included.")],
    end: Annotated[str, typer.Option("--to", help="Local day (YYYY-MM-DD) the window ends before (excluded).")],
    grain: Annotated[Literal["day", "month"], typer.Option(help="day or month (park time zone).")] = "day",
    device: Annotated[str | None, typer.Option(help="Only this device id.")] = None,
    fmt: Annotated[Literal["table", "json", "csv"], typer.Option("--format", help="table, json or csv.")] = "table",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.",
                                                dir_okay=False)] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """Per-meter energy per local day or month: estimated share, completeness, quality and flags.

    JSON and CSV carry full precision; the table is rounded for reading.
    """
    import psycopg

    from aggregation._meter_energy import energy_window, load_meter_energy
    from aggregation.errors import AggregationError
    from reports._energy_formats import to_csv, to_json, to_table
    from reports._gather import park_row
    from reports.errors import ReportError

    settings = _settings(database_url)
    try:
        window = energy_window(_date(start, "--from"), _date(end, "--to"), grain)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            _, tz = park_row(conn, park)
            rows = load_meter_energy(conn, park, tz, window, device)
    except (AggregationError, ReportError) as exc:
        err_console.print(f"[red]error[/]: {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}; is `parkpulse services up` running?")
        raise typer.Exit(2) from None
    if not rows:
        what = f"device {device!r}" if device else "any meter"
        err_console.print(f"no {grain} energy for {what} of {park} from {window.start} to {window.end}: "
                          "import or ingest readings, then run `parkpulse aggregate`")
    if fmt == "table":
        if output is not None:
            err_console.print("[red]error[/]: --output needs --format json or csv")
            raise typer.Exit(1)
        console.print(to_table(rows, f"{park} · {grain} energy {window.start} … {window.end} ({tz})"))
        return
    text = to_json(rows, park_id=park, timezone=tz, grain=grain, start=window.start, end=window.end) \
        if fmt == "json" else to_csv(rows)
    if output is None:
        typer.echo(text, nl=fmt == "json")
    else:
        output.write_text(text if fmt == "csv" else text + "\n", encoding="utf-8")
        err_console.print(f"wrote {output} ({len(rows)} rows)")


def report_monthly(
    *,
    park: Annotated[str, typer.Option(help="Park id.")],
    period: Annotated[str, typer.Option(help="The month, YYYY-MM (park time zone).")],
    fmt: Annotated[Literal["xlsx", "pdf"], typer.Option("--format", help="xlsx or pdf.")] = "pdf",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: PARK-PERIOD.FMT).",
                                                dir_okay=False)] = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL (default: settings).")] = None,
) -> None:
    """The month's report file (xlsx or pdf) in Chinese and English.

    Indicators on both coal-equivalent bases, carbon and energy by source, per-meter energy, the balance,
    data quality and charts (daily energy per carrier, load duration, PUE).
    """
    import psycopg

    from reports._monthly import build_monthly
    from reports.errors import ReportError

    settings = _settings(database_url)
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            report = build_monthly(conn, park, period, fmt, font_file=settings.report_font_file)
    except ReportError as exc:
        err_console.print(f"[red]error[/]: {exc}", highlight=False)
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        err_console.print(f"[yellow]database unavailable[/]: {exc}; is `parkpulse services up` running?")
        raise typer.Exit(2) from None
    target = output or Path(report.filename)
    target.write_bytes(report.content)
    data = report.data
    console.print(f"wrote {target} ({len(report.content):,} bytes): {len(data.indicators)} indicator values, "
                  f"{len(data.meters)} meters, {len(data.balance.rows)} balance rows"
                  + ("" if data.closed else " — the month is not closed yet, figures are provisional"),
                  highlight=False)
    for note in data.notes:
        err_console.print(f"[yellow]note[/]: {note}", highlight=False)


def report_fonts(
    *,
    install: Annotated[bool, typer.Option(help="Install fonts-wqy-microhei with apt-get if no font is found "
                                               "(root on Debian/Ubuntu).")] = False,
) -> None:
    """Show the CJK font the PDF reports use, or install one."""
    from reports._fonts import find_cjk_font, install_font_package
    from reports._settings import ReportSettings
    from reports.errors import FontNotFoundError

    configured = ReportSettings(database_url="", mqtt_url="").report_font_file
    try:
        font = find_cjk_font(configured)
    except FontNotFoundError as exc:
        if not install:
            err_console.print(f"[red]error[/]: {exc}", highlight=False)
            raise typer.Exit(1) from None
        try:
            console.print(install_font_package())
            font = find_cjk_font(configured)
        except FontNotFoundError as again:
            err_console.print(f"[red]error[/]: {again}", highlight=False)
            raise typer.Exit(1) from None
    console.print(f"report font: {font.path} ({font.family}, {len(font.codepoints):,} characters)", highlight=False)


def register_report_commands(app: typer.Typer) -> None:
    """Add ``energy``, ``monthly`` and ``fonts`` to the ``parkpulse report`` sub-app."""
    app.command("energy")(report_energy)
    app.command("monthly")(report_monthly)
    app.command("fonts")(report_fonts)

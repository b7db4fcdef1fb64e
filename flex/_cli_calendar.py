"""``parkpulse dr calendar …``: a park's own holidays and working days, layered over the national calendar.

Baselines choose "similar days" by day type, so a park's own shutdown (年度检修) or a weekend it works
(调休上班) changes which days a baseline averages. ``set`` stores the days of a CSV or YAML file
(``date,kind,name``; kind = holiday | workday), ``show`` lists the effective special days of a year with
where each comes from, ``clear`` removes the park's days. Every baseline, evaluation and capacity figure of
the park uses the layered calendar from then on.
"""

# Commands import the flex core lazily so `parkpulse --help` stays instant (as in every _cli.py).
# ruff: noqa: PLC0415

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flex._cli_common import console, fail, open_service

calendar_app = typer.Typer(
    help="A park's own holidays and working days (CSV/YAML: date,kind,name; kind = holiday | workday), layered "
         "over the built-in Chinese public-holiday calendar and used by every baseline of the park.",
    no_args_is_help=True,
)

_DAY_TYPES = {
    "workday": "workday",
    "adjusted_workday": "adjusted workday (调休上班)",
    "weekend": "weekend",
    "holiday": "holiday (放假)",
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
YearOption = Annotated[int | None, typer.Option(min=2000, max=2099, help="local calendar year")]


@calendar_app.command("set")
def set_calendar(
    park_id: str,
    file: Annotated[Path, typer.Argument(help="CSV (header date,kind,name) or YAML list of {date, kind, name}",
                                         exists=True, dir_okay=False)],
    merge: Annotated[bool, typer.Option(help="keep the park's other days; only add or update the file's")] = False,
) -> None:
    """Replace the park's own calendar days with the file's (kind: holiday = no production, workday = works)."""
    from flex._calendar_file import read_calendar_file
    from flex.errors import CalendarFileError, FlexError

    try:
        days = read_calendar_file(file)
    except CalendarFileError as exc:
        raise fail(f"{exc}\nfix the file and run `parkpulse dr calendar set {park_id} {file}` again") from None
    service, store = open_service()
    with store:
        try:
            service.set_calendar(park_id, days, merge=merge)
            total = len(store.calendar_days(park_id))
        except FlexError as exc:
            raise fail(exc) from None
    per_year = Counter((d.day.year, d.kind.value) for d in days)
    summary = ", ".join(f"{year}: {n} {kind}(s)" for (year, kind), n in sorted(per_year.items()))
    console.print(f"{park_id}: {len(days)} day(s) {'merged' if merge else 'saved'} ({summary}); the park has "
                  f"{total} own day(s). Baselines, evaluations and capacity of {park_id} use them from now on; "
                  f"re-run `parkpulse dr evaluate EVENT` for events evaluated before.", markup=False)


@calendar_app.command("show")
def show_calendar(
    park_id: str,
    year: YearOption = None,
    csv: Annotated[bool, typer.Option("--csv", help="print the park's own days as CSV (what `set` reads)")] = False,
) -> None:
    """Show the year's holidays and working days (national and the park's own, default: this year)."""
    from rich.markup import escape

    from flex._calendar_file import render_calendar_csv
    from flex._series import park_zone
    from flex.errors import FlexError

    service, store = open_service()
    with store:
        try:
            park = service.park(park_id)
            calendar = service.park_calendar(park_id)
        except FlexError as exc:
            raise fail(exc) from None
    if csv:
        own = [d for d in calendar.park_days.values() if year is None or d.day.year == year]
        typer.echo(render_calendar_csv(own), nl=False)
        return
    shown = year or datetime.now(UTC).astimezone(park_zone(park.timezone)).year
    info = calendar.years.get(shown)
    national = (f"national {info.status} ({info.notice})" if info else
                "the built-in national calendar does not cover this year: only the park's own days are known")
    own_total = sum(1 for d in calendar.park_days if d.year == shown)
    table = Table("date", "day", "type", "name", "source",
                  title=escape(f"{park_id} calendar {shown}: {national}; {own_total} park day(s)"))
    for special in calendar.special_days(shown):
        source = special.source
        if special.overrides is not None:
            source += f" (was {_DAY_TYPES[special.overrides.value]})"
        table.add_row(special.day.isoformat(), _WEEKDAYS[special.day.weekday()],
                      _DAY_TYPES[special.day_type.value], escape(special.name or "—"), source)
    console.print(table)


@calendar_app.command("clear")
def clear_calendar(park_id: str, year: YearOption = None) -> None:
    """Remove the park's own days (of one year, or all); the national calendar applies again."""
    from flex.errors import FlexError

    service, store = open_service()
    with store:
        try:
            deleted = service.clear_calendar(park_id, year=year)
        except FlexError as exc:
            raise fail(exc) from None
    scope = f"of {year} " if year else ""
    console.print(f"{park_id}: {deleted} own day(s) {scope}removed; the built-in national calendar applies to them",
                  markup=False)

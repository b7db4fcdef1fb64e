"""Park calendar files: CSV or YAML rows of ``date, kind, name`` → :class:`CalendarDay` (pure parsing).

A park declares the days on which it differs from the national calendar: its own shutdown days
(``holiday``) and days it works although the calendar says otherwise (``workday``: 调休上班 on a weekend,
or production through a public holiday). CSV::

    date,kind,name
    2026-08-03,holiday,年度检修 (annual maintenance)
    2026-10-10,workday,调休上班

YAML: a list of ``{date, kind, name}`` mappings, or the same list under a ``days:`` key. JSON bodies of
the API go through :func:`parse_calendar_rows`. Every problem raises :class:`CalendarFileError` naming the
row (CSV: file line; YAML/JSON: item number) and the field, and saying how to fix it.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import yaml

from flex._calendar import CalendarDay, CalendarDayKind
from flex.errors import CalendarFileError

FIELDS: Final = ("date", "kind", "name")
REQUIRED: Final = ("date", "kind")
MAX_DAYS: Final = 5000          # ~13 years of daily entries; more is a generated file gone wrong
NAME_MAX_CHARS: Final = 64
EARLIEST: Final = date(2000, 1, 1)
LATEST: Final = date(2099, 12, 31)
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_KINDS: Final = " or ".join(k.value for k in CalendarDayKind)
_TIMESTAMP_TAG: Final = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """Safe YAML that keeps dates as text, so this module validates them (PyYAML would raise a bare
    ``ValueError`` on ``2026-02-30`` and turn ``2026-10-01T08:00`` into a datetime)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _as_text(loader: _Loader, node: yaml.Node) -> str:
    del loader
    return str(node.value)[:40] if isinstance(node, yaml.ScalarNode) else "<not a scalar>"


_Loader.add_constructor(_TIMESTAMP_TAG, _as_text)


def _date(value: Any, source: str, row: int) -> date:
    if isinstance(value, datetime):
        raise CalendarFileError(source, f"{value.isoformat()} has a time; give the date only (YYYY-MM-DD)",
                                row=row, field="date")
    if isinstance(value, date):
        parsed = value
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise CalendarFileError(source, f"{value.strip()!r} is not a calendar date", row=row,
                                    field="date") from None
    elif value is None or value == "":
        raise CalendarFileError(source, "missing; give the local date as YYYY-MM-DD", row=row, field="date")
    elif isinstance(value, str) and _ISO_DATE.match(value.strip()) and value.strip()[10:11] in ("T", " "):
        raise CalendarFileError(source, f"{value.strip()[:40]!r} has a time; give the date only (YYYY-MM-DD)",
                                row=row, field="date")
    else:
        raise CalendarFileError(source, f"{str(value)[:40]!r} is not a date; write it as YYYY-MM-DD", row=row,
                                field="date")
    if not EARLIEST <= parsed <= LATEST:
        raise CalendarFileError(source, f"{parsed.isoformat()} is outside {EARLIEST.year}-{LATEST.year}", row=row,
                                field="date")
    return parsed


def _kind(value: Any, source: str, row: int) -> CalendarDayKind:
    if value is None or value == "":
        raise CalendarFileError(source, f"missing; write {_KINDS}", row=row, field="kind")
    kinds = {k.value: k for k in CalendarDayKind}
    found = kinds.get(value.strip().lower()) if isinstance(value, str) else None
    if found is None:
        raise CalendarFileError(source, f"{str(value)[:40]!r} is not a day kind; write {_KINDS}", row=row,
                                field="kind")
    return found


def _name(value: Any, source: str, row: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CalendarFileError(source, "must be text", row=row, field="name")
    text = str(value).strip()
    if len(text) > NAME_MAX_CHARS:
        raise CalendarFileError(source, f"longer than {NAME_MAX_CHARS} characters; shorten it", row=row,
                                field="name")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise CalendarFileError(source, "contains control characters; use plain text", row=row, field="name")
    return text


def calendar_day(values: Mapping[str, Any], *, source: str = "<request>", row: int = 1) -> CalendarDay:
    """One validated calendar day from a row's ``date``, ``kind`` and optional ``name``."""
    return CalendarDay(_date(values.get("date"), source, row), _kind(values.get("kind"), source, row),
                       _name(values.get("name"), source, row))


def _unique(rows: Sequence[tuple[int, CalendarDay]], source: str) -> list[CalendarDay]:
    if len(rows) > MAX_DAYS:
        raise CalendarFileError(source, f"{len(rows)} days is more than {MAX_DAYS}; split the calendar by year")
    seen: dict[date, int] = {}
    for row, day in rows:
        first = seen.setdefault(day.day, row)
        if first != row:
            raise CalendarFileError(source, f"{day.day.isoformat()} is already given in row {first}; keep one",
                                    row=row, field="date")
    return sorted((d for _, d in rows), key=lambda d: d.day)


def parse_calendar_rows(items: Sequence[Any], source: str = "<request>") -> list[CalendarDay]:
    """Validate a list of ``{date, kind, name}`` mappings (YAML items or a JSON body); sorted by date."""
    if len(items) > MAX_DAYS:
        raise CalendarFileError(source, f"{len(items)} days is more than {MAX_DAYS}; split the calendar by year")
    rows: list[tuple[int, CalendarDay]] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise CalendarFileError(source, "expected a mapping with date, kind and name", row=number)
        keys = {str(k): v for k, v in item.items()}
        unknown = sorted(k for k in keys if k not in FIELDS)
        if unknown:
            raise CalendarFileError(source, f"unknown key; the keys are {', '.join(FIELDS)}", row=number,
                                    field=unknown[0][:40])
        rows.append((number, calendar_day(keys, source=source, row=number)))
    return _unique(rows, source)


def _header(fields: list[str], source: str, line: int) -> list[str]:
    names = [f.strip().lstrip("\ufeff").lower() for f in fields]
    for name in names:
        if name not in FIELDS:
            raise CalendarFileError(source, f"unknown column; the header is {','.join(FIELDS)}", row=line,
                                    field=name[:40])
    for name in REQUIRED:
        if name not in names:
            raise CalendarFileError(source, f"the header has no {name!r} column; start the file with "
                                            f"{','.join(FIELDS)}", row=line)
    if len(set(names)) != len(names):
        raise CalendarFileError(source, "a column appears twice in the header", row=line)
    return names


def parse_calendar_csv(text: str, source: str = "<csv>") -> list[CalendarDay]:
    """Parse a CSV calendar (header ``date,kind[,name]``; ``#`` lines are comments); sorted by date."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, CalendarDay]] = []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields) or fields[0].lstrip("\ufeff").lstrip().startswith("#"):
                continue
            if header is None:
                header = _header(fields, source, line)
                continue
            if len(fields) > len(header):
                raise CalendarFileError(source, f"{len(fields)} fields but the header has {len(header)}; quote "
                                                "names that contain commas", row=line)
            rows.append((line, calendar_day(dict(zip(header, fields, strict=False)), source=source, row=line)))
            if len(rows) > MAX_DAYS:
                break
    except csv.Error as exc:
        raise CalendarFileError(source, f"not valid CSV: {exc}", row=reader.line_num) from None
    if header is None or not rows:
        raise CalendarFileError(source, "no days in the file; write a header date,kind,name and one row per day "
                                        "(to remove a park's days use `parkpulse dr calendar clear`)")
    return _unique(rows, source)


def parse_calendar_yaml(text: str, source: str = "<yaml>") -> list[CalendarDay]:
    """Parse a YAML calendar (a list of ``{date, kind, name}``, or that list under ``days:``); sorted by date."""
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        raise CalendarFileError(source, f"not valid YAML: {problem}",
                                row=mark.line + 1 if mark is not None else None) from None
    except (ValueError, TypeError, RecursionError) as exc:  # bad explicit tags (!!int x), absurd nesting
        raise CalendarFileError(source, f"not valid YAML: {exc.__class__.__name__}: {str(exc)[:80]}") from None
    if isinstance(document, Mapping):
        extra = sorted(str(k) for k in document if k != "days")
        if extra:
            raise CalendarFileError(source, "unknown top-level key; put the list under 'days:'", field=extra[0][:40])
        document = document.get("days")
    if not isinstance(document, list) or not document:
        raise CalendarFileError(source, "no days in the file; write a list of {date, kind, name} items "
                                        "(to remove a park's days use `parkpulse dr calendar clear`)")
    return parse_calendar_rows(document, source)


def parse_calendar_text(text: str, kind: str, source: str) -> list[CalendarDay]:
    """Parse ``text`` as ``csv`` or ``yaml`` (JSON is read as YAML)."""
    if kind == "csv":
        return parse_calendar_csv(text, source)
    return parse_calendar_yaml(text, source)


def read_calendar_file(path: Path) -> list[CalendarDay]:
    """Read and parse a calendar file; the suffix (.csv, .yaml, .yml, .json) picks the format."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml", ".json"):
        raise CalendarFileError(str(path), "unknown file type; name it .csv or .yaml")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalendarFileError(str(path), f"cannot read it ({exc.__class__.__name__}: {exc}); save it as UTF-8 "
                                           "text") from None
    return parse_calendar_text(text, "csv" if suffix == ".csv" else "yaml", str(path))


def render_calendar_csv(days: Sequence[CalendarDay]) -> str:
    """The CSV form of a park's days (what :func:`parse_calendar_csv` reads back)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for d in sorted(days, key=lambda d: d.day):
        writer.writerow((d.day.isoformat(), d.kind.value, d.name))
    return out.getvalue()

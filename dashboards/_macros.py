"""Grafana's PostgreSQL macro expansion, re-implemented exactly, as a pure function.

Grafana turns a panel's ``rawSql`` into the SQL the database runs in three steps. The first happens in the
browser (template variables, see :mod:`dashboards._variables`); the last two on the server, and are what
this module reproduces, following ``pkg/tsdb/grafana-postgresql-datasource/sqleng/sql_engine.go``
(``Interpolate``) and ``…/macros.go`` (``postgresMacroEngine``):

1. global substitutions, plain string replacement in this order: ``$__interval_ms`` (integer
   milliseconds), ``$__interval`` (``gtime.FormatInterval``: one truncating unit, 90 s → ``1m``),
   ``$__unixEpochFrom()``, ``$__unixEpochTo()`` (epoch seconds);
2. the macros, matched by ``\\$([_a-zA-Z0-9]+)\\(([^\\)]*)\\)``, arguments split on ``,`` and trimmed of
   spaces: ``$__time``, ``$__timeEpoch``, ``$__timeFilter`` (``BETWEEN`` two RFC 3339 UTC literals),
   ``$__timeFrom()``, ``$__timeTo()``, ``$__timeGroup`` (``time_bucket('900.000s',c)`` when the
   datasource has ``timescaledb: true``, else ``floor(extract(epoch from c)/900)*900``),
   ``$__timeGroupAlias`` (the same plus ``AS "time"``; a ``$__timeGroup(...)`` directly followed by ``,``
   is treated as the alias form, Grafana's pre-5.3 compatibility quirk), ``$__unixEpochFilter``,
   ``$__unixEpochNanoFilter``, ``$__unixEpochNanoFrom()``, ``$__unixEpochNanoTo()``, ``$__unixEpochGroup``
   and its alias form. Anything else of the form ``$name(...)`` fails the query, as in Grafana.

:func:`calculate_interval_ms` reproduces how the browser picks ``$__interval`` for a panel
(``rangeutil.calculateInterval``: range / max data points, rounded up the ``roundInterval`` ladder, never
below the panel's or datasource's minimum interval).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from dashboards.errors import MacroError

_MACRO_RE: Final = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_GO_DURATION_UNITS: Final[dict[str, float]] = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}
_GO_DURATION_RE: Final = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")

# rangeutil.roundInterval: (upper bound exclusive, rounded value), milliseconds.
_ROUND_LADDER_MS: Final[tuple[tuple[int, int], ...]] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
    (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
    (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
    (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
    (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
    (1814400000, 604800000), (3628800000, 2592000000),
)
_ROUND_LADDER_TOP_MS: Final = 31536000000


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A dashboard time range; both ends timezone-aware."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time range ends must be timezone-aware")
        if self.end < self.start:
            raise ValueError("time range ends before it starts")

    @property
    def duration_ms(self) -> int:
        """Length of the range in whole milliseconds."""
        return (self.end - self.start) // timedelta(milliseconds=1)


def rfc3339_nano(moment: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of ``moment`` in UTC: trailing zeros of the fraction dropped, ``Z``."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_interval(interval_ms: int) -> str:
    """``gtime.FormatInterval``: the largest whole unit, truncating (90 s → ``1m``, 25 h → ``1d``).

    The browser's ``secondsToHms`` gives the same text for every interval Grafana computes.
    """
    units = (("y", 365 * 86_400_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
             ("ms", 1))
    for suffix, size in units:
        if interval_ms >= size:
            return f"{interval_ms // size}{suffix}"
    return "1ms"


def _go_duration_s(text: str) -> float:
    """Go's ``time.ParseDuration`` in seconds (``1h30m``, ``1.5h``, ``300ms``, ``0``)."""
    body, sign = text, 1.0
    if body[:1] in "+-":
        sign = -1.0 if body[0] == "-" else 1.0
        body = body[1:]
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(body):
        match = _GO_DURATION_RE.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _GO_DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def add_months(moment: datetime, months: int) -> datetime:
    """Go's ``AddDate(0, months, 0)``: an overflowing day rolls into the next month (31 Jan + 1 → 3 Mar)."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(index, 12)
    first = moment.replace(year=year, month=month + 1, day=1)
    return first + timedelta(days=moment.day - 1)


def parse_interval_s(text: str, *, now: datetime | None = None) -> float:
    """``gtime.ParseInterval`` in seconds: Go durations plus ``Nd``, ``Nw``, ``NM`` and ``Ny``.

    Months and years are calendar lengths from ``now`` (Grafana uses the server clock), days and weeks are
    24 h and 7 x 24 h. Raises ``ValueError`` on anything Grafana would reject.
    """
    if not text:
        raise ValueError("empty interval")
    last = text[-1]
    if last not in "dwMy":
        return _go_duration_s(text)
    number = text[:-1]
    if not number.isdigit():
        raise ValueError(f"invalid interval {text!r}")
    count = int(number)
    if last == "d":
        return count * 86_400.0
    if last == "w":
        return count * 7 * 86_400.0
    start = now or datetime.now(UTC)
    end = add_months(start, count if last == "M" else 12 * count)
    return (end - start).total_seconds()


def _go_float(value: float) -> str:
    """Go's ``%v`` of a float64 (how Grafana prints the bucket size in the non-TimescaleDB ``$__timeGroup``).

    ``%v`` is ``%g`` with the shortest precision, for which Go switches to ``e`` notation when the decimal
    exponent is below -4 or at least 6 (900 → ``900``, 604800 → ``604800``, 2592000 → ``2.592e+06``).
    """
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    dec = Decimal(repr(abs(value))).normalize()
    digits = "".join(str(d) for d in dec.as_tuple().digits)
    exponent = dec.adjusted()
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    point = exponent + 1  # digits before the decimal point
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def round_interval_ms(interval_ms: float) -> int:
    """``rangeutil.roundInterval``: snap a raw interval to Grafana's ladder (1 ms … 1 y)."""
    for bound, rounded in _ROUND_LADDER_MS:
        if interval_ms < bound:
            return rounded
    return _ROUND_LADDER_TOP_MS


def calculate_interval_ms(time_range: TimeRange, max_data_points: int, min_interval: str | None = None) -> int:
    """The panel's ``$__interval_ms``: ``max(roundInterval(range / max_data_points), min_interval)``.

    ``min_interval`` is the panel's ``interval`` or, failing that, the datasource's ``timeInterval``.
    """
    if max_data_points <= 0:
        raise ValueError("max_data_points must be positive")
    interval = round_interval_ms(time_range.duration_ms / max_data_points)
    if min_interval:
        low = round(parse_interval_s(min_interval, now=time_range.end) * 1000)
        interval = max(interval, low)
    return interval


def interpolate_globals(sql: str, time_range: TimeRange, interval_ms: int) -> str:
    """Step 1 of the server side (``sqleng.Interpolate``): plain replacements, in Grafana's order."""
    sql = sql.replace("$__interval_ms", str(interval_ms))
    sql = sql.replace("$__interval", format_interval(interval_ms))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    return sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))


def _fill_mode(macro: str, value: str) -> None:
    """Validate the optional fill argument (``sqleng.SetupFillmode``); it never changes the SQL."""
    if value in ("NULL", "previous"):
        return
    try:
        float(value)
    except ValueError:
        raise MacroError(macro, f"error parsing fill value {value}") from None


def _group_seconds(macro: str, args: list[str], now: datetime) -> float:
    if len(args) < 2:
        raise MacroError(macro, "needs time column and interval and optional fill value")
    try:
        seconds = parse_interval_s(args[1].strip("'"), now=now)
    except ValueError:
        raise MacroError(macro, f"error parsing interval {args[1]}") from None
    if len(args) == 3:
        _fill_mode(macro, args[2])
    return seconds


def _needs_column(macro: str, args: list[str]) -> str:
    if not args:
        raise MacroError(macro, "missing time column argument")
    return args[0]


def _time_group(args: list[str], rng: TimeRange, timescaledb: bool) -> str:
    seconds = _group_seconds("$__timeGroup", args, rng.end)
    if timescaledb:
        return f"time_bucket('{seconds:.3f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"


def _epoch_group(args: list[str], rng: TimeRange) -> str:
    seconds = _group_seconds("$__unixEpochGroup", args, rng.end)
    return f"floor(({args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# name -> (args, range) -> SQL, for the macros that do not depend on the datasource's timescaledb flag
_SIMPLE: Final[dict[str, Callable[[list[str], TimeRange], str]]] = {
    "__time": lambda a, r: f'{_needs_column("$__time", a)} AS "time"',
    "__timeEpoch": lambda a, r: f'extract(epoch from {_needs_column("$__timeEpoch", a)}) as "time"',
    "__timeFilter": lambda a, r: (f"{_needs_column('$__timeFilter', a)} BETWEEN '{rfc3339_nano(r.start)}' "
                                  f"AND '{rfc3339_nano(r.end)}'"),
    "__timeFrom": lambda a, r: f"'{rfc3339_nano(r.start)}'",
    "__timeTo": lambda a, r: f"'{rfc3339_nano(r.end)}'",
    "__unixEpochFilter": lambda a, r: (f"{_needs_column('$__unixEpochFilter', a)} >= {int(r.start.timestamp())} "
                                       f"AND {a[0]} <= {int(r.end.timestamp())}"),
    "__unixEpochNanoFilter": lambda a, r: (f"{_needs_column('$__unixEpochNanoFilter', a)} >= {_epoch_ns(r.start)} "
                                           f"AND {a[0]} <= {_epoch_ns(r.end)}"),
    "__unixEpochNanoFrom": lambda a, r: str(_epoch_ns(r.start)),
    "__unixEpochNanoTo": lambda a, r: str(_epoch_ns(r.end)),
    "__unixEpochGroup": _epoch_group,
    "__unixEpochGroupAlias": lambda a, r: _epoch_group(a, r) + ' AS "time"',
}


def _evaluate(name: str, args: list[str], time_range: TimeRange, timescaledb: bool) -> str:
    if name == "__timeGroup":
        return _time_group(args, time_range, timescaledb)
    if name == "__timeGroupAlias":
        return _time_group(args, time_range, timescaledb) + ' AS "time"'
    handler = _SIMPLE.get(name)
    if handler is None:
        raise MacroError(f"${name}", "unknown macro")
    return handler(args, time_range)


def _epoch_ns(moment: datetime) -> int:
    return (_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


def expand_macros(sql: str, time_range: TimeRange, *, timescaledb: bool = True) -> str:
    """Step 2 of the server side (``postgresMacroEngine.Interpolate``); raises :class:`MacroError`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "__timeGroup":
            # Grafana looks for the first occurrence of the same text in the original SQL.
            index = sql.find(match.group(0))
            after = index + len(match.group(0))
            if index >= 0 and after < len(sql) and sql[after] == ",":
                name = "__timeGroupAlias"
        args = [arg.strip(" ") for arg in match.group(2).split(",")]
        return _evaluate(name, args, time_range, timescaledb)

    return _MACRO_RE.sub(replace, sql)


def render_sql(sql: str, time_range: TimeRange, interval_ms: int, *, timescaledb: bool = True) -> str:
    """Both server-side steps: what Grafana sends to the database for an already variable-free ``sql``."""
    return expand_macros(interpolate_globals(sql, time_range, interval_ms), time_range, timescaledb=timescaledb)

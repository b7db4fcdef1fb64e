"""The fast path of ``readings`` decoding: JSON straight into columns, no per-reading pydantic object.

:func:`decode_readings_columns` decodes a payload with msgspec into :class:`_Reading` structs, then checks
and converts whole columns at once: timestamps from one digit matrix (one matrix product gives every field
of every timestamp, range-checked together), unit conversion and physical ranges with one factor and one
range per (metric, unit) pair, and one stable sort to split the columns by metric. Messages with fewer than
eight readings go to pydantic, which is faster for them. It only ever *accepts*: it returns a
:class:`ColumnarMessage` when it can prove that :func:`schemas.payload.decode_readings` would accept every
reading of the message with the same values, and ``None`` otherwise. On ``None`` the caller runs the pydantic
decoder, so a message that is rejected, even in part, gets exactly the pydantic path's rejections and reasons.

Why it is a strict subset of the pydantic contract:

* the msgspec types are stricter than the pydantic ones (``v`` only the integer 1, ``seq`` only an integer,
  ``value`` only a JSON number, no unknown field); any msgspec error means "undecided";
* timestamps must match one canonical RFC 3339 shape (``T``, seconds, at most 6 fraction digits, ``Z`` or
  ``±hh:mm``) that pydantic reads the same way; any other spelling is left to pydantic;
* duplicate member names are detected by the same token count as the pydantic path
  (:func:`schemas._strict_json.has_duplicate_keys`); unknown metrics, unit mismatches, out-of-range, future
  or stale readings, oversize, non-UTF-8 and device mismatches are all "undecided".

Timestamps leave as int64 microseconds since 2000-01-01 UTC (PostgreSQL's binary ``timestamptz``), values as
float64 in the metric's canonical unit, quality as int16: what a binary COPY writes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Annotated, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from schemas._strict_json import has_duplicate_keys
from schemas.errors import UnitError
from schemas.metrics import METRICS
from schemas.payload import DecodedMessage, Quality, ValidationPolicy
from schemas.topics import ID_PATTERN, TopicAddress
from schemas.units import conversion_factor

__all__ = ["PG_EPOCH", "ColumnarMessage", "MetricColumns", "columns_from_decoded", "decode_readings_columns",
           "ts_from_pg_us", "ts_to_pg_us"]

#: PostgreSQL's epoch (binary ``timestamptz`` counts microseconds from it)
PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_UNIX_US: Final = 946_684_800_000_000
_ONE_US: Final = timedelta(microseconds=1)

_QualityName = Literal["good", "estimated", "suspect", "bad"]
_QUALITY_CODES: Final[dict[object, int]] = {q.name.lower(): int(q) for q in Quality}
_QUALITY_CODES[msgspec.UNSET] = int(Quality.GOOD)


class _Reading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    ts: str
    metric: str
    value: float
    unit: str
    quality: _QualityName | msgspec.UnsetType = msgspec.UNSET


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    v: Literal[1]
    device: str
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    readings: Annotated[list[_Reading], msgspec.Meta(min_length=1)]
    sent_at: str | msgspec.UnsetType = msgspec.UNSET


_DECODER: Final = msgspec.json.Decoder(_Message)
_DEFAULT_POLICY: Final = ValidationPolicy()
_FEW: Final = 8  # messages with fewer readings go to the pydantic decoder, which is faster for them
_ID_RE: Final = re.compile(ID_PATTERN)
# The canonical shape, field by field in range so that fromisoformat and pydantic agree on every match.
_TS: Final = (r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
              r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)")
_TS_ONE: Final = re.compile(_TS, re.ASCII)  # ASCII: \d must not match other scripts' digits
_TS_LINES: Final = re.compile(rf"(?:{_TS}\n)*{_TS}", re.ASCII)  # every timestamp of a message, one per line

_get_ts, _get_metric, _get_value = attrgetter("ts"), attrgetter("metric"), attrgetter("value")
_get_unit, _get_quality = attrgetter("unit"), attrgetter("quality")
_unit_cache: dict[tuple[str, str], tuple[float, float, float] | None] = {}


@dataclass(frozen=True, slots=True)
class MetricColumns:
    """One metric's accepted readings of one message, as columns ready for a binary COPY."""

    metric: str
    ts_us: npt.NDArray[np.int64]    # µs since 2000-01-01 UTC
    value: npt.NDArray[np.float64]  # canonical unit
    quality: npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class ColumnarMessage:
    """A ``readings`` message whose every reading was accepted, decoded into per-metric columns."""

    device_id: str
    seq: int
    sent_at: datetime | None
    n_readings: int
    newest_ts_us: int
    columns: tuple[MetricColumns, ...]


def ts_to_pg_us(ts: datetime) -> int:
    """Microseconds since PostgreSQL's epoch of an aware datetime (exact integer arithmetic)."""
    return (ts - PG_EPOCH) // _ONE_US


def ts_from_pg_us(us: int) -> datetime:
    """The UTC datetime of ``us`` microseconds since PostgreSQL's epoch."""
    return PG_EPOCH + us * _ONE_US


def _unit_check(metric: str, unit: str) -> tuple[float, float, float] | None:
    """(factor, low, high) of a registered metric sent in a convertible unit; None otherwise."""
    key = (metric, unit)
    if key in _unit_cache:
        return _unit_cache[key]
    spec = METRICS.get(metric)
    check: tuple[float, float, float] | None = None
    if spec is not None:
        try:
            factor = conversion_factor(unit, spec.unit)
        except UnitError:
            factor = None
        if factor is not None:
            check = (factor, -math.inf if spec.min_value is None else spec.min_value,
                     math.inf if spec.max_value is None else spec.max_value)
    if len(_unit_cache) < 4096:
        _unit_cache[key] = check
    return check


def _parse_timestamp(text: str) -> datetime | None:
    if not _TS_ONE.fullmatch(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # the shape is right but the date is not (February 30th)
        return None


def _pg_us_each(stamps: list[str]) -> npt.NDArray[np.int64] | None:
    """Timestamps one by one (messages whose timestamps are not all spelled alike).

    ``datetime.timestamp`` is exact to well under half a microsecond for any date near now, so rounding
    its float to whole microseconds gives the exact instant (values are multiples of 1 µs).
    """
    if _TS_LINES.fullmatch("\n".join(stamps)) is None:
        return None
    try:
        seconds = np.fromiter(map(datetime.timestamp, map(datetime.fromisoformat, stamps)), np.float64,
                              len(stamps))
    except ValueError:  # the shape is right but a date is not (February 30th)
        return None
    return np.rint(seconds * 1e6).astype(np.int64) - _PG_EPOCH_UNIX_US


@dataclass(frozen=True, slots=True)
class _Template:
    """The layout of one timestamp spelling: each byte's allowed range, and how its digits make the fields."""

    low: npt.NDArray[np.uint8]       # per byte: the separator itself, or b"0" for a digit
    high: npt.NDArray[np.uint8]      # per byte: the separator itself, or b"9" for a digit
    weights: npt.NDArray[np.float64]  # (length, fields): digit value → each field of :data:`_FIELDS`


_templates: dict[str, _Template | None] = {}
_DIGITS_TO_ZERO: Final = str.maketrans("0123456789", "0000000000")
_FIRST_YEAR, _LAST_YEAR = 2000, 2099  # the vectorised path's calendar; other years go one by one
#: the fields one matrix product reads from the digits, with their allowed ranges; the last one is the
#: time of day minus the offset in seconds (derived, so not range-checked: its parts are)
_FIELDS: Final = ("year", "month", "day", "hour", "minute", "second", "micro", "off_hour", "off_minute", "clock")
_FIELD_LOW: Final = np.array([_FIRST_YEAR, 1, 1, 0, 0, 0, 0, 0, 0, -(2**40)], np.int64)
_FIELD_HIGH: Final = np.array([_LAST_YEAR, 12, 31, 23, 59, 59, 999_999, 23, 59, 2**40], np.int64)


def _calendar() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Days from 2000-01-01 to the first of each (year, month), and each month's length."""
    start = np.zeros((_LAST_YEAR - _FIRST_YEAR + 1, 13), np.int64)
    length = np.zeros_like(start)
    for y in range(_FIRST_YEAR, _LAST_YEAR + 1):
        for m in range(1, 13):
            first = datetime(y, m, 1, tzinfo=UTC)
            following = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
            start[y - _FIRST_YEAR, m] = (first - PG_EPOCH).days
            length[y - _FIRST_YEAR, m] = (following - first).days
    return start, length


_MONTH_START, _MONTH_DAYS = _calendar()


def _weights(first: str) -> npt.NDArray[np.float64]:
    """Digit weights of a canonical spelling: ``digits @ weights`` gives every field of :data:`_FIELDS`."""
    w = np.zeros((len(first), len(_FIELDS)), np.float64)

    def number(field: str, at: int, width: int, scale: float = 1.0) -> None:
        for i in range(width):
            w[at + i, _FIELDS.index(field)] = scale * 10 ** (width - 1 - i)

    for field, at, width in (("year", 0, 4), ("month", 5, 2), ("day", 8, 2), ("hour", 11, 2), ("minute", 14, 2),
                             ("second", 17, 2)):
        number(field, at, width)
    for at, scale in ((11, 3600.0), (14, 60.0), (17, 1.0)):
        number("clock", at, 2, scale)
    if first[19] == ".":
        n_fraction = len(first) - 20 - (1 if first.endswith("Z") else 6)
        for i in range(n_fraction):
            w[20 + i, _FIELDS.index("micro")] = 10 ** (5 - i)
    if not first.endswith("Z"):
        at, sign = len(first) - 6, (1.0 if first[-6] == "+" else -1.0)
        number("off_hour", at + 1, 2)
        number("off_minute", at + 4, 2)
        number("clock", at + 1, 2, -sign * 3600.0)
        number("clock", at + 4, 2, -sign * 60.0)
    return w


def _template(first: str) -> _Template | None:
    """The layout of ``first``'s spelling, or None when it is not canonical (cached per spelling)."""
    key = first.translate(_DIGITS_TO_ZERO)
    if key in _templates:
        return _templates[key]
    template: _Template | None = None
    if first.isascii() and _TS_ONE.fullmatch(first):
        raw = np.frombuffer(first.encode(), np.uint8)
        is_digit = np.array([c.isdigit() for c in first])
        template = _Template(np.where(is_digit, ord("0"), raw).astype(np.uint8),
                             np.where(is_digit, ord("9"), raw).astype(np.uint8), _weights(first))
    if len(_templates) < 256:
        _templates[key] = template
    return template


def _pg_us(stamps: list[str]) -> npt.NDArray[np.int64] | None:
    """Timestamps in µs since PostgreSQL's epoch, or None when one is not in the canonical shape.

    When every timestamp has the first one's layout (same length, separators in the same places, digits
    elsewhere: the usual case), one matrix product of the digit matrix and the layout's weights gives every
    field of every timestamp (exact: whole numbers far below 2**53), checked in range all at once (month,
    day of that month, hour, minute, second, offset). Anything else goes one by one.
    """
    first, n = stamps[0], len(stamps)
    template = _template(first)
    joined = "".join(stamps)
    if template is None or len(joined) != n * len(first) or not joined.isascii():
        return _pg_us_each(stamps)
    mat = np.frombuffer(joined.encode("ascii"), np.uint8).reshape(n, len(first))
    if not ((mat >= template.low) & (mat <= template.high)).all():
        return _pg_us_each(stamps)
    fields = ((mat - np.uint8(48)) @ template.weights).astype(np.int64)  # separators weigh 0
    if not ((fields >= _FIELD_LOW) & (fields <= _FIELD_HIGH)).all():
        return _pg_us_each(stamps)  # another century, or a field out of range: the general path decides
    row, month, day = fields[:, 0] - _FIRST_YEAR, fields[:, 1], fields[:, 2]
    if day.max() > 28 and (day > _MONTH_DAYS[row, month]).any():
        return None
    days: npt.NDArray[np.int64] = _MONTH_START[row, month] + day - 1
    return (days * 86_400 + fields[:, 9]) * 1_000_000 + fields[:, 6]


def _group(  # noqa: PLR0911 -- each refusal returns at once
    metrics: list[str], units: list[str], values: npt.NDArray[np.float64], ts_us: npt.NDArray[np.int64],
    quality: npt.NDArray[np.int16],
) -> tuple[MetricColumns, ...] | None:
    """Convert values to canonical units and split the columns by metric; None if any reading is refused.

    One factor and one range per distinct (metric, unit) pair, applied to every reading at once; then one
    stable sort by metric splits the columns (readings keep their order within a metric).
    """
    n = len(metrics)
    if metrics.count(metrics[0]) == n and units.count(units[0]) == n:  # the usual message: one register
        check = _unit_check(metrics[0], units[0])
        if check is None:
            return None
        factor, low, high = check
        if factor != 1.0:
            with np.errstate(over="ignore"):  # an overflow gives inf, refused just below
                values = values * factor
        if not (np.isfinite(values).all() and low <= values.min() and values.max() <= high):
            return None
        return (MetricColumns(metrics[0], ts_us, values, quality),)
    pair_codes: dict[tuple[str, str], int] = {}
    codes = np.array([pair_codes.setdefault(pair, len(pair_codes)) for pair in zip(metrics, units, strict=True)],
                     np.intp)
    checks = [_unit_check(metric, unit) for metric, unit in pair_codes]
    if None in checks:
        return None
    factor_arr, low_arr, high_arr = np.array(checks, np.float64).T
    with np.errstate(over="ignore"):  # an overflow gives inf, refused just below
        scaled = values * factor_arr[codes]
    if not (np.isfinite(scaled).all() and (scaled >= low_arr[codes]).all() and (scaled <= high_arr[codes]).all()):
        return None
    metric_codes: dict[str, int] = {}
    by_pair = np.array([metric_codes.setdefault(metric, len(metric_codes)) for metric, _unit in pair_codes], np.intp)
    if len(metric_codes) == 1:
        return (MetricColumns(metrics[0], ts_us, scaled, quality),)
    per_reading = by_pair[codes]
    order = np.argsort(per_reading, kind="stable")
    splits = np.cumsum(np.bincount(per_reading, minlength=len(metric_codes)))[:-1]
    parts = zip(np.split(ts_us[order], splits), np.split(scaled[order], splits), np.split(quality[order], splits),
                strict=True)
    return tuple(MetricColumns(metric, t, v, q) for metric, (t, v, q) in zip(metric_codes, parts, strict=True))


def _envelope(address: TopicAddress, raw: bytes, pol: ValidationPolicy) -> tuple[_Message, datetime | None] | None:
    """The decoded message and its ``sent_at`` when the envelope is certainly accepted; else None."""
    if len(raw) > pol.max_message_bytes or len(raw) < _FEW * 48:  # fewer than _FEW readings: not worth it
        return None
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        msg = _DECODER.decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None
    n = len(msg.readings)
    # numpy's fixed cost per call outweighs its gain on a handful of readings: those go to pydantic
    if n < _FEW or n > pol.max_readings or msg.device != address.device_id or not _ID_RE.fullmatch(msg.device):
        return None
    sent_at: datetime | None = None
    if msg.sent_at is not msgspec.UNSET:
        sent_at = _parse_timestamp(msg.sent_at)
        if sent_at is None:
            return None
    return msg, sent_at


def decode_readings_columns(
    address: TopicAddress, raw: bytes, *, now: datetime, policy: ValidationPolicy | None = None
) -> ColumnarMessage | None:
    """Decode ``raw`` into columns when every reading is accepted; None: use :func:`decode_readings`."""
    pol = policy or _DEFAULT_POLICY
    envelope = _envelope(address, raw, pol)
    if envelope is None:
        return None
    msg, sent_at = envelope
    readings = msg.readings
    n = len(readings)
    qualities = list(map(_get_quality, readings))
    n_quality = n - qualities.count(msgspec.UNSET)
    n_keys = 4 + (sent_at is not None) + 4 * n + n_quality
    if has_duplicate_keys(raw, n_keys, n_keys + 1 + (sent_at is not None) + 3 * n + n_quality):
        return None
    ts_us = _pg_us(list(map(_get_ts, readings)))
    if ts_us is None:
        return None
    newest, oldest = int(ts_us.max()), int(ts_us.min())
    if newest > ts_to_pg_us(now + pol.max_future) or oldest < ts_to_pg_us(max(now - pol.max_age, pol.earliest)):
        return None
    quality = (np.zeros(n, np.int16) if not n_quality
               else np.fromiter(map(_QUALITY_CODES.__getitem__, qualities), np.int16, n))
    columns = _group(list(map(_get_metric, readings)), list(map(_get_unit, readings)),
                     np.fromiter(map(_get_value, readings), np.float64, n), ts_us, quality)
    if columns is None:
        return None
    return ColumnarMessage(msg.device, msg.seq, sent_at, n, newest, columns)


def columns_from_decoded(decoded: DecodedMessage) -> tuple[MetricColumns, ...]:
    """The accepted readings of a pydantic-path result as per-metric columns (same layout as the fast path)."""
    groups: dict[str, tuple[list[int], list[float], list[int]]] = {}
    for metric, ts, value, quality in decoded.readings:
        group = groups.get(metric)
        if group is None:
            group = groups[metric] = ([], [], [])
        group[0].append(ts_to_pg_us(ts))
        group[1].append(value)
        group[2].append(quality)
    return tuple(MetricColumns(m, np.array(t, np.int64), np.array(v, np.float64), np.array(q, np.int16))
                 for m, (t, v, q) in groups.items())

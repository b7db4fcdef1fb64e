"""Interval demand series: the one input shape of baselines, events and capacity.

A park's load is a Polars frame with one row per metering interval: ``ts`` (interval start, timezone-aware,
any zone; converted to UTC here), ``demand_kw`` (mean demand over the interval, + = import) and optionally
``estimated_share`` (0..1, the part of the interval's energy that VEE estimated rather than measured).
A missing interval is an absent row or a null ``demand_kw``; it is never silently treated as zero.
:class:`IntervalSeries` validates the frame once and answers point look-ups by UTC timestamp, which is all
the day-selection logic needs; calendar days are always taken in the park's time zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from flex.errors import InvalidLoadDataError

TS: Final = "ts"
DEMAND_KW: Final = "demand_kw"
ESTIMATED_SHARE: Final = "estimated_share"


def park_zone(timezone: str) -> ZoneInfo:
    """The IANA zone of a park (``parks.timezone``); raises :class:`InvalidLoadDataError` if unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidLoadDataError(f"unknown time zone {timezone!r}") from None


def require_aware(value: datetime, what: str) -> datetime:
    """``value`` converted to UTC; naive datetimes are rejected, never guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidLoadDataError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def on_grid(value: datetime, interval_minutes: int) -> bool:
    """True when an aware datetime sits on the interval grid (:00/:15/:30/:45 for 15 min)."""
    seconds = value.timestamp()
    return seconds % (interval_minutes * 60) == 0


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The aware local midnight starting ``day`` in ``zone`` (wall-clock arithmetic applies to it)."""
    return datetime.combine(day, time(), tzinfo=zone)


def wall_to_utc(day: date, offset: timedelta, zone: ZoneInfo) -> datetime:
    """The UTC instant at wall-clock ``offset`` after local midnight of ``day`` (may leave the day)."""
    return (local_midnight(day, zone) + offset).astimezone(UTC)


def local_day_slots(day: date, zone: ZoneInfo, interval_minutes: int) -> list[datetime]:
    """UTC starts of every interval of the local calendar day (96 for 15 min without DST change)."""
    start = local_midnight(day, zone).astimezone(UTC)
    end = local_midnight(day + timedelta(days=1), zone).astimezone(UTC)
    step = timedelta(minutes=interval_minutes)
    n = int((end - start) / step)
    return [start + i * step for i in range(n)]


@dataclass(frozen=True, slots=True)
class Point:
    """One interval's demand and the share of it that was estimated."""

    demand_kw: float
    estimated_share: float


class IntervalSeries:
    """A validated interval demand series with O(1) look-up by UTC interval start."""

    __slots__ = ("_points", "interval_minutes")

    def __init__(self, load: pl.DataFrame, interval_minutes: int = 15) -> None:
        """Validate ``load`` (see module docstring); raises :class:`InvalidLoadDataError`."""
        self.interval_minutes = interval_minutes
        self._points: dict[int, Point] = {}
        missing = {TS, DEMAND_KW} - set(load.columns)
        if missing:
            raise InvalidLoadDataError(f"load frame lacks column(s) {sorted(missing)}; has {load.columns}")
        dtype = load.schema[TS]
        if not isinstance(dtype, pl.Datetime) or dtype.time_zone is None:
            raise InvalidLoadDataError(f"column {TS!r} must be a timezone-aware Datetime, got {dtype}")
        frame = load.select(
            pl.col(TS).dt.convert_time_zone("UTC").dt.epoch("s").alias("epoch_s"),
            pl.col(DEMAND_KW).cast(pl.Float64),
            (pl.col(ESTIMATED_SHARE).cast(pl.Float64) if ESTIMATED_SHARE in load.columns else pl.lit(0.0))
            .fill_null(0.0)
            .alias(ESTIMATED_SHARE),
        ).filter(pl.col(DEMAND_KW).is_not_null())
        step_s = interval_minutes * 60
        for epoch_s, demand_kw, est in frame.iter_rows():
            if epoch_s % step_s:
                when = datetime.fromtimestamp(epoch_s, UTC).isoformat()
                raise InvalidLoadDataError(f"row at {when} is not on the {interval_minutes}-minute grid")
            if not math.isfinite(demand_kw):
                raise InvalidLoadDataError(f"non-finite demand at {datetime.fromtimestamp(epoch_s, UTC)}")
            if not 0.0 <= est <= 1.0:
                raise InvalidLoadDataError(f"{ESTIMATED_SHARE} must be within 0..1, got {est}")
            if epoch_s in self._points:
                raise InvalidLoadDataError(f"duplicate interval {datetime.fromtimestamp(epoch_s, UTC).isoformat()}")
            self._points[epoch_s] = Point(float(demand_kw), float(est))

    def __len__(self) -> int:
        return len(self._points)

    def get(self, ts_utc: datetime) -> Point | None:
        """The point starting at ``ts_utc`` (aware) or None when that interval is missing."""
        return self._points.get(int(ts_utc.timestamp()))

    def first_ts(self) -> datetime | None:
        """Start of the earliest interval, or None for an empty series."""
        return datetime.fromtimestamp(min(self._points), UTC) if self._points else None

    def last_ts(self) -> datetime | None:
        """Start of the latest interval, or None for an empty series."""
        return datetime.fromtimestamp(max(self._points), UTC) if self._points else None

    def values(self, slots: list[datetime]) -> list[Point | None]:
        """Points for each slot, None where missing."""
        return [self.get(s) for s in slots]

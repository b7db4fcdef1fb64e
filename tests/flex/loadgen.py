"""Synthetic interval demand for golden tests: one level per local day, plus explicit overrides.

Every interval of a local day carries the day's level unless ``overrides`` gives a value for that local
wall-clock time, so hand arithmetic stays simple: a baseline over constant days is the mean of the levels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

SH = ZoneInfo("Asia/Shanghai")


def local(day: date, hh: int, mm: int = 0) -> datetime:
    """Aware Asia/Shanghai datetime."""
    return datetime.combine(day, time(hh, mm), tzinfo=SH)


def build_load(
    first: date,
    last: date,
    level: Callable[[date], float] | Mapping[date, float],
    *,
    default: float = 100.0,
    overrides: Mapping[datetime, float] | None = None,
    missing: set[datetime] | None = None,
    estimated: Mapping[datetime, float] | None = None,
    zone: ZoneInfo = SH,
) -> pl.DataFrame:
    """15-min demand from local day ``first`` to ``last`` inclusive (keys of the maps are aware datetimes)."""
    overrides = {k.astimezone(UTC): v for k, v in (overrides or {}).items()}
    missing_utc = {m.astimezone(UTC) for m in (missing or set())}
    est = {k.astimezone(UTC): v for k, v in (estimated or {}).items()}
    ts: list[datetime] = []
    kw: list[float] = []
    share: list[float] = []
    day = first
    while day <= last:
        value = level(day) if callable(level) else level.get(day, default)
        start = datetime.combine(day, time(), tzinfo=zone)
        for i in range(96):
            t = (start + timedelta(minutes=15 * i)).astimezone(UTC)
            if t in missing_utc:
                continue
            ts.append(t)
            kw.append(float(overrides.get(t, value)))
            share.append(float(est.get(t, 0.0)))
        day += timedelta(days=1)
    return pl.DataFrame(
        {"ts": ts, "demand_kw": kw, "estimated_share": share},
        schema={"ts": pl.Datetime("us", "UTC"), "demand_kw": pl.Float64, "estimated_share": pl.Float64},
    )


def window_overrides(day: date, start_hh: int, end_hh: int, value: float) -> dict[datetime, float]:
    """Overrides setting every interval of ``day`` in [start_hh, end_hh) local to ``value``."""
    out: dict[datetime, float] = {}
    t = local(day, start_hh)
    while t < local(day, end_hh):
        out[t] = value
        t += timedelta(minutes=15)
    return out

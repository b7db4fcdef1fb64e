"""Small builders for the pure-core tests: readings and meter frames from plain Python values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import polars as pl

from aggregation._registers import METERS_SCHEMA, READINGS_SCHEMA

T0 = datetime(2026, 10, 5, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in Shanghai
Q = timedelta(minutes=15)


def readings(values: Sequence[float], *, start: datetime = T0, step: timedelta = Q, series_id: int = 1,
             times: Sequence[datetime] | None = None, quality: Sequence[int] | None = None) -> pl.DataFrame:
    """Readings of one series: ``values`` at ``start + k*step`` (or at ``times``)."""
    ts = list(times) if times is not None else [start + k * step for k in range(len(values))]
    return pl.DataFrame({"series_id": [series_id] * len(values), "ts": ts, "value": [float(v) for v in values],
                         "quality": list(quality) if quality is not None else [0] * len(values)},
                        schema=READINGS_SCHEMA)


def meter(series_id: int = 1, *, register_max: float | None = 999_999.99, multiplier: float = 1.0,
          max_rate_per_h: float | None = 100.0, resolution: float | None = 0.01, float32: bool = False,
          timezone: str = "Asia/Shanghai") -> pl.DataFrame:
    """One meter's parameters (register max, multiplier, plausibility rate, step, time zone)."""
    return pl.DataFrame({"series_id": [series_id], "register_max": [register_max], "multiplier": [multiplier],
                         "max_rate_per_h": [max_rate_per_h], "resolution": [resolution],
                         "float32_register": [float32], "timezone": [timezone]}, schema=METERS_SCHEMA)


def energies(df: pl.DataFrame) -> list[float]:
    """Interval energies rounded to 1e-9 (float noise of register arithmetic)."""
    return [round(v, 9) for v in df.get_column("energy").to_list()]

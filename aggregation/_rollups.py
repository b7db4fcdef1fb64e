"""Rollups of interval energy: hour → day → month in the park's calendar, per meter and per group.

Pure Polars. Buckets are local calendar periods of the park's time zone (Asia/Shanghai by default),
stored as their UTC start instant, so a Shanghai day is ``16:00 UTC .. 16:00 UTC``. Each rollup row keeps
what a reviewer needs to trust it: the energy, the part of it that was estimated, how many intervals were
present and how many the period should have (completeness).

Group rollups sum meter rollups without double counting across GB 17167 metering levels:

* ``level`` / ``"1"``, ``"2"``, ``"3"``: every meter at that level (the balance check compares them);
* ``site`` / site id: the site's top-level meters (the smallest level present at the site);
* ``park`` / ``""``: the park's top-level meters (level 1 — the park boundary — when it has any).

Meters always group by carrier and metric: kWh of import never add to kWh of export or m³ of gas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import polars as pl

Grain = Literal["hour", "day", "month"]

_TRUNC: Final = {"hour": "1h", "day": "1d", "month": "1mo"}

META_SCHEMA: Final = pl.Schema({
    "series_id": pl.Int32(), "park_id": pl.String(), "timezone": pl.String(), "site_id": pl.String(),
    "metering_level": pl.Int16(), "carrier": pl.String(), "metric": pl.String(), "role": pl.String(),
})
METER_ROLLUP_SCHEMA: Final = pl.Schema({
    "series_id": pl.Int32(), "grain": pl.String(), "period_start": pl.Datetime("us", "UTC"),
    "energy": pl.Float64(), "estimated_energy": pl.Float64(), "n_intervals": pl.Int32(),
    "n_estimated": pl.Float64(), "n_expected": pl.Int32(),
})
GROUP_ROLLUP_SCHEMA: Final = pl.Schema({
    "park_id": pl.String(), "grain": pl.String(), "period_start": pl.Datetime("us", "UTC"),
    "dimension": pl.String(), "member": pl.String(), "carrier": pl.String(), "metric": pl.String(),
    "energy": pl.Float64(), "estimated_energy": pl.Float64(), "n_meters": pl.Int32(), "n_intervals": pl.Int32(),
    "n_expected": pl.Int32(),
})
BALANCE_SCHEMA: Final = pl.Schema({
    "park_id": pl.String(), "grain": pl.String(), "period_start": pl.Datetime("us", "UTC"),
    "carrier": pl.String(), "metric": pl.String(), "level1_energy": pl.Float64(), "level2_energy": pl.Float64(),
    "difference": pl.Float64(), "difference_pct": pl.Float64(), "alarm": pl.Boolean(),
})


def _by_timezone(rows: pl.DataFrame, meta: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """``rows`` split by their series' time zone (no copy when every series has the same zone)."""
    tzs = meta.select("series_id", "timezone").filter(pl.col("series_id").is_in(
        rows.get_column("series_id").unique().implode()))
    zones = tzs.get_column("timezone").unique().to_list()
    if len(zones) == 1:
        return [(str(zones[0]), rows)]
    joined = rows.join(tzs, on="series_id", how="inner")
    return [(str(tz), part.drop("timezone")) for (tz,), part in joined.group_by("timezone")]


def _bucket(grain: Grain, tz: str) -> tuple[pl.Expr, pl.Expr]:
    """(UTC start, UTC end) of the local ``grain`` bucket holding ``ts``."""
    local = pl.col("ts").dt.convert_time_zone(tz).dt.truncate(_TRUNC[grain])
    end = local.dt.offset_by(_TRUNC[grain])
    return local.dt.convert_time_zone("UTC"), end.dt.convert_time_zone("UTC")


_FIXED: Final = {"hour": 3_600_000_000, "day": 86_400_000_000}


def fixed_offset_us(tz: str, ts: pl.Series) -> int | None:
    """The zone's UTC offset (µs) if it is the same over the whole span of ``ts`` (no DST), else None.

    Asia/Shanghai has had one offset since 1991, so its days and hours are plain integer arithmetic, which
    is an order of magnitude faster than converting every timestamp.
    """
    lo, hi = ts.min(), ts.max()
    if not isinstance(lo, datetime) or not isinstance(hi, datetime):
        return None
    probe = pl.DataFrame({"ts": pl.datetime_range(lo, hi, "1d", eager=True, time_unit="us", time_zone="UTC")
                          .append(pl.Series([hi], dtype=pl.Datetime("us", "UTC")))})
    offsets = probe.select(off=(pl.col("ts").dt.convert_time_zone(tz).dt.replace_time_zone(None)
                                - pl.col("ts").dt.replace_time_zone(None)).dt.total_microseconds()).get_column("off")
    return int(offsets[0]) if offsets.n_unique() == 1 else None


def _bucket_fast(grain: Literal["hour", "day"], offset_us: int) -> tuple[pl.Expr, pl.Expr]:
    size = _FIXED[grain]
    local = pl.col("ts").dt.epoch("us") + offset_us
    start = (local // size) * size - offset_us
    return start.cast(pl.Datetime("us", "UTC")), (start + size).cast(pl.Datetime("us", "UTC"))


def meter_rollup(intervals: pl.DataFrame, meta: pl.DataFrame, grain: Literal["hour", "day"],
                 interval_s: int) -> pl.DataFrame:
    """Sum interval energy per meter into local hours or days (``METER_ROLLUP_SCHEMA``)."""
    frames: list[pl.DataFrame] = []
    for tz, part in _by_timezone(intervals, meta):
        offset = fixed_offset_us(str(tz), part.get_column("ts"))
        start, end = _bucket(grain, str(tz)) if offset is None else _bucket_fast(grain, offset)
        frames.append(
            part.lazy()
            .with_columns(period_start=start, period_end=end)
            .group_by("series_id", "period_start")
            .agg(energy=pl.col("energy").sum(),
                 estimated_energy=(pl.col("energy") * pl.col("estimated_share").cast(pl.Float64())).sum(),
                 n_intervals=pl.len().cast(pl.Int32()),
                 n_estimated=pl.col("estimated_share").cast(pl.Float64()).sum(),
                 n_expected=((pl.col("period_end").first() - pl.col("period_start").first()).dt.total_seconds()
                             // interval_s).cast(pl.Int32()))
            .with_columns(grain=pl.lit(grain))
            .select(METER_ROLLUP_SCHEMA.names())
            .collect(engine="in-memory"))
    if not frames:
        return METER_ROLLUP_SCHEMA.to_frame()
    return pl.concat(frames).cast(dict(METER_ROLLUP_SCHEMA)).sort("series_id", "period_start")  # type: ignore[arg-type]


_FINER: Final = {"day": "hour", "month": "day"}


def coarser_rollup(rollups: pl.DataFrame, meta: pl.DataFrame, grain: Literal["day", "month"],
                   interval_s: int) -> pl.DataFrame:
    """Sum finer meter rollups (hours → day, days → month) into local ``grain`` periods.

    The expected count is the whole period's (a month with 10 days of data still expects 31 x 96).
    """
    frames: list[pl.DataFrame] = []
    for tz, part in _by_timezone(rollups.filter(pl.col("grain") == _FINER[grain]), meta):
        offset = fixed_offset_us(str(tz), part.get_column("period_start")) if grain == "day" else None
        start, end = _bucket(grain, str(tz)) if offset is None else _bucket_fast("day", offset)
        frames.append(
            part.lazy().rename({"period_start": "ts"})
            .with_columns(period_start=start, period_end=end)
            .group_by("series_id", "period_start")
            .agg(pl.col("energy").sum(), pl.col("estimated_energy").sum(),
                 pl.col("n_intervals").sum().cast(pl.Int32()), pl.col("n_estimated").sum(),
                 n_expected=((pl.col("period_end").first() - pl.col("period_start").first()).dt.total_seconds()
                             // interval_s).cast(pl.Int32()))
            .with_columns(grain=pl.lit(grain))
            .select(METER_ROLLUP_SCHEMA.names())
            .collect(engine="in-memory"))
    if not frames:
        return METER_ROLLUP_SCHEMA.to_frame()
    return pl.concat(frames).cast(dict(METER_ROLLUP_SCHEMA)).sort("series_id", "period_start")  # type: ignore[arg-type]


def month_rollup(day_rollups: pl.DataFrame, meta: pl.DataFrame, interval_s: int) -> pl.DataFrame:
    """Sum day rollups into local calendar months (the month's expected count, not just its days')."""
    return coarser_rollup(day_rollups, meta, "month", interval_s)


def group_members(meta: pl.DataFrame) -> pl.DataFrame:
    """Which meters each group sums: ``series_id, park_id, dimension, member, carrier, metric``."""
    m = meta.with_columns(pl.col("site_id").fill_null(""))
    level_rows = (m.filter(pl.col("metering_level").is_not_null())
                  .select("series_id", "park_id", dimension=pl.lit("level"),
                          member=pl.col("metering_level").cast(pl.String()), carrier="carrier", metric="metric"))

    def top_level(keys: list[str]) -> pl.Expr:
        lvl = pl.col("metering_level")
        top = lvl.min().over(keys)
        return pl.when(top.is_null()).then(True).otherwise(lvl == top)

    site_rows = (m.filter(pl.col("site_id") != "")
                 .filter(top_level(["park_id", "site_id", "carrier", "metric"]).fill_null(False))
                 .select("series_id", "park_id", dimension=pl.lit("site"), member="site_id",
                         carrier="carrier", metric="metric"))
    park_rows = (m.filter(top_level(["park_id", "carrier", "metric"]).fill_null(False))
                 .select("series_id", "park_id", dimension=pl.lit("park"), member=pl.lit(""),
                         carrier="carrier", metric="metric"))
    return pl.concat([level_rows, site_rows, park_rows])


def group_rollup(meter_rollups: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """Sum meter rollups into level, site and park groups (``GROUP_ROLLUP_SCHEMA``)."""
    members = group_members(meta)
    out = (meter_rollups.lazy()
           .join(members.lazy(), on="series_id", how="inner")
           .group_by("park_id", "grain", "period_start", "dimension", "member", "carrier", "metric")
           .agg(pl.col("energy").sum(), pl.col("estimated_energy").sum(),
                n_meters=pl.col("series_id").n_unique().cast(pl.Int32()),
                n_intervals=pl.col("n_intervals").sum().cast(pl.Int32()),
                n_expected=pl.col("n_expected").sum().cast(pl.Int32()))
           .sort("park_id", "grain", "period_start", "dimension", "member", "carrier", "metric")
           .collect(engine="in-memory"))
    return out.cast(dict(GROUP_ROLLUP_SCHEMA)).select(GROUP_ROLLUP_SCHEMA.names())  # type: ignore[arg-type]


def balance_check(group_rollups: pl.DataFrame, alarm_pct: float) -> pl.DataFrame:
    """Level-1 vs Σ level-2 per park, period, carrier and metric (``BALANCE_SCHEMA``).

    ``difference`` = level 1 − Σ level 2 (losses and unmetered loads); ``difference_pct`` is relative to
    level 1; ``alarm`` is set above ``alarm_pct`` (absolute) or when level 1 is zero but level 2 is not.
    """
    keys = ["park_id", "grain", "period_start", "carrier", "metric"]
    lv = group_rollups.filter(pl.col("dimension") == "level")
    l1 = lv.filter(pl.col("member") == "1").select(*keys, level1_energy="energy")
    l2 = lv.filter(pl.col("member") == "2").select(*keys, level2_energy="energy")
    out = (l1.join(l2, on=keys, how="inner")
           .with_columns(difference=pl.col("level1_energy") - pl.col("level2_energy"))
           .with_columns(difference_pct=pl.when(pl.col("level1_energy") != 0)
                         .then(pl.col("difference") / pl.col("level1_energy") * 100.0))
           .with_columns(alarm=pl.when(pl.col("difference_pct").is_null())
                         .then(pl.col("level2_energy") != 0)
                         .otherwise(pl.col("difference_pct").abs() > alarm_pct))
           .sort(keys))
    return out.select(BALANCE_SCHEMA.names())

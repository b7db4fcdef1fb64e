"""Rollups of interval energy: hour → day → month in the park's calendar, per meter and per group.

Pure Polars. Buckets are local calendar periods of the park's time zone (Asia/Shanghai by default),
stored as their UTC start instant, so a Shanghai day is ``16:00 UTC .. 16:00 UTC``. Each rollup row keeps
what a reviewer needs to trust it: the energy, the part of it that was estimated, how many intervals were
present and how many the period should have (completeness).

Group rollups sum meter rollups without double counting across GB 17167 metering levels:

* ``level`` / ``"1"``, ``"2"``, ``"3"``: every meter at that level (the balance check compares them);
* ``site`` / site id: the site's top-level meters (the smallest level present at the site);
* ``park`` / ``""``: the park's top-level meters (level 1 — the park boundary — when it has any);
* ``generation`` / ``""`` (:func:`generation_rollup`, computed for the balance, not stored): on-site
  generation behind the boundary and outside any level-2 meter (see :func:`is_generation`); a generator's
  meter is supply, so it never joins the level groups either.

Meters always group by carrier and metric: kWh of import never add to kWh of export or m³ of gas.

The balance (:func:`balance_check`) is per carrier: everything entering the boundary or generated inside
it, minus what leaves it, against the sum of the level-2 meters, with every term kept.
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
    "carrier": pl.String(), "metric": pl.String(), "unit": pl.String(),
    "level1_energy": pl.Float64(), "export_energy": pl.Float64(), "generation_energy": pl.Float64(),
    "supply_energy": pl.Float64(), "level2_import_energy": pl.Float64(), "level2_export_energy": pl.Float64(),
    "level2_energy": pl.Float64(), "difference": pl.Float64(), "difference_pct": pl.Float64(), "alarm": pl.Boolean(),
})

#: Per carrier: the metric that brings it across the boundary (and that level-2 meters consume), the metric
#: of a boundary meter's export register (electricity only) and the unit of both.
CARRIER_FLOWS: Final[dict[str, tuple[str, str | None, str]]] = {
    "electricity": ("active_energy_import", "active_energy_export", "kWh"),
    "gas": ("gas_volume", None, "m3"),
    "heat": ("heat_energy", None, "GJ"),
    "cooling": ("cooling_energy", None, "kWh"),
    "steam": ("steam_mass", None, "m3"),
    "water": ("water_volume", None, "m3"),
}
#: Electricity produced on site (PV, wind, CHP electrical output) is always a ``generated_energy`` register.
GENERATION_METRIC: Final = "generated_energy"
#: Devices whose heat, steam or cooling register measures what they produce (CHP heat, boilers, solar
#: thermal, heat pumps, chillers): supply of that carrier, not demand.
GENERATOR_ROLES: Final = ("chp", "boiler", "solar_thermal", "heat_pump", "chiller")


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


def is_generation() -> pl.Expr:
    """True for a series that measures on-site generation entering the park network (balance supply side).

    Electricity: every ``generated_energy`` register; heat, steam, cooling: the carrier's register on a
    device with a :data:`GENERATOR_ROLES` role. A generator at level 3 sits behind a level-2 meter, which
    already nets its output, so only generators without a level or at level 1 or 2 count.
    """
    produced = [flow[0] for carrier, flow in CARRIER_FLOWS.items() if carrier != "electricity"]
    generator = ((pl.col("metric") == GENERATION_METRIC)
                 | (pl.col("role").fill_null("").is_in(GENERATOR_ROLES) & pl.col("metric").is_in(produced)))
    outside_level2 = pl.col("metering_level").is_null() | (pl.col("metering_level") < 3)
    return generator & outside_level2


def group_members(meta: pl.DataFrame) -> pl.DataFrame:
    """Which meters each group sums: ``series_id, park_id, dimension, member, carrier, metric``."""
    m = meta.with_columns(pl.col("site_id").fill_null(""), generation=is_generation())
    level_rows = (m.filter(pl.col("metering_level").is_not_null() & ~pl.col("generation"))
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


def generation_members(meta: pl.DataFrame) -> pl.DataFrame:
    """The ``generation`` group of each park and carrier: the meters :func:`is_generation` selects."""
    return (meta.filter(is_generation())
            .select("series_id", "park_id", dimension=pl.lit("generation"), member=pl.lit(""),
                    carrier="carrier", metric="metric"))


def group_rollup(meter_rollups: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """Sum meter rollups into level, site and park groups (``GROUP_ROLLUP_SCHEMA``)."""
    return _sum_groups(meter_rollups, group_members(meta))


def generation_rollup(meter_rollups: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """On-site generation per park, period and carrier (``GROUP_ROLLUP_SCHEMA``, dimension ``generation``).

    The balance's supply side adds it to :func:`group_rollup`'s groups; it is not a stored group.
    """
    return _sum_groups(meter_rollups, generation_members(meta))


def _sum_groups(meter_rollups: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
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
    """GB 17167 balance per park, period and carrier, every term kept (``BALANCE_SCHEMA``).

    ``group_rollups`` are the level groups plus the ``generation`` groups (:func:`generation_rollup`).
    Supply side: level-1 import + on-site generation − level-1 export; demand
    side: Σ level-2 import − Σ level-2 export. ``difference`` = supply − demand (losses and unmetered load,
    never negative in a consistent park: rooftop PV self-consumed behind the boundary is supply, not a
    negative loss); ``difference_pct`` is relative to the supply side. ``alarm`` is set above
    ``alarm_pct`` (absolute) or when the supply side is not positive but something is metered. A carrier
    gets a row when it has both a level-1 and a level-2 meter.
    """
    keys = ["park_id", "grain", "period_start", "carrier"]
    flows = pl.DataFrame({"carrier": list(CARRIER_FLOWS),
                          "import_metric": [f[0] for f in CARRIER_FLOWS.values()],
                          "export_metric": [f[1] for f in CARRIER_FLOWS.values()],
                          "unit": [f[2] for f in CARRIER_FLOWS.values()]},
                         schema={"carrier": pl.String(), "import_metric": pl.String(), "export_metric": pl.String(),
                                 "unit": pl.String()})
    dim, member, metric = pl.col("dimension"), pl.col("member"), pl.col("metric")
    imp, exp = metric == pl.col("import_metric"), (metric == pl.col("export_metric")).fill_null(False)
    level = dim == "level"
    term = (pl.when(level & (member == "1") & imp).then(pl.lit("import"))
            .when(level & (member == "1") & exp).then(pl.lit("export"))
            .when(level & (member == "2") & imp).then(pl.lit("l2_import"))
            .when(level & (member == "2") & exp).then(pl.lit("l2_export"))
            .when(dim == "generation").then(pl.lit("generation")))

    def total(name: str) -> pl.Expr:
        return pl.col("energy").filter(pl.col("term") == name).sum()

    supply, demand = pl.col("supply_energy"), pl.col("level2_energy")
    out = (group_rollups.join(flows, on="carrier", how="inner")
           .with_columns(term=term)
           .filter(pl.col("term").is_not_null())
           .group_by(keys)
           .agg(metric=pl.col("import_metric").first(), unit=pl.col("unit").first(),
                level1_energy=total("import"), export_energy=total("export"), generation_energy=total("generation"),
                level2_import_energy=total("l2_import"), level2_export_energy=total("l2_export"),
                has_l1=pl.col("term").is_in(["import", "export"]).any(),
                has_l2=pl.col("term").is_in(["l2_import", "l2_export"]).any())
           .filter(pl.col("has_l1") & pl.col("has_l2"))
           .with_columns(supply_energy=pl.col("level1_energy") + pl.col("generation_energy") - pl.col("export_energy"),
                         level2_energy=pl.col("level2_import_energy") - pl.col("level2_export_energy"))
           .with_columns(difference=supply - demand)
           .with_columns(difference_pct=pl.when(supply > 0).then(pl.col("difference") / supply * 100.0))
           .with_columns(alarm=pl.when(pl.col("difference_pct").is_null())
                         .then((demand != 0) | (supply != 0))
                         .otherwise(pl.col("difference_pct").abs() > alarm_pct))
           .sort(keys))
    return out.select(BALANCE_SCHEMA.names()).cast(dict(BALANCE_SCHEMA))  # type: ignore[arg-type]

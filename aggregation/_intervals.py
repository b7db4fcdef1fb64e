"""Spans of register energy → interval energy per meter, with VEE estimation and quality flags.

Pure Polars. Each span from :func:`aggregation._registers.register_spans` is laid onto the fixed interval
grid (UTC, multiples of the interval since the Unix epoch, so 15-min intervals are also aligned in every
whole-quarter-hour time zone):

* a span no longer than one interval is **actual**; if it crosses a boundary its energy is split in
  proportion to time (flag ``SPLIT``);
* a longer span is a **gap**. Up to ``linear_gap_max`` (2 h) its known register delta is spread linearly
  (the register is interpolated point to point); beyond that the **like-day** profile shapes it (same
  day type, Mon / Tue–Thu / Fri / Sat / Sun, up to ``like_day_count`` days within the look-back) and the
  estimates are **scaled** so they sum to the register delta;
* a span of **unknown** energy (epoch break, spike) is estimated from the average power of the spans
  either side, interpolated linearly across it (≤ 2 h) or from like days (longer); nothing to estimate
  from gives 0 with ``NO_BASIS``. A break the operator explained with a meter event (replacement,
  confirmed reset) is not unknown: its spans arrive here with exact energy and are laid like any other.

Every interval gets its energy, quality code, reason flags, estimated share (fraction of its covered time
whose energy was estimated) and coverage (fraction of the interval covered by readings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import polars as pl

from aggregation._policy import VeePolicy
from aggregation._quality import IntervalFlag
from aggregation._registers import register_spans
from schemas import Quality

INTERVALS_SCHEMA: Final = pl.Schema({
    "series_id": pl.Int32(),
    "ts": pl.Datetime("us", "UTC"),   # interval start
    "energy": pl.Float64(),             # canonical unit of the metric (kWh, m3, GJ)
    "quality": pl.Int16(),              # schemas.Quality
    "flags": pl.Int32(),                # IntervalFlag bits
    "estimated_share": pl.Float32(),    # estimated fraction of the covered time, 0..1
    "coverage": pl.Float32(),           # covered fraction of the interval, 0..1
})
HISTORY_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "ts": pl.Datetime("us", "UTC"), "energy": pl.Float64()})

_CONTRIB_COLS: Final = ("series_id", "b", "energy", "cov", "est", "quality", "flags")
_EVENT_BITS: Final = int(IntervalFlag.METER_REPLACED | IntervalFlag.RESET_CONFIRMED | IntervalFlag.RATIO_CHANGE)
#: Method 14 day types (Polars weekday: Monday = 1 … Sunday = 7): Tue, Wed and Thu are interchangeable.
_DAY_TYPE: Final = {1: 0, 2: 1, 3: 1, 4: 1, 5: 2, 6: 3, 7: 4}


@dataclass(frozen=True, slots=True)
class IntervalParams:
    """Interval length and the VEE policy."""

    interval_s: int = 900
    vee: VeePolicy = field(default_factory=VeePolicy)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or 3600 % self.interval_s:
            raise ValueError(f"interval must divide one hour, got {self.interval_s} s")

    @property
    def interval_us(self) -> int:
        """Interval length in microseconds."""
        return self.interval_s * 1_000_000


def _flag(cond: pl.Expr, flag: IntervalFlag) -> pl.Expr:
    return pl.when(cond).then(pl.lit(int(flag), pl.Int32())).otherwise(pl.lit(0, pl.Int32()))


def _neighbour_rates(spans: pl.DataFrame) -> pl.DataFrame:
    """Add the average power (unit/µs) of the nearest known span before and after each span."""
    rate = pl.when(pl.col("energy").is_not_null()).then(pl.col("energy") / (pl.col("t1") - pl.col("t0")))
    known_s = pl.when(pl.col("energy").is_not_null()).then(pl.col("series_id"))
    return spans.with_columns(
        rb=pl.when(known_s.shift(1).forward_fill() == pl.col("series_id")).then(rate.shift(1).forward_fill()),
        ra=pl.when(known_s.shift(-1).backward_fill() == pl.col("series_id"))
        .then(rate.shift(-1).backward_fill()),
    )


def _direct_contributions(spans: pl.LazyFrame, iu: int) -> pl.LazyFrame:
    """Spans within one interval length: one or two contributions, proportional in time."""
    dev_est = (pl.col("flags") & int(IntervalFlag.DEVICE_ESTIMATED)) != 0
    one = (spans.filter(pl.col("b0") == pl.col("bl"))
           .select("series_id", b=pl.col("b0"), energy=pl.col("energy"), cov=pl.col("dt"),
                   est=pl.when(dev_est).then(pl.col("dt")).otherwise(0), quality="quality", flags="flags"))
    two = spans.filter(pl.col("b0") != pl.col("bl")).with_columns(
        p1=pl.col("b0") + iu - pl.col("t0"), flags=pl.col("flags") | int(IntervalFlag.SPLIT))
    first = two.select("series_id", b=pl.col("b0"),
                       energy=pl.col("energy") * pl.col("p1").cast(pl.Float64()) / pl.col("dt"),
                       cov=pl.col("p1"), est=pl.when(dev_est).then(pl.col("p1")).otherwise(0),
                       quality="quality", flags="flags")
    second = two.select("series_id", b=pl.col("bl"),
                        energy=pl.col("energy") * (pl.col("dt") - pl.col("p1")).cast(pl.Float64()) / pl.col("dt"),
                        cov=pl.col("dt") - pl.col("p1"),
                        est=pl.when(dev_est).then(pl.col("dt") - pl.col("p1")).otherwise(0),
                        quality="quality", flags="flags")
    return pl.concat([one, first, second], how="vertical_relaxed")


def like_day_profile(keys: pl.DataFrame, source: pl.DataFrame, timezones: pl.DataFrame, iu: int,
                     vee: VeePolicy) -> pl.DataFrame:
    """Like-day mean energy for each ``(series_id, b)`` in ``keys`` (``b`` = interval start, µs UTC).

    Candidates are the same local time of day on earlier days of the same day type within the look-back,
    nearest first; the mean of the first ``like_day_count`` found is returned as ``ld`` (keys without any
    like day are absent). ``source`` holds actual intervals ``(series_id, b, energy)``; ``timezones`` maps
    ``series_id`` to the park's time zone so days are local calendar days.
    """
    out: list[pl.DataFrame] = []
    days = pl.DataFrame({"d": list(range(1, vee.like_day_lookback_days + 1))}, schema={"d": pl.Int64()})
    keyed = keys.join(timezones, on="series_id", how="left").with_columns(
        pl.col("timezone").fill_null("UTC"))
    for (tz,), part in keyed.group_by("timezone"):
        local = pl.col("b").cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(str(tz))
        cand = (part.join(days, how="cross")
                .with_columns(loc=local)
                .with_columns(c_loc=pl.col("loc").dt.offset_by(pl.format("-{}d", pl.col("d"))))
                .filter(pl.col("loc").dt.weekday().replace_strict(_DAY_TYPE, return_dtype=pl.Int8())
                        == pl.col("c_loc").dt.weekday().replace_strict(_DAY_TYPE, return_dtype=pl.Int8()))
                .with_columns(c_b=pl.col("c_loc").dt.convert_time_zone("UTC").dt.epoch("us"))
                .join(source.rename({"b": "c_b", "energy": "c_energy"}), on=["series_id", "c_b"], how="inner")
                .sort("series_id", "b", "d")
                .group_by("series_id", "b", maintain_order=True)
                .agg(ld=pl.col("c_energy").head(vee.like_day_count).mean()))
        out.append(cand)
    if not out:
        return pl.DataFrame(schema={"series_id": pl.Int32(), "b": pl.Int64(), "ld": pl.Float64()})
    return pl.concat(out)


def _actual_intervals(direct: pl.DataFrame, iu: int) -> pl.DataFrame:
    """Fully covered, unestimated intervals of the direct contributions: the like-day source."""
    return (direct.lazy().group_by("series_id", "b")
            .agg(pl.col("energy").sum(), pl.col("cov").sum(), pl.col("est").sum())
            .filter((pl.col("cov") >= iu) & (pl.col("est") == 0))
            .select("series_id", "b", "energy").collect(engine="in-memory"))


def _gap_contributions(gaps: pl.DataFrame, direct: pl.DataFrame, history: pl.DataFrame | None,
                       timezones: pl.DataFrame, params: IntervalParams) -> pl.DataFrame:
    """Estimated contributions of gap spans (known delta over > 1 interval, or unknown energy)."""
    iu = params.interval_us
    gmax_us = int(params.vee.linear_gap_max_s * 1_000_000)
    ex = (gaps.with_row_index("span")
          .with_columns(b=pl.int_ranges(pl.col("b0"), pl.col("bl") + iu, iu))
          .explode("b")
          .with_columns(lo=pl.max_horizontal("t0", "b"), hi=pl.min_horizontal("t1", pl.col("b") + iu))
          .with_columns(ov=pl.col("hi") - pl.col("lo"),
                        tau=((pl.col("lo") + pl.col("hi")) / 2 - pl.col("t0")) / pl.col("dt"))
          .with_columns(
              p=pl.when(pl.col("rb").is_not_null() & pl.col("ra").is_not_null())
              .then(pl.col("rb") + (pl.col("ra") - pl.col("rb")) * pl.col("tau"))
              .otherwise(pl.coalesce("rb", "ra")))
          .with_columns(rate_energy=pl.col("p") * pl.col("ov")))
    known = pl.col("energy").is_not_null()
    short = pl.col("dt") <= gmax_us
    needs_ld = ~short | (~known & pl.col("rate_energy").is_null())
    ld_keys = ex.filter(needs_ld).select("series_id", "b").unique()
    if ld_keys.height:
        actual = _actual_intervals(direct.filter(pl.col("series_id").is_in(ld_keys.get_column("series_id")
                                                                           .unique().implode())), iu)
        # stored history (computed with full context) wins over intervals computed here near the edges
        source = actual if history is None or history.height == 0 else pl.concat(
            [history.select("series_id", b=pl.col("ts").dt.epoch("us"), energy="energy"), actual]
        ).unique(["series_id", "b"], keep="first", maintain_order=True)
        ld = like_day_profile(ld_keys, source, timezones, iu, params.vee)
        ex = ex.join(ld, on=["series_id", "b"], how="left")
    else:
        ex = ex.with_columns(ld=pl.lit(None, pl.Float64()))
    ex = ex.with_columns(ld_w=pl.col("ld") * pl.col("ov").cast(pl.Float64()) / iu).with_columns(
        ld_all=pl.col("ld").is_not_null().all().over("span"),
        ld_sum=pl.col("ld_w").sum().over("span"),
        rate_all=pl.col("rate_energy").is_not_null().all().over("span"),
    )
    use_ld = needs_ld & pl.col("ld_all") & (pl.col("ld_sum") > 0)
    uniform = pl.col("energy") * pl.col("ov").cast(pl.Float64()) / pl.col("dt")
    energy = (pl.when(known & use_ld).then(pl.col("energy") * pl.col("ld_w") / pl.col("ld_sum"))
              .when(known).then(uniform)
              .when(use_ld).then(pl.col("ld_w"))
              .when(pl.col("rate_all")).then(pl.col("rate_energy"))
              .otherwise(0.0))
    flags = (pl.col("flags")
             | pl.when(use_ld).then(pl.lit(int(IntervalFlag.GAP_LIKE_DAY)))
             .otherwise(pl.lit(int(IntervalFlag.GAP_LINEAR)))
             | _flag(known & use_ld, IntervalFlag.SCALED)
             | _flag(~known & ~use_ld & ~pl.col("rate_all"), IntervalFlag.NO_BASIS))
    return ex.select("series_id", "b", energy=energy, cov="ov", est="ov",
                     quality=pl.max_horizontal(pl.col("quality"), pl.lit(int(Quality.ESTIMATED))).cast(pl.Int16()),
                     flags=flags.cast(pl.Int32()))


def _unique_sorted_keys(contrib: pl.DataFrame) -> bool:
    """True when contributions are ordered by (series, interval) with one row per interval (the usual case)."""
    s, b = pl.col("series_id"), pl.col("b")
    return bool(contrib.select(((s.diff() > 0) | ((s.diff() == 0) & (b.diff() > 0))).fill_null(True).all()).item())


def _finish(contrib: pl.DataFrame, iu: int) -> pl.DataFrame:
    """Sum contributions per interval and derive quality, share, coverage and the PARTIAL flag."""
    if _unique_sorted_keys(contrib):
        lf = contrib.lazy()          # one contribution per interval, in order: nothing to add up
    else:
        lf = (contrib.lazy()
              .group_by("series_id", "b")
              .agg(pl.col("energy").sum(), pl.col("cov").sum(), pl.col("est").sum(), pl.col("quality").max(),
                   pl.col("flags").bitwise_or())
              .sort("series_id", "b"))
    agg = (lf
           .with_columns(cov=pl.min_horizontal("cov", pl.lit(iu)))
           .select(
               "series_id",
               ts=pl.col("b").cast(pl.Datetime("us", "UTC")),
               energy=pl.max_horizontal("energy", pl.lit(0.0)),
               quality=pl.when((pl.col("est") > 0) & (pl.col("quality") < int(Quality.ESTIMATED)))
               .then(pl.lit(int(Quality.ESTIMATED))).otherwise(pl.col("quality")).cast(pl.Int16()),
               flags=(pl.col("flags") | _flag(pl.col("cov") < iu, IntervalFlag.PARTIAL)).cast(pl.Int32()),
               estimated_share=pl.when(pl.col("cov") > 0)
               .then(pl.min_horizontal(pl.col("est") / pl.col("cov"), pl.lit(1.0))).otherwise(0.0)
               .cast(pl.Float32()),
               coverage=(pl.col("cov") / iu).cast(pl.Float32()),
           ))
    return agg.collect(engine="in-memory")


def spans_to_intervals(spans: pl.DataFrame, params: IntervalParams, timezones: pl.DataFrame | None = None,
                       history: pl.DataFrame | None = None) -> pl.DataFrame:
    """Lay spans onto the interval grid with estimation; returns :data:`INTERVALS_SCHEMA` rows.

    Rows are in time order within each series (series need not be in order: sort if you need it).
    """
    iu = params.interval_us
    if spans.height == 0:
        return INTERVALS_SCHEMA.to_frame()
    tzs = timezones if timezones is not None else pl.DataFrame(
        {"series_id": [], "timezone": []}, schema={"series_id": pl.Int32(), "timezone": pl.String()})
    s = spans.with_columns(dt=pl.col("t1") - pl.col("t0"),
                           b0=(pl.col("t0") // iu) * iu, bl=((pl.col("t1") - 1) // iu) * iu)
    is_direct = pl.col("energy").is_not_null() & (pl.col("dt") <= iu)
    # a meter event splits a span in two inside one interval: that series adds up its contributions
    simple_span = is_direct & (pl.col("b0") == pl.col("bl")) & ((pl.col("flags") & _EVENT_BITS) == 0)
    # series whose spans all sit inside one interval each (the usual 15-min meter) take a fast path
    complex_ids = s.filter(~simple_span).get_column("series_id").unique().implode()
    simple = s.filter(~pl.col("series_id").is_in(complex_ids))
    parts: list[pl.DataFrame] = []
    if simple.height:
        parts.append(_finish(_direct_contributions(simple.lazy(), iu).collect(engine="in-memory")
                             .select(_CONTRIB_COLS), iu))
    rest = s.filter(pl.col("series_id").is_in(complex_ids))
    if rest.height:
        direct = _direct_contributions(rest.lazy().filter(is_direct), iu).collect(engine="in-memory")
        pieces = [direct.select(_CONTRIB_COLS)]
        gaps = rest.filter(~is_direct)
        if gaps.height:
            gap_series = gaps.get_column("series_id").unique().implode()
            gaps = _neighbour_rates(rest.filter(pl.col("series_id").is_in(gap_series))).filter(~is_direct)
            pieces.append(_gap_contributions(gaps, direct.filter(pl.col("series_id").is_in(gap_series)), history,
                                             tzs, params).select(_CONTRIB_COLS))
        contrib = pl.concat(pieces, how="vertical_relaxed").with_columns(
            pl.col("series_id").cast(pl.Int32()), pl.col("b").cast(pl.Int64()), pl.col("cov").cast(pl.Int64()),
            pl.col("est").cast(pl.Int64()), pl.col("quality").cast(pl.Int16()), pl.col("flags").cast(pl.Int32()))
        parts.append(_finish(contrib, iu))
    if len(parts) == 1:
        return parts[0]
    return pl.concat(parts)  # each part is ordered by series and time; the parts hold different series


def interval_energy(readings: pl.DataFrame, meters: pl.DataFrame, params: IntervalParams,
                    history: pl.DataFrame | None = None, events: pl.DataFrame | None = None) -> pl.DataFrame:
    """Interval energy per meter from cumulative register readings (the whole VEE pipeline).

    ``readings``: ``series_id, ts, value, quality`` (see ``READINGS_SCHEMA``); ``meters``: one row per
    series with register maximum, multiplier, plausibility rate, resolution and time zone
    (``METERS_SCHEMA``); ``history``: optional earlier actual intervals for like-day estimation
    (``HISTORY_SCHEMA``); ``events``: optional meter events (``EVENTS_SCHEMA`` of
    :mod:`aggregation._meter_events`) that make replacements, confirmed resets and ratio changes exact.
    Returns ``INTERVALS_SCHEMA`` rows, in time order within each series.
    """
    spans = register_spans(readings, meters, params.vee, events)
    return spans_to_intervals(spans, params, meters.select("series_id", "timezone"), history)

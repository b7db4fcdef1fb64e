"""Cumulative registers → spans of known (or unknown) energy between consecutive good readings.

Pure Polars, vectorised over many meters at once. For every series the readings are walked in time order
and each consecutive pair of *kept* readings becomes a span ``[t0, t1)`` with the energy the register
says was consumed in it, or ``null`` when the register cannot say (reset, replacement, implausible jump).
The rules follow domain.md §7.4 and the policy file:

* **Glitches** — a reading that makes the register drop, or jump above ``max rate × Δt``, and that the
  register undoes within a few readings (it resumes consistently with the last good value) is dropped,
  with its neighbours; the span across it keeps the register delta (flag ``OUTLIER_DROPPED``).
* **Rollover** — a drop from ≥ 0.9·R_max to ≤ 0.1·R_max is a wrap: Δ = (R_max + step − r₀) + r₁.
* **Jitter** — a drop within one register step counts as zero; a running maximum per epoch keeps the
  sum of the spans equal to the register delta.
* **Epochs** — any other drop opens a new register epoch (reset, meter clear or replacement): the span
  across it has unknown energy and is estimated later, never negative, never the raw jump.
* **Spikes** — a rise above ``max rate × Δt × margin`` that is not undone: unknown energy, estimated.
* **Meter events** — a replacement, confirmed reset or ratio change the operator recorded makes the span
  across it exact instead (:mod:`aggregation._meter_events`), flagged with the event's bit.

Times are integer microseconds since the Unix epoch (UTC) throughout; energies are register deltas times
the device multiplier, in the metric's canonical unit.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from aggregation._meter_events import MARKS_SCHEMA, apply_events, flag_spans
from aggregation._policy import VeePolicy
from aggregation._quality import IntervalFlag
from schemas import Quality

US_PER_HOUR: Final = 3_600_000_000

READINGS_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "ts": pl.Datetime("us", "UTC"),
                                    "value": pl.Float64(), "quality": pl.Int16()})
METERS_SCHEMA: Final = pl.Schema({
    "series_id": pl.Int32(),
    "register_max": pl.Float64(),      # register units; null = never wraps
    "multiplier": pl.Float64(),        # CT x PT; energy = register delta x multiplier
    "max_rate_per_h": pl.Float64(),    # plausibility: canonical unit per hour (kW for kWh); null = no check
    "resolution": pl.Float64(),        # one register step; null = policy default
    "float32_register": pl.Boolean(),  # register transported as FLOAT32: tolerance grows with the value
    "timezone": pl.String(),           # the park's time zone (like-day calendar)
})
SPANS_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "t0": pl.Int64(), "t1": pl.Int64(), "energy": pl.Float64(),
                                 "quality": pl.Int16(), "flags": pl.Int32()})

_FLOAT32_EPS: Final = 2.0**-23


def _flag(cond: pl.Expr, flag: IntervalFlag) -> pl.Expr:
    return pl.when(cond).then(pl.lit(int(flag), pl.Int32())).otherwise(pl.lit(0, pl.Int32()))


def _limit(rate: str, dt: pl.Expr, vee: VeePolicy) -> pl.Expr:
    """Largest plausible register increase over ``dt`` µs (register units; +inf without a rate)."""
    return (pl.col(rate) * dt.cast(pl.Float64()) / US_PER_HOUR * vee.spike_margin / pl.col("multiplier")
            ).fill_null(float("inf"))


def _is_sorted(df: pl.DataFrame) -> bool:
    """True when ``df`` is already ordered by ``series_id, ts``."""
    if df.height < 2:
        return True
    s, t = pl.col("series_id"), pl.col("ts")
    return bool(df.select(((s.diff() > 0) | ((s.diff() == 0) & (t.diff() > pl.duration(microseconds=0))))
                          .fill_null(True).all()).item())


def sort_readings(readings: pl.DataFrame) -> pl.DataFrame:
    """Order readings by series and time, cheaply when they arrive as the database streams them.

    A time-partitioned table returns its chunks in time order, so a stable sort on the series alone is
    usually enough; the full two-key sort runs only when that did not give time order within each series.
    """
    if _is_sorted(readings):
        return readings
    by_series = readings.sort("series_id", maintain_order=True)
    return by_series if _is_sorted(by_series) else readings.sort("series_id", "ts")


def _base(readings: pl.DataFrame, meters: pl.DataFrame, vee: VeePolicy,
          events: pl.DataFrame | None = None) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """Readings joined with their meter parameters, device-BAD values dropped, µs time and tolerance added.

    With ``events`` the meter events are applied (:func:`aggregation._meter_events.apply_events`): virtual
    register values, synthetic readings at the events and per-reading multipliers. Returns the frame and
    the marks that flag the spans around the events.
    """
    lf = (sort_readings(readings).lazy()
          .filter(pl.col("quality") != int(Quality.BAD))
          .join(meters.lazy().select(METERS_SCHEMA.names()), on="series_id", how="inner", maintain_order="left")
          .with_columns(
              t=pl.col("ts").dt.epoch("us"),
              multiplier=pl.col("multiplier").fill_null(1.0),
              resolution=pl.col("resolution").fill_null(vee.default_resolution)))
    marks = MARKS_SCHEMA.to_frame()
    if events is not None and events.height:
        applied, marks = apply_events(lf.drop("ts").collect(engine="in-memory"), events)
        lf = applied.lazy()
    else:
        lf = lf.with_columns(raw=pl.col("value"))
    return (lf
            .with_columns(
                tol=pl.when(pl.col("float32_register").fill_null(False))
                .then(pl.max_horizontal(pl.col("resolution"), pl.col("raw").abs() * _FLOAT32_EPS * 2))
                .otherwise(pl.col("resolution")))
            .select("series_id", "t", "value", "raw", "quality", "register_max", "multiplier", "max_rate_per_h",
                    "resolution", "tol")), marks


def _classify(lf: pl.LazyFrame, vee: VeePolicy) -> pl.DataFrame:
    """Per reading vs the previous kept one: same series, delta, wrap, epoch break, jitter, suspicious."""
    v_p = pl.col("value").shift(1)
    raw_p = pl.col("raw").shift(1)   # the register as read: the wrap test uses it, deltas use the virtual value
    return (lf
            .with_columns(same=(pl.col("series_id") == pl.col("series_id").shift(1)).fill_null(False),
                          delta=pl.col("value") - v_p)
            .with_columns(
                wrap=(pl.col("same") & pl.col("register_max").is_not_null()
                      & (raw_p >= vee.wrap_high_fraction * pl.col("register_max"))
                      & (pl.col("raw") <= vee.wrap_low_fraction * pl.col("register_max"))
                      & (pl.col("delta") < -pl.col("tol"))))
            .with_columns(
                brk=pl.col("same") & (pl.col("delta") < -pl.col("tol")) & ~pl.col("wrap"),
                jitter=pl.col("same") & (pl.col("delta") < 0) & (pl.col("delta") >= -pl.col("tol")),
                rise=pl.when(pl.col("wrap"))
                .then(pl.col("register_max") + pl.col("resolution") - v_p + pl.col("value"))
                .otherwise(pl.col("delta")))
            .with_columns(
                start=~pl.col("same") | pl.col("brk"),
                suspicious=pl.col("brk") | (pl.col("same") & (
                    pl.col("rise") > _limit("max_rate_per_h", pl.col("t") - pl.col("t").shift(1), vee)
                    + pl.col("tol"))))
            .collect(engine="in-memory"))


def _glitch_rows(r: pl.DataFrame, vee: VeePolicy) -> pl.Series:
    """Row indices (``idx``) of readings the register undoes within ``resume_lookahead`` readings.

    ``r`` is a :func:`_classify` frame with a row index; only its ``suspicious`` rows are examined.
    """
    # ``idx`` is the row position in ``r``: neighbours are fetched by position, never by a join on all rows
    n = r.height
    pos = r.select(pos=pl.arg_where(pl.col("suspicious"))).get_column("pos")
    if pos.len() == 0:
        return pl.Series("idx", [], pl.UInt32())
    sus = r[pos].select("idx", "series_id", "value", "t", "tol", "max_rate_per_h", "multiplier").with_columns(
        r[pos - 1].select(v_p="value", t_p="t"))
    k = pl.DataFrame({"k": list(range(1, vee.resume_lookahead + 1))}, schema={"k": pl.Int64()})
    base = sus.join(k, how="cross").with_columns(i=pl.col("idx").cast(pl.Int64()))

    def neighbours(offset: pl.Expr) -> pl.DataFrame:
        frame = base.with_columns(c_idx=offset)
        where = frame.get_column("c_idx").clip(0, n - 1)
        picked = r[where].select(c_series="series_id", c_v="value", c_t="t")
        return frame.with_columns(picked).filter((pl.col("c_idx") >= 0) & (pl.col("c_idx") < n))

    def consistent(v_ref: str, t_ref: str, v: str, t: str) -> pl.Expr:
        lim = _limit("max_rate_per_h", pl.col(t) - pl.col(t_ref), vee)
        return (pl.col(v) >= pl.col(v_ref) - pl.col("tol")) & (pl.col(v) <= pl.col(v_ref) + lim + pl.col("tol"))

    # look ahead: the register resumes at reading i+k consistently with the last good value v_p
    ahead = (neighbours(pl.col("i") + pl.col("k"))
             .filter((pl.col("c_series") == pl.col("series_id")) & consistent("v_p", "t_p", "c_v", "c_t"))
             .group_by("idx").agg(ahead_k=pl.col("k").min()))
    # look back: reading i is consistent with an earlier reading p' = i-1-k, so p'+1 .. i-1 were glitches
    back = (neighbours(pl.col("i") - 1 - pl.col("k"))
            .filter((pl.col("c_series") == pl.col("series_id")) & consistent("c_v", "c_t", "value", "t"))
            .group_by("idx").agg(back_k=pl.col("k").min()))
    decided = (sus.select("idx").join(ahead, on="idx", how="left").join(back, on="idx", how="left")
               .filter(pl.col("ahead_k").is_not_null() | pl.col("back_k").is_not_null())
               .with_columns(i=pl.col("idx").cast(pl.Int64()))
               .with_columns(
                   start=pl.when(pl.col("back_k").is_not_null()
                                 & (pl.col("back_k") <= pl.col("ahead_k").fill_null(1 << 30)))
                   .then(pl.col("i") - pl.col("back_k")).otherwise(pl.col("i")),
                   count=pl.min_horizontal(pl.col("back_k"), pl.col("ahead_k")))
               .select(rows=pl.int_ranges(pl.col("start"), pl.col("start") + pl.col("count")))
               .explode("rows"))
    return decided.get_column("rows").cast(pl.UInt32()).unique().sort()


_BASE_COLS: Final = ("idx", "series_id", "t", "value", "raw", "quality", "register_max", "multiplier",
                     "max_rate_per_h", "resolution", "tol")


def register_spans(readings: pl.DataFrame, meters: pl.DataFrame, vee: VeePolicy,
                   events: pl.DataFrame | None = None) -> pl.DataFrame:
    """Turn cumulative readings into spans of energy between consecutive kept readings.

    ``readings`` follows :data:`READINGS_SCHEMA`, ``meters`` :data:`METERS_SCHEMA`, the optional
    ``events`` :data:`aggregation._meter_events.EVENTS_SCHEMA` (replacements, confirmed resets, ratio
    changes: the spans across them get exact energy and the event's flag). Returns :data:`SPANS_SCHEMA`
    rows sorted by series and time; ``energy`` is null where the register cannot tell (epoch break or
    spike) and is filled by estimation downstream.
    """
    base, marks = _base(readings, meters, vee, events)
    r = _classify(base.with_row_index("idx"), vee)
    if r.height == 0:
        return SPANS_SCHEMA.to_frame()
    if r.get_column("suspicious").any():
        glitches = _glitch_rows(r, vee)
        if glitches.len():
            kept = r.filter(~pl.col("idx").is_in(glitches.implode())).select(_BASE_COLS)
            r = _classify(kept.lazy(), vee)
    step = pl.col("register_max").fill_null(0.0) + pl.col("resolution")
    any_wrap, any_jitter = r.select(pl.col("wrap").any(), pl.col("jitter").any()).row(0)
    lf = r.lazy()
    if any_wrap:
        # register value + (R_max + step) x wraps since the epoch started (epochs are contiguous runs)
        wraps = pl.col("wrap").cast(pl.Int64()).cum_sum()
        at_start = pl.when(pl.col("start")).then(wraps).forward_fill()
        lf = lf.with_columns(unwrapped=pl.col("value") + step * (wraps - at_start).cast(pl.Float64()))
    else:
        lf = lf.with_columns(unwrapped=pl.col("value"))
    if any_jitter:
        # a running maximum per epoch turns sub-step decreases into zero without losing the delta
        lf = lf.with_columns(eff=pl.col("unwrapped").cum_max().over(pl.col("start").cum_sum()))
    else:
        lf = lf.with_columns(eff=pl.col("unwrapped"))
    lf = (lf
          .with_columns(
              dt=pl.col("t") - pl.col("t").shift(1),
              raw_energy=(pl.col("eff") - pl.col("eff").shift(1)) * pl.col("multiplier"),
              dropped=(pl.col("idx").cast(pl.Int64()) - pl.col("idx").shift(1).cast(pl.Int64())) > 1,
              q_max=pl.max_horizontal(pl.col("quality"), pl.col("quality").shift(1)),
          )
          .filter(pl.col("same"))
          .with_columns(
              spike=~pl.col("brk") & (pl.col("raw_energy")
                                     > _limit("max_rate_per_h", pl.col("dt"), vee) * pl.col("multiplier")
                                     + pl.col("tol") * pl.col("multiplier")),
          )
          .select(
              "series_id",
              t0=pl.col("t") - pl.col("dt"),
              t1=pl.col("t"),
              energy=pl.when(pl.col("brk") | pl.col("spike")).then(None).otherwise(pl.col("raw_energy")),
              quality=pl.when(pl.col("q_max") == int(Quality.SUSPECT)).then(pl.lit(int(Quality.SUSPECT)))
              .when(pl.col("q_max") == int(Quality.ESTIMATED)).then(pl.lit(int(Quality.ESTIMATED)))
              .otherwise(pl.lit(int(Quality.GOOD))).cast(pl.Int16()),
              flags=(_flag(pl.col("wrap"), IntervalFlag.ROLLOVER) | _flag(pl.col("brk"), IntervalFlag.EPOCH_BREAK)
                     | _flag(pl.col("jitter"), IntervalFlag.JITTER) | _flag(pl.col("spike"), IntervalFlag.SPIKE)
                     | _flag(pl.col("dropped"), IntervalFlag.OUTLIER_DROPPED)
                     | _flag(pl.col("q_max") == int(Quality.ESTIMATED), IntervalFlag.DEVICE_ESTIMATED)
                     | _flag(pl.col("q_max") == int(Quality.SUSPECT), IntervalFlag.DEVICE_SUSPECT)),
          ))
    spans = lf.collect(engine="in-memory").cast(dict(SPANS_SCHEMA))  # type: ignore[arg-type]
    return flag_spans(spans, marks) if marks.height else spans

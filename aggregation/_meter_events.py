"""Meter events in the register arithmetic: replacements, confirmed resets and CT/PT ratio changes.

Pure Polars, used by :func:`aggregation._registers.register_spans`. Without events a register drop opens a
new epoch and the energy across it is estimated; an event recorded by the operator makes it exact:

* **replacement** at ``t`` with the old meter's final register ``F`` and the new meter's initial ``I``:
  the energy is ``(F − r₀) + (r₁ − I)``, where ``r₀`` is the last reading at or before ``t`` and ``r₁``
  the first after it. Each part lands in its own time: ``F − r₀`` in ``[t₀, t)``, ``r₁ − I`` in
  ``[t, t₁)``;
* **reset** (confirmed): the same with ``I`` the value the register was cleared to (0 unless given) and
  ``F`` the register just before the clear if known, else the last reading (no energy assumed between
  the last reading and the clear);
* **ratio change** from multiplier ``m₀`` to ``m₁``: register deltas after ``t`` use ``m₁``, before it
  ``m₀``; the register at ``t`` (``F`` if the operator read it, else interpolated in time) splits the
  span across ``t``.

How: readings after a replacement or reset are shifted by ``Σ (F − I)`` so the register is continuous
(a *virtual* register), and a synthetic reading is inserted at ``t`` with the register value there.
The usual pipeline (glitches, spikes, rollover, VEE) then runs unchanged, and every check still applies:
an ``F`` below the last reading still shows as a break and is estimated, never counted negative. The
rollover test keeps using the register as read (column ``raw``). Events outside the loaded readings
(before the first or at/after the last) only set multipliers: their spans are computed once readings on
both sides are loaded.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from aggregation._quality import IntervalFlag

REPLACEMENT: Final = "replacement"
RATIO_CHANGE: Final = "ratio_change"
RESET: Final = "reset"
KINDS: Final = (REPLACEMENT, RATIO_CHANGE, RESET)
KIND_FLAGS: Final = {REPLACEMENT: IntervalFlag.METER_REPLACED, RESET: IntervalFlag.RESET_CONFIRMED,
                     RATIO_CHANGE: IntervalFlag.RATIO_CHANGE}
_OFFSET_KINDS: Final = (REPLACEMENT, RESET)

#: What the register arithmetic needs of each live event. The multipliers are those that turn the
#: *transported* register's deltas into energy before and after the event (ratio changes only; see
#: :func:`effective_multipliers` for devices that apply their ratio themselves).
EVENTS_SCHEMA: Final = pl.Schema({
    "series_id": pl.Int32(),
    "ts": pl.Datetime("us", "UTC"),
    "kind": pl.String(),
    "old_final": pl.Float64(),         # register at the event on the old side; null = unknown
    "new_initial": pl.Float64(),       # register at the event on the new side (replacement, reset)
    "old_multiplier": pl.Float64(),    # ratio change: multiplier of the deltas before the event
    "new_multiplier": pl.Float64(),    # ratio change: multiplier of the deltas after it
})
MARKS_SCHEMA: Final = pl.Schema({"series_id": pl.Int32(), "t_ev": pl.Int64(), "flag": pl.Int32()})


def effective_multipliers(events: pl.DataFrame, applied: pl.DataFrame) -> pl.DataFrame:
    """Turn the recorded CT x PT multipliers into the multipliers of the *transported* register deltas.

    ``events`` follows :data:`EVENTS_SCHEMA` with the operator's multipliers; ``applied`` maps
    ``series_id`` to ``multiplier_applied`` (the device or edge agent already multiplies by its ratio).
    A register read secondary-side is multiplied by the recorded ratio itself (old before, new after).
    A primary-side register kept counting with the ratio it was configured with, so only the change
    scales it: the deltas after each change are multiplied by ``Π new/old`` of the changes so far.
    """
    ratio = events.filter(pl.col("kind") == RATIO_CHANGE)
    if ratio.height == 0:
        return events
    marked = (ratio.join(applied.select("series_id", "multiplier_applied"), on="series_id", how="left")
              .with_columns(pl.col("multiplier_applied").fill_null(True))
              .sort("series_id", "ts")
              .with_columns(step=pl.col("new_multiplier") / pl.col("old_multiplier"))
              .with_columns(after=pl.col("step").cum_prod().over("series_id"))
              .with_columns(before=pl.col("after") / pl.col("step")))
    rel = pl.col("multiplier_applied")
    fixed = marked.with_columns(
        old_multiplier=pl.when(rel).then(pl.col("before")).otherwise(pl.col("old_multiplier")),
        new_multiplier=pl.when(rel).then(pl.col("after")).otherwise(pl.col("new_multiplier")),
    ).select(EVENTS_SCHEMA.names())
    return pl.concat([events.filter(pl.col("kind") != RATIO_CHANGE).select(EVENTS_SCHEMA.names()), fixed])


def _asof(left: pl.DataFrame, right: pl.DataFrame, left_on: str, right_on: str, *, forward: bool = False,
          exact: bool = True) -> pl.DataFrame:
    """Per-series as-of join (both frames sorted by series, then time)."""
    return left.join_asof(right, left_on=left_on, right_on=right_on, by="series_id",
                          strategy="forward" if forward else "backward", allow_exact_matches=exact,
                          check_sortedness=False)


def _multipliers(rows: pl.DataFrame, ratio: pl.DataFrame) -> pl.DataFrame:
    """Set each row's ``multiplier``: the one in force for the delta ending at the row."""
    if ratio.height == 0:
        return rows
    after = ratio.select("series_id", t_m=pl.col("t_ev"), m_after=pl.col("new_multiplier"))
    first = (ratio.group_by("series_id").agg(pl.col("old_multiplier").sort_by("t_ev").first().alias("m_first")))
    # a reading at the event instant still belongs to the old ratio: only events strictly before count
    return (_asof(rows, after, "t", "t_m", exact=False)
            .join(first, on="series_id", how="left")
            .with_columns(multiplier=pl.coalesce("m_after", "m_first", "multiplier"))
            .drop("t_m", "m_after", "m_first"))


def _offset_rows(rows: pl.DataFrame, offsets: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Shift readings after replacements and resets.

    Returns the shifted rows, the synthetic readings at the events and the events with ``cum`` (the
    total shift after each).
    """
    prev = _asof(offsets, rows.select("series_id", "t", r_prev="value"), "t_ev", "t")
    ev = (prev.with_columns(f_eff=pl.coalesce("old_final", "r_prev"),
                            i_eff=pl.col("new_initial").fill_null(0.0))
          .with_columns(d=pl.col("f_eff") - pl.col("i_eff"))
          .with_columns(cum=pl.col("d").cum_sum().over("series_id"))
          .with_columns(off_before=pl.col("cum") - pl.col("d")))
    # a reading at the event instant is the old meter's: only events strictly before it shift it
    shifted = (_asof(rows, ev.select("series_id", t_off="t_ev", cum="cum"), "t", "t_off", exact=False)
               .with_columns(value=pl.col("raw") + pl.col("cum").fill_null(0.0))
               .drop("t_off", "cum"))
    synthetic = ev.select("series_id", t=pl.col("t_ev"), raw=pl.col("f_eff"),
                          value=pl.col("f_eff") + pl.col("off_before"), prio=pl.lit(0, pl.Int8()))
    return shifted, synthetic, ev.select("series_id", "t_ev", "cum")


def _ratio_rows(rows: pl.DataFrame, ratio: pl.DataFrame, shifts: pl.DataFrame) -> pl.DataFrame:
    """Synthetic readings at ratio changes: the register read then, or interpolated in time."""
    ev = (_asof(ratio.select("series_id", "t_ev", "old_final"), shifts.rename({"t_ev": "t_off"}), "t_ev", "t_off",
                exact=False)
          .with_columns(off=pl.col("cum").fill_null(0.0)))
    pts = rows.select("series_id", "t", "value")
    ev = _asof(ev, pts.rename({"t": "t0", "value": "v0"}), "t_ev", "t0")
    ev = _asof(ev, pts.rename({"t": "t1", "value": "v1"}), "t_ev", "t1", forward=True, exact=False)
    interpolated = pl.col("v0") + (pl.col("v1") - pl.col("v0")) * (
        (pl.col("t_ev") - pl.col("t0")).cast(pl.Float64()) / (pl.col("t1") - pl.col("t0")).cast(pl.Float64()))
    given = pl.col("old_final").is_not_null()
    return (ev.filter(given | (pl.col("t0") != pl.col("t_ev")))   # a reading at the instant needs no stand-in
            .with_columns(value=pl.when(given).then(pl.col("old_final") + pl.col("off")).otherwise(interpolated))
            .select("series_id", t=pl.col("t_ev"), raw=pl.col("value") - pl.col("off"), value="value",
                    prio=pl.when(given).then(pl.lit(0, pl.Int8())).otherwise(pl.lit(2, pl.Int8()))))


def _merge(rows: pl.DataFrame, points: pl.DataFrame) -> pl.DataFrame:
    """Insert synthetic readings; at the same instant an operator's value wins over a reading, which wins
    over an interpolated value (``prio`` 0, 1, 2)."""
    meter_cols = [c for c in rows.columns if c not in ("t", "value", "quality", "raw")]
    params = rows.group_by("series_id").agg(pl.all().exclude("t", "value", "quality", "raw").first())
    extra = (points.join(params.select(meter_cols), on="series_id", how="inner")
             .with_columns(quality=pl.lit(0)))
    return (pl.concat([rows.with_columns(prio=pl.lit(1, pl.Int8())),
                       extra.select(*rows.columns, "prio").cast(rows.schema)], how="vertical_relaxed")
            .sort("series_id", "t", "prio")
            .unique(["series_id", "t"], keep="first", maintain_order=True)
            .drop("prio"))


def apply_events(rows: pl.DataFrame, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Readings with the events applied, and the marks that flag the spans around them.

    ``rows``: readings joined with their meter (``series_id, t`` (µs), ``value, quality`` and the meter
    columns), sorted by series and time. ``events``: :data:`EVENTS_SCHEMA`. Returns the rows of the
    same columns plus ``raw`` (the register as read), with virtual values, synthetic readings at the
    events and per-row multipliers, still sorted; and :data:`MARKS_SCHEMA` rows ``(series_id, t_ev, flag)``.
    """
    base = rows.with_columns(raw=pl.col("value"))
    ev = (events.filter(pl.col("series_id").is_in(rows.get_column("series_id").unique().implode()))
          .select(pl.col("series_id").cast(pl.Int32()), t_ev=pl.col("ts").dt.epoch("us"), kind="kind",
                  old_final="old_final", new_initial="new_initial", old_multiplier="old_multiplier",
                  new_multiplier="new_multiplier")
          .sort("series_id", "t_ev", pl.col("kind").is_in(_OFFSET_KINDS).not_())
          .unique(["series_id", "t_ev"], keep="first", maintain_order=True))
    if ev.height == 0:
        return base, MARKS_SCHEMA.to_frame()
    ids = ev.get_column("series_id").unique().implode()
    mine = base.filter(pl.col("series_id").is_in(ids))
    rest = base.filter(~pl.col("series_id").is_in(ids))
    bounds = mine.group_by("series_id").agg(first=pl.col("t").min(), last=pl.col("t").max())
    ev = ev.join(bounds, on="series_id", how="inner").with_columns(
        inside=(pl.col("t_ev") >= pl.col("first")) & (pl.col("t_ev") < pl.col("last")))
    offsets = ev.filter(pl.col("inside") & pl.col("kind").is_in(_OFFSET_KINDS))
    ratio_all = ev.filter(pl.col("kind") == RATIO_CHANGE)
    shifts = pl.DataFrame(schema={"series_id": pl.Int32(), "t_ev": pl.Int64(), "cum": pl.Float64()})
    if offsets.height:
        mine, points, shifts = _offset_rows(mine, offsets)
        mine = _merge(mine, points)
    ratio_in = ratio_all.filter(pl.col("inside"))
    if ratio_in.height:
        mine = _merge(mine, _ratio_rows(mine, ratio_in, shifts))
    mine = _multipliers(mine, ratio_all).select(base.columns)
    marks = (ev.filter(pl.col("inside"))
             .select("series_id", "t_ev", flag=pl.col("kind").replace_strict(
                 {k: int(f) for k, f in KIND_FLAGS.items()}, return_dtype=pl.Int32())))
    if rest.height == 0:
        return mine, marks
    return pl.concat([rest, mine]).sort("series_id", maintain_order=True), marks


def flag_spans(spans: pl.DataFrame, marks: pl.DataFrame) -> pl.DataFrame:
    """OR each mark's flag into the spans that touch its instant (``t0 ≤ t_ev ≤ t1``)."""
    if marks.height == 0 or spans.height == 0:
        return spans
    hit = (spans.select("series_id", "t0", "t1").with_row_index("row")
           .join(marks, on="series_id", how="inner")
           .filter((pl.col("t0") <= pl.col("t_ev")) & (pl.col("t_ev") <= pl.col("t1")))
           .group_by("row").agg(extra=pl.col("flag").bitwise_or()))
    return (spans.with_row_index("row").join(hit, on="row", how="left", maintain_order="left")
            .with_columns(flags=(pl.col("flags") | pl.col("extra").fill_null(0)).cast(pl.Int32()))
            .drop("row", "extra"))

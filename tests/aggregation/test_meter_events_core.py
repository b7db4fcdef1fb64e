"""Meter events in the register arithmetic: golden cases written out by hand, and properties.

Without an event a register drop is estimated (see test_intervals_golden); with a recorded replacement,
confirmed reset or ratio change the energy across it is exact: old final and new initial registers are
used as read, each multiplier scales its own side.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation._intervals import IntervalParams, interval_energy
from aggregation._meter_events import EVENTS_SCHEMA, effective_multipliers
from aggregation._quality import IntervalFlag as F
from schemas import Quality
from tests.aggregation._frames import T0, Q, energies, meter, readings

P = IntervalParams()


def event(kind: str, at: datetime, *, old_final: float | None = None, new_initial: float | None = None,
          old_multiplier: float | None = None, new_multiplier: float | None = None, series_id: int = 1) -> pl.DataFrame:
    return pl.DataFrame({"series_id": [series_id], "ts": [at], "kind": [kind], "old_final": [old_final],
                         "new_initial": [new_initial], "old_multiplier": [old_multiplier],
                         "new_multiplier": [new_multiplier]}, schema=EVENTS_SCHEMA)


def minutes(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


def flags(df: pl.DataFrame) -> list[int]:
    return df.get_column("flags").to_list()


# ------------------------------------------------------------------------------------------ golden cases
def test_replacement_uses_old_final_and_new_initial_exactly() -> None:
    # old meter 100, 108, 116 (8 per interval); swapped at 00:40 reading 120.0; the new meter starts at 0.3
    # and reads 2.3 at 00:45, then 12 per interval
    r = readings([100, 108, 116, 2.3, 14.3, 26.3])
    without = interval_energy(r, meter(), P)
    assert without.get_column("quality").to_list()[2] == Quality.ESTIMATED        # the break is a guess
    out = interval_energy(r, meter(), P, events=event("replacement", minutes(40), old_final=120.0, new_initial=0.3))
    # 00:30-00:45 = (120 - 116) in [00:30, 00:40) + (2.3 - 0.3) in [00:40, 00:45) = 4 + 2 = 6
    assert energies(out) == [8.0, 8.0, 6.0, 12.0, 12.0]
    assert flags(out) == [0, 0, F.METER_REPLACED, 0, 0]
    assert out.get_column("quality").to_list() == [Quality.GOOD] * 5
    assert out.get_column("estimated_share").to_list() == [0.0] * 5


def test_each_side_of_a_replacement_lands_in_its_own_interval() -> None:
    # the swap at 00:20 lies in the second interval, the new meter's first reading at 00:50 in the fourth
    r = readings([100, 108, 5, 17], times=[T0, minutes(15), minutes(50), minutes(65)])
    out = interval_energy(r, meter(max_rate_per_h=None), P,
                          events=event("replacement", minutes(20), old_final=110.0, new_initial=2.0))
    # old: 110 - 108 = 2 in [00:15, 00:20); new: 5 - 2 = 3 over [00:20, 00:50), spread linearly (0.1 a minute):
    # 1 in [00:20, 00:30), 1.5 in [00:30, 00:45), 0.5 in [00:45, 00:50); then 17 - 5 = 12 over [00:50, 01:05)
    assert energies(out) == pytest.approx([8.0, 2.0 + 1.0, 1.5, 0.5 + 8.0, 4.0])
    assert sum(energies(out)) == pytest.approx((110 - 100) + (17 - 2))
    assert all(f & F.METER_REPLACED for f in flags(out)[1:3])


def test_a_reading_at_the_swap_instant_is_the_old_meter_and_the_event_value_wins() -> None:
    # the swap at 00:30 with the old meter's final 116.5; the 00:30 reading (116) is replaced by it
    out = interval_energy(readings([100, 108, 116, 12.5, 24.5]), meter(), P,
                          events=event("replacement", minutes(30), old_final=116.5, new_initial=0.5))
    assert energies(out) == [8.0, 8.5, 12.0, 12.0]
    assert flags(out) == [0, F.METER_REPLACED, F.METER_REPLACED, 0]


def test_confirmed_reset_without_the_register_before_it_counts_from_the_last_reading() -> None:
    r = readings([100, 108, 116, 4, 16])
    out = interval_energy(r, meter(), P, events=event("reset", minutes(40), new_initial=0.0))
    # nothing known between the 00:30 reading and the clear: 0 there, then 4 - 0 after it
    assert energies(out) == [8.0, 8.0, 4.0, 12.0]
    assert flags(out)[2] == F.RESET_CONFIRMED
    assert out.get_column("quality").to_list() == [0, 0, 0, 0]
    told = interval_energy(r, meter(), P, events=event("reset", minutes(40), old_final=119.0, new_initial=0.0))
    assert energies(told) == [8.0, 8.0, 3.0 + 4.0, 12.0]


def test_ratio_change_scales_the_deltas_after_it() -> None:
    r = readings([100, 101, 102, 103, 104])                # one register unit per interval
    m = meter(max_rate_per_h=None)
    at_reading = interval_energy(r, m, P, events=event("ratio_change", minutes(30), old_multiplier=40.0,
                                                       new_multiplier=80.0))
    assert energies(at_reading) == [40.0, 40.0, 80.0, 80.0]
    assert flags(at_reading) == [0, F.RATIO_CHANGE, F.RATIO_CHANGE, 0]
    # between readings: the register at 00:37:30 is interpolated (102.5): 0.5 x 40 + 0.5 x 80 = 60
    between = interval_energy(r, m, P, events=event("ratio_change", minutes(37.5), old_multiplier=40.0,
                                                    new_multiplier=80.0))
    assert energies(between) == [40.0, 40.0, 60.0, 80.0]
    # the register read at the change (102.2): 0.2 x 40 + 0.8 x 80 = 72
    read = interval_energy(r, m, P, events=event("ratio_change", minutes(37.5), old_final=102.2,
                                                 old_multiplier=40.0, new_multiplier=80.0))
    assert energies(read) == pytest.approx([40.0, 40.0, 72.0, 80.0])
    assert read.get_column("quality").to_list() == [0, 0, 0, 0]


def test_a_ratio_change_before_the_loaded_readings_sets_their_multiplier() -> None:
    out = interval_energy(readings([100, 101, 102]), meter(max_rate_per_h=None), P,
                          events=event("ratio_change", T0 - timedelta(days=3), old_multiplier=40.0,
                                       new_multiplier=80.0))
    assert energies(out) == [80.0, 80.0]
    assert flags(out) == [0, 0]


def test_an_event_outside_the_readings_or_of_another_series_changes_nothing() -> None:
    r = readings([100, 108, 116, 0.5, 12.5, 24.5])
    plain = interval_energy(r, meter(), P)
    for ev in (event("replacement", T0 - timedelta(hours=1), old_final=99.0, new_initial=0.0),
               event("replacement", minutes(40), old_final=120.0, new_initial=0.3, series_id=2),
               event("reset", minutes(80), new_initial=0.0)):   # at the last reading: nothing after it yet
        assert interval_energy(r, meter(), P, events=ev).equals(plain)


def test_an_old_final_below_the_last_reading_is_not_counted_negative() -> None:
    # a wrong event cannot make energy negative: the contradiction shows as VEE flags, the total stays >= 0
    out = interval_energy(readings([100, 108, 116, 2.3, 14.3]), meter(), P,
                          events=event("replacement", minutes(40), old_final=110.0, new_initial=0.3))
    assert min(energies(out)) >= 0
    assert any(q != Quality.GOOD for q in out.get_column("quality").to_list())


def test_rollover_of_the_new_meter_after_a_replacement_is_still_a_wrap() -> None:
    # new meter starts near its maximum (999 999.99) and wraps; the old meter's registers are far below
    r = readings([100, 108, 999_990.0, 999_999.0, 8.99])
    out = interval_energy(r, meter(), P, events=event("replacement", minutes(20), old_final=110.0,
                                                      new_initial=999_986.0))
    # [00:15,00:20) 2; [00:20,00:30) 999 990 - 999 986 = 4; then 9; then 0.01 + 8.99 = 9.99 (wrap)
    assert energies(out) == pytest.approx([8.0, 6.0, 9.0, 9.99])
    assert flags(out)[3] == F.ROLLOVER


def test_effective_multipliers_of_primary_side_registers_are_relative() -> None:
    events = pl.concat([
        event("ratio_change", minutes(0), old_multiplier=40.0, new_multiplier=80.0, series_id=1),
        event("ratio_change", minutes(60), old_multiplier=80.0, new_multiplier=120.0, series_id=1),
        event("ratio_change", minutes(0), old_multiplier=40.0, new_multiplier=80.0, series_id=2),
        event("replacement", minutes(30), old_final=1.0, new_initial=0.0, series_id=2),
    ])
    applied = pl.DataFrame({"series_id": [1, 2], "multiplier_applied": [True, False]},
                           schema={"series_id": pl.Int32(), "multiplier_applied": pl.Boolean()})
    out = effective_multipliers(events, applied).sort("series_id", "ts")
    rows = [(r["series_id"], r["kind"], r["old_multiplier"], r["new_multiplier"]) for r in out.iter_rows(named=True)]
    assert rows == [(1, "ratio_change", 1.0, 2.0), (1, "ratio_change", 2.0, 3.0),   # 80/40, then x 120/80
                    (2, "ratio_change", 40.0, 80.0), (2, "replacement", None, None)]


# ------------------------------------------------------------------------------------------- properties
gaps_st = st.lists(st.integers(min_value=1, max_value=120), min_size=2, max_size=40)
inc_st = st.one_of(st.just(0.0), st.floats(min_value=0.01, max_value=50.0))


@st.composite
def swapped_meter(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, float]:
    """Readings of an old meter then a new one, the replacement event, and the true energy."""
    gaps = draw(gaps_st)
    times = [0]
    for g in gaps:
        times.append(times[-1] + g)
    k = draw(st.integers(min_value=0, max_value=len(times) - 2))          # last old reading index
    at = draw(st.integers(min_value=times[k], max_value=times[k + 1] - 1))  # swap at or after it
    value = draw(st.floats(min_value=0.0, max_value=50_000.0))
    values, true = [value], 0.0
    for _ in range(1, k + 1):
        inc = draw(inc_st)
        value += inc
        true += inc
        values.append(value)
    extra = 0.0 if at == times[k] else draw(inc_st)                     # the old meter ran on until the swap
    old_final, true = value + extra, true + extra
    new_initial = draw(st.floats(min_value=0.0, max_value=10_000.0))
    new = new_initial
    for _ in range(k + 1, len(times)):
        inc = draw(inc_st)
        new += inc
        true += inc
        values.append(new)
    r = readings(values, times=[minutes(t) for t in times])
    ev = event("replacement", minutes(at), old_final=old_final, new_initial=new_initial)
    return r, ev, true


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(swapped_meter())
def test_with_a_replacement_the_intervals_sum_to_the_exact_register_arithmetic(
        case: tuple[pl.DataFrame, pl.DataFrame, float]) -> None:
    r, ev, true = case
    out = interval_energy(r, meter(register_max=None, max_rate_per_h=None), P, events=ev)
    # (old_final - first reading) + (last reading - new_initial), whatever the spacing of the readings
    assert out.get_column("energy").sum() == pytest.approx(true, rel=1e-9, abs=1e-6)
    assert (out.get_column("energy") >= 0).all()
    assert not any(f & (F.EPOCH_BREAK | F.SPIKE | F.NO_BASIS) for f in flags(out))


@st.composite
def ratio_case(draw: st.DrawFn) -> tuple[pl.DataFrame, datetime, float, float]:
    """A regular-ish register, a ratio change at one of its readings, and the two multipliers."""
    gaps = draw(gaps_st)
    times = [0]
    for g in gaps:
        times.append(times[-1] + g)
    value = draw(st.floats(min_value=0.0, max_value=10_000.0))
    values = [value]
    for _ in times[1:]:
        value += draw(inc_st)
        values.append(value)
    k = draw(st.integers(min_value=0, max_value=len(times) - 1))
    m0 = draw(st.floats(min_value=0.5, max_value=500.0))
    m1 = draw(st.floats(min_value=0.5, max_value=500.0).filter(lambda m: abs(m - m0) > 1e-6))
    return readings(values, times=[minutes(t) for t in times]), minutes(times[k]), m0, m1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ratio_case())
def test_a_ratio_change_scales_exactly_the_deltas_after_it(case: tuple[pl.DataFrame, datetime, float, float]) -> None:
    r, at, m0, m1 = case
    base = interval_energy(r, meter(register_max=None, max_rate_per_h=None, multiplier=m0), P)
    out = interval_energy(r, meter(register_max=None, max_rate_per_h=None), P,
                          events=event("ratio_change", at, old_multiplier=m0, new_multiplier=m1))
    joined = base.join(out, on=["series_id", "ts"], suffix="_ev")
    assert joined.height == base.height == out.height
    end = pl.col("ts") + Q
    before = joined.filter(end <= at)
    after = joined.filter(pl.col("ts") >= at)
    assert before.get_column("energy_ev").to_list() == pytest.approx(before.get_column("energy").to_list(),
                                                                      rel=1e-9, abs=1e-9)
    assert after.get_column("energy_ev").to_list() == pytest.approx(
        (after.get_column("energy") * (m1 / m0)).to_list(), rel=1e-9, abs=1e-9)

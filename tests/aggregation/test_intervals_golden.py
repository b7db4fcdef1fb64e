"""Golden cases of interval energy from cumulative registers: the arithmetic is written out in each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from aggregation._intervals import HISTORY_SCHEMA, IntervalParams, interval_energy
from aggregation._quality import IntervalFlag as F
from schemas import Quality
from tests.aggregation._frames import T0, Q, energies, meter, readings

P = IntervalParams()
SH = ZoneInfo("Asia/Shanghai")


def flags(df: pl.DataFrame) -> list[int]:
    return df.get_column("flags").to_list()


def test_regular_readings_give_actual_intervals() -> None:
    out = interval_energy(readings([100, 110, 120, 130]), meter(), P)
    # 110-100, 120-110, 130-120
    assert energies(out) == [10.0, 10.0, 10.0]
    assert out.get_column("quality").to_list() == [Quality.GOOD] * 3
    assert flags(out) == [0, 0, 0]
    assert out.get_column("estimated_share").to_list() == [0.0, 0.0, 0.0]
    assert out.get_column("ts").to_list() == [T0, T0 + Q, T0 + 2 * Q]


def test_rollover_at_register_maximum() -> None:
    # R_max = 999 999.99, one register step = 0.01: after 999 999.99 comes 0.00.
    out = interval_energy(readings([999_990.00, 999_999.00, 8.99, 18.99]), meter(), P)
    # second interval: (999 999.99 + 0.01 - 999 999.00) + 8.99 = 1.00 + 8.99 = 9.99
    assert energies(out) == [9.0, 9.99, 10.0]
    assert flags(out)[1] == F.ROLLOVER
    assert out.get_column("quality").to_list() == [0, 0, 0]


def test_meter_replacement_opens_an_epoch_and_estimates_the_break() -> None:
    # old meter reads 100, 108, 116 (8 per interval); the new one starts at 0.5 and runs 12 per interval
    out = interval_energy(readings([100, 108, 116, 0.5, 12.5, 24.5]), meter(), P)
    # the break interval is not 0.5 - 116 (negative) nor 0.5 (a guess from zero): the power is interpolated
    # linearly between the neighbours, 8 before and 12 after, at the interval's midpoint: (8 + 12) / 2 = 10
    assert energies(out) == [8.0, 8.0, 10.0, 12.0, 12.0]
    assert flags(out)[2] == F.EPOCH_BREAK | F.GAP_LINEAR
    assert out.get_column("quality").to_list() == [0, 0, Quality.ESTIMATED, 0, 0]
    assert out.get_column("estimated_share").to_list() == [0.0, 0.0, 1.0, 0.0, 0.0]
    assert min(energies(out)) >= 0


def test_jitter_below_one_step_is_zero_and_the_sum_stays_the_register_delta() -> None:
    out = interval_energy(readings([100, 110, 109.995, 120]), meter(), P)
    # 110 -> 109.995 is -0.005, within one step (0.01): 0, and the running maximum keeps 120 - 110 = 10 next
    assert energies(out) == [10.0, 0.0, 10.0]
    assert flags(out) == [0, F.JITTER, 0]
    assert sum(energies(out)) == pytest.approx(120 - 100)


def test_a_jump_the_register_undoes_is_a_glitch_not_energy() -> None:
    out = interval_energy(readings([100, 110, 5000, 130, 140]), meter(), P)
    # 5000 is dropped (130 resumes from 110 within max rate x dt); 110 -> 130 spans 30 min: 20 / 2 = 10 each
    assert energies(out) == [10.0, 10.0, 10.0, 10.0]
    assert flags(out)[1] == flags(out)[2] == F.OUTLIER_DROPPED | F.GAP_LINEAR
    assert sum(energies(out)) == pytest.approx(140 - 100)


def test_spurious_zeros_after_a_reboot_are_dropped() -> None:
    out = interval_energy(readings([100, 110, 0, 0, 130, 140]), meter(), P)
    # both zeros dropped: 110 -> 130 over 45 min = 20 kWh, 20 / 3 per interval
    assert energies(out) == pytest.approx([10.0, 20 / 3, 20 / 3, 20 / 3, 10.0])
    assert sum(energies(out)) == pytest.approx(140 - 100)


def test_implausible_jump_that_stays_is_estimated_not_counted() -> None:
    # max rate 100 kW -> at most 100 kW x 0.25 h x 1.2 = 30 kWh per 15 min; the register jumps by 490 and stays
    out = interval_energy(readings([100, 110, 600, 610, 620]), meter(max_rate_per_h=100.0), P)
    # the jump interval gets the neighbours' power (10 before, 10 after) instead of 490
    assert energies(out) == [10.0, 10.0, 10.0, 10.0]
    assert flags(out)[1] == F.SPIKE | F.GAP_LINEAR
    assert out.get_column("quality").to_list()[1] == Quality.ESTIMATED


def test_off_boundary_readings_are_split_in_proportion_to_time() -> None:
    out = interval_energy(readings([100, 110, 120], start=T0 + timedelta(minutes=5)), meter(), P)
    # spans 00:05-00:20 and 00:20-00:35, 10 kWh each
    # 00:00 interval: 10 x 10/15;  00:15: 10 x 5/15 + 10 x 10/15;  00:30: 10 x 5/15
    assert energies(out) == pytest.approx([10 * 10 / 15, 10 * 5 / 15 + 10 * 10 / 15, 10 * 5 / 15])
    assert flags(out) == [F.SPLIT | F.PARTIAL, F.SPLIT, F.SPLIT | F.PARTIAL]
    assert out.get_column("coverage").to_list() == pytest.approx([10 / 15, 1.0, 5 / 15])
    assert out.get_column("quality").to_list() == [0, 0, 0]


def test_gap_up_to_two_hours_is_linear_between_registers() -> None:
    times = [T0, T0 + Q, T0 + 2 * Q, T0 + 6 * Q, T0 + 7 * Q]
    out = interval_energy(readings([100, 110, 120, 160, 170], times=times), meter(), P)
    # 00:30 -> 01:30 (1 h): the register rose 160 - 120 = 40, spread linearly: 40 / 4 = 10 per interval
    assert energies(out) == [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    assert flags(out)[2:6] == [F.GAP_LINEAR] * 4
    assert out.get_column("estimated_share").to_list() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


def _last_monday_history(series_id: int = 1) -> pl.DataFrame:
    """Actual intervals of Monday 2026-09-28 (local): 5 kWh 00:00-08:00 and 20:00-24:00, 15 kWh 08:00-20:00."""
    day = datetime(2026, 9, 28, tzinfo=SH)
    rows = []
    for k in range(96):
        local = day + k * Q
        rows.append((series_id, local.astimezone(UTC), 15.0 if 8 <= local.hour < 20 else 5.0))
    return pl.DataFrame(rows, schema=HISTORY_SCHEMA, orient="row")


def test_long_gap_takes_the_like_day_shape_scaled_to_the_register_delta() -> None:
    monday = datetime(2026, 10, 5, tzinfo=SH)  # one week after the history day: same day type (Monday)
    t_gap_start = (monday + timedelta(hours=6)).astimezone(UTC)
    t_gap_end = (monday + timedelta(hours=12)).astimezone(UTC)
    times = [t_gap_start - Q, t_gap_start, t_gap_end, t_gap_end + Q]
    out = interval_energy(readings([1000, 1005, 1425, 1440], times=times), meter(max_rate_per_h=1000.0), P,
                          history=_last_monday_history())
    gap = out.filter((pl.col("ts") >= t_gap_start) & (pl.col("ts") < t_gap_end))
    # like-day weights 06:00-08:00: 8 x 5 = 40, 08:00-12:00: 16 x 15 = 240, sum 280; register delta 1425 - 1005 = 420
    # scaled: 5 x 420/280 = 7.5 and 15 x 420/280 = 22.5
    assert energies(gap) == [7.5] * 8 + [22.5] * 16
    assert sum(energies(gap)) == pytest.approx(420.0)
    assert set(flags(gap)) == {F.GAP_LIKE_DAY | F.SCALED}
    assert set(gap.get_column("quality").to_list()) == {Quality.ESTIMATED}


def test_long_break_without_register_delta_uses_the_like_day_values() -> None:
    monday = datetime(2026, 10, 5, tzinfo=SH)
    times = [monday + timedelta(hours=5, minutes=45), monday + timedelta(hours=6), monday + timedelta(hours=12),
             monday + timedelta(hours=12, minutes=15)]
    # 6 h without readings and a new meter afterwards (3 -> 18): the energy is unknown, like-day gives it
    out = interval_energy(readings([500, 505, 3, 18], times=times), meter(max_rate_per_h=1000.0), P,
                          history=_last_monday_history())
    lo, hi = (monday + timedelta(hours=6)).astimezone(UTC), (monday + timedelta(hours=12)).astimezone(UTC)
    gap = out.filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    assert energies(gap) == [5.0] * 8 + [15.0] * 16      # the like day itself, 40 + 240 = 280 kWh
    assert set(flags(gap)) == {F.EPOCH_BREAK | F.GAP_LIKE_DAY}


def test_long_gap_without_like_days_falls_back_to_linear() -> None:
    times = [T0, T0 + 12 * Q, T0 + 13 * Q]  # 3 h gap, no history at all
    out = interval_energy(readings([100, 160, 165], times=times), meter(), P)
    # 60 kWh over 12 intervals, linearly: 5 each
    assert energies(out) == [5.0] * 13
    assert set(flags(out)[:12]) == {F.GAP_LINEAR}


def test_break_with_nothing_to_estimate_from_is_zero_and_says_so() -> None:
    out = interval_energy(readings([100, 5]), meter(), P)
    assert energies(out) == [0.0]
    assert flags(out) == [F.EPOCH_BREAK | F.GAP_LINEAR | F.NO_BASIS]
    assert out.get_column("quality").to_list() == [Quality.ESTIMATED]


def test_multiplier_scales_register_deltas() -> None:
    out = interval_energy(readings([10, 11, 12.5]), meter(multiplier=200.0, max_rate_per_h=2000.0), P)
    # (11 - 10) x 200 = 200, (12.5 - 11) x 200 = 300 (limit 2000 kW x 0.25 h x 1.2 = 600 kWh)
    assert energies(out) == [200.0, 300.0]


def test_device_quality_flags_propagate_and_bad_readings_are_ignored() -> None:
    out = interval_energy(readings([100, 110, 120, 130], quality=[0, 1, 0, 3]), meter(), P)
    # the reading at 00:15 is device-estimated: both intervals touching it are estimated; 130 is BAD: ignored
    assert energies(out) == [10.0, 10.0]
    assert out.get_column("quality").to_list() == [Quality.ESTIMATED, Quality.ESTIMATED]
    assert all(f & F.DEVICE_ESTIMATED for f in flags(out))


def test_float32_registers_tolerate_their_own_quantisation() -> None:
    # around 1e6 a FLOAT32 register moves in steps of 2^(19-23) = 0.0625 kWh
    vals = [1_000_000.0, 999_999.9375, 1_000_010.0]
    as_f32 = interval_energy(readings(vals), meter(register_max=None, float32=True), P)
    assert energies(as_f32) == [0.0, 10.0]                 # jitter, then the real 10 kWh
    exact = interval_energy(readings(vals), meter(register_max=None, float32=False), P)
    # with a 0.01 step the dip is a glitch the register undoes: dropped, 10 kWh spread over 30 min
    assert energies(exact) == [5.0, 5.0]
    assert flags(exact) == [F.OUTLIER_DROPPED | F.GAP_LINEAR] * 2


def test_interval_length_is_configurable() -> None:
    out = interval_energy(readings([100, 110, 120, 130, 140]), meter(), IntervalParams(interval_s=1800))
    # 30-min intervals: (120 - 100) and (140 - 120)
    assert energies(out) == [20.0, 20.0]


def test_several_series_are_independent() -> None:
    both = pl.concat([readings([100, 110, 120], series_id=1), readings([5, 0.5, 3.5], series_id=2)])
    m = pl.concat([meter(1), meter(2)])
    out = interval_energy(both, m, P)
    assert energies(out.filter(pl.col("series_id") == 1)) == [10.0, 10.0]
    # series 2 has a reset then 3.0 per interval: the break interval gets 3.0 (only the next rate is known)
    assert energies(out.filter(pl.col("series_id") == 2)) == [3.0, 3.0]

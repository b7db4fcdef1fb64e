"""Property tests of interval energy: sums equal register deltas, nothing negative, windows agree with full runs."""

from __future__ import annotations

import itertools
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation._intervals import IntervalParams, interval_energy
from aggregation._quality import IntervalFlag as F
from tests.aggregation._frames import T0, meter, readings

P = IntervalParams()
R_MAX = 1000.0
STEP = 0.01

# sorted distinct reading times (minutes after T0, any alignment, gaps up to 5 h) and increments per reading
times_st = st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=60).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))])


@st.composite
def register_series(draw: st.DrawFn) -> tuple[list[float], list[int], list[float]]:
    """(register values wrapping at R_MAX, minute offsets, true increments) of a monotone meter."""
    minutes = [0, *draw(times_st)]
    incs = [draw(st.one_of(st.just(0.0), st.floats(min_value=0.02, max_value=50.0))) for _ in minutes[1:]]
    value = draw(st.floats(min_value=0.0, max_value=R_MAX))
    values = [round(value, 6)]
    for inc in incs:
        value += inc
        if value > R_MAX:
            value -= R_MAX + STEP
        values.append(value)
    return values, minutes, incs


def _frame(values: list[float], minutes: list[int]) -> pl.DataFrame:
    return readings(values, times=[T0 + timedelta(minutes=m) for m in minutes])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(register_series())
def test_interval_sums_equal_register_deltas(case: tuple[list[float], list[int], list[float]]) -> None:
    values, minutes, incs = case
    out = interval_energy(_frame(values, minutes), meter(register_max=R_MAX, max_rate_per_h=None), P)
    assert out.get_column("energy").sum() == pytest.approx(sum(incs), rel=1e-9, abs=1e-6)
    assert (out.get_column("energy") >= 0).all()
    shares = out.get_column("estimated_share")
    assert ((shares >= 0) & (shares <= 1)).all()
    assert ((out.get_column("coverage") > 0) & (out.get_column("coverage") <= 1)).all()
    assert not any(f & (F.EPOCH_BREAK | F.SPIKE | F.NO_BASIS) for f in out.get_column("flags").to_list())
    assert out.get_column("ts").is_sorted()


@st.composite
def series_with_resets(draw: st.DrawFn) -> tuple[list[float], list[int]]:
    """A 15-min register that is reset (or replaced by a meter starting anywhere below) a few times."""
    n = draw(st.integers(min_value=3, max_value=80))
    resets = set(draw(st.lists(st.integers(min_value=1, max_value=n - 1), max_size=4)))
    value = 500.0
    values = [value]
    for i in range(1, n):
        if i in resets and value > 2.0:
            value = draw(st.floats(min_value=0.0, max_value=value - 1.0))
        else:
            value += draw(st.floats(min_value=0.0, max_value=20.0))
        values.append(value)
    return values, [15 * i for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(series_with_resets())
def test_resets_never_give_negative_energy_or_phantom_spikes(case: tuple[list[float], list[int]]) -> None:
    values, minutes = case
    out = interval_energy(_frame(values, minutes), meter(register_max=None, max_rate_per_h=None), P)
    assert (out.get_column("energy") >= 0).all()
    known = [b - a for a, b in itertools.pairwise(values) if b >= a]
    biggest = max(known, default=0.0)
    # an estimated break interval is interpolated between actual neighbours: never above the largest actual one
    assert out.get_column("energy").max() <= biggest + 1e-9  # type: ignore[operator]


@settings(max_examples=80, deadline=None)
@given(register_series(), st.data())
def test_a_window_with_context_reproduces_the_full_computation(
        case: tuple[list[float], list[int], list[float]], data: st.DataObject) -> None:
    """What the incremental job relies on: recomputing a window with context changes nothing inside it."""
    values, minutes, _ = case
    full_frame = _frame(values, minutes)
    m = meter(register_max=R_MAX, max_rate_per_h=None)
    full = interval_energy(full_frame, m, P)
    n = len(values)
    i0 = data.draw(st.integers(min_value=0, max_value=n - 1))
    i1 = data.draw(st.integers(min_value=i0, max_value=n - 1))
    k = 4
    lo_i, hi_i = max(i0 - 2 * k, 0), min(i1 + 2 * k, n - 1)
    part = full_frame.slice(lo_i, hi_i - lo_i + 1)
    iu = P.interval_us
    ts = full_frame.get_column("ts").dt.epoch("us").to_list()
    emit_lo = (ts[i0 - k] // iu) * iu if i0 - k >= 0 else None
    emit_hi = (ts[i1 + k] // iu) * iu + iu if i1 + k < n else None
    history = full.filter(pl.col("quality") == 0, pl.col("coverage") >= 1)
    if emit_lo is not None:
        history = history.filter(pl.col("ts").dt.epoch("us") < emit_lo)
    window = interval_energy(part, m, P, history=history.select("series_id", "ts", "energy"))

    def inside(df: pl.DataFrame) -> pl.DataFrame:
        us = pl.col("ts").dt.epoch("us")
        if emit_lo is not None:
            df = df.filter(us >= emit_lo)
        if emit_hi is not None:
            df = df.filter(us < emit_hi)
        return df.select("ts", "energy", "flags", "quality")

    a, b = inside(full), inside(window)
    assert a.get_column("ts").to_list() == b.get_column("ts").to_list()
    assert a.get_column("energy").to_list() == pytest.approx(b.get_column("energy").to_list(), abs=1e-9)
    assert a.get_column("flags").to_list() == b.get_column("flags").to_list()

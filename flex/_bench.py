"""Benchmark of the DR core on synthetic data (``parkpulse dr bench``): figures, never assertions.

A seeded year of 15-min park demand (daily and weekly shape plus noise) feeds every baseline preset for a
set of event days, the event evaluation, the annual peak, and a 24-hour flexibility forecast for a park
of many assets. Timings are wall-clock medians on the current machine.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from flex._assets import Asset, Battery, BatteryState, EvCharger, EvSession, Pv, PvState, Thermal, ThermalState
from flex._baseline import EventWindow, compute_baseline
from flex._baseline_method import BaselineMethod, baseline_presets
from flex._capacity import annual_max_demand
from flex._direction import Direction
from flex._events import EventRequest, evaluate_event
from flex._flexibility import ConnectionLimit, ParkContext, forecast_park_flex
from flex._series import IntervalSeries, local_midnight, park_zone

_ZONE = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured operation."""

    name: str
    median_ms: float
    runs: int
    detail: str


def synthetic_load(first: date, days: int, seed: int = 7) -> pl.DataFrame:
    """``days`` of 15-min demand from local day ``first``: day shape, weekend dip, noise (kW)."""
    rng = random.Random(seed)
    zone = park_zone(_ZONE)
    ts: list[datetime] = []
    kw: list[float] = []
    for d in range(days):
        day = first + timedelta(days=d)
        start = local_midnight(day, zone).astimezone(UTC)
        weekend = day.weekday() >= 5
        level = rng.uniform(0.9, 1.1)
        for i in range(96):
            hour = i / 4
            shape = 0.45 + 0.55 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.45
            ts.append(start + timedelta(minutes=15 * i))
            kw.append(2000.0 * level * shape * (0.6 if weekend else 1.0) * rng.gauss(1.0, 0.03))
    schema = {"ts": pl.Datetime("us", "UTC"), "demand_kw": pl.Float64(), "estimated_share": pl.Float64()}
    return pl.DataFrame({"ts": ts, "demand_kw": kw, "estimated_share": [0.0] * len(ts)}, schema=schema)


def synthetic_assets(n: int, now: datetime, seed: int = 7) -> list[Asset]:
    """A mix of ``n`` assets (batteries, EV chargers with sessions, HVAC, PV) around ``now``."""
    rng = random.Random(seed)
    assets: list[Asset] = []
    for i in range(n):
        match i % 4:
            case 0:
                assets.append(Battery(asset_id=f"b{i}", capacity_kwh=500, charge_power_max_kw=250,
                                      discharge_power_max_kw=250, soc_min_pct=10, soc_max_pct=90,
                                      state=BatteryState(soc_pct=rng.uniform(20, 80), power_kw=0)))
            case 1:
                sessions = tuple(
                    EvSession(session_id=f"s{i}-{k}", plugged_in_at=now + timedelta(hours=k * 3 - 2),
                              departure_at=now + timedelta(hours=k * 3 + 6), as_of=now,
                              energy_needed_kwh=rng.uniform(10, 50), power_kw=0.0)
                    for k in range(4))
                assets.append(EvCharger(asset_id=f"e{i}", evse_max_kw=60, sessions=sessions))
            case 2:
                assets.append(Thermal(asset_id=f"h{i}", rated_power_kw=300, cop=3.5,
                                      thermal_capacitance_kwh_per_k=80, comfort_min_c=22, comfort_max_c=26,
                                      max_shed_fraction=0.5, state=ThermalState(indoor_temp_c=24, power_kw=180)))
            case _:
                assets.append(Pv(asset_id=f"p{i}", rated_kw=400, state=PvState(power_kw=rng.uniform(0, 300))))
    return assets


def _time(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def run_benchmark(*, days: int = 400, events: int = 10, assets: int = 100) -> list[Figure]:
    """Time baselines per preset, evaluation, annual peak and the 24-h forecast."""
    first = date(2025, 1, 1)
    load = synthetic_load(first, days)
    series = IntervalSeries(load)
    zone = park_zone(_ZONE)
    event_days: list[date] = []
    day = first + timedelta(days=days - 1)
    while len(event_days) < events:
        if day.weekday() < 5:
            event_days.append(day)
        day -= timedelta(days=3)
    figures = [Figure("IntervalSeries (validate + index)", _time(lambda: IntervalSeries(load), 3), 3,
                      f"{load.height:,} intervals")]
    for name, method in sorted(baseline_presets().items()):
        windows = [EventWindow(datetime.combine(d, datetime.min.time(), tzinfo=zone) + timedelta(hours=14),
                               datetime.combine(d, datetime.min.time(), tzinfo=zone) + timedelta(hours=16))
                   for d in event_days]
        pending = iter(windows * 10)

        def one(method: BaselineMethod = method, pending: Iterator[EventWindow] = pending) -> object:
            return compute_baseline(series, next(pending), method)

        ms = _time(one, len(windows))
        figures.append(Figure(f"baseline {name}", ms, len(windows), "2-h event, 15-min intervals"))
    window = EventWindow(datetime.combine(event_days[0], datetime.min.time(), tzinfo=zone) + timedelta(hours=14),
                         datetime.combine(event_days[0], datetime.min.time(), tzinfo=zone) + timedelta(hours=16))
    result = compute_baseline(series, window, baseline_presets()["CAISO_10IN10"])
    request = EventRequest(window, Direction.UP, 300.0, 300.0)
    figures.append(Figure("evaluate_event", _time(lambda: evaluate_event(request, result, series), 20), 20,
                          "8 intervals"))
    as_of = datetime.combine(first + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    figures.append(Figure("annual_max_demand", _time(lambda: annual_max_demand(load, as_of=as_of), 5), 5,
                          f"{load.height:,} intervals"))
    now = as_of
    fleet = synthetic_assets(assets, now)
    ctx = ParkContext(park_limit=ConnectionLimit(5000, 0), park_load_kw=1500.0)
    figures.append(Figure("forecast_park_flex 24 h", _time(
        lambda: forecast_park_flex(fleet, now=now, durations_h=[0.25, 1, 2, 4], context=ctx), 3), 3,
        f"{assets} assets x 96 slots x 4 durations"))
    return figures

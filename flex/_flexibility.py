"""Park flexibility: per-asset envelopes summed per site, capped by connection limits, derated, forecast.

``Flex_park(T) = Σ_i Flex_i(T)`` is exact for independent assets and one event of duration T. The sum is
then capped by each site's and the park's grid connection (``up ≤ P_load + P_export,max``,
``down ≤ P_import,max − P_load``, using the least favourable load over the window) and multiplied by a
derating factor learnt from past events (verified / declared), so the figure a utility reads is one the
park has shown it can deliver.

The 24-hour forecast projects each asset's state slot by slot (batteries idle at their current SOC,
EVs charging uncontrolled towards departure, HVAC and PV following a power profile when one is given,
processes following their declared schedule) and evaluates the same envelopes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl

from flex._assets import (
    ZERO,
    Asset,
    Battery,
    BatteryState,
    EvCharger,
    Flex,
    ProcessLoad,
    Pv,
    PvState,
    Thermal,
    battery_flex,
    ev_flex,
    process_flex,
    pv_flex,
    thermal_flex,
)
from flex._series import park_zone

logger = logging.getLogger(__name__)

SLOT = timedelta(minutes=15)
SLOTS_PER_DAY = 96


@dataclass(frozen=True, slots=True)
class ConnectionLimit:
    """Grid connection limits of a site or of the park boundary (None = not limiting)."""

    import_max_kw: float | None = None
    export_max_kw: float | None = None


@dataclass(frozen=True, slots=True)
class AssetFlex:
    """One asset's sustained flexibility for one duration."""

    asset_id: str
    kind: str
    site_id: str | None
    up_kw: float
    down_kw: float
    rebound_kwh: float


@dataclass(frozen=True, slots=True)
class ParkFlex:
    """Park flexibility for one duration: raw sum, after connection limits, after derating."""

    duration_h: float
    up_kw: float
    down_kw: float
    up_sum_kw: float
    down_sum_kw: float
    derating_up: float
    derating_down: float
    limited_by: tuple[str, ...]
    assets: tuple[AssetFlex, ...]


@dataclass(frozen=True, slots=True)
class LoadWindow:
    """Least favourable load over a window, for connection-limit checks: min for up, max for down."""

    min_kw: float
    max_kw: float

    @staticmethod
    def flat(kw: float) -> LoadWindow:
        """A window with constant load ``kw``."""
        return LoadWindow(kw, kw)


def _profile_at(profile: Sequence[float] | None, index: int) -> float | None:
    if not profile:
        return None
    return float(profile[min(index, len(profile) - 1)])


def asset_flex(
    asset: Asset,
    *,
    at: datetime,
    duration_h: float,
    now: datetime,
    timezone: str = "Asia/Shanghai",
    profile: Sequence[float] | None = None,
    slot_index: int = 0,
) -> Flex:
    """Sustained flexibility of ``asset`` for ``duration_h`` starting at ``at`` (≥ ``now``).

    ``profile`` is an optional power forecast of the asset (kW per 15-min slot from the forecast start;
    PV output or HVAC power) and ``slot_index`` the slot of ``at`` in it. An asset without live state
    offers nothing: flexibility is never claimed from parameters alone.
    """
    current = at - now < SLOT
    match asset:
        case Battery():
            return _battery_at(asset, duration_h, current=current)
        case EvCharger():
            return ev_flex(asset, at, duration_h)
        case Thermal():
            return _thermal_at(asset, duration_h, None if current else _profile_at(profile, slot_index))
        case ProcessLoad():
            local_day = at.astimezone(park_zone(timezone)).date().isoformat()
            return process_flex(asset, at, duration_h, now, local_day)
        case _:
            return _pv_sustained(asset, duration_h, profile, slot_index, now_slot=current)


def _battery_at(battery: Battery, duration_h: float, *, current: bool) -> Flex:
    if battery.state is None:
        return ZERO
    state = battery.state if current else BatteryState(soc_pct=battery.state.soc_pct, power_kw=0.0)
    return battery_flex(battery, state, duration_h)


def _thermal_at(hvac: Thermal, duration_h: float, power_kw: float | None) -> Flex:
    if hvac.state is None:
        return ZERO
    state = hvac.state if power_kw is None else hvac.state.model_copy(update={"power_kw": max(0.0, power_kw)})
    return thermal_flex(hvac, state, duration_h)


def _pv_sustained(
    pv: Pv, duration_h: float, profile: Sequence[float] | None, slot_index: int, *, now_slot: bool
) -> Flex:
    if pv.state is None and not profile:
        return ZERO
    n = max(1, round(duration_h * 4))
    flexes = []
    for i in range(slot_index, slot_index + n):
        power = _profile_at(profile, i)
        if power is None or (now_slot and i == slot_index and pv.state is not None):
            state = pv.state or PvState(power_kw=0.0)
        else:
            state = PvState(power_kw=max(0.0, power))
        flexes.append(pv_flex(pv, state))
    return Flex(min(f.up_kw for f in flexes), min(f.down_kw for f in flexes))


def _cap(
    up: float, down: float, *, limit: ConnectionLimit | None, load: LoadWindow | None, label: str,
    limited: list[str],
) -> tuple[float, float]:
    if limit is None or load is None:
        return up, down
    if limit.export_max_kw is not None:
        cap_up = max(0.0, load.min_kw + limit.export_max_kw)
        if up > cap_up:
            up = cap_up
            limited.append(f"{label}:export")
    if limit.import_max_kw is not None:
        cap_down = max(0.0, limit.import_max_kw - load.max_kw)
        if down > cap_down:
            down = cap_down
            limited.append(f"{label}:import")
    return up, down


def aggregate_flex(
    assets: Sequence[AssetFlex],
    *,
    duration_h: float,
    park_limit: ConnectionLimit | None = None,
    park_load: LoadWindow | None = None,
    site_limits: Mapping[str, ConnectionLimit] | None = None,
    site_loads: Mapping[str, LoadWindow] | None = None,
    derating_up: float = 1.0,
    derating_down: float = 1.0,
) -> ParkFlex:
    """Sum asset flexibility per site, cap by site then park connection limits, then derate."""
    site_limits = site_limits or {}
    site_loads = site_loads or {}
    limited: list[str] = []
    by_site: dict[str | None, tuple[float, float]] = {}
    for a in assets:
        up, down = by_site.get(a.site_id, (0.0, 0.0))
        by_site[a.site_id] = (up + a.up_kw, down + a.down_kw)
    total_up = total_down = 0.0
    for site_id, (site_up, site_down) in sorted(by_site.items(), key=lambda kv: kv[0] or ""):
        up, down = site_up, site_down
        if site_id is not None:
            up, down = _cap(up, down, limit=site_limits.get(site_id), load=site_loads.get(site_id),
                            label=site_id, limited=limited)
        total_up += up
        total_down += down
    raw_up, raw_down = sum(a.up_kw for a in assets), sum(a.down_kw for a in assets)
    total_up, total_down = _cap(total_up, total_down, limit=park_limit, load=park_load, label="park",
                                limited=limited)
    return ParkFlex(
        duration_h=duration_h,
        up_kw=total_up * derating_up,
        down_kw=total_down * derating_down,
        up_sum_kw=raw_up,
        down_sum_kw=raw_down,
        derating_up=derating_up,
        derating_down=derating_down,
        limited_by=tuple(limited),
        assets=tuple(assets),
    )


def _window_load(profile: Sequence[float] | float | None, index: int, n: int) -> LoadWindow | None:
    if profile is None:
        return None
    if isinstance(profile, int | float):
        return LoadWindow.flat(float(profile))
    values = [float(profile[min(i, len(profile) - 1)]) for i in range(index, index + n)]
    return LoadWindow(min(values), max(values))


@dataclass(frozen=True, slots=True)
class ParkContext:
    """Everything about the park besides its assets that flexibility depends on."""

    timezone: str = "Asia/Shanghai"
    park_limit: ConnectionLimit | None = None
    park_load_kw: Sequence[float] | float | None = None
    site_limits: Mapping[str, ConnectionLimit] | None = None
    site_load_kw: Mapping[str, Sequence[float] | float] | None = None
    derating_up: float = 1.0
    derating_down: float = 1.0


def park_flex_at(
    assets: Sequence[Asset],
    *,
    at: datetime,
    duration_h: float,
    now: datetime,
    context: ParkContext,
    profiles: Mapping[str, Sequence[float]] | None = None,
    slot_index: int = 0,
) -> ParkFlex:
    """Park flexibility for one duration starting at ``at`` (load profiles indexed from ``slot_index``)."""
    profiles = profiles or {}
    n = max(1, round(duration_h * 4))
    flexes = []
    for asset in assets:
        f = asset_flex(asset, at=at, duration_h=duration_h, now=now, timezone=context.timezone,
                       profile=profiles.get(asset.asset_id), slot_index=slot_index)
        flexes.append(AssetFlex(asset.asset_id, asset.kind, asset.site_id, f.up_kw, f.down_kw, f.rebound_kwh))
    site_loads = {
        site: w for site, p in (context.site_load_kw or {}).items()
        if (w := _window_load(p, slot_index, n)) is not None
    }
    return aggregate_flex(
        flexes,
        duration_h=duration_h,
        park_limit=context.park_limit,
        park_load=_window_load(context.park_load_kw, slot_index, n),
        site_limits=context.site_limits,
        site_loads=site_loads,
        derating_up=context.derating_up,
        derating_down=context.derating_down,
    )


def forecast_park_flex(
    assets: Sequence[Asset],
    *,
    now: datetime,
    durations_h: Sequence[float],
    context: ParkContext,
    n_slots: int = SLOTS_PER_DAY,
    profiles: Mapping[str, Sequence[float]] | None = None,
) -> pl.DataFrame:
    """Flexibility forecast in 15-min slots from the slot containing ``now``, one row per slot × duration.

    Columns: ``slot_start`` (UTC), ``duration_h``, ``up_kw``, ``down_kw``, ``rebound_kwh``. Profiles and
    load forecasts are indexed by slot from that first slot.
    """
    now_utc = now.astimezone(UTC)
    first = datetime.fromtimestamp(now_utc.timestamp() // SLOT.total_seconds() * SLOT.total_seconds(), UTC)
    rows: list[tuple[datetime, float, float, float, float]] = []
    for i in range(n_slots):
        at = max(first + i * SLOT, now_utc) if i == 0 else first + i * SLOT
        for duration in durations_h:
            pf = park_flex_at(assets, at=at, duration_h=duration, now=now_utc, context=context,
                              profiles=profiles, slot_index=i)
            rebound = sum(a.rebound_kwh for a in pf.assets)
            rows.append((first + i * SLOT, float(duration), pf.up_kw, pf.down_kw, rebound))
    return pl.DataFrame(
        rows,
        schema={"slot_start": pl.Datetime("us", "UTC"), "duration_h": pl.Float64, "up_kw": pl.Float64,
                "down_kw": pl.Float64, "rebound_kwh": pl.Float64},
        orient="row",
    ).sort("slot_start", "duration_h")

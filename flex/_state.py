"""Live asset state from metered readings: which metrics feed which state field (pure mapping).

The metric registry (``schemas.metrics``) fixes the conventions: ``battery_power`` is + when charging,
``state_of_charge`` is in %, ``ev_energy_requested`` is the energy the plugged-in EV still needs,
``active_power`` + = consumption. An EV's departure is not metered, so it comes from the asset's
``ev_dwell_h`` option counted from the plug-in time; once that has passed while the car is still
connected, the departure is unknown and no flexibility is claimed for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from flex._assets import (
    Asset,
    Battery,
    BatteryState,
    EvCharger,
    EvSession,
    Pv,
    PvState,
    Thermal,
    ThermalState,
)

STATE_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "battery": ("state_of_charge", "battery_power"),
    "ev_charger": ("ev_connected", "ev_energy_requested", "active_power"),
    "hvac": ("indoor_temperature", "active_power"),
    "pv": ("generation_power",),
}

Latest = Mapping[str, tuple[datetime, float]]


def _value(latest: Latest, metric: str) -> float | None:
    entry = latest.get(metric)
    return None if entry is None else entry[1]


def with_live_state(
    asset: Asset,
    latest: Latest,
    *,
    now: datetime,
    options: Mapping[str, Any],
    plugged_in_at: datetime | None = None,
) -> Asset | None:
    """``asset`` with its state replaced from the latest readings, or None when they are incomplete."""
    if isinstance(asset, EvCharger):
        return _ev_state(asset, latest, now=now, options=options, plugged_in_at=plugged_in_at)
    state: BatteryState | ThermalState | PvState | None = None
    match asset:
        case Battery():
            soc, power = _value(latest, "state_of_charge"), _value(latest, "battery_power")
            if soc is not None and power is not None:
                state = BatteryState(soc_pct=min(100.0, max(0.0, soc)), power_kw=power)
        case Thermal():
            temp, power = _value(latest, "indoor_temperature"), _value(latest, "active_power")
            if temp is not None and power is not None:
                state = ThermalState(indoor_temp_c=temp, power_kw=max(0.0, power))
        case Pv():
            power = _value(latest, "generation_power")
            if power is not None:
                state = PvState(power_kw=max(0.0, power))
    return None if state is None else asset.model_copy(update={"state": state})


def _ev_state(
    charger: EvCharger, latest: Latest, *, now: datetime, options: Mapping[str, Any], plugged_in_at: datetime | None
) -> EvCharger | None:
    connected = _value(latest, "ev_connected")
    if connected is None:
        return None
    if connected < 0.5:
        return charger.model_copy(update={"sessions": ()})
    needed = _value(latest, "ev_energy_requested")
    power = _value(latest, "active_power")
    dwell_h = options.get("ev_dwell_h")
    if needed is None or power is None or dwell_h is None:
        return None
    arrived = plugged_in_at or now
    departure = arrived + timedelta(hours=float(dwell_h))
    if departure <= now:
        return charger.model_copy(update={"sessions": ()})
    session = EvSession(
        session_id=f"{charger.asset_id}-live", plugged_in_at=min(arrived, now), departure_at=departure, as_of=now,
        energy_needed_kwh=max(0.0, needed), power_kw=max(0.0, power),
    )
    return charger.model_copy(update={"sessions": (session,)})

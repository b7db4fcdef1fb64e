"""Flexibility, customer baselines and demand response: the pure core of ParkPulse's DR features.

* :func:`compute_baseline` — one parameterised baseline method; presets (CAISO 10-in-10, PJM High 4 of 5,
  Jiangsu 5 workdays / real-time, Beijing top 5 of 10, ERCOT middle 8 of 10) are data with sources.
* :func:`evaluate_event` — event M&V per interval with a data-quality gate.
* :func:`asset_flex`, :func:`park_flex_at`, :func:`forecast_park_flex` — sustained up/down flexibility
  per asset, per park within connection limits and derated, and a 24-hour forecast in 15-min slots.
* :func:`dr_capacity` — declared vs verified capacity as % of the annual maximum 15-min demand.

The core functions do no I/O besides reading the package's data files. :class:`DrService` combines them
with a :class:`DrRepository` — :class:`DrStore` (PostgreSQL/TimescaleDB) or :class:`MemoryRepository`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flex._assets import (
        ASSET_KINDS,
        Asset,
        Battery,
        BatteryState,
        EvCharger,
        EvSession,
        Flex,
        ProcessBlock,
        ProcessLoad,
        ProcessState,
        Pv,
        PvState,
        Thermal,
        ThermalState,
        battery_flex,
        ev_flex,
        ev_session_flex,
        process_flex,
        project_session,
        pv_flex,
        thermal_flex,
    )
    from flex._baseline import AdjustmentResult, BaselineResult, DayAudit, EventWindow, compute_baseline
    from flex._baseline_method import Adjustment, BaselineMethod, DaySelection, baseline_presets, resolve_method
    from flex._calendar import DayType, HolidayCalendar, load_holiday_calendar, parse_holiday_calendar
    from flex._capacity import (
        DemandPeak,
        DrCapacity,
        EventRecord,
        annual_max_demand,
        derating_factor,
        dr_capacity,
        verified_capacity,
    )
    from flex._events import Direction, EventPerformance, EventRequest, evaluate_event
    from flex._flexibility import (
        AssetFlex,
        ConnectionLimit,
        LoadWindow,
        ParkContext,
        ParkFlex,
        aggregate_flex,
        asset_flex,
        forecast_park_flex,
        park_flex_at,
    )
    from flex._memory import MemoryRepository
    from flex._policy import DrPolicy, load_policy, parse_policy
    from flex._records import AssetRecord, DrEvent, DrRepository, DrSettings, EventResult, ParkInfo
    from flex._series import DEMAND_KW, ESTIMATED_SHARE, TS, IntervalSeries
    from flex._service import CurrentFlex, DrService
    from flex._store import DrStore
    from flex.errors import (
        AssetError,
        BaselineError,
        CalendarCoverageError,
        DataFileError,
        EventError,
        FlexError,
        InsufficientBaselineDataError,
        InvalidEventError,
        InvalidLoadDataError,
        NotFoundError,
        UnknownBaselineMethodError,
    )

# Public name -> defining module; imported on first access so importing the package (e.g. for the
# CLI) does not pull in Polars, psycopg or FastAPI.
_EXPORTS: dict[str, str] = {
    "ASSET_KINDS": "flex._assets",
    "DEMAND_KW": "flex._series",
    "ESTIMATED_SHARE": "flex._series",
    "TS": "flex._series",
    "Adjustment": "flex._baseline_method",
    "AdjustmentResult": "flex._baseline",
    "Asset": "flex._assets",
    "AssetError": "flex.errors",
    "AssetFlex": "flex._flexibility",
    "AssetRecord": "flex._records",
    "BaselineError": "flex.errors",
    "BaselineMethod": "flex._baseline_method",
    "BaselineResult": "flex._baseline",
    "Battery": "flex._assets",
    "BatteryState": "flex._assets",
    "CalendarCoverageError": "flex.errors",
    "ConnectionLimit": "flex._flexibility",
    "CurrentFlex": "flex._service",
    "DataFileError": "flex.errors",
    "DayAudit": "flex._baseline",
    "DaySelection": "flex._baseline_method",
    "DayType": "flex._calendar",
    "DemandPeak": "flex._capacity",
    "Direction": "flex._events",
    "DrCapacity": "flex._capacity",
    "DrEvent": "flex._records",
    "DrPolicy": "flex._policy",
    "DrRepository": "flex._records",
    "DrService": "flex._service",
    "DrSettings": "flex._records",
    "DrStore": "flex._store",
    "EvCharger": "flex._assets",
    "EvSession": "flex._assets",
    "EventError": "flex.errors",
    "EventPerformance": "flex._events",
    "EventRecord": "flex._capacity",
    "EventRequest": "flex._events",
    "EventResult": "flex._records",
    "EventWindow": "flex._baseline",
    "Flex": "flex._assets",
    "FlexError": "flex.errors",
    "HolidayCalendar": "flex._calendar",
    "InsufficientBaselineDataError": "flex.errors",
    "IntervalSeries": "flex._series",
    "InvalidEventError": "flex.errors",
    "InvalidLoadDataError": "flex.errors",
    "LoadWindow": "flex._flexibility",
    "MemoryRepository": "flex._memory",
    "NotFoundError": "flex.errors",
    "ParkContext": "flex._flexibility",
    "ParkFlex": "flex._flexibility",
    "ParkInfo": "flex._records",
    "ProcessBlock": "flex._assets",
    "ProcessLoad": "flex._assets",
    "ProcessState": "flex._assets",
    "Pv": "flex._assets",
    "PvState": "flex._assets",
    "Thermal": "flex._assets",
    "ThermalState": "flex._assets",
    "UnknownBaselineMethodError": "flex.errors",
    "aggregate_flex": "flex._flexibility",
    "annual_max_demand": "flex._capacity",
    "asset_flex": "flex._flexibility",
    "baseline_presets": "flex._baseline_method",
    "battery_flex": "flex._assets",
    "compute_baseline": "flex._baseline",
    "derating_factor": "flex._capacity",
    "dr_capacity": "flex._capacity",
    "ev_flex": "flex._assets",
    "ev_session_flex": "flex._assets",
    "evaluate_event": "flex._events",
    "forecast_park_flex": "flex._flexibility",
    "load_holiday_calendar": "flex._calendar",
    "load_policy": "flex._policy",
    "park_flex_at": "flex._flexibility",
    "parse_holiday_calendar": "flex._calendar",
    "parse_policy": "flex._policy",
    "process_flex": "flex._assets",
    "project_session": "flex._assets",
    "pv_flex": "flex._assets",
    "resolve_method": "flex._baseline_method",
    "thermal_flex": "flex._assets",
    "verified_capacity": "flex._capacity",
}

__all__ = [
    "ASSET_KINDS",
    "DEMAND_KW",
    "ESTIMATED_SHARE",
    "TS",
    "Adjustment",
    "AdjustmentResult",
    "Asset",
    "AssetError",
    "AssetFlex",
    "AssetRecord",
    "BaselineError",
    "BaselineMethod",
    "BaselineResult",
    "Battery",
    "BatteryState",
    "CalendarCoverageError",
    "ConnectionLimit",
    "CurrentFlex",
    "DataFileError",
    "DayAudit",
    "DaySelection",
    "DayType",
    "DemandPeak",
    "Direction",
    "DrCapacity",
    "DrEvent",
    "DrPolicy",
    "DrRepository",
    "DrService",
    "DrSettings",
    "DrStore",
    "EvCharger",
    "EvSession",
    "EventError",
    "EventPerformance",
    "EventRecord",
    "EventRequest",
    "EventResult",
    "EventWindow",
    "Flex",
    "FlexError",
    "HolidayCalendar",
    "InsufficientBaselineDataError",
    "IntervalSeries",
    "InvalidEventError",
    "InvalidLoadDataError",
    "LoadWindow",
    "MemoryRepository",
    "NotFoundError",
    "ParkContext",
    "ParkFlex",
    "ParkInfo",
    "ProcessBlock",
    "ProcessLoad",
    "ProcessState",
    "Pv",
    "PvState",
    "Thermal",
    "ThermalState",
    "UnknownBaselineMethodError",
    "aggregate_flex",
    "annual_max_demand",
    "asset_flex",
    "baseline_presets",
    "battery_flex",
    "compute_baseline",
    "derating_factor",
    "dr_capacity",
    "ev_flex",
    "ev_session_flex",
    "evaluate_event",
    "forecast_park_flex",
    "load_holiday_calendar",
    "load_policy",
    "park_flex_at",
    "parse_holiday_calendar",
    "parse_policy",
    "process_flex",
    "project_session",
    "pv_flex",
    "resolve_method",
    "thermal_flex",
    "verified_capacity",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

"""What ParkPulse uploads to an energy online-monitoring platform, independent of any platform's wire format.

A :class:`UplinkRecord` is one data item's value for one period (15 min, day or month). Its
``record_key`` is stable (park, item, period, local period start), so a resend or a recomputation of the
same period carries the same key; ``revision`` grows when the value changes, and the platform keeps the
highest revision. An :class:`InstrumentEntry` is one line of the unit's instrument register (计量器具台账).
Profiles (``schemas/uplink_profiles/<profile>/``) turn these into each platform's request bodies
(:mod:`schemas.uplink_wire`); the platform answers per record with a :class:`RecordAck`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

Period = Literal["15min", "hour", "day", "month"]
Quality = Literal["measured", "estimated", "manual"]


@dataclass(frozen=True, slots=True)
class UplinkRecord:
    """One data item's value for one period, as the access-side system reports it."""

    enterprise_code: str          # the unit's code on the platform (统一社会信用代码 or platform-assigned)
    record_key: str               # stable identity: "{park}|{data_item_code}|{period}|{period_start local ISO}"
    revision: int                 # 1 for the first value; +1 each time the value for this key changes
    data_item_code: str           # the profile's code for carrier/use/process (数据项编码)
    period: Period
    period_start: datetime        # aware, in the park's time zone (days start 00:00 local, months on the 1st)
    value: float
    unit: str                     # the profile's unit for the item (kWh, m3, GJ, tce, 10^4 CNY, t ...)
    quality: Quality
    completeness: float           # 0..1: metered intervals present ÷ due, for the item's meters over the period
    meter_codes: tuple[str, ...]  # the instruments behind the value (empty for manual entry)
    computed_at: datetime         # aware UTC: when ParkPulse computed this revision


@dataclass(frozen=True, slots=True)
class InstrumentEntry:
    """One metering instrument in the unit's register, tied to the data items it feeds."""

    meter_code: str
    name: str
    carrier: str                  # electricity, natural_gas, heat, water, ...
    instrument_type: str          # e.g. "electricity_meter", "gas_flow_meter", "heat_meter"
    accuracy_class: str | None
    calibration_date: date | None
    metering_level: int | None    # 1, 2 or 3 (GB 17167)
    data_item_codes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RecordAck:
    """The platform's answer for one record: accepted, or rejected with the platform's reason."""

    record_key: str
    revision: int
    accepted: bool
    reason: str | None = None

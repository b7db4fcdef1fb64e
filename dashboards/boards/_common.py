"""Pieces every board shares: template variables, SQL filter fragments, units and carrier/role labels.

SQL conventions of the boards: single-value variables are written ``${park:sqlstring}`` (quoted and escaped
by Grafana), multi-value ones ``= ANY(ARRAY[${building:sqlstring}]::text[])`` (valid even when a variable has
no options). Devices without a site are the park level, shown as building ``-``.
"""

from __future__ import annotations

from typing import Final

from dashboards._model import Override, Step, Variable, VariableKind
from dashboards._text import T

# Grafana unit ids
KW: Final = "kwatt"
KWH: Final = "kwatth"
PERCENT: Final = "percent"
SECONDS: Final = "s"
M3: Final = "suffix: m³"
M3_PER_H: Final = "suffix: m³/h"
GJ: Final = "suffix: GJ"
TCO2: Final = "suffix: tCO₂"
NONE: Final = "none"
DATETIME: Final = "dateTimeAsIso"

PARK: Final = "${park:sqlstring}"
IN_BUILDING: Final = "= ANY(ARRAY[${building:sqlstring}]::text[])"
IN_DEVICE: Final = "= ANY(ARRAY[${device:sqlstring}]::text[])"
IN_DC: Final = "= ANY(ARRAY[${dc:sqlstring}]::text[])"
PARK_LEVEL: Final = "-"

PARK_VAR: Final = Variable(
    "park", T("园区", "Park"),
    query="SELECT park_id AS __value, coalesce(name, park_id) AS __text FROM parks ORDER BY park_id",
    description=T("碳达峰试点园区", "The pilot park"))

BUILDING_VAR: Final = Variable(
    "building", T("楼宇", "Building"),
    query=f"""
SELECT DISTINCT coalesce(d.site_id, '{PARK_LEVEL}') AS __value,
       coalesce(s.name, d.site_id, '园区级 · park level') AS __text
FROM devices d LEFT JOIN sites s ON s.park_id = d.park_id AND s.site_id = d.site_id
WHERE d.park_id = {PARK}
ORDER BY 1""",
    multi=True, include_all=True,
    description=T("次级用能单位（楼宇、车间、站房、数据中心）；“-” 为园区级计量",
                  "Sub-units (buildings, workshops, stations, data centres); '-' is park-level metering"))

DEVICE_VAR: Final = Variable(
    "device", T("设备", "Device"),
    query=f"""
SELECT d.device_id AS __value, d.device_id || ' (' || coalesce(d.kind, '?') || ')' AS __text
FROM devices d
WHERE d.park_id = {PARK} AND coalesce(d.site_id, '{PARK_LEVEL}') {IN_BUILDING}
ORDER BY d.device_id""",
    multi=True, include_all=True)

DC_VAR: Final = Variable(
    "dc", T("数据中心", "Data centre"),
    query=f"""
SELECT DISTINCT d.site_id AS __value, coalesce(s.name, d.site_id) AS __text
FROM devices d LEFT JOIN sites s ON s.park_id = d.park_id AND s.site_id = d.site_id
WHERE d.park_id = {PARK} AND d.role IN ('dc_facility', 'dc_it') AND d.site_id IS NOT NULL
ORDER BY 1""",
    multi=True, include_all=True)


def custom_var(name: str, label: T, values: tuple[str, ...], default: str | None = None) -> Variable:
    """A fixed list of values; ``default`` (else the first) is selected initially."""
    return Variable(name, label, kind=VariableKind.CUSTOM, values=values, default=default)


CARRIERS: Final = {
    "electricity": T("电", "electricity"), "gas": T("天然气", "natural gas"), "heat": T("热", "heat"),
    "cooling": T("冷", "cooling"), "water": T("水", "water"), "steam": T("蒸汽", "steam"),
}
ROLES: Final = {
    "pv": T("光伏", "PV"), "battery": T("储能", "battery"), "ev": T("充电桩", "EV chargers"),
}


def display_overrides(labels: dict[str, T], **extra: str) -> tuple[Override, ...]:
    """Bilingual display names for series named by a database value (carrier, role …)."""
    return tuple(Override(name, display=label, color=extra.get(name)) for name, label in labels.items())


def steps_up(warn: float, alarm: float) -> tuple[Step, ...]:
    """Green below ``warn``, orange from ``warn``, red from ``alarm`` (bigger is worse)."""
    return (Step(None, "green"), Step(warn, "orange"), Step(alarm, "red"))


def local_today(park_alias: str = "p") -> str:
    """SQL for the UTC instant of the park's local midnight today (``parks.timezone``)."""
    return f"(date_trunc('day', now() AT TIME ZONE {park_alias}.timezone) AT TIME ZONE {park_alias}.timezone)"

"""The asset registry's contract: the allowed vocabulary and the validated records of parks, sites, devices.

These models are what the operator states about a park (CLI, API, registry file); the database layer
(:mod:`infra.db._registry`) stores them and the file layer (:mod:`infra.db._registry_file`) reads and
writes them. Pure values and pydantic models, no I/O.

One vocabulary for everyone: carriers come from :class:`schemas.metrics.Carrier`; device kinds, site kinds
and device roles are listed here once. Aggregation selects meters by some of these roles
(``park_boundary``, ``dc_facility``, ``dc_it``, ``pv`` …); a test checks that every role it uses is listed.

A device attribute left ``None`` is one the operator does not state: the device's own birth message may
fill it (see :mod:`infra.db._registry` for the precedence rule).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from schemas.metrics import Carrier
from schemas.topics import ID_PATTERN, is_valid_id

#: Energy carriers a device may meter (``devices.carrier``).
CARRIERS: Final[tuple[str, ...]] = tuple(c.value for c in Carrier)
#: What a device is (``devices.kind``): the simulated and edge device kinds, and a meter per carrier.
DEVICE_KINDS: Final[tuple[str, ...]] = (
    "electricity_meter", "gas_meter", "heat_meter", "cooling_meter", "water_meter", "steam_meter",
    "pv_inverter", "battery", "ev_charger", "hvac", "weather_station",
)
#: What a site is (``sites.kind``; GB 17167 次级用能单位).
SITE_KINDS: Final[tuple[str, ...]] = ("building", "workshop", "warehouse", "data_centre", "station", "other")
#: What a device measures for the park (``devices.role``). Aggregation gives meaning to ``park_boundary``
#: (the park's supply), ``dc_facility``/``dc_it`` (PUE), ``pv``/``wind``/``hydro``/``renewable`` (on-site
#: renewable generation) and ``public_building`` (公共建筑单位面积能耗); the others describe the load.
DEVICE_ROLES: Final[tuple[str, ...]] = (
    "park_boundary", "dc_facility", "dc_it", "pv", "wind", "hydro", "renewable", "public_building",
    "battery", "ev", "hvac", "equipment", "workshop", "energy_station", "process_heat", "weather",
)
#: GB 17167 metering levels: 1 the park's boundary (一级), 2 sites and major systems (二级), 3 equipment (三级).
METERING_LEVELS: Final[tuple[int, ...]] = (1, 2, 3)
#: Device attributes the operator may state (``devices.operator_fields`` lists those stated).
DEVICE_FIELDS: Final[tuple[str, ...]] = ("kind", "carrier", "metering_level", "site_id", "role", "register_max",
                                         "multiplier", "rated_power_kw", "profile")
PARK_FIELDS: Final[tuple[str, ...]] = ("name", "timezone", "province", "grid_region", "auto_register")
SITE_FIELDS: Final[tuple[str, ...]] = ("name", "kind", "floor_area_m2", "roof_area_m2", "is_public_building")
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
_TRUE: Final = frozenset({"true", "yes", "y", "1", "on", "t", "是"})
_FALSE: Final = frozenset({"false", "no", "n", "0", "off", "f", "否"})


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str) -> str:
    zones = _zones()
    if value in zones:
        return value
    if not zones and "/" in value:  # no zone list on this machine: ask the database of the zoneinfo module
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return value
    raise PydanticCustomError("timezone", "unknown time zone {tz}; use an IANA name such as Asia/Shanghai",
                              {"tz": repr(value)})


def _one_of(allowed: tuple[str, ...], what: str, *, optional: bool = False) -> AfterValidator:
    """A validator that accepts only the listed words (and ``None`` when ``optional``)."""
    def check(value: str | None) -> str | None:
        if value is None and optional:
            return None
        if value not in allowed:
            raise PydanticCustomError("vocabulary", "unknown {what} {value}; use one of: {allowed}",
                                      {"what": what, "value": repr(value), "allowed": ", ".join(allowed)})
        return value
    return AfterValidator(check)


def _blank_is_none(value: Any) -> Any:
    """An empty cell or string states nothing (a spreadsheet cannot tell "" from empty)."""
    return None if isinstance(value, str) and not value.strip() else value


def _no_bool(value: Any) -> Any:
    """``true`` is not a number (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "expected a number, got {value}", {"value": str(value).lower()})
    return value


def _flag(value: Any) -> Any:
    """yes/no in the words an operator writes, including 是/否."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise PydanticCustomError("flag", "expected true or false (yes/no, 1/0, 是/否), got {value}",
                                  {"value": repr(value)})
    return value


def _id(value: str) -> str:
    if not is_valid_id(value):
        raise PydanticCustomError("id", "{value} is not a valid id: use 1 to 64 lower-case letters, digits, - and _, "
                                  "starting with a letter or digit", {"value": repr(value)[:80]})
    return value


def _printable(value: str) -> str:
    """No control characters (tab, newline, NUL) and no lone surrogates: the database stores UTF-8 text."""
    if any(ord(ch) < 32 or ord(ch) == 127 or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise PydanticCustomError("control_character", "control characters (tab, newline, NUL …) and unpaired "
                                  "surrogates are not allowed")
    return value


Id = Annotated[str, AfterValidator(_id), Field(json_schema_extra={"pattern": f"^{ID_PATTERN}$", "maxLength": 64},
                                               description="lower-case [a-z0-9][a-z0-9_-]{0,63}")]
_Word = Annotated[str, Field(max_length=200), AfterValidator(_printable)]
Text = Annotated[_Word | None, BeforeValidator(_blank_is_none)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Positive = Annotated[Annotated[float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)] | None,
                     BeforeValidator(_blank_is_none)]
TimeZone = Annotated[str, BeforeValidator(lambda v: DEFAULT_TIMEZONE if _blank_is_none(v) is None else v),
                     AfterValidator(_timezone)]
SiteKind = Annotated[str, BeforeValidator(lambda v: "building" if _blank_is_none(v) is None else v),
                     _one_of(SITE_KINDS, "site kind")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ParkFields(_Record):
    """What the operator states about a park. Province and grid region choose the emission factors."""

    name: Text = None
    timezone: TimeZone = Field(default=DEFAULT_TIMEZONE, description="IANA zone; local days and months use it")
    province: Text = Field(default=None, description="province, e.g. 广东 (selects provincial emission factors)")
    grid_region: Text = Field(default=None, description="grid region, e.g. 南方 (factor fallback)")
    auto_register: Flag = Field(default=False, description="ingest registers unknown devices on first sight")


class SiteFields(_Record):
    """What the operator states about a site: a building, workshop, station or data centre of the park."""

    name: Text = None
    kind: SiteKind = Field(default="building", description=", ".join(SITE_KINDS))
    floor_area_m2: Positive = Field(default=None, description="floor area (m²), for energy per floor area")
    roof_area_m2: Positive = Field(default=None, description="roof area (m²), for rooftop-PV coverage")
    is_public_building: Flag = Field(default=False, description="counts in 公共建筑单位面积能耗")


class DeviceFields(_Record):
    """What the operator states about a device; ``None`` leaves the attribute to the device's birth message."""

    kind: Annotated[_Word | None, BeforeValidator(_blank_is_none),
                    _one_of(DEVICE_KINDS, "device kind", optional=True)] = Field(
        default=None, description=", ".join(DEVICE_KINDS))
    carrier: Annotated[_Word | None, BeforeValidator(_blank_is_none), _one_of(CARRIERS, "carrier", optional=True)] \
        = Field(default=None, description=", ".join(CARRIERS))
    metering_level: Annotated[Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=3)] | None,
                              BeforeValidator(_blank_is_none)] = Field(
        default=None, description="GB 17167 level 1, 2 or 3")
    site_id: Annotated[Id | None, BeforeValidator(_blank_is_none)] = Field(
        default=None, description="the site of the park the device belongs to")
    role: Annotated[_Word | None, BeforeValidator(_blank_is_none), _one_of(DEVICE_ROLES, "role", optional=True)] \
        = Field(default=None, description=", ".join(DEVICE_ROLES))
    register_max: Positive = Field(default=None, description="register maximum before it wraps, canonical unit")
    multiplier: Positive = Field(default=None, description="CT × PT ratio (> 0) when secondary-metered")
    rated_power_kw: Positive = Field(default=None, description="rated power (kW), for plausibility limits")
    profile: Annotated[Annotated[str, Field(max_length=64), AfterValidator(_printable)] | None,
                       BeforeValidator(_blank_is_none)] = Field(
        default=None, description="device profile (register map) name")


class ParkEntry(ParkFields):
    """A park of the registry."""

    park_id: Id


class SiteEntry(SiteFields):
    """A site of the registry."""

    site_id: Id


class DeviceEntry(DeviceFields):
    """A device of the registry with the attributes the operator states."""

    device_id: Id


class RegistryDocument(_Record):
    """One park, its sites and its devices: what a registry file holds and an export writes."""

    park: ParkEntry
    sites: tuple[SiteEntry, ...] = ()
    devices: tuple[DeviceEntry, ...] = ()

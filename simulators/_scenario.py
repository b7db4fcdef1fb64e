"""The scenario file: a user-editable YAML description of a park, its sites, devices and dispatch.

The device sections live in ``_device_specs`` and the dispatch windows in ``_dispatch``; this module holds
the park, the sites, weather, sampling, faults and the whole :class:`Scenario` with its cross-checks
(unique ids, known sites, parent meters, dispatch references). Electrical devices may name a ``parent``
meter: a meter measures its own load plus everything below it, so the level-1 boundary meter equals the
level-2 meters plus losses by construction.

Published values are primary-side engineering values; ``multiplier`` is carried as metadata only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from infra.db import ParkRecord, SiteRecord
from simulators._device_specs import (
    ELECTRICAL_KINDS,
    REGISTER_METRICS,
    DeviceSpec,
    ElectricityMeterSpec,
    ProfileLoad,
)
from simulators._dispatch import ParkDispatchSpec
from simulators._spec_types import Fraction, Hour, Id, NonNegative, Positive, SpecModel
from simulators.errors import ScenarioError

DEFAULT_SCENARIO: Final = Path(__file__).resolve().parent / "scenarios" / "demo_park.yaml"


class ParkSpec(SpecModel):
    """The park: identity, calendar and the location that drives the sun and the emission factors."""

    id: Id
    name: str | None = None
    timezone: str = "Asia/Shanghai"
    province: str | None = None
    grid_region: str | None = None
    latitude_deg: float = Field(23.13, ge=-90, le=90)
    longitude_deg: float = Field(113.26, ge=-180, le=180)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class SiteSpec(SpecModel):
    """A building, workshop, station or data centre (GB 17167 secondary energy-using unit)."""

    id: Id
    name: str | None = None
    kind: str = "building"
    floor_area_m2: Positive | None = None
    is_public_building: bool = False


class WeatherSpec(SpecModel):
    """Outdoor temperature: monthly means (Jan..Dec, default Guangzhou), a daily swing and noise."""

    monthly_mean_c: Annotated[list[float], Field(min_length=12, max_length=12)] = Field(
        default_factory=lambda: [13.6, 14.5, 17.5, 21.9, 25.7, 27.6, 28.6, 28.4, 27.3, 24.5, 19.8, 15.3])
    daily_amplitude_c: NonNegative = 4.0
    warmest_hour: Hour = 14.5
    noise_c: NonNegative = 0.6


class SimulationSpec(SpecModel):
    """Sampling grid in simulated time: one reading per metric per sample, one message per batch."""

    sample_interval_s: Annotated[int, Field(ge=1, le=86_400)] = 60
    batch_interval_s: Annotated[int, Field(ge=1, le=86_400)] = 900


class FaultSpec(SpecModel):
    """Transport faults the simulator injects; rates are per readings message (0 disables a fault)."""

    duplicate_message_rate: Fraction = 0.0
    malformed_message_rate: Fraction = 0.0
    #: A meter that goes quiet: ``silent_device`` publishes nothing for the last ``silent_last_s`` seconds of
    #: the simulated window (a dead meter or a cut bus), so the data-gap and offline alarms have a cause.
    silent_device: str | None = None
    silent_last_s: Annotated[float, Field(ge=0)] = 0.0


class ExtraMeterTemplate(SpecModel):
    """How the ``extra_meters`` generic level-3 meters (for load tests) are generated."""

    id_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,50}$")] = "m3-gen-"
    parent: str | None = None
    site: str | None = None
    role: str | None = "equipment"
    profile: str | None = "modbus-3ph"
    firmware: str | None = "parkpulse-sim 1.0"
    register_max: Positive | None = None
    rated_power_kw: Positive | None = 60.0
    load: ProfileLoad = ProfileLoad(shape="workshop", base_kw=3.0, peak_kw=40.0, weekend_factor=0.5)

    def build(self, count: int) -> list[ElectricityMeterSpec]:
        """The ``count`` generated meters, ids ``{prefix}0001``, ``{prefix}0002``, ..."""
        width = max(4, len(str(count)))
        return [
            ElectricityMeterSpec(
                id=f"{self.id_prefix}{i:0{width}d}", kind="electricity_meter", metering_level=3,
                parent=self.parent, site=self.site, role=self.role, profile=self.profile, firmware=self.firmware,
                register_max=self.register_max, rated_power_kw=self.rated_power_kw, load=self.load,
            )
            for i in range(1, count + 1)
        ]


class Scenario(SpecModel):
    """A simulated park: park, sites, devices, generated extra meters, weather, sampling, faults, dispatch."""

    park: ParkSpec
    sites: list[SiteSpec] = Field(default_factory=list)
    devices: list[DeviceSpec] = Field(default_factory=list)
    extra_meters: Annotated[int, Field(ge=0, le=100_000)] = 0
    extra_meter_template: ExtraMeterTemplate = ExtraMeterTemplate()
    weather: WeatherSpec = WeatherSpec()
    simulation: SimulationSpec = SimulationSpec()
    faults: FaultSpec = FaultSpec()
    dispatch: ParkDispatchSpec = ParkDispatchSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        devices = self.all_devices()
        _check_references(self.sites, devices)
        kinds = {d.id: d.kind for d in devices}
        for section, device_id in self.dispatch.device_ids():
            wanted, label = ("ev_charger", "an EV charger") if section == "ev_chargers" else ("hvac", "an HVAC unit")
            if kinds.get(device_id) != wanted:
                raise ValueError(f"dispatch.{section}: {device_id!r} is not {label} in this scenario")
        return self

    def all_devices(self) -> list[DeviceSpec]:
        """The declared devices followed by the generated extra meters."""
        return [*self.devices, *self.extra_meter_template.build(self.extra_meters)]

    def with_overrides(self, *, park_id: str | None = None, extra_meters: int | None = None,
                       duplicate_message_rate: float | None = None, malformed_message_rate: float | None = None,
                       sample_interval_s: int | None = None, batch_interval_s: int | None = None,
                       silent_device: str | None = None, silent_last_s: float | None = None) -> Scenario:
        """A validated copy with CLI-style overrides applied (``None`` keeps the scenario's value).

        ``park_id`` lets tests and parallel load generators publish the same park under distinct topics.
        """
        data = self.model_dump(mode="python")
        if park_id is not None:
            data["park"]["id"] = park_id
        if extra_meters is not None:
            data["extra_meters"] = extra_meters
        for section, key, value in (("faults", "duplicate_message_rate", duplicate_message_rate),
                                    ("faults", "malformed_message_rate", malformed_message_rate),
                                    ("faults", "silent_device", silent_device),
                                    ("faults", "silent_last_s", silent_last_s),
                                    ("simulation", "sample_interval_s", sample_interval_s),
                                    ("simulation", "batch_interval_s", batch_interval_s)):
            if value is not None:
                data[section][key] = value
        return Scenario.model_validate(data)

    def park_record(self) -> ParkRecord:
        """The park as the catalog stores it (``infra.db.upsert_park``)."""
        p = self.park
        return ParkRecord(park_id=p.id, name=p.name, timezone=p.timezone, province=p.province,
                          grid_region=p.grid_region)

    def site_records(self) -> list[SiteRecord]:
        """The sites as the catalog stores them."""
        return [SiteRecord(site_id=s.id, name=s.name, kind=s.kind, floor_area_m2=s.floor_area_m2,
                           is_public_building=s.is_public_building) for s in self.sites]


def _check_references(sites: Iterable[SiteSpec], devices: list[DeviceSpec]) -> None:
    """Unique ids, known sites, parents that are electricity meters, no loops, known register names."""
    site_ids = [s.id for s in sites]
    if len(set(site_ids)) != len(site_ids):
        raise ValueError(f"duplicate site ids: {sorted({i for i in site_ids if site_ids.count(i) > 1})}")
    by_id: dict[str, DeviceSpec] = {}
    for d in devices:
        if d.id in by_id:
            raise ValueError(f"duplicate device id {d.id!r}")
        by_id[d.id] = d
    known_sites = set(site_ids)
    for d in devices:
        if d.site is not None and d.site not in known_sites:
            raise ValueError(f"device {d.id!r}: unknown site {d.site!r}")
        _check_parent(d, by_id)
        _check_registers(d)


def _check_parent(device: DeviceSpec, by_id: dict[str, DeviceSpec]) -> None:
    """The parent is an electricity meter, the device is electrical, and the parent chain ends."""
    if device.parent is None:
        return
    parent = by_id.get(device.parent)
    if parent is None or parent.kind != "electricity_meter":
        raise ValueError(f"device {device.id!r}: parent {device.parent!r} is not an electricity meter in this scenario")
    if device.kind not in ELECTRICAL_KINDS:
        raise ValueError(f"device {device.id!r}: a {device.kind} cannot sit below an electricity meter")
    seen = {device.id}
    node = device
    while node.parent is not None:
        if node.parent in seen:
            raise ValueError(f"device {device.id!r}: parent chain loops through {node.parent!r}")
        seen.add(node.parent)
        node = by_id[node.parent]


def _check_registers(device: DeviceSpec) -> None:
    """``initial_registers`` names registers of this kind of device, each below ``register_max``."""
    for name, value in device.initial_registers.items():
        if name not in REGISTER_METRICS[device.kind]:
            raise ValueError(f"device {device.id!r}: {name!r} is not a register of a {device.kind} "
                             f"(registers: {', '.join(REGISTER_METRICS[device.kind]) or 'none'})")
        if device.register_max is not None and value >= device.register_max:
            raise ValueError(f"device {device.id!r}: initial {name} {value} must be below register_max "
                             f"{device.register_max}")


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """``devices[3] (bess-1).capacity_kwh`` instead of ``devices.3.battery.capacity_kwh``."""
    parts: list[str] = []
    node: Any = raw
    for key in loc:
        if isinstance(key, int):
            label = f"[{key}]"
            if isinstance(node, list) and key < len(node):
                node = node[key]
                if isinstance(node, dict) and isinstance(node.get("id"), str):
                    label += f" ({node['id']})"
            parts.append(label)
            continue
        if isinstance(node, dict) and key not in node and key in (node.get("kind"), node.get("shape")):
            continue  # the discriminator tag pydantic inserts
        node = node.get(key) if isinstance(node, dict) else None
        parts.append(("." if parts else "") + key)
    return "".join(parts) or "scenario"


def scenario_from_dict(data: Any, source: str = "<dict>") -> Scenario:
    """Validate an already-parsed scenario mapping; raises :class:`ScenarioError` listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(source, [f"expected a mapping at the top level, got {type(data).__name__}"])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_location(tuple(e['loc']), data)}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False, include_input=False)]
        raise ScenarioError(source, problems) from None


def load_scenario(path: Path | str = DEFAULT_SCENARIO) -> Scenario:
    """Read and validate a YAML scenario file (default: the shipped demo park).

    Raises :class:`ScenarioError` naming the file and each problem (with the device id where one applies)
    so a user editing the YAML sees what to fix.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ScenarioError(source, [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None
    return scenario_from_dict(data, str(source))

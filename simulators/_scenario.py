"""The scenario file: a user-editable YAML description of a park, its sites and its devices.

Each device carries the metadata of its birth message (kind, carrier, metering level, site, role, register
map profile, register maximum, multiplier, rated power, firmware) and the parameters of its physics.
Electrical devices may name a ``parent`` meter: a meter measures its own load plus everything below it,
so the level-1 boundary meter equals the level-2 meters plus losses by construction.

Published values are primary-side engineering values; ``multiplier`` is carried as metadata only.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from parkpulse.db import ParkRecord, SiteRecord
from schemas.topics import ID_PATTERN
from simulators.errors import ScenarioError

DEFAULT_SCENARIO: Final = Path(__file__).resolve().parent / "scenarios" / "demo_park.yaml"

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1)]
Hour = Annotated[float, Field(ge=0, le=24)]
ProfileShape = Literal["office", "workshop", "data_centre_it", "flat", "constant", "canteen"]
CarrierName = Literal["electricity", "gas", "heat", "cooling", "water", "steam", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParkSpec(_Model):
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


class SiteSpec(_Model):
    """A building, workshop, station or data centre (GB 17167 secondary energy-using unit)."""

    id: Id
    name: str | None = None
    kind: str = "building"
    floor_area_m2: Positive | None = None
    is_public_building: bool = False


class WeatherSpec(_Model):
    """Outdoor temperature: monthly means (Jan..Dec, default Guangzhou), a daily swing and noise."""

    monthly_mean_c: Annotated[list[float], Field(min_length=12, max_length=12)] = [
        13.6, 14.5, 17.5, 21.9, 25.7, 27.6, 28.6, 28.4, 27.3, 24.5, 19.8, 15.3]
    daily_amplitude_c: NonNegative = 4.0
    warmest_hour: Hour = 14.5
    noise_c: NonNegative = 0.6


class SimulationSpec(_Model):
    """Sampling grid in simulated time: one reading per metric per sample, one message per batch."""

    sample_interval_s: Annotated[int, Field(ge=1, le=86_400)] = 60
    batch_interval_s: Annotated[int, Field(ge=1, le=86_400)] = 900


class FaultSpec(_Model):
    """Transport faults the simulator injects; rates are per readings message (0 disables a fault)."""

    duplicate_message_rate: Fraction = 0.0
    malformed_message_rate: Fraction = 0.0


class ProfileLoad(_Model):
    """A load following a daily shape: ``base + (peak - base) * shape(hour)`` plus cooling and noise."""

    shape: ProfileShape
    base_kw: NonNegative
    peak_kw: NonNegative
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 1.0
    cooling_kw_per_degc: NonNegative = 0.0
    cooling_threshold_c: float = 24.0
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.03

    @model_validator(mode="after")
    def _ordered(self) -> ProfileLoad:
        if self.peak_kw < self.base_kw:
            raise ValueError(f"peak_kw {self.peak_kw} is below base_kw {self.base_kw}")
        return self


class PueOverheadLoad(_Model):
    """Data-centre overhead (cooling, UPS, lighting) = IT load below the meter x (PUE(T) - 1)."""

    shape: Literal["pue_overhead"]
    pue_min: Annotated[float, Field(ge=1, le=3)] = 1.30
    pue_max: Annotated[float, Field(ge=1, le=3)] = 1.45
    temp_low_c: float = 15.0
    temp_high_c: float = 35.0

    @model_validator(mode="after")
    def _ordered(self) -> PueOverheadLoad:
        if self.pue_max < self.pue_min or self.temp_high_c <= self.temp_low_c:
            raise ValueError("need pue_min <= pue_max and temp_low_c < temp_high_c")
        return self


class _DeviceBase(_Model):
    """Birth-message metadata shared by every device, plus the electrical parent meter."""

    id: Id
    name: str | None = None
    site: str | None = None
    role: str | None = None
    profile: str | None = None
    firmware: str | None = "parkpulse-sim 1.0"
    metering_level: Literal[1, 2, 3] | None = None
    register_max: Positive | None = None
    multiplier: Positive = 1.0
    rated_power_kw: Positive | None = None
    parent: str | None = None
    initial_registers: dict[str, NonNegative] = {}


class ElectricityMeterSpec(_DeviceBase):
    """A three-phase meter: registers, power, voltages, currents and power factor."""

    kind: Literal["electricity_meter"]
    carrier: CarrierName = "electricity"
    load: Annotated[ProfileLoad | PueOverheadLoad, Field(discriminator="shape")] | None = None
    nominal_voltage_v: Positive = 230.0
    power_factor: Annotated[float, Field(gt=0, le=1)] = 0.95
    bidirectional: bool = False
    loss_fraction: Annotated[float, Field(ge=0, le=0.2)] = 0.0


class PvInverterSpec(_DeviceBase):
    """A PV system behind an inverter; ``rated_power_kw`` is the AC rating."""

    kind: Literal["pv_inverter"]
    carrier: CarrierName = "electricity"
    rated_power_kw: Positive
    performance_ratio: Annotated[float, Field(gt=0, le=1)] = 0.82
    cloudiness: Annotated[float, Field(ge=0, le=0.9)] = 0.25


class BatteryWindow(_Model):
    """A daily dispatch window in local time: a fixed setpoint (+ = charge) or a share of PV output."""

    start_hour: Hour
    end_hour: Hour
    power_kw: float | None = None
    follow_pv_fraction: Annotated[float, Field(gt=0, le=1)] | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> BatteryWindow:
        if (self.power_kw is None) == (self.follow_pv_fraction is None):
            raise ValueError("set exactly one of power_kw and follow_pv_fraction")
        return self

    def contains(self, hour: float) -> bool:
        """True when local ``hour`` falls in the window (windows may wrap past midnight)."""
        if self.start_hour <= self.end_hour:
            return self.start_hour <= hour < self.end_hour
        return hour >= self.start_hour or hour < self.end_hour


class BatterySpec(_DeviceBase):
    """A battery energy storage system with a daily dispatch schedule."""

    kind: Literal["battery"]
    carrier: CarrierName = "electricity"
    capacity_kwh: Positive
    max_charge_kw: Positive
    max_discharge_kw: Positive
    charge_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    discharge_efficiency: Annotated[float, Field(gt=0, le=1)] = 0.95
    soc_min_pct: Annotated[float, Field(ge=0, le=100)] = 10.0
    soc_max_pct: Annotated[float, Field(ge=0, le=100)] = 95.0
    initial_soc_pct: Annotated[float, Field(ge=0, le=100)] = 50.0
    schedule: list[BatteryWindow] = []

    @model_validator(mode="after")
    def _soc_order(self) -> BatterySpec:
        if not self.soc_min_pct <= self.initial_soc_pct <= self.soc_max_pct or self.soc_min_pct >= self.soc_max_pct:
            raise ValueError("need soc_min_pct <= initial_soc_pct <= soc_max_pct and soc_min_pct < soc_max_pct")
        return self


class EvChargerSpec(_DeviceBase):
    """An EV charging point; sessions arrive mostly in the morning and the evening."""

    kind: Literal["ev_charger"]
    carrier: CarrierName = "electricity"
    rated_power_kw: Positive
    sessions_per_day: NonNegative = 4.0
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 0.6
    session_energy_kwh: tuple[Positive, Positive] = (8.0, 45.0)
    max_dwell_after_full_min: NonNegative = 30.0


class GasMeterSpec(_DeviceBase):
    """A natural-gas meter with a volume register and a flow following a daily shape."""

    kind: Literal["gas_meter"]
    carrier: CarrierName = "gas"
    shape: ProfileShape = "canteen"
    base_flow_m3_per_h: NonNegative = 0.0
    peak_flow_m3_per_h: NonNegative = 20.0
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 1.0


class HeatMeterSpec(_DeviceBase):
    """A heat meter on a hot-water loop: energy register, power and supply/return temperatures."""

    kind: Literal["heat_meter"]
    carrier: CarrierName = "heat"
    shape: ProfileShape = "workshop"
    base_power_kw: NonNegative = 0.0
    peak_power_kw: NonNegative = 300.0
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 1.0
    supply_temperature_c: float = Field(80.0, ge=-50, le=400)
    design_delta_t_c: Positive = 20.0


class WeatherStationSpec(_DeviceBase):
    """An outdoor temperature sensor (the park's weather, as the other devices see it)."""

    kind: Literal["weather_station"]
    carrier: CarrierName = "none"


DeviceSpec = Annotated[
    ElectricityMeterSpec | PvInverterSpec | BatterySpec | EvChargerSpec | GasMeterSpec | HeatMeterSpec
    | WeatherStationSpec,
    Field(discriminator="kind"),
]
ELECTRICAL_KINDS: Final = frozenset({"electricity_meter", "pv_inverter", "battery", "ev_charger"})
#: Cumulative registers per device kind: the keys ``initial_registers`` may set.
REGISTER_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "electricity_meter": ("active_energy_import", "active_energy_export"),
    "pv_inverter": ("generated_energy",),
    "battery": ("battery_charge_energy", "battery_discharge_energy"),
    "ev_charger": ("active_energy_import",),
    "gas_meter": ("gas_volume",),
    "heat_meter": ("heat_energy",),
    "weather_station": (),
}


class ExtraMeterTemplate(_Model):
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


class Scenario(_Model):
    """A simulated park: park, sites, devices, generated extra meters, weather, sampling and faults."""

    park: ParkSpec
    sites: list[SiteSpec] = []
    devices: list[DeviceSpec] = []
    extra_meters: Annotated[int, Field(ge=0, le=100_000)] = 0
    extra_meter_template: ExtraMeterTemplate = ExtraMeterTemplate()
    weather: WeatherSpec = WeatherSpec()
    simulation: SimulationSpec = SimulationSpec()
    faults: FaultSpec = FaultSpec()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        _check_references(self.sites, self.all_devices())
        return self

    def all_devices(self) -> list[DeviceSpec]:
        """The declared devices followed by the generated extra meters."""
        return [*self.devices, *self.extra_meter_template.build(self.extra_meters)]

    def with_overrides(self, *, park_id: str | None = None, extra_meters: int | None = None,
                       duplicate_message_rate: float | None = None, malformed_message_rate: float | None = None,
                       sample_interval_s: int | None = None, batch_interval_s: int | None = None) -> Scenario:
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
                                    ("simulation", "sample_interval_s", sample_interval_s),
                                    ("simulation", "batch_interval_s", batch_interval_s)):
            if value is not None:
                data[section][key] = value
        return Scenario.model_validate(data)

    def park_record(self) -> ParkRecord:
        """The park as the catalog stores it (``parkpulse.db.upsert_park``)."""
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

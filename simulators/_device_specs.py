"""Device sections of the scenario file: birth-message metadata plus the parameters of each device's physics.

Each device carries the metadata of its birth message (kind, carrier, metering level, site, role, register
map profile, register maximum, multiplier, rated power, firmware) and the parameters of its physics.
Electrical devices may name a ``parent`` meter: a meter measures its own load plus everything below it.
Dispatchable devices (battery, EV charger, HVAC) carry their own dispatch windows (``_dispatch``).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import Field, model_validator

from simulators._dispatch import EvCapWindow, HvacOffsetWindow, TimeWindow
from simulators._spec_types import (
    CarrierName,
    Celsius,
    Hour,
    Id,
    NonNegative,
    Positive,
    ProfileShape,
    SpecModel,
)


class ProfileLoad(SpecModel):
    """A load following a daily shape: ``base + (peak - base) * shape(hour)`` plus cooling and noise."""

    shape: ProfileShape
    base_kw: NonNegative
    peak_kw: NonNegative
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 1.0
    cooling_kw_per_degc: NonNegative = 0.0
    cooling_threshold_c: float = 24.0
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.03

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.peak_kw < self.base_kw:
            raise ValueError(f"peak_kw {self.peak_kw} is below base_kw {self.base_kw}")
        return self


class PueOverheadLoad(SpecModel):
    """Data-centre overhead (cooling, UPS, lighting) = IT load below the meter x (PUE(T) - 1)."""

    shape: Literal["pue_overhead"]
    pue_min: Annotated[float, Field(ge=1, le=3)] = 1.30
    pue_max: Annotated[float, Field(ge=1, le=3)] = 1.45
    temp_low_c: float = 15.0
    temp_high_c: float = 35.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.pue_max < self.pue_min or self.temp_high_c <= self.temp_low_c:
            raise ValueError("need pue_min <= pue_max and temp_low_c < temp_high_c")
        return self


class _DeviceBase(SpecModel):
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
    initial_registers: dict[str, NonNegative] = Field(default_factory=dict)


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


class BatteryWindow(TimeWindow):
    """A dispatch window (daily or one event): a fixed setpoint (+ = charge) or a share of PV output."""

    power_kw: float | None = None
    follow_pv_fraction: Annotated[float, Field(gt=0, le=1)] | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> Self:
        if (self.power_kw is None) == (self.follow_pv_fraction is None):
            raise ValueError("set exactly one of power_kw and follow_pv_fraction")
        return self


class BatterySpec(_DeviceBase):
    """A battery energy storage system following a dispatch schedule (first active window wins, else idle)."""

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
    schedule: list[BatteryWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _soc_order(self) -> Self:
        if not self.soc_min_pct <= self.initial_soc_pct <= self.soc_max_pct or self.soc_min_pct >= self.soc_max_pct:
            raise ValueError("need soc_min_pct <= initial_soc_pct <= soc_max_pct and soc_min_pct < soc_max_pct")
        return self


class EvChargerSpec(_DeviceBase):
    """An EV charging point; sessions arrive mostly in the morning and the evening.

    A car arriving with ``E`` kWh to charge stays ``E / (rated x min acceptance)`` hours (its charge time
    at the lowest power it accepts) plus one sample interval plus up to ``max_dwell_after_full_min``: an
    uncapped session always completes, a capped one (``dispatch``) catches up after the cap if the car is
    still plugged in and leaves with the rest unmet otherwise.
    """

    kind: Literal["ev_charger"]
    carrier: CarrierName = "electricity"
    rated_power_kw: Positive
    sessions_per_day: NonNegative = 4.0
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 0.6
    session_energy_kwh: tuple[Positive, Positive] = (8.0, 45.0)
    max_dwell_after_full_min: NonNegative = 30.0
    power_acceptance: tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]] = (0.9, 1.0)
    dispatch: list[EvCapWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _acceptance_order(self) -> Self:
        if self.power_acceptance[0] > self.power_acceptance[1]:
            raise ValueError("power_acceptance must be (lowest, highest) share of the rated power")
        return self


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


class ThermalGains(SpecModel):
    """Heat entering a zone besides the envelope (people, lighting, equipment, sun): a daily shape, kW."""

    shape: ProfileShape = "office"
    base_kw: NonNegative = 0.0
    peak_kw: NonNegative = 0.0
    weekend_factor: Annotated[float, Field(ge=0, le=2)] = 1.0
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.03

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.peak_kw < self.base_kw:
            raise ValueError(f"peak_kw {self.peak_kw} is below base_kw {self.base_kw}")
        return self


class HvacSpec(_DeviceBase):
    """A building chiller (``cooling``) or heat pump (``heating``) holding one zone at a setpoint (1R1C).

    The zone is a thermal capacitance C (kWh/K) coupled to outdoor air through a resistance R (K/kW);
    the unit moves ``COP x P`` kW of heat for ``P`` kW of electricity, up to ``rated_power_kw``. Outside
    ``occupied_hours`` (and on weekends unless ``occupied_on_weekends``) the setpoint is
    ``unoccupied_setpoint_c`` when given. Dispatch offsets are clamped to the comfort band while occupied.
    """

    kind: Literal["hvac"]
    carrier: CarrierName = "electricity"
    mode: Literal["cooling", "heating"] = "cooling"
    rated_power_kw: Positive
    cop: Annotated[float, Field(gt=0, le=20)]
    thermal_capacitance_kwh_per_k: Positive
    thermal_resistance_k_per_kw: Positive
    setpoint_c: Celsius
    comfort_min_c: Celsius
    comfort_max_c: Celsius
    unoccupied_setpoint_c: Celsius | None = None
    occupied_hours: tuple[Hour, Hour] = (7.0, 20.0)
    occupied_on_weekends: bool = False
    initial_indoor_c: Celsius | None = None
    control_horizon_min: Positive = 20.0
    gains: ThermalGains = ThermalGains()
    dispatch: list[HvacOffsetWindow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _comfort(self) -> Self:
        if not self.comfort_min_c <= self.setpoint_c <= self.comfort_max_c or self.comfort_min_c >= self.comfort_max_c:
            raise ValueError("need comfort_min_c <= setpoint_c <= comfort_max_c and comfort_min_c < comfort_max_c")
        return self


class WeatherStationSpec(_DeviceBase):
    """An outdoor temperature sensor (the park's weather, as the other devices see it)."""

    kind: Literal["weather_station"]
    carrier: CarrierName = "none"


DeviceSpec = Annotated[
    ElectricityMeterSpec | PvInverterSpec | BatterySpec | EvChargerSpec | HvacSpec | GasMeterSpec | HeatMeterSpec
    | WeatherStationSpec,
    Field(discriminator="kind"),
]
ELECTRICAL_KINDS: Final = frozenset({"electricity_meter", "pv_inverter", "battery", "ev_charger", "hvac"})
#: Cumulative registers per device kind: the keys ``initial_registers`` may set.
REGISTER_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "electricity_meter": ("active_energy_import", "active_energy_export"),
    "pv_inverter": ("generated_energy",),
    "battery": ("battery_charge_energy", "battery_discharge_energy"),
    "ev_charger": ("active_energy_import",),
    "hvac": ("active_energy_import",),
    "gas_meter": ("gas_volume",),
    "heat_meter": ("heat_energy",),
    "weather_station": (),
}

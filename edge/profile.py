"""Device profiles: register maps as data (``edge/profiles/*.yaml``), validated into typed models.

A profile says, for one meter model, which metrics it offers and how to read each one: Modbus function,
address, data type, word order and scale, the DL/T 645 data identifier and BCD format, or the field of a
CJ/T 188 meter's current-data record. It also says
which values are secondary quantities that the current/voltage transformer ratios of the installation
(``ct_ratio`` / ``pt_ratio`` in ``edge.yaml``) turn into primary ones.

Every value a device reports leaves the agent in the metric's canonical unit (``schemas.metrics``), the
conversion done by :func:`schemas.units.conversion_factor`, the only conversion place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from edge import cjt188, cjt188_data
from edge.dlt645 import register_max as bcd_register_max
from edge.errors import ConfigError
from edge.profile_writable import WritableSection
from edge.registers import DataType, WordOrder, register_count, wrap_max
from schemas import METRICS, UnitError, conversion_factor, get_unit


class Scaling(StrEnum):
    """Which instrument-transformer ratio multiplies a secondary value into a primary one."""

    NONE = "none"
    CT = "ct"
    PT = "pt"
    CTPT = "ctpt"

    def factor(self, ct_ratio: float, pt_ratio: float) -> float:
        """The multiplier for the given CT and PT ratios."""
        return {"none": 1.0, "ct": ct_ratio, "pt": pt_ratio, "ctpt": ct_ratio * pt_ratio}[self.value]


class ModbusFunction(StrEnum):
    """Register table a point lives in."""

    HOLDING = "holding"   # function 03
    INPUT = "input"       # function 04


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _PointBase(_Strict):
    metric: str
    unit: str
    scaling: Scaling = Scaling.NONE

    @model_validator(mode="after")
    def _metric_and_unit(self) -> _PointBase:
        spec = METRICS.get(self.metric)
        if spec is None:
            raise ValueError(f"metric {self.metric!r} is not in the registry (schemas.metrics)")
        try:
            conversion_factor(self.unit, spec.unit)
        except UnitError as exc:
            raise ValueError(f"{self.metric}: {exc}") from None
        return self

    @property
    def unit_factor(self) -> float:
        """Multiplier from this point's unit to the metric's canonical unit."""
        return conversion_factor(self.unit, METRICS[self.metric].unit)


class ModbusDefaults(_Strict):
    """Values every point of a Modbus profile inherits unless it sets its own."""

    function: ModbusFunction = ModbusFunction.HOLDING
    type: DataType = DataType.FLOAT32
    word_order: WordOrder = WordOrder.ABCD


class ModbusPointSpec(_PointBase):
    """One value in a Modbus register map, as written in the YAML file."""

    address: Annotated[int, Field(ge=0, le=0xFFFF)]
    function: ModbusFunction | None = None
    type: DataType | None = None
    word_order: WordOrder | None = None
    scale: float = 1.0


@dataclass(frozen=True, slots=True)
class ModbusPoint:
    """A Modbus point with the profile defaults applied."""

    metric: str
    address: int
    function: ModbusFunction
    type: DataType
    word_order: WordOrder
    scale: float
    unit: str
    scaling: Scaling
    unit_factor: float

    @property
    def count(self) -> int:
        """Registers this point occupies."""
        return register_count(self.type)


class _ProfileBase(_Strict):
    """What every meter model states about itself, whatever its protocol."""

    name: str
    manufacturer: str = ""
    model: str = ""
    kind: str = "electricity_meter"
    carrier: str = "electricity"
    source: str = ""
    confidence: str = ""


class ModbusProfile(_ProfileBase):
    """A Modbus meter model."""

    protocol: Literal["modbus"]
    defaults: ModbusDefaults = ModbusDefaults()
    max_registers_per_read: Annotated[int, Field(ge=1, le=125)] = 100
    max_gap_registers: Annotated[int, Field(ge=0, le=124)] = 0
    points: Annotated[list[ModbusPointSpec], Field(min_length=1)]
    energy_metric: str | None = None
    writable: WritableSection | None = None  # setpoint registers (edge/profile_writable.py), None: read-only

    @model_validator(mode="after")
    def _unique_metrics(self) -> ModbusProfile:
        _check_unique([p.metric for p in self.points], self.energy_metric)
        return self

    def resolved_points(self) -> list[ModbusPoint]:
        """Points with defaults applied, in file order."""
        d = self.defaults
        return [
            ModbusPoint(
                metric=p.metric, address=p.address, function=p.function or d.function, type=p.type or d.type,
                word_order=p.word_order or d.word_order, scale=p.scale, unit=p.unit, scaling=p.scaling,
                unit_factor=p.unit_factor,
            )
            for p in self.points
        ]

    def register_max(self, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> float | None:
        """Rollover point of the energy register in the metric's canonical unit (None: float, no wrap)."""
        point = next((p for p in self.resolved_points() if p.metric == self.energy_metric), None)
        if point is None:
            return None
        top = wrap_max(point.type, point.scale)
        return None if top is None else top * point.scaling.factor(ct_ratio, pt_ratio) * point.unit_factor


class Dlt645PointSpec(_PointBase):
    """One value of a DL/T 645 meter: data identifier and BCD format."""

    di: int
    n_bytes: Annotated[int, Field(ge=1, le=8, alias="bytes")]
    decimals: Annotated[int, Field(ge=0, le=8)] = 0
    signed: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("di", mode="before")
    @classmethod
    def _parse_di(cls, value: Any) -> int:
        text = str(value).strip().replace(" ", "")
        if len(text) != 8:
            raise ValueError(f"data identifier must be 8 hex digits DI3DI2DI1DI0, got {value!r}")
        return int(text, 16)


class Dlt645Clock(_Strict):
    """Data identifiers of the meter's date (YYMMDDWW) and time (hhmmss)."""

    date_di: int = 0x04000101
    time_di: int = 0x04000102

    @field_validator("date_di", "time_di", mode="before")
    @classmethod
    def _parse_di(cls, value: Any) -> int:
        return int(str(value), 16) if isinstance(value, str) else int(value)


class Dlt645Profile(_ProfileBase):
    """A DL/T 645-2007 meter model."""

    protocol: Literal["dlt645"]
    points: Annotated[list[Dlt645PointSpec], Field(min_length=1)]
    energy_metric: str | None = None
    clock: Dlt645Clock | None = None

    @model_validator(mode="after")
    def _unique_metrics(self) -> Dlt645Profile:
        _check_unique([p.metric for p in self.points], self.energy_metric)
        return self

    def register_max(self, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> float | None:
        """Rollover point of the energy register (999999.99 kWh x CT x PT) in the canonical unit."""
        point = next((p for p in self.points if p.metric == self.energy_metric), None)
        if point is None:
            return None
        top = bcd_register_max(n_bytes=point.n_bytes, decimals=point.decimals, signed=point.signed)
        return top * point.scaling.factor(ct_ratio, pt_ratio) * point.unit_factor


class Cjt188ExtraField(_Strict):
    """A manufacturer field a CJ/T 188 meter appends to its 901FH record, after the status bytes."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    n_bytes: Annotated[int, Field(ge=1, le=8, alias="bytes")]
    decimals: Annotated[int, Field(ge=0, le=8)] = 0
    dimension: Literal["energy", "power", "volume", "volume_flow"] | None = None  # set: a unit code follows
    unit: str | None = None  # the fixed unit when no unit code follows

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def spec(self) -> cjt188_data.FieldSpec:
        """The codec's description of this field."""
        return cjt188_data.FieldSpec(self.name, self.n_bytes, self.decimals, dimension=self.dimension,
                                fixed_unit=None if self.dimension else (self.unit or "1"))


class Cjt188PointSpec(_PointBase):
    """One metric of a CJ/T 188 meter: a field of its 901FH record (or ``battery_low``/``valve_state``).

    ``unit`` is the unit the meter is expected to report the field in (the register maximum is computed
    from it); each reply's own unit code decides the conversion.
    """

    field: str


class Cjt188Profile(_ProfileBase):
    """A CJ/T 188 water, gas or heat meter model (one 901FH read returns every point)."""

    protocol: Literal["cjt188"]
    version: cjt188.Version = cjt188.Version.V2004
    meter_type: Annotated[int, Field(ge=0, le=0xFF)]
    di_order: cjt188.DiOrder | None = None  # default: the version's (2004 high byte first, 2018 low first)
    extra_fields: list[Cjt188ExtraField] = []
    points: Annotated[list[Cjt188PointSpec], Field(min_length=1)]
    energy_metric: str | None = None

    @field_validator("meter_type", mode="before")
    @classmethod
    def _parse_type(cls, value: Any) -> int:
        if isinstance(value, str):  # "30", "30H", "0x30": the type byte in hex, as the standard writes it
            try:
                return int(value.strip().upper().removesuffix("H").removeprefix("0X"), 16)
            except ValueError:
                raise ValueError(f"meter_type must be the type byte in hex (10 water, 20 heat, 30 gas), "
                                 f"got {value!r}") from None
        return value  # type: ignore[no-any-return]  # pydantic checks it is an int

    @model_validator(mode="after")
    def _fields_exist(self) -> Cjt188Profile:
        _check_unique([p.metric for p in self.points], self.energy_metric)
        try:
            layout = {f.name: f for f in self.layout()}
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        for point in self.points:
            spec = layout.get(point.field)
            if point.scaling is not Scaling.NONE:
                raise ValueError(f"{point.metric}: CJ/T 188 meters report primary values; remove scaling")
            if point.field in cjt188_data.STATUS_FIELDS:
                continue
            if spec is None or spec.kind != "value":
                names = [n for n, f in layout.items() if f.kind == "value"] + list(cjt188_data.STATUS_FIELDS)
                raise ValueError(f"{point.metric}: field {point.field!r} is not in the 901FH record of meter type "
                                 f"{self.meter_type:#04x}; use one of {', '.join(names)}")
            unit_dimension = get_unit(point.unit).dimension
            if unit_dimension != (spec.dimension or get_unit(spec.fixed_unit or "1").dimension):
                raise ValueError(f"{point.metric}: field {point.field} is not measured in {point.unit}")
        return self

    def layout(self) -> tuple[cjt188_data.FieldSpec, ...]:
        """The 901FH record of this meter type, extra fields included."""
        return cjt188_data.layout_for(self.meter_type, tuple(f.spec() for f in self.extra_fields))

    @property
    def wire_di_order(self) -> cjt188.DiOrder:
        """Byte order of the data identifier in requests."""
        return self.di_order or cjt188.DEFAULT_DI_ORDER[self.version]

    def register_max(self, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> float | None:
        """Rollover point of the energy register (999999.99 in the expected unit) in the canonical unit."""
        del ct_ratio, pt_ratio  # CJ/T 188 meters measure primary quantities
        point = next((p for p in self.points if p.metric == self.energy_metric), None)
        spec = next((f for f in self.layout() if point is not None and f.name == point.field), None)
        if point is None or spec is None:
            return None
        return bcd_register_max(n_bytes=spec.n_bytes, decimals=spec.decimals) * point.unit_factor


DeviceProfile = ModbusProfile | Dlt645Profile | Cjt188Profile
Profile = Annotated[DeviceProfile, Field(discriminator="protocol")]
_PROFILE_ADAPTER: TypeAdapter[DeviceProfile] = TypeAdapter(Profile)


def _check_unique(metrics: list[str], energy_metric: str | None) -> None:
    dupes = sorted({m for m in metrics if metrics.count(m) > 1})
    if dupes:
        raise ValueError(f"metrics listed twice: {', '.join(dupes)}")
    if energy_metric is not None and energy_metric not in metrics:
        raise ValueError(f"energy_metric {energy_metric!r} is not one of the points")


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One Modbus read request covering several points: ``(point, offset in the block)`` pairs."""

    function: ModbusFunction
    start: int
    count: int
    points: tuple[tuple[ModbusPoint, int], ...]


def plan_reads(points: list[ModbusPoint], *, max_registers: int, max_gap: int) -> list[ReadBlock]:
    """Group points into as few read requests as the device allows.

    Points of one function whose addresses are at most ``max_gap`` unused registers apart share a request,
    as long as the request stays within ``max_registers``. Fewer requests mean fewer round trips on a slow
    RS-485 line behind a gateway.
    """
    blocks: list[ReadBlock] = []
    ordered = sorted(points, key=lambda p: (p.function.value, p.address))
    current: list[ModbusPoint] = []

    def close() -> None:
        if current:
            start = current[0].address
            end = max(p.address + p.count for p in current)
            blocks.append(ReadBlock(current[0].function, start, end - start,
                                    tuple((p, p.address - start) for p in current)))

    for point in ordered:
        if current:
            start = current[0].address
            end = max(p.address + p.count for p in current)
            fits = (point.function == current[0].function and point.address - end <= max_gap
                    and point.address + point.count - start <= max_registers)
            if not fits:
                close()
                current = []
        current.append(point)
    close()
    return blocks


def parse_profile(data: Any, *, origin: str = "<data>") -> DeviceProfile:
    """Validate a profile from parsed YAML; raises :class:`ConfigError` naming ``origin`` on errors."""
    try:
        return _PROFILE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid device profile {origin}: {exc}") from None


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile YAML file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc}") from None
    profile = parse_profile(data, origin=str(path))
    if profile.name != path.stem:
        raise ConfigError(f"profile {path} is named {profile.name!r}; the name must equal the file stem")
    return profile


@cache
def builtin_profiles() -> dict[str, DeviceProfile]:
    """The profiles shipped in ``edge/profiles/``, by name."""
    root = resources.files("edge") / "profiles"
    found: dict[str, DeviceProfile] = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = load_profile(Path(str(entry)))
            found[profile.name] = profile
    return found


def find_profiles(extra_dirs: list[Path]) -> dict[str, DeviceProfile]:
    """Built-in profiles plus those in ``extra_dirs`` (a site's own files override built-ins by name)."""
    profiles = dict(builtin_profiles())
    for directory in extra_dirs:
        if not directory.is_dir():
            raise ConfigError(f"profile directory {directory} does not exist")
        for path in sorted(directory.glob("*.yaml")):
            profile = load_profile(path)
            profiles[profile.name] = profile
    return profiles


__all__ = [
    "Cjt188ExtraField",
    "Cjt188PointSpec",
    "Cjt188Profile",
    "DeviceProfile",
    "Dlt645PointSpec",
    "Dlt645Profile",
    "ModbusFunction",
    "ModbusPoint",
    "ModbusProfile",
    "Profile",
    "ReadBlock",
    "Scaling",
    "builtin_profiles",
    "find_profiles",
    "load_profile",
    "parse_profile",
    "plan_reads",
]

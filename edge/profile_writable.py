"""The ``writable:`` section of a Modbus device profile: which holding registers take which setpoint.

A battery, an EV charger or an HVAC controller is steered by writing holding registers. The profile
says, per command action (``schemas.commands.CommandAction``), where the setpoint goes, how it is encoded
(data type, word order, scale: ``engineering value = raw x scale``, in ``unit``), the device's own limits
in the *command's* unit (kW for power, degC for temperature) and where to read the value back. The
optional ``release`` entry names the enable/mode register: ``remote`` is written before a setpoint so the
device follows it, ``local`` hands it back to its own control::

    writable:
      release: {address: 100, type: uint16, remote: 1, local: 0}
      set_active_power:
        {address: 102, type: int32, scale: 0.1, unit: kW, minimum: -250, maximum: 250,
         readback: {address: 104, type: int32, scale: 0.1}}

Pure models (pydantic only): the slim edge install loads them with every profile.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.errors import RegisterDecodeError
from edge.registers import DataType, WordOrder, encode_registers, register_count
from schemas import UnitError, conversion_factor
from schemas.commands import ACTION_UNITS, CommandAction

Address = Annotated[int, Field(ge=0, le=0xFFFF)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterRef(_Strict):
    """Where a value lives and how it is encoded; ``engineering value = raw x scale``."""

    address: Address
    type: DataType = DataType.INT32
    word_order: WordOrder = WordOrder.ABCD
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0

    @property
    def count(self) -> int:
        """Registers the value occupies."""
        return register_count(self.type)

    @property
    def span(self) -> range:
        """The register addresses the value occupies."""
        return range(self.address, self.address + self.count)


class SetpointRegister(RegisterRef):
    """A setpoint register with the device's own limits (in the command's unit) and its read-back."""

    unit: str
    minimum: Annotated[float, Field(allow_inf_nan=False)]
    maximum: Annotated[float, Field(allow_inf_nan=False)]
    readback: RegisterRef | None = None  # None: read the setpoint register itself back
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None  # None: one raw step

    @model_validator(mode="after")
    def _limits(self) -> SetpointRegister:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")
        return self

    @property
    def readback_ref(self) -> RegisterRef:
        """The register read after a write to confirm it."""
        return self.readback or self

    @property
    def match_tolerance(self) -> float:
        """How far the read-back may differ from the written value (command unit) and still count as applied."""
        return self.tolerance if self.tolerance is not None else self.readback_ref.scale


class ModeRegister(_Strict):
    """The enable/mode register: ``remote`` lets the device follow setpoints, ``local`` returns it to itself."""

    address: Address
    type: DataType = DataType.UINT16
    word_order: WordOrder = WordOrder.ABCD
    remote: int = 1
    local: int = 0

    @property
    def span(self) -> range:
        """The register addresses the mode occupies."""
        return range(self.address, self.address + register_count(self.type))


class WritableSection(_Strict):
    """Per-action writable registers of one device model (see the module docstring)."""

    release: ModeRegister | None = None
    set_active_power: SetpointRegister | None = None
    set_power_limit: SetpointRegister | None = None
    set_temperature_setpoint: SetpointRegister | None = None

    @model_validator(mode="after")
    def _consistent(self) -> WritableSection:
        if not self.setpoints():
            raise ValueError("a writable section needs at least one setpoint action")
        taken: dict[int, str] = {}
        for name, span in self._spans():
            for address in span:
                if address in taken:
                    raise ValueError(f"{name} overlaps {taken[address]} at register {address}")
                taken[address] = name
        for action, reg in self.setpoints().items():
            want = ACTION_UNITS[action]
            try:
                conversion_factor(reg.unit, want)
            except UnitError:
                raise ValueError(f"{action.value}: unit {reg.unit!r} is not convertible to {want}") from None
            for limit in (reg.minimum, reg.maximum):
                try:
                    encode_registers(to_raw(reg, limit, action), reg.type, reg.word_order)
                except RegisterDecodeError:
                    raise ValueError(f"{action.value}: limit {limit} does not fit a {reg.type.value} register "
                                     f"at scale {reg.scale}") from None
        return self

    def _spans(self) -> list[tuple[str, range]]:
        spans = [("release", self.release.span)] if self.release is not None else []
        for action, reg in self.setpoints().items():
            spans.append((action.value, reg.span))
        return spans

    def setpoints(self) -> dict[CommandAction, SetpointRegister]:
        """The setpoint actions this device supports."""
        found = {
            CommandAction.SET_ACTIVE_POWER: self.set_active_power,
            CommandAction.SET_POWER_LIMIT: self.set_power_limit,
            CommandAction.SET_TEMPERATURE_SETPOINT: self.set_temperature_setpoint,
        }
        return {a: r for a, r in found.items() if r is not None}

    def supports(self, action: CommandAction) -> bool:
        """Whether a command with ``action`` can be applied to this device."""
        if action is CommandAction.RELEASE:
            return self.release is not None
        return action in self.setpoints()

    def register_refs(self) -> list[RegisterRef | ModeRegister]:
        """Every register the section names (setpoints, read-backs, mode), for simulators and planners."""
        refs: list[RegisterRef | ModeRegister] = [self.release] if self.release is not None else []
        for reg in self.setpoints().values():
            refs.append(reg)
            if reg.readback is not None:
                refs.append(reg.readback)
        return refs


def unit_factor(reg: SetpointRegister, action: CommandAction) -> float:
    """Multiplier from the register's unit to the command's unit (W -> kW: 0.001)."""
    return conversion_factor(reg.unit, ACTION_UNITS[action]) if ACTION_UNITS[action] else 1.0


def to_raw(reg: SetpointRegister, value: float, action: CommandAction | None = None) -> float:
    """The raw register number for ``value`` given in the command's unit (rounded to a whole raw step)."""
    factor = 1.0 if action is None else unit_factor(reg, action)
    raw = value / factor / reg.scale
    return float(round(raw)) if reg.type not in (DataType.FLOAT32, DataType.FLOAT64) else raw


def from_raw(ref: RegisterRef, raw: float, factor: float = 1.0) -> float:
    """The engineering value of a raw register number, in the command's unit."""
    return raw * ref.scale * factor


__all__ = ["ModeRegister", "RegisterRef", "SetpointRegister", "WritableSection", "from_raw", "to_raw", "unit_factor"]

"""The ``commands:`` section of ``edge.yaml``: setpoint handling, local safety limits and the site override.

The VPP may ask for anything the contract allows; the site decides what it accepts. Two local controls
always win over a remote command:

* ``limits``: per device and action, a range narrower than the device's own (profile) limits, e.g. a
  battery the site allows to discharge at 100 kW although the PCS can do 250;
* the override: ``override: true`` (the whole agent) or ``override_devices`` put devices under local
  control; every command for them is rejected ``override_active``. Site staff can also set and clear it at
  run time with ``parkpulse edge-override set|clear`` (kept in the command audit database).

Example::

    commands:
      audit_path: /var/lib/parkpulse/edge-commands.sqlite   # default: next to the outbox
      override_devices: [hvac-1]
      limits:
        bess-1: {set_active_power: {minimum: -100, maximum: 100}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.commands import CommandAction


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SafetyRange(_Model):
    """An allowed range in the command's unit (kW or degC); either end may be open."""

    minimum: Annotated[float, Field(allow_inf_nan=False)] | None = None
    maximum: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> SafetyRange:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum {self.minimum} is above maximum {self.maximum}")
        return self

    def allows(self, value: float) -> bool:
        """Whether ``value`` lies inside the range (ends included)."""
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


DeviceLimits = dict[CommandAction, SafetyRange]


class CommandsConfig(_Model):
    """Command handling of one agent (see the module docstring)."""

    enabled: bool = True
    audit_path: Path | None = None
    override: bool = False
    override_devices: list[str] = []
    limits: dict[str, DeviceLimits] = {}

    @model_validator(mode="after")
    def _no_release_limits(self) -> CommandsConfig:
        for device, limits in self.limits.items():
            if CommandAction.RELEASE in limits:
                raise ValueError(f"limits.{device}: release takes no value, so it has no limits")
        return self

    def audit_file(self, outbox_path: Path) -> Path:
        """The audit database: ``audit_path`` or ``<outbox stem>-commands.sqlite`` beside the outbox."""
        return self.audit_path or outbox_path.with_name(f"{outbox_path.stem}-commands.sqlite")

    def overridden(self, device_id: str) -> bool:
        """Whether ``edge.yaml`` puts the device under local control."""
        return self.override or device_id in self.override_devices


__all__ = ["CommandsConfig", "DeviceLimits", "SafetyRange"]

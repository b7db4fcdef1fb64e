"""Setpoint writers: apply a command's value to a device through its protocol and read it back.

A writer does one thing: encode the value as the device's profile says, write it, read the register
back and return what the device now holds (in the command's unit). Validation, limits, the override,
acks and the audit are the command handler's job (edge/commands.py). Writers raise
:class:`edge.errors.DeviceOfflineError` when the device cannot be reached (ack ``device_offline``) and
:class:`edge.errors.SetpointWriteError` when it refused or read back another value (``write_failed``).
"""

from __future__ import annotations

from typing import Protocol

from schemas.commands import CommandAction


class SetpointWriter(Protocol):
    """Applies setpoints to one device."""

    device_id: str

    async def apply(self, action: CommandAction, value: float) -> float:
        """Write ``value`` (command unit) for ``action``; returns the value read back."""
        ...

    async def release(self) -> None:
        """Hand the device back to its own control (the profile's mode register)."""
        ...


__all__ = ["SetpointWriter"]

"""Wires command handling into the edge agent: one :class:`CommandHandler` per writable device.

A device gets command handling when ``commands.enabled`` (the default), its profile has a ``writable:``
section and it is reached over Modbus TCP (the writer shares the reader's gateway connection). Its session
then subscribes to its cmd topic (edge/session.py). :meth:`CommandService.run` keeps every handler's
``hold_until`` timer and closes the audit database when cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from edge.commands import CommandHandler
from edge.commands_store import CommandAudit
from edge.config import EdgeConfig
from edge.errors import ConfigError
from edge.profile import DeviceProfile, ModbusProfile
from edge.readers import DeviceReader
from edge.readers.modbus import ModbusEndpoint, ModbusReader
from edge.writers.modbus import ModbusSetpointWriter

logger = logging.getLogger(__name__)


class CommandService:
    """The agent's command handlers and their audit database."""

    def __init__(self, config: EdgeConfig, profiles: Mapping[str, DeviceProfile], readers: Mapping[str, DeviceReader],
                 clock: Callable[[], datetime]) -> None:
        """Build handlers for the writable devices; raises :class:`ConfigError` for limits of unknown devices."""
        cmd = config.commands
        self.audit = CommandAudit(cmd.audit_file(config.outbox.path))
        self.handlers: dict[str, CommandHandler] = {}
        known = {d.id for d in config.devices}
        unknown = sorted((set(cmd.limits) | set(cmd.override_devices)) - known)
        if unknown:
            raise ConfigError(f"commands: limits/override_devices name unknown device(s) {', '.join(unknown)} "
                              f"(devices: {', '.join(sorted(known))})")
        if not cmd.enabled:
            return
        for device in config.devices:
            profile = profiles.get(device.id)
            if not isinstance(profile, ModbusProfile) or profile.writable is None:
                continue
            reader = readers[device.id]
            if not isinstance(reader, ModbusReader) or not isinstance(reader.endpoint, ModbusEndpoint):
                logger.warning("%s: profile %s is writable but setpoints are written over Modbus TCP only; "
                               "this device takes no commands", device.id, profile.name)
                continue
            writer = ModbusSetpointWriter(device.id, profile.writable, reader.endpoint, reader.unit_id)
            self.handlers[device.id] = CommandHandler(
                park_id=config.park_id, device_id=device.id, writable=profile.writable, writer=writer,
                audit=self.audit, clock=clock, limits=cmd.limits.get(device.id),
                config_override=cmd.overridden(device.id))

    async def run(self) -> None:
        """Run every handler's hold timer until cancelled; then close the audit."""
        try:
            async with asyncio.TaskGroup() as tg:
                for device_id, handler in self.handlers.items():
                    tg.create_task(handler.run(), name=f"edge[{device_id}].commands")
                await asyncio.Event().wait()
        finally:
            self.audit.close()


__all__ = ["CommandService"]

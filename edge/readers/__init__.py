"""Device readers: Modbus TCP and DL/T 645 over TCP, with connections shared per gateway."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge.config import DeviceConfig, Dlt645TcpTransport, ModbusTcpTransport
from edge.errors import ConfigError
from edge.profile import Dlt645Profile, ModbusProfile
from edge.readers.base import DeviceReader, ReadResult, dlt645_value, make_reading, modbus_value
from edge.readers.dlt645 import Dlt645Endpoint, Dlt645Reader
from edge.readers.modbus import ModbusEndpoint, ModbusReader


class EndpointPool:
    """One connection per gateway address, shared by every meter behind it."""

    def __init__(self) -> None:
        """Start empty; endpoints are created on first use."""
        self._modbus: dict[tuple[str, int, str], ModbusEndpoint] = {}
        self._dlt645: dict[tuple[str, int], Dlt645Endpoint] = {}

    def modbus(self, transport: ModbusTcpTransport) -> ModbusEndpoint:
        """The endpoint for a Modbus gateway (shared by host, port and framer)."""
        key = (transport.host, transport.port, transport.framer)
        if key not in self._modbus:
            self._modbus[key] = ModbusEndpoint(transport.host, transport.port, framer=transport.framer,
                                               timeout_s=transport.timeout_s)
        return self._modbus[key]

    def dlt645(self, transport: Dlt645TcpTransport) -> Dlt645Endpoint:
        """The endpoint for a DL/T 645 gateway (shared by host and port)."""
        key = (transport.host, transport.port)
        if key not in self._dlt645:
            self._dlt645[key] = Dlt645Endpoint(transport.host, transport.port, timeout_s=transport.timeout_s)
        return self._dlt645[key]

    def close(self) -> None:
        """Close every connection."""
        for modbus in self._modbus.values():
            modbus.close()
        for dlt645 in self._dlt645.values():
            dlt645.close()


def build_reader(device: DeviceConfig, profile: ModbusProfile | Dlt645Profile, pool: EndpointPool, *,
                 meter_utc_offset: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> DeviceReader:
    """The reader for ``device``; raises :class:`ConfigError` when profile and transport do not match."""
    transport = device.transport
    if isinstance(profile, ModbusProfile) and isinstance(transport, ModbusTcpTransport):
        return ModbusReader(device.id, profile, transport, pool.modbus(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio)
    if isinstance(profile, Dlt645Profile) and isinstance(transport, Dlt645TcpTransport):
        return Dlt645Reader(device.id, profile, transport, pool.dlt645(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio, meter_utc_offset=meter_utc_offset,
                            clock=clock)
    raise ConfigError(f"device {device.id}: profile {profile.name!r} ({profile.protocol}) cannot be read "
                      f"over transport {transport.kind!r}")


__all__ = [
    "DeviceReader",
    "Dlt645Endpoint",
    "Dlt645Reader",
    "EndpointPool",
    "ModbusEndpoint",
    "ModbusReader",
    "ReadResult",
    "build_reader",
    "dlt645_value",
    "make_reading",
    "modbus_value",
]

"""Device readers: Modbus, DL/T 645 and CJ/T 188 over TCP or RS-485, connections shared per gateway or bus."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from edge.config import (
    Cjt188SerialTransport,
    Cjt188TcpTransport,
    DeviceConfig,
    Dlt645SerialTransport,
    Dlt645TcpTransport,
    ModbusRtuTransport,
    ModbusTcpTransport,
    OpcUaTransport,
    SerialTransport,
)
from edge.errors import ConfigError
from edge.profile import Cjt188Profile, DeviceProfile, Dlt645Profile, ModbusProfile
from edge.readers.base import DeviceReader, ReadResult, dlt645_value, make_reading, modbus_value
from edge.readers.cjt188 import Cjt188Reader, GatewayEndpoint
from edge.readers.dlt645 import Dlt645Endpoint, Dlt645Reader, Dlt645SerialEndpoint
from edge.readers.modbus import ModbusEndpoint, ModbusReader, ModbusRtuEndpoint
from edge.serial_bus import SerialBus

if TYPE_CHECKING:  # asyncua is an optional extra: edge.readers.opcua is imported only for OPC UA devices
    from edge.readers.opcua import OpcUaEndpoint


class EndpointPool:
    """One connection per gateway address, shared by every meter behind it."""

    def __init__(self) -> None:
        """Start empty; endpoints are created on first use."""
        self._modbus: dict[tuple[str, int, str], ModbusEndpoint] = {}
        self._dlt645: dict[tuple[str, int], Dlt645Endpoint] = {}
        self._gateways: dict[tuple[str, int], GatewayEndpoint] = {}
        self._buses: dict[str, SerialBus] = {}
        self._modbus_rtu: dict[str, ModbusRtuEndpoint] = {}
        self._dlt645_serial: dict[str, Dlt645SerialEndpoint] = {}
        self._opcua: dict[tuple[object, ...], OpcUaEndpoint] = {}

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

    def gateway(self, transport: Cjt188TcpTransport) -> GatewayEndpoint:
        """The request/reply endpoint of a transparent converter (CJ/T 188; shared by host and port)."""
        key = (transport.host, transport.port)
        if key not in self._gateways:
            self._gateways[key] = GatewayEndpoint(transport.host, transport.port, timeout_s=transport.timeout_s)
        return self._gateways[key]

    def serial_bus(self, transport: SerialTransport) -> SerialBus:
        """The one :class:`SerialBus` of the transport's bus, shared by every device and protocol on it."""
        settings = transport.bus_settings
        if settings.id not in self._buses:
            self._buses[settings.id] = SerialBus(settings)
        return self._buses[settings.id]

    def modbus_rtu(self, transport: ModbusRtuTransport) -> ModbusRtuEndpoint:
        """The Modbus RTU endpoint of the transport's bus."""
        bus = self.serial_bus(transport)
        if bus.settings.id not in self._modbus_rtu:
            self._modbus_rtu[bus.settings.id] = ModbusRtuEndpoint(bus)
        return self._modbus_rtu[bus.settings.id]

    def dlt645_serial(self, transport: Dlt645SerialTransport) -> Dlt645SerialEndpoint:
        """The DL/T 645 endpoint of the transport's bus."""
        bus = self.serial_bus(transport)
        if bus.settings.id not in self._dlt645_serial:
            self._dlt645_serial[bus.settings.id] = Dlt645SerialEndpoint(bus)
        return self._dlt645_serial[bus.settings.id]

    def opcua(self, transport: OpcUaTransport) -> OpcUaEndpoint:
        """The session with an OPC UA server (shared by URL, security and identity)."""
        from edge.readers.opcua import OpcUaEndpoint  # noqa: PLC0415 - optional extra, see build_reader

        key = (transport.url, transport.security, transport.auth)
        if key not in self._opcua:
            self._opcua[key] = OpcUaEndpoint(transport)
        return self._opcua[key]

    async def aclose(self) -> None:
        """Close every connection, waiting for OPC UA sessions to end cleanly."""
        for opcua in self._opcua.values():
            await opcua.aclose()
        self.close()

    def close(self) -> None:
        """Close every connection and serial port."""
        for opcua in self._opcua.values():
            opcua.close()
        for modbus in self._modbus.values():
            modbus.close()
        for dlt645 in self._dlt645.values():
            dlt645.close()
        for gateway in self._gateways.values():
            gateway.close()
        for bus in self._buses.values():
            bus.close()


def build_reader(device: DeviceConfig, profile: DeviceProfile | None, pool: EndpointPool, *,
                 meter_utc_offset: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> DeviceReader:
    """The reader for ``device``; raises :class:`ConfigError` when profile and transport do not match."""
    transport = device.transport
    if isinstance(transport, OpcUaTransport):  # its nodes are in edge.yaml: no profile
        try:
            from edge.readers.opcua import OpcUaReader  # noqa: PLC0415 - asyncua is an optional extra
        except ImportError as exc:
            raise ConfigError(f"device {device.id}: {exc}") from None
        reader: DeviceReader = OpcUaReader(device.id, transport, pool.opcua(transport), clock=clock)
        return reader
    if profile is None:
        raise ConfigError(f"device {device.id}: name its profile")
    if isinstance(profile, ModbusProfile) and isinstance(transport, ModbusTcpTransport):
        return ModbusReader(device.id, profile, transport, pool.modbus(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio)
    if isinstance(profile, Dlt645Profile) and isinstance(transport, Dlt645TcpTransport):
        return Dlt645Reader(device.id, profile, transport, pool.dlt645(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio, meter_utc_offset=meter_utc_offset,
                            clock=clock)
    if isinstance(profile, ModbusProfile) and isinstance(transport, ModbusRtuTransport):
        return ModbusReader(device.id, profile, transport, pool.modbus_rtu(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio)
    if isinstance(profile, Dlt645Profile) and isinstance(transport, Dlt645SerialTransport):
        return Dlt645Reader(device.id, profile, transport, pool.dlt645_serial(transport),
                            ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio, meter_utc_offset=meter_utc_offset,
                            clock=clock)
    if isinstance(profile, Cjt188Profile) and isinstance(transport, Cjt188TcpTransport | Cjt188SerialTransport):
        link = pool.gateway(transport) if isinstance(transport, Cjt188TcpTransport) else pool.serial_bus(transport)
        return Cjt188Reader(device.id, profile, transport.address, link, timeout_s=transport.timeout_s,
                            meter_utc_offset=meter_utc_offset, clock=clock)
    raise ConfigError(f"device {device.id}: profile {profile.name!r} ({profile.protocol}) cannot be read "
                      f"over transport {transport.kind!r}")


__all__ = [
    "Cjt188Reader",
    "DeviceReader",
    "Dlt645Endpoint",
    "Dlt645Reader",
    "Dlt645SerialEndpoint",
    "EndpointPool",
    "GatewayEndpoint",
    "ModbusEndpoint",
    "ModbusReader",
    "ModbusRtuEndpoint",
    "ReadResult",
    "build_reader",
    "dlt645_value",
    "make_reading",
    "modbus_value",
]

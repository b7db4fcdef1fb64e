"""Modbus TCP and Modbus RTU readers (pymodbus clients), requests serialised per gateway or bus.

Several meters behind one RS-485/TCP gateway share an :class:`ModbusEndpoint`; its lock keeps one
request on the half-duplex bus at a time. pymodbus' own reconnection and retries are switched off: the
agent's poll loop is the retry, so a dead meter costs one timeout per poll and never blocks the others.

Meters on a local RS-485 port share a :class:`ModbusRtuEndpoint` (pymodbus' serial client) that sends each
request through the bus's :class:`edge.serial_bus.SerialBus`: the bus lock, turnaround silence and the
bus's ``retries`` (pymodbus resends after a timeout; a reply with a bad CRC is dropped and counts as one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from edge.config import ModbusRtuTransport, ModbusTcpTransport
from edge.errors import (
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    ModbusExceptionError,
    RegisterDecodeError,
)
from edge.profile import ModbusFunction, ModbusProfile, ReadBlock, plan_reads
from edge.readers.base import ReadResult, make_reading, modbus_value
from edge.serial_bus import SerialBus

logger = logging.getLogger(__name__)

_FUNCTION_CODE = {ModbusFunction.HOLDING: 0x03, ModbusFunction.INPUT: 0x04}


class ModbusEndpoint:
    """A Modbus TCP connection to one device or gateway, opened lazily and reset after errors."""

    def __init__(self, host: str, port: int, *, framer: str = "socket", timeout_s: float = 3.0) -> None:
        """Remember where to connect; nothing happens until the first request."""
        self.host, self.port, self.framer, self.timeout_s = host, port, framer, timeout_s
        self.lock = asyncio.Lock()
        self._client: AsyncModbusTcpClient | None = None

    def __repr__(self) -> str:
        return f"ModbusEndpoint({self.host}:{self.port}, {self.framer})"

    async def _connected(self, device_id: str) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = AsyncModbusTcpClient(
            self.host, port=self.port, framer=FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET,
            timeout=self.timeout_s, retries=0, reconnect_delay=0, name=f"modbus-{self.host}:{self.port}",
        )
        try:
            async with asyncio.timeout(self.timeout_s + 1.0):
                ok = await client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            raise DeviceConnectionError(f"cannot connect to {self.host}:{self.port}", device_id=device_id)
        self._client = client
        return client

    async def client(self, device_id: str) -> AsyncModbusTcpClient:
        """The connected client (connecting if needed), for setpoint writers sharing this gateway (edge/writers)."""
        return await self._connected(device_id)

    async def read_registers(
        self, function: ModbusFunction, start: int, count: int, *, unit_id: int, device_id: str
    ) -> list[int]:
        """Read ``count`` registers at ``start``; raises a :class:`DeviceError` subclass on any failure."""
        client = await self._connected(device_id)
        try:
            async with asyncio.timeout(2 * self.timeout_s + 1.0):
                if function is ModbusFunction.INPUT:
                    reply = await client.read_input_registers(start, count=count, device_id=unit_id)
                else:
                    reply = await client.read_holding_registers(start, count=count, device_id=unit_id)
        except TimeoutError:
            self.close()
            raise DeviceTimeoutError(f"no reply to {function} registers {start}+{count}",
                                     device_id=device_id) from None
        except ConnectionException as exc:
            self.close()
            raise DeviceConnectionError(f"connection lost: {exc}", device_id=device_id) from None
        except ModbusIOException as exc:
            self.close()
            raise DeviceTimeoutError(f"no valid reply to {function} registers {start}+{count}: {exc}",
                                     device_id=device_id) from None
        except ModbusException as exc:
            self.close()
            raise DeviceError(f"modbus error: {exc}", device_id=device_id) from None
        if reply.isError():
            raise ModbusExceptionError(_FUNCTION_CODE[function], int(getattr(reply, "exception_code", 0)),
                                       device_id=device_id)
        registers = list(reply.registers)
        if len(registers) != count:
            raise DeviceError(f"asked for {count} registers at {start}, got {len(registers)}", device_id=device_id)
        return registers

    def close(self) -> None:
        """Drop the connection; the next request reconnects."""
        if self._client is not None:
            self._client.close()
            self._client = None


class ModbusRtuEndpoint:
    """Modbus RTU meters on one local RS-485 bus, read with pymodbus' serial client (opened lazily)."""

    def __init__(self, bus: SerialBus) -> None:
        """Share ``bus`` with every device on it; the port opens on the first request."""
        self.bus = bus
        #: Readers hold this around a request, as for TCP; the bus lock inside keeps the wire to one exchange.
        self.lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | None = None

    def __repr__(self) -> str:
        return f"ModbusRtuEndpoint({self.bus!r})"

    def _count_bytes(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.bus.bytes_written += len(data)
        else:
            self.bus.bytes_read += len(data)
        return data

    async def _connected(self, device_id: str) -> AsyncModbusSerialClient:
        self.bus.claim_port(self, self.close)
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        s = self.bus.settings
        client = AsyncModbusSerialClient(
            s.port, framer=FramerType.RTU, baudrate=s.baudrate, bytesize=s.bytesize, parity=s.parity,
            stopbits=s.stopbits, timeout=s.timeout_s, retries=s.retries, reconnect_delay=0,
            name=f"modbus-rtu-{s.id}", trace_packet=self._count_bytes,
        )
        try:
            async with asyncio.timeout(s.timeout_s + 1.0):
                ok = await client.connect()
        except TimeoutError:
            ok = False
        if not ok:
            client.close()
            raise DeviceConnectionError(
                f"cannot open serial port {s.port} (bus {s.id}); check the device name, that no other program "
                f"holds the port and that this user may open it (group dialout)", device_id=device_id)
        self._client = client
        return client

    async def read_registers(
        self, function: ModbusFunction, start: int, count: int, *, unit_id: int, device_id: str,
        timeout_s: float | None = None,
    ) -> list[int]:
        """Read ``count`` registers at ``start`` from ``unit_id``; raises a :class:`DeviceError` subclass.

        A silent or garbling meter costs ``timeout x (1 + retries)`` and leaves the port open for the others.
        """
        settings = self.bus.settings
        timeout = timeout_s if timeout_s is not None else settings.timeout_s
        async with self.bus.exchange():
            client = await self._connected(device_id)
            # per-device timeout on the shared client (pymodbus reads it before every request; pinned 3.16.x)
            client.ctx.comm_params.timeout_connect = timeout + settings.wire_time_s(8)
            self.bus.requests += 1
            try:
                async with asyncio.timeout((timeout + 1.0) * (1 + settings.retries) + 1.0):
                    if function is ModbusFunction.INPUT:
                        reply = await client.read_input_registers(start, count=count, device_id=unit_id)
                    else:
                        reply = await client.read_holding_registers(start, count=count, device_id=unit_id)
            except (TimeoutError, ModbusIOException) as exc:
                self.bus.timeouts += 1
                detail = "" if isinstance(exc, TimeoutError) else f": {exc}"
                raise DeviceTimeoutError(f"no valid reply from unit {unit_id} on bus {settings.id} to {function} "
                                         f"registers {start}+{count}{detail}", device_id=device_id) from None
            except ConnectionException as exc:
                self.close()
                raise DeviceConnectionError(f"serial port {settings.port} failed: {exc}", device_id=device_id) from None
            except ModbusException as exc:
                raise DeviceError(f"modbus error: {exc}", device_id=device_id) from None
        if reply.isError():
            raise ModbusExceptionError(_FUNCTION_CODE[function], int(getattr(reply, "exception_code", 0)),
                                       device_id=device_id)
        registers = list(reply.registers)
        if len(registers) != count:
            raise DeviceError(f"asked for {count} registers at {start}, got {len(registers)}", device_id=device_id)
        return registers

    def close(self) -> None:
        """Close the serial client; the next request reopens the port."""
        if self._client is not None:
            self._client.close()
            self._client = None


class _RtuLink:
    """Binds one device's own timeout to a shared :class:`ModbusRtuEndpoint`."""

    def __init__(self, endpoint: ModbusRtuEndpoint, timeout_s: float | None) -> None:
        self.endpoint, self.timeout_s = endpoint, timeout_s
        self.lock = endpoint.lock

    async def read_registers(self, function: ModbusFunction, start: int, count: int, *, unit_id: int,
                             device_id: str) -> list[int]:
        return await self.endpoint.read_registers(function, start, count, unit_id=unit_id, device_id=device_id,
                                                  timeout_s=self.timeout_s)


class ModbusReader:
    """Reads one Modbus meter through a (possibly shared) TCP or RTU endpoint."""

    def __init__(self, device_id: str, profile: ModbusProfile, transport: ModbusTcpTransport | ModbusRtuTransport,
                 endpoint: ModbusEndpoint | ModbusRtuEndpoint, *, ct_ratio: float = 1.0,
                 pt_ratio: float = 1.0) -> None:
        """Plan the read blocks once; ``endpoint`` may be shared with other meters on the same gateway."""
        self.device_id = device_id
        self.profile = profile
        self.unit_id = transport.unit_id
        self.endpoint = endpoint
        self._link: ModbusEndpoint | _RtuLink = endpoint if isinstance(endpoint, ModbusEndpoint) else _RtuLink(
            endpoint, transport.timeout_s if isinstance(transport, ModbusRtuTransport) else None)
        self.ct_ratio, self.pt_ratio = ct_ratio, pt_ratio
        self.blocks: list[ReadBlock] = plan_reads(profile.resolved_points(),
                                                  max_registers=profile.max_registers_per_read,
                                                  max_gap=profile.max_gap_registers)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Read every block. A Modbus exception on one block skips its points; a dead link aborts the poll.

        On a serial bus the whole poll is one turn on the bus; the readings are stamped ``ts`` plus the time
        spent waiting for that turn, i.e. when this meter was actually read.
        """
        del read_clock  # Modbus meters in our profiles have no clock worth reading
        turn = (self.endpoint.bus.turn() if isinstance(self.endpoint, ModbusRtuEndpoint)
                else contextlib.nullcontext(0.0))
        async with turn as waited_s:
            return await self._read(ts + timedelta(seconds=waited_s) if waited_s else ts)

    async def _read(self, ts: datetime) -> ReadResult:
        result = ReadResult()
        first_error: DeviceError | None = None
        for block in self.blocks:
            try:
                async with self._link.lock:
                    registers = await self._link.read_registers(
                        block.function, block.start, block.count, unit_id=self.unit_id, device_id=self.device_id)
            except ModbusExceptionError as exc:
                first_error = first_error or exc
                result.skipped.extend((p.metric, str(exc)) for p, _ in block.points)
                continue
            for point, offset in block.points:
                try:
                    value = modbus_value(point, registers[offset:offset + point.count],
                                         ct_ratio=self.ct_ratio, pt_ratio=self.pt_ratio)
                except RegisterDecodeError as exc:
                    result.skipped.append((point.metric, str(exc)))
                    continue
                make_reading(ts, point.metric, value, result)
        if not result.readings and first_error is not None:
            raise first_error
        return result


__all__ = ["ModbusEndpoint", "ModbusReader", "ModbusRtuEndpoint"]

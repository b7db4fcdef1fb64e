"""Modbus TCP reader (pymodbus client): one connection per gateway, requests serialised per connection.

Several meters behind one RS-485/TCP gateway share an :class:`ModbusEndpoint`; its lock keeps one
request on the half-duplex bus at a time. pymodbus' own reconnection and retries are switched off: the
agent's poll loop is the retry, so a dead meter costs one timeout per poll and never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from pymodbus import FramerType, ModbusException
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from edge.config import ModbusTcpTransport
from edge.errors import (
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    ModbusExceptionError,
    RegisterDecodeError,
)
from edge.profile import ModbusFunction, ModbusProfile, ReadBlock, plan_reads
from edge.readers.base import ReadResult, make_reading, modbus_value

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


class ModbusReader:
    """Reads one Modbus meter through a (possibly shared) :class:`ModbusEndpoint`."""

    def __init__(self, device_id: str, profile: ModbusProfile, transport: ModbusTcpTransport,
                 endpoint: ModbusEndpoint, *, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> None:
        """Plan the read blocks once; ``endpoint`` may be shared with other meters on the same gateway."""
        self.device_id = device_id
        self.profile = profile
        self.unit_id = transport.unit_id
        self.endpoint = endpoint
        self.ct_ratio, self.pt_ratio = ct_ratio, pt_ratio
        self.blocks: list[ReadBlock] = plan_reads(profile.resolved_points(),
                                                  max_registers=profile.max_registers_per_read,
                                                  max_gap=profile.max_gap_registers)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Read every block. A Modbus exception on one block skips its points; a dead link aborts the poll."""
        del read_clock  # Modbus meters in our profiles have no clock worth reading
        result = ReadResult()
        first_error: DeviceError | None = None
        for block in self.blocks:
            try:
                async with self.endpoint.lock:
                    registers = await self.endpoint.read_registers(
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


__all__ = ["ModbusEndpoint", "ModbusReader"]

"""Modbus TCP setpoint writer: function 16 writes of the profile's writable registers, then a read-back.

Order of a setpoint write: the setpoint register first, then the mode register to ``remote``, so the
device never follows a stale setpoint for an instant; then the read-back register is read and compared
with the written value within the profile's tolerance (one raw step by default). The writer shares the
reader's gateway connection and lock (edge/readers/modbus.py), so writes and polls never interleave on
one TCP connection.

Modbus exceptions 0x0A/0x0B (gateway path unavailable / target did not respond) and any connection
failure mean the device is not reachable: :class:`DeviceOfflineError`. Any other exception (e.g. 0x03
illegal data value: the device rejects the number) is a refused write: :class:`SetpointWriteError`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import Final

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge.errors import DeviceConnectionError, DeviceOfflineError, RegisterDecodeError, SetpointWriteError
from edge.profile_writable import ModeRegister, RegisterRef, WritableSection, from_raw, to_raw, unit_factor
from edge.readers.modbus import ModbusEndpoint
from edge.registers import decode_registers, encode_registers, register_count
from schemas.commands import CommandAction

_OFFLINE_EXCEPTIONS: Final = frozenset({0x0A, 0x0B})


class ModbusSetpointWriter:
    """Writes one device's setpoints through a (shared) :class:`ModbusEndpoint`."""

    def __init__(self, device_id: str, writable: WritableSection, endpoint: ModbusEndpoint, unit_id: int) -> None:
        """``endpoint`` is the reader's, so polls and writes share one connection and its lock."""
        self.device_id, self.writable, self.endpoint, self.unit_id = device_id, writable, endpoint, unit_id
        self.writes = 0

    async def apply(self, action: CommandAction, value: float) -> float:
        """Write ``value`` (command unit), switch the device to remote, return the value read back."""
        reg = self.writable.setpoints().get(action)
        if reg is None:
            raise SetpointWriteError(f"the profile has no register for {action.value}", device_id=self.device_id)
        factor = unit_factor(reg, action)
        try:
            words = encode_registers(to_raw(reg, value, action), reg.type, reg.word_order)
        except RegisterDecodeError as exc:
            raise SetpointWriteError(f"{value} does not fit the register: {exc}", device_id=self.device_id) from None
        async with self.endpoint.lock:
            client = await self._client()
            await self._write(client, reg.address, words)
            if self.writable.release is not None:
                await self._write_mode(client, self.writable.release, self.writable.release.remote)
            ref = reg.readback_ref
            raw = decode_registers(await self._read(client, ref), ref.type, ref.word_order)
        readback = from_raw(ref, raw, factor)
        if not math.isfinite(readback) or abs(readback - value) > reg.match_tolerance * factor + 1e-9:
            raise SetpointWriteError(f"wrote {value:g}, the device reads back {readback:g}", device_id=self.device_id)
        return round(readback, 6)

    async def release(self) -> None:
        """Write ``local`` to the mode register (the device returns to its own control)."""
        mode = self.writable.release
        if mode is None:
            raise SetpointWriteError("the profile has no mode register to release", device_id=self.device_id)
        async with self.endpoint.lock:
            await self._write_mode(await self._client(), mode, mode.local)

    async def _client(self) -> AsyncModbusTcpClient:
        try:
            return await self.endpoint.client(self.device_id)
        except DeviceConnectionError as exc:
            raise DeviceOfflineError(f"no Modbus connection: {exc}", device_id=self.device_id) from None

    async def _write_mode(self, client: AsyncModbusTcpClient, mode: ModeRegister, value: int) -> None:
        await self._write(client, mode.address, encode_registers(float(value), mode.type, mode.word_order))

    async def _write(self, client: AsyncModbusTcpClient, address: int, words: list[int]) -> None:
        reply = await self._call(client.write_registers(address, words, device_id=self.unit_id),
                                 f"write of registers {address}+{len(words)}")
        self.writes += 1
        self._check(reply, f"write of registers {address}+{len(words)}")

    async def _read(self, client: AsyncModbusTcpClient, ref: RegisterRef) -> list[int]:
        count = register_count(ref.type)
        reply = await self._call(client.read_holding_registers(ref.address, count=count, device_id=self.unit_id),
                                 f"read-back of register {ref.address}")
        self._check(reply, f"read-back of register {ref.address}")
        registers = list(reply.registers)
        if len(registers) != count:
            raise SetpointWriteError(f"read-back of register {ref.address}: {len(registers)} register(s), "
                                     f"expected {count}", device_id=self.device_id)
        return registers

    async def _call(self, request: Awaitable[ModbusPDU], what: str) -> ModbusPDU:
        timeout = self.endpoint.timeout_s
        try:
            async with asyncio.timeout(2 * timeout + 1.0):
                return await request
        except (TimeoutError, ConnectionException, ModbusIOException) as exc:
            self.endpoint.close()
            raise DeviceOfflineError(f"no reply to the {what}: {exc or 'timeout'}", device_id=self.device_id) from None
        except ModbusException as exc:
            self.endpoint.close()
            raise SetpointWriteError(f"{what} failed: {exc}", device_id=self.device_id) from None

    def _check(self, reply: ModbusPDU, what: str) -> None:
        if not reply.isError():
            return
        code = int(getattr(reply, "exception_code", 0))
        if code in _OFFLINE_EXCEPTIONS:
            raise DeviceOfflineError(f"{what}: gateway says the device does not answer (exception {code:#04x})",
                                     device_id=self.device_id)
        raise SetpointWriteError(f"{what}: the device refused it (Modbus exception {code:#04x})",
                                 device_id=self.device_id)


__all__ = ["ModbusSetpointWriter"]

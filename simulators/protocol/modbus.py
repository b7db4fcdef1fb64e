"""A Modbus TCP server (pymodbus) serving simulated meters through their ParkPulse profiles.

One server is one gateway: several meters (unit ids) behind one TCP port, each with its own register
map taken from an ``edge/profiles`` file. Register blocks exist exactly where the profile's read plan
reads, so a request outside them gets ILLEGAL_ADDRESS as on a real meter, and a holding-register read of
an input-register meter fails the same way.

Values are encoded at request time from :meth:`SimMeter.sample`: primary value -> the profile's unit ->
secondary value (divided by the CT/PT ratio) -> raw register (divided by the scale) -> registers in the
profile's data type and word order. An offline meter answers with exception 0x0B (gateway target did
not respond); ``garbage`` corrupts the reply bytes on the wire.

:meth:`ModbusSimServer.start_serial` serves the same meters as Modbus RTU slaves on a serial port (one
end of a ``socat`` pty pair, or a real RS-485 adapter). There an offline meter is silent, as on a real bus,
and :attr:`ModbusSimDevice.wire_fault` damages its replies: ``checksum`` (bad CRC), ``noise`` (random
bytes) or ``cut`` (the frame stops half-way), for every reply or the next ``wire_fault_replies``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Literal

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from edge.errors import RegisterDecodeError
from edge.profile import ModbusFunction, ModbusPoint, ModbusProfile, plan_reads
from edge.registers import encode_registers
from edge.serial_bus import SerialBusSettings
from simulators.protocol.assets import SetpointDevice
from simulators.protocol.physics import SimMeter
from simulators.protocol.writable import apply_write, fill_writable, writable_blocks

logger = logging.getLogger(__name__)

_DUMMY_ADDRESS = 65000  # pymodbus needs a non-empty block per table; meters never map this address


@dataclass
class ModbusSimDevice:
    """One meter behind the simulated gateway (or a device taking setpoints, simulators/protocol/assets.py)."""

    unit_id: int
    profile: ModbusProfile
    meter: SimMeter | SetpointDevice
    ct_ratio: float = 1.0
    pt_ratio: float = 1.0
    #: Serial only: damage replies on the wire (bad CRC, random bytes, a frame cut off half-way).
    wire_fault: Literal["checksum", "noise", "cut"] | None = None
    #: With ``wire_fault``: damage only the next n replies (None: every reply).
    wire_fault_replies: int | None = None

    def damage(self, frame: bytes) -> bytes:
        """An RTU reply frame as it leaves this meter, after :attr:`wire_fault` (if any applies)."""
        if self.wire_fault is None or self.wire_fault_replies == 0:
            return frame
        if self.wire_fault_replies is not None:
            self.wire_fault_replies -= 1
        if self.wire_fault == "noise":
            return bytes(random.getrandbits(8) for _ in frame)
        if self.wire_fault == "cut":
            return frame[:len(frame) // 2]
        return frame[:-1] + bytes([frame[-1] ^ 0xFF])


def raw_register_values(point: ModbusPoint, primary: float, *, ct_ratio: float, pt_ratio: float) -> list[int]:
    """Registers a meter shows for ``primary`` (canonical unit) at ``point`` (inverse of the agent)."""
    raw = primary / point.unit_factor / point.scaling.factor(ct_ratio, pt_ratio) / point.scale
    try:
        return encode_registers(raw, point.type, point.word_order)
    except RegisterDecodeError:
        return [0xFFFF] * point.count  # out of range for the register type: what many meters show


class ModbusSimServer:
    """A pymodbus TCP server on ``host:port`` for the given meters (start with :meth:`start`)."""

    def __init__(self, devices: list[ModbusSimDevice], *, host: str = "127.0.0.1", port: int = 5020,
                 framer: str = "socket") -> None:
        """Build the register tables; nothing listens until :meth:`start`.

        ``framer="rtu"`` speaks Modbus RTU frames (with CRC) over the TCP connection, like a transparent
        RS-485 converter in front of RTU meters.
        """
        if not devices:
            raise ValueError("a Modbus server needs at least one device")
        self.host, self.port, self.framer = host, port, framer
        self.devices = {d.unit_id: d for d in devices}
        self.requests = 0
        self._sim_devices = [self._sim_device(d) for d in devices]
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    def _sim_device(self, device: ModbusSimDevice) -> SimDevice:
        points = device.profile.resolved_points()
        blocks = plan_reads(points, max_registers=device.profile.max_registers_per_read,
                            max_gap=device.profile.max_gap_registers)
        tables: dict[ModbusFunction, list[SimData]] = {ModbusFunction.HOLDING: [], ModbusFunction.INPUT: []}
        for block in blocks:
            tables[block.function].append(
                SimData(block.start, count=block.count, values=0, datatype=SimDataType.REGISTERS))
        writable = device.profile.writable if not isinstance(device.meter, SimMeter) else None
        if writable is not None:  # setpoint registers a device with a writable profile serves besides its points
            served = {a for b in blocks if b.function is ModbusFunction.HOLDING
                      for a in range(b.start, b.start + b.count)}
            for start, count in writable_blocks(writable):
                free = [a for a in range(start, start + count) if a not in served]
                if len(free) == count:
                    tables[ModbusFunction.HOLDING].append(
                        SimData(start, count=count, values=0, datatype=SimDataType.REGISTERS))
                    served.update(free)
        for table in tables.values():
            if not table:
                table.append(SimData(_DUMMY_ADDRESS, values=0, datatype=SimDataType.REGISTERS))
        bits = [SimData(0, values=[False] * 16, datatype=SimDataType.BITS)]
        by_function = {f: [p for p in points if p.function is f] for f in ModbusFunction}

        async def action(  # noqa: PLR0917 - positional signature fixed by pymodbus' SimAction
            function_code: int, start_address: int, address: int, count: int,
            registers: list[int], set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            del count
            self.requests += 1
            if device.meter.faults.offline:
                return ExcCodes.GATEWAY_NO_RESPONSE
            meter = device.meter
            if set_values is not None:
                if writable is None or isinstance(meter, SimMeter):
                    return ExcCodes.ILLEGAL_FUNCTION  # simulated meters are read-only
                return apply_write(writable, meter, address, [int(v) for v in set_values])
            function = ModbusFunction.INPUT if function_code == 0x04 else ModbusFunction.HOLDING
            values = meter.sample()
            if writable is not None and not isinstance(meter, SimMeter) and function is ModbusFunction.HOLDING:
                fill_writable(writable, meter, start_address, registers)
            for point in by_function[function]:
                if point.metric not in values:
                    continue
                regs = raw_register_values(point, values[point.metric],
                                           ct_ratio=device.ct_ratio, pt_ratio=device.pt_ratio)
                offset = point.address - start_address
                registers[offset:offset + len(regs)] = regs
            return None

        return SimDevice(
            id=device.unit_id,
            simdata=(bits, list(bits), tables[ModbusFunction.HOLDING], tables[ModbusFunction.INPUT]),
            action=action,
        )

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Corrupt replies of meters with the ``garbage`` fault (unit id: MBAP byte 6, RTU byte 0)."""
        if not sending or len(data) < 8:
            return data
        device = self.devices.get(data[0] if self.framer == "rtu" else data[6])
        if device is None or device.meter.faults.garbage is None:
            return data
        if device.meter.faults.garbage == "noise":
            return bytes(random.getrandbits(8) for _ in data)
        return data[:7] + bytes([data[7] ^ 0x80 | 0x40]) + data[8:]  # not a valid function code

    def _trace_rtu(self, sending: bool, data: bytes) -> bytes:
        """Serial replies: silence for offline meters, then the ``garbage`` and ``wire_fault`` damage."""
        if not sending or not data:
            return data
        device = self.devices.get(data[0])
        if device is None or device.meter.faults.offline:
            return b""  # nobody at that address, or a dead meter: on RS-485 that is silence
        if device.meter.faults.garbage == "noise":
            data = bytes(random.getrandbits(8) for _ in data)
        elif device.meter.faults.garbage == "checksum":
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        return device.damage(data)

    async def start_serial(self, line: SerialBusSettings) -> None:
        """Serve the meters as Modbus RTU slaves on the serial port ``line.port`` (in the background)."""
        self._server = ModbusSerialServer(
            self._sim_devices, framer=FramerType.RTU, port=line.port, baudrate=line.baudrate,
            bytesize=line.bytesize, parity=line.parity, stopbits=line.stopbits, trace_packet=self._trace_rtu,
        )
        await self._server.serve_forever(background=True)
        logger.info("Modbus RTU simulator on serial %s (%s) serving units %s", line.port, line.line,
                    sorted(self.devices))

    async def start(self) -> None:
        """Listen in the background of the running event loop."""
        self._server = ModbusTcpServer(
            self._sim_devices, address=(self.host, self.port), trace_packet=self._trace_packet,
            framer=FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET,
        )
        await self._server.serve_forever(background=True)
        logger.info("Modbus simulator on %s:%d serving units %s", self.host, self.port, sorted(self.devices))

    async def stop(self) -> None:
        """Close the listener and every client connection."""
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None


__all__ = ["ModbusSimDevice", "ModbusSimServer", "raw_register_values"]

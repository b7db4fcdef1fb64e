"""The writable registers of a simulated device: where the profile's ``writable:`` section meets the model.

:func:`writable_blocks` gives the register ranges the simulator must serve besides the read plan;
:func:`fill_writable` shows the model's mode and setpoints (and their read-backs) in a read reply;
:func:`apply_write` turns a function 06/16 write into a model call, answering as a real controller:
ILLEGAL_ADDRESS for a write that does not cover exactly one writable value (or hits a read-back),
ILLEGAL_DATA_VALUE for a value outside the device's own limits or a mode value it does not know.
"""

from __future__ import annotations

from pymodbus.constants import ExcCodes

from edge.errors import RegisterDecodeError
from edge.profile_writable import ModeRegister, RegisterRef, WritableSection, from_raw, to_raw, unit_factor
from edge.registers import decode_registers, encode_registers
from schemas.commands import CommandAction
from simulators.protocol.assets import SetpointDevice


def writable_blocks(writable: WritableSection) -> list[tuple[int, int]]:
    """``(start, count)`` of every register range the section names (setpoints, read-backs, mode)."""
    return [(ref.span.start, len(ref.span)) for ref in writable.register_refs()]


def _put(registers: list[int], start_address: int, span: range, words: list[int]) -> None:
    offset = span.start - start_address
    if offset < 0 or offset + len(words) > len(registers):
        return  # this block does not hold the value
    registers[offset:offset + len(words)] = words


def _encode(ref: RegisterRef | ModeRegister, raw: float) -> list[int]:
    try:
        return encode_registers(raw, ref.type, ref.word_order)
    except RegisterDecodeError:
        return [0xFFFF] * len(ref.span)


def fill_writable(writable: WritableSection, device: SetpointDevice, start_address: int, registers: list[int]) -> None:
    """Write the device's mode and setpoints (in force) into a read reply's ``registers``."""
    mode = writable.release
    if mode is not None:
        _put(registers, start_address, mode.span, _encode(mode, float(mode.remote if device.remote else mode.local)))
    for action, reg in writable.setpoints().items():
        value = device.setpoint(action)
        for ref in (reg, reg.readback_ref):
            raw = value / unit_factor(reg, action) / ref.scale
            _put(registers, start_address, ref.span, _encode(ref, round(raw)))


def apply_write(writable: WritableSection, device: SetpointDevice, address: int,
                values: list[int]) -> ExcCodes | None:
    """Apply a register write to the device; returns the Modbus exception to answer, or None (accepted)."""
    span = range(address, address + len(values))
    mode = writable.release
    if mode is not None and span == mode.span:
        raw = int(decode_registers(values, mode.type, mode.word_order))
        if raw not in (mode.remote, mode.local):
            return ExcCodes.ILLEGAL_VALUE
        device.set_remote(raw == mode.remote)
        return None
    for action, reg in writable.setpoints().items():
        if span != reg.span:
            continue
        value = from_raw(reg, decode_registers(values, reg.type, reg.word_order), unit_factor(reg, action))
        if not reg.minimum - 1e-9 <= value <= reg.maximum + 1e-9:
            return ExcCodes.ILLEGAL_VALUE
        device.apply(action, value)
        return None
    return ExcCodes.ILLEGAL_ADDRESS


def setpoint_raw(writable: WritableSection, action: CommandAction, value: float) -> float:
    """The raw register number a controller holds for ``value`` (tests and tools)."""
    return to_raw(writable.setpoints()[action], value, action)


__all__ = ["apply_write", "fill_writable", "setpoint_raw", "writable_blocks"]

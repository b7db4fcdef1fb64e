"""Modbus register decoding: data types, word orders, scaling. Pure functions, no I/O.

Modbus fixes the byte order inside one 16-bit register (big-endian) but not the order of the registers
that make up a 32- or 64-bit value (domain.md §7.3). With the value's bytes named A B C D (A most
significant), meters use:

========  ==================  ===========================================
order     registers on wire   used by
========  ==================  ===========================================
ABCD      [AB, CD]            Eastron SDM, CHINT DTSU666 (big-endian)
CDAB      [CD, AB]            many Schneider/Janitza models (word swap)
BADC      [BA, DC]            rare (byte swap)
DCBA      [DC, BA]            little-endian devices
========  ==================  ===========================================

The same rule extends to 64-bit values (four registers): CDAB/DCBA reverse the register order, BADC/DCBA
swap the bytes inside each register.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum
from typing import Final

from edge.errors import RegisterDecodeError


class DataType(StrEnum):
    """How a value is stored in one or more registers."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT64 = "float64"


class WordOrder(StrEnum):
    """Register (word) and byte order of multi-register values; see the module docstring."""

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


_STRUCT: Final[dict[DataType, tuple[str, int]]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.FLOAT32: ("f", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT64: ("d", 4),
}


def register_count(data_type: DataType) -> int:
    """Number of 16-bit registers a value of ``data_type`` occupies."""
    return _STRUCT[data_type][1]


def _reorder(registers: Sequence[int], word_order: WordOrder) -> list[int]:
    """Map registers between wire order and big-endian (ABCD) order; the mapping is its own inverse."""
    regs = list(registers)
    if word_order in (WordOrder.CDAB, WordOrder.DCBA):
        regs.reverse()
    if word_order in (WordOrder.BADC, WordOrder.DCBA):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def decode_registers(registers: Sequence[int], data_type: DataType, word_order: WordOrder) -> float:
    """Decode the registers of one value (exactly :func:`register_count` of them) into a number.

    Raises :class:`RegisterDecodeError` on a wrong register count or a register outside 0..65535.
    Integer types come back as exact Python ints; float types may be NaN or infinite (the caller decides
    what a non-finite reading means, it never stops the agent).
    """
    fmt, count = _STRUCT[data_type]
    if len(registers) != count:
        raise RegisterDecodeError(f"{data_type} needs {count} register(s), got {len(registers)}")
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise RegisterDecodeError(f"register value outside 0..65535 in {list(registers)}")
    raw = b"".join(r.to_bytes(2, "big") for r in _reorder(registers, word_order))
    value: float = struct.unpack(">" + fmt, raw)[0]
    return value


def encode_registers(value: float, data_type: DataType, word_order: WordOrder) -> list[int]:
    """Inverse of :func:`decode_registers` (used by the protocol simulators and tests).

    Integer types are rounded to the nearest integer; raises :class:`RegisterDecodeError` when the value
    does not fit the type.
    """
    fmt, count = _STRUCT[data_type]
    number: float = value if fmt in ("f", "d") else round(value)
    try:
        raw = struct.pack(">" + fmt, number)
    except (struct.error, OverflowError) as exc:
        raise RegisterDecodeError(f"{value} does not fit {data_type}: {exc}") from None
    regs = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, 2 * count, 2)]
    return _reorder(regs, word_order)


def wrap_max(data_type: DataType, scale: float) -> float | None:
    """Largest value an unsigned/integer register can show after scaling (rollover point), if finite.

    Float registers do not wrap, so they return None. ``uint32`` with scale 0.01 gives 42949672.95.
    """
    if data_type in (DataType.FLOAT32, DataType.FLOAT64):
        return None
    bits = 16 * register_count(data_type)
    top: int = 2**bits - 1 if data_type.startswith("uint") else 2 ** (bits - 1) - 1
    return float(top * scale)


def float32_display(value: float) -> float:
    """The shortest decimal that is the same float32 (``230.07627868652344`` -> ``230.07628``).

    A FLOAT32 register holds about 7 significant digits; printing its exact double expansion adds
    digits the meter never measured and bloats every payload.
    """
    if not math.isfinite(value):
        return value
    target = struct.pack(">f", value)
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack(">f", candidate) == target:
            return candidate
    return value


def is_finite(value: float) -> bool:
    """True for numbers a reading may carry (the payload schema forbids NaN and infinities)."""
    return math.isfinite(value)


__all__ = [
    "DataType",
    "WordOrder",
    "decode_registers",
    "encode_registers",
    "float32_display",
    "is_finite",
    "register_count",
    "wrap_max",
]

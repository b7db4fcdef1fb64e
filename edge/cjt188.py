"""CJ/T 188 frames (2004 and 2018) for water, gas and heat meters: the link layer, pure functions, no I/O.

A frame on the wire (RS-485 or M-Bus, often tunnelled through a transparent serial-to-TCP server)::

    [FE FE FE FE]  68  T  A0 A1 A2 A3 A4 A5 A6  C  L  D0 .. D(L-1)  CS  16

* ``FE`` bytes wake the meter up; receivers skip any number of them.
* ``T`` is the meter type: 10H-19H water (10H cold, 11H domestic hot, 12H drinking, 13H reclaimed),
  20H-29H heat meters (20H heat, 21H cooling, 22H heat and cooling since 2018), 30H-39H gas, 40H custom.
* The address is 7 bytes (14 digits, usually BCD, the last two bytes often a manufacturer code) sent
  **low byte first**: ``00000011223344`` travels as ``44 33 22 11 00 00 00``. ``AA`` x 7 is the broadcast
  address (with ``T = AAH``) used to discover a meter.
* ``C`` is the control code: ``01H`` read data, ``81H`` its normal reply, ``C1H`` (D6 set) an error reply;
  ``03H``/``83H`` read address. ``L`` is the data length. Unlike DL/T 645, data bytes are sent as they are
  (no +33H).
* The data of a read starts with the data identifier (``DI``, two bytes) and a sequence number ``SER``;
  ``901FH`` reads the meter's current data (decoded by :mod:`edge.cjt188_data`).
* ``CS`` is the sum of every byte from ``68`` to the last data byte, modulo 256.

Where the two versions differ (what this codec knows; the security-mode frames of 2018 are not supported):

* **DI byte order.** CJ/T 188-2018 sends the identifier low byte first (``1F 90``), CJ/T 188-2004 high
  byte first (``90 1F``). Meters in the field do both whatever they claim, so requests use the version's
  order (a profile may override it with ``di_order``) and replies are accepted in either order.
* **Meter type 22H** (heat and cooling) exists only in 2018.
* **Data records**: see :mod:`edge.cjt188_data`.

Every malformed input raises a :class:`edge.errors.FrameError` subclass naming what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final, Literal

from edge.errors import ChecksumError, FrameEndError, FrameError, FrameSyncError, IncompleteFrameError

PREAMBLE: Final = b"\xfe\xfe\xfe\xfe"
START: Final = 0x68
END: Final = 0x16
_HEADER_LEN: Final = 11  # 68 T A0..A6 C L
BROADCAST_ADDRESS: Final = "AAAAAAAAAAAAAA"
BROADCAST_TYPE: Final = 0xAA
DI_CURRENT_DATA: Final = 0x901F
DI_READ_ADDRESS: Final = 0x810A
_ADDRESS_RE: Final = re.compile(r"^[0-9A-F]{14}$")


class Version(StrEnum):
    """The edition of CJ/T 188 a meter speaks."""

    V2004 = "2004"
    V2018 = "2018"


class DiOrder(StrEnum):
    """Byte order of the data identifier on the wire."""

    HIGH_FIRST = "high_first"  # 90 1F: CJ/T 188-2004
    LOW_FIRST = "low_first"    # 1F 90: CJ/T 188-2018


DEFAULT_DI_ORDER: Final = {Version.V2004: DiOrder.HIGH_FIRST, Version.V2018: DiOrder.LOW_FIRST}


class MeterType(IntEnum):
    """Meter type byte ``T`` (the standard codes; a range's other values are manufacturer variants)."""

    COLD_WATER = 0x10
    HOT_WATER = 0x11
    DRINKING_WATER = 0x12
    RECLAIMED_WATER = 0x13
    HEAT = 0x20
    COOLING = 0x21
    HEAT_AND_COOLING = 0x22
    GAS = 0x30
    CUSTOM = 0x40


Family = Literal["water", "heat", "gas", "other"]


def meter_family(meter_type: int) -> Family:
    """``water`` for 10H-19H, ``heat`` for 20H-29H (heat and cooling meters), ``gas`` for 30H-39H."""
    if 0x10 <= meter_type <= 0x19:
        return "water"
    if 0x20 <= meter_type <= 0x29:
        return "heat"
    if 0x30 <= meter_type <= 0x39:
        return "gas"
    return "other"


class Control(IntEnum):
    """Control codes: D7 = 1 for a meter's reply, D6 = 1 for an error reply."""

    READ_DATA = 0x01
    READ_ADDRESS = 0x03
    REPLY_DATA = 0x81
    REPLY_ADDRESS = 0x83
    ERROR_DATA = 0xC1


class Cjt188ReplyError(FrameError):
    """The meter answered with an error reply (control D6 set, e.g. ``C1H``).

    ``data`` is the error reply's data field (usually ``SER ST1 ST2``). Belongs under
    :class:`edge.errors.FrameError`; kept here until ``edge/errors.py`` lists it.
    """

    def __init__(self, control: int, data: bytes, *, device_id: str | None = None) -> None:
        super().__init__(f"meter sent error reply {control:#04x} (data {data.hex(' ') or 'none'}); check that the "
                         f"profile's meter type and the address match the meter and that it supports the read",
                         device_id=device_id)
        self.control = control
        self.data = data


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: meter type, address (14 digits, most significant first), control code, data."""

    meter_type: int
    address: str
    control: int
    data: bytes

    @property
    def is_reply(self) -> bool:
        """True for frames sent by a meter (D7 = 1)."""
        return bool(self.control & 0x80)

    @property
    def is_error(self) -> bool:
        """True for error replies (D6 = 1)."""
        return bool(self.control & 0x40)

    @property
    def function(self) -> int:
        """The function bits D5..D0 (``01H`` for read data)."""
        return self.control & 0x3F


def checksum(frame_bytes: bytes) -> int:
    """CS of a frame: the sum of ``frame_bytes`` (``68`` up to, excluding, CS) modulo 256."""
    return sum(frame_bytes) & 0xFF


def normalise_address(address: str) -> str:
    """Upper-case 14 hex digits, or ValueError naming what is wrong."""
    text = address.strip().upper()
    if not _ADDRESS_RE.match(text):
        raise ValueError(f"CJ/T 188 address must be 14 digits A6..A0 as printed on the meter (hex digits allowed "
                         f"for manufacturer codes), got {address!r}")
    return text


def address_to_bytes(address: str) -> bytes:
    """``"00000011223344"`` -> ``44 33 22 11 00 00 00`` (low byte first)."""
    return bytes.fromhex(normalise_address(address))[::-1]


def address_from_bytes(raw: bytes) -> str:
    """Inverse of :func:`address_to_bytes`."""
    if len(raw) != 7:
        raise FrameSyncError(f"address needs 7 bytes, got {len(raw)}")
    return raw[::-1].hex().upper()


def di_to_bytes(di: int, order: DiOrder) -> bytes:
    """Data identifier -> its two bytes in transmission order."""
    if not 0 <= di <= 0xFFFF:
        raise ValueError(f"data identifier out of range: {di:#x}")
    return di.to_bytes(2, "big" if order is DiOrder.HIGH_FIRST else "little")


def encode_frame(meter_type: int, address: str, control: int, data: bytes = b"", *, preamble: bool = True) -> bytes:
    """Build a frame: header, data, checksum, end marker (with the ``FE`` x 4 wake-up preamble)."""
    if not 0 <= meter_type <= 0xFF:
        raise ValueError(f"meter type must be one byte, got {meter_type:#x}")
    if len(data) > 255:
        raise ValueError(f"data too long for one frame: {len(data)} bytes")
    body = bytes([START, meter_type, *address_to_bytes(address), control & 0xFF, len(data)]) + data
    return (PREAMBLE if preamble else b"") + body + bytes([checksum(body), END])


def encode_read_request(meter_type: int, address: str, *, order: DiOrder, di: int = DI_CURRENT_DATA, ser: int = 0,
                        preamble: bool = True) -> bytes:
    """The master's ``01H`` read of ``di`` (current data by default) from one meter."""
    return encode_frame(meter_type, address, Control.READ_DATA, di_to_bytes(di, order) + bytes([ser & 0xFF]),
                        preamble=preamble)


def encode_read_address_request(*, order: DiOrder, ser: int = 0) -> bytes:
    """The broadcast ``03H`` read-address request (DI ``810AH``): the only meter on the line answers."""
    return encode_frame(BROADCAST_TYPE, BROADCAST_ADDRESS, Control.READ_ADDRESS,
                        di_to_bytes(DI_READ_ADDRESS, order) + bytes([ser & 0xFF]))


def decode_frame(buf: bytes) -> tuple[Frame, int]:
    """Decode the frame at the start of ``buf`` (after any ``FE`` bytes).

    Returns the frame and the number of bytes it used, preamble included. Raises
    :class:`IncompleteFrameError` when ``buf`` is a valid beginning that needs more bytes,
    :class:`FrameSyncError` when it does not start with ``68``, :class:`ChecksumError` and
    :class:`FrameEndError` for corrupt complete frames.
    """
    pos = 0
    while pos < len(buf) and buf[pos] == 0xFE:
        pos += 1
    if pos == len(buf):
        raise IncompleteFrameError(_HEADER_LEN + 2)
    if buf[pos] != START:
        raise FrameSyncError(f"expected start byte 68H at offset {pos}, got {buf[pos]:#04x}")
    available = len(buf) - pos
    if available < _HEADER_LEN:
        raise IncompleteFrameError(_HEADER_LEN + 2 - available)
    length = buf[pos + 10]
    total = _HEADER_LEN + length + 2
    if available < total:
        raise IncompleteFrameError(total - available)
    body = buf[pos:pos + _HEADER_LEN + length]
    found = buf[pos + _HEADER_LEN + length]
    expected = checksum(body)
    if found != expected:
        raise ChecksumError(expected, found)
    if buf[pos + total - 1] != END:
        raise FrameEndError(f"expected end byte 16H, got {buf[pos + total - 1]:#04x}")
    frame = Frame(meter_type=body[1], address=address_from_bytes(body[2:9]), control=body[9],
                  data=bytes(body[_HEADER_LEN:]))
    return frame, pos + total


def scan_frame(buf: bytes) -> tuple[Frame | None, int]:
    """Find the first frame in a byte stream that may start with noise.

    Returns ``(frame, consumed)``: the frame (or None if none is complete yet) and how many bytes of ``buf``
    the caller may drop. Bytes that cannot start a frame are skipped; a complete frame with a wrong checksum
    or end byte raises (:class:`ChecksumError`, :class:`FrameEndError`) so the caller fails fast.
    """
    start = 0
    while True:
        pos = buf.find(START, start)
        if pos < 0:
            return None, len(buf)
        try:
            frame, used = decode_frame(buf[pos:])
        except IncompleteFrameError:
            return None, pos
        except FrameSyncError:
            start = pos + 1
            continue
        return frame, pos + used


__all__ = [
    "BROADCAST_ADDRESS",
    "BROADCAST_TYPE",
    "DEFAULT_DI_ORDER",
    "DI_CURRENT_DATA",
    "DI_READ_ADDRESS",
    "PREAMBLE",
    "Cjt188ReplyError",
    "Control",
    "DiOrder",
    "Frame",
    "MeterType",
    "Version",
    "address_from_bytes",
    "address_to_bytes",
    "checksum",
    "decode_frame",
    "di_to_bytes",
    "encode_frame",
    "encode_read_address_request",
    "encode_read_request",
    "meter_family",
    "normalise_address",
    "scan_frame",
]

"""DL/T 645-2007 frame codec: pure functions, no I/O.

A frame on the wire (domain.md §7.2)::

    [FE FE FE FE]  68  A0 A1 A2 A3 A4 A5  68  C  L  D0 .. D(L-1)  CS  16

* ``FE`` x 4 is the optional wake-up preamble; receivers skip any number of ``FE``.
* The address is 12 BCD digits sent **low byte first** (``000000000161`` -> ``61 01 00 00 00 00``).
* ``C`` is the control code (``11H`` read, ``91H`` normal reply, ``B1H`` reply with follow-up frames,
  ``D1H`` abnormal reply), ``L`` the data length (read replies <= 200).
* Every data byte is sent **+33H** (mod 256) and restored **-33H** on receipt.
* ``CS`` is the sum of all bytes from the first ``68`` to the byte before ``CS``, modulo 256.

Data identifiers (DI3 DI2 DI1 DI0) are written here as one integer ``0xDI3DI2DI1DI0`` (``0x00010000`` is
forward active total energy) and sent DI0 first. Values are little-endian packed BCD with a fixed number of
decimals; signed quantities use bit 7 of the most significant byte as the sign.

Decoding raises the precise :mod:`edge.errors` subclass for each way a frame can be wrong, so the agent can
tell a partial read (wait for more bytes) from garbage (skip) from a corrupt frame (retry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from typing import Final

from edge.errors import (
    BcdError,
    ChecksumError,
    FrameEndError,
    FrameError,
    FrameSyncError,
    IncompleteFrameError,
    MeterReplyError,
    UnexpectedReplyError,
)

PREAMBLE: Final = b"\xfe\xfe\xfe\xfe"
START: Final = 0x68
END: Final = 0x16
DATA_OFFSET: Final = 0x33
MAX_DATA_LENGTH: Final = 200
_HEADER_LEN: Final = 10  # 68 + 6 address bytes + 68 + C + L
BROADCAST_ADDRESS: Final = "999999999999"
#: Every address nibble a wildcard: the meter (alone on the line) answers whatever its address. Used by the
#: address query (13H) and by reads of a meter whose address is unknown.
WILDCARD_ADDRESS: Final = "AAAAAAAAAAAA"
_ADDRESS_RE: Final = re.compile(r"^(?:[0-9]{2}|AA){6}$")


class Control(IntEnum):
    """Control codes used by the agent and the simulator (D7 direction, D6 abnormal, D5 follow-up)."""

    READ_DATA = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    BROADCAST_TIME = 0x08
    REPLY_READ = 0x91
    REPLY_READ_MORE = 0xB1
    REPLY_READ_ERROR = 0xD1
    REPLY_ADDRESS = 0x93


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: meter address (12 digits, most significant first), control code, plain data."""

    address: str
    control: int
    data: bytes

    @property
    def is_reply(self) -> bool:
        """True for frames sent by a meter (D7 = 1)."""
        return bool(self.control & 0x80)

    @property
    def is_error(self) -> bool:
        """True for abnormal replies (D6 = 1)."""
        return bool(self.control & 0x40)

    @property
    def has_follow_up(self) -> bool:
        """True when the meter has more frames for this request (D5 = 1)."""
        return bool(self.control & 0x20)

    @property
    def function(self) -> int:
        """The function bits D4..D0 (``0x11`` for read data)."""
        return self.control & 0x1F


def checksum(frame_bytes: bytes) -> int:
    """CS of a frame: the sum of ``frame_bytes`` (first ``68`` up to, excluding, CS) modulo 256."""
    return sum(frame_bytes) & 0xFF


def address_to_bytes(address: str) -> bytes:
    """``"000000000161"`` -> ``61 01 00 00 00 00`` (BCD, low byte first); ``AA`` pairs are wildcards."""
    if not _ADDRESS_RE.match(address):
        raise ValueError(f"DL/T 645 address must be 12 BCD digits (AA = wildcard), got {address!r}")
    pairs = [address[i:i + 2] for i in range(0, 12, 2)]
    return bytes(0xAA if pair == "AA" else int(pair, 16) for pair in reversed(pairs))


def address_from_bytes(raw: bytes) -> str:
    """Inverse of :func:`address_to_bytes`; raises :class:`BcdError` on a non-BCD byte."""
    if len(raw) != 6:
        raise FrameSyncError(f"address needs 6 bytes, got {len(raw)}")
    out = []
    for byte in reversed(raw):
        if byte == 0xAA:
            out.append("AA")
            continue
        if byte >> 4 > 9 or byte & 0x0F > 9:
            raise BcdError(f"address byte {byte:#04x} is not BCD")
        out.append(f"{byte:02x}")
    return "".join(out)


def di_to_bytes(di: int) -> bytes:
    """Data identifier ``0xDI3DI2DI1DI0`` -> plain bytes in transmission order (DI0 first)."""
    if not 0 <= di <= 0xFFFFFFFF:
        raise ValueError(f"data identifier out of range: {di:#x}")
    return di.to_bytes(4, "little")


def di_from_bytes(raw: bytes) -> int:
    """Plain DI bytes in transmission order (DI0 first) -> ``0xDI3DI2DI1DI0``."""
    return int.from_bytes(raw[:4], "little")


def encode_frame(address: str, control: int, data: bytes = b"", *, preamble: bool = True) -> bytes:
    """Build a frame: header, data bytes +33H, checksum, end marker (with the ``FE`` x 4 preamble)."""
    if len(data) > 255:
        raise ValueError(f"data too long for one frame: {len(data)} bytes")
    body = bytes([START, *address_to_bytes(address), START, control & 0xFF, len(data)])
    body += bytes((b + DATA_OFFSET) & 0xFF for b in data)
    return (PREAMBLE if preamble else b"") + body + bytes([checksum(body), END])


def encode_read_request(address: str, di: int, *, preamble: bool = True) -> bytes:
    """The master's ``11H`` read-data request for data identifier ``di`` from meter ``address``."""
    return encode_frame(address, Control.READ_DATA, di_to_bytes(di), preamble=preamble)


def encode_read_reply(address: str, di: int, value: bytes, *, preamble: bool = False) -> bytes:
    """A meter's normal ``91H`` reply carrying ``value`` (plain bytes) for ``di``; used by simulators."""
    return encode_frame(address, Control.REPLY_READ, di_to_bytes(di) + value, preamble=preamble)


def encode_error_reply(address: str, error_byte: int, *, preamble: bool = False) -> bytes:
    """A meter's abnormal ``D1H`` reply with one error byte; used by simulators."""
    return encode_frame(address, Control.REPLY_READ_ERROR, bytes([error_byte]), preamble=preamble)


def encode_address_query(*, preamble: bool = True) -> bytes:
    """The master's ``13H`` read-address request, sent to the wildcard address ``AAAAAAAAAAAA``.

    Only one meter may be on the line when this is sent (every meter answers, so several would collide).
    """
    return encode_frame(WILDCARD_ADDRESS, Control.READ_ADDRESS, b"", preamble=preamble)


def encode_address_reply(address: str, *, preamble: bool = False) -> bytes:
    """A meter's ``93H`` answer to the address query: its address in the header and, again, as data."""
    return encode_frame(address, Control.REPLY_ADDRESS, address_to_bytes(address), preamble=preamble)


def address_reply_value(frame: Frame) -> str:
    """The meter address an ``93H`` frame announces; raises :class:`UnexpectedReplyError` for other frames.

    The data field (6 bytes, BCD low byte first) is authoritative; a wildcard header is tolerated.
    """
    if frame.control != Control.REPLY_ADDRESS:
        raise UnexpectedReplyError(f"control {frame.control:#04x} is not an address reply (93H)")
    if len(frame.data) != 6:
        raise UnexpectedReplyError(f"address reply carries {len(frame.data)} data bytes, expected 6")
    address = address_from_bytes(frame.data)
    if "AA" in address:
        raise UnexpectedReplyError(f"address reply announces wildcard digits: {address}")
    return address


def decode_frame(buf: bytes) -> tuple[Frame, int]:
    """Decode the frame at the start of ``buf`` (after any ``FE`` bytes).

    Returns the frame and the number of bytes it used, preamble included. Raises
    :class:`IncompleteFrameError` when ``buf`` is a valid beginning that needs more bytes,
    :class:`FrameSyncError` when it does not start like a frame, :class:`ChecksumError` and
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
        if available > 7 and buf[pos + 7] != START:
            raise FrameSyncError(f"expected second 68H at offset {pos + 7}, got {buf[pos + 7]:#04x}")
        raise IncompleteFrameError(_HEADER_LEN + 2 - available)
    if buf[pos + 7] != START:
        raise FrameSyncError(f"expected second 68H at offset {pos + 7}, got {buf[pos + 7]:#04x}")
    length = buf[pos + 9]
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
    address = address_from_bytes(body[1:7])
    data = bytes((b - DATA_OFFSET) & 0xFF for b in body[_HEADER_LEN:])
    return Frame(address=address, control=body[8], data=data), pos + total


def scan_frame(buf: bytes) -> tuple[Frame | None, int]:
    """Find the first frame in a byte stream that may start with noise.

    Returns ``(frame, consumed)``: the frame (or None if none is complete yet) and how many bytes of
    ``buf`` the caller may drop. Bytes that cannot start a frame are skipped; a corrupt complete frame
    raises (:class:`ChecksumError`, :class:`FrameEndError`, :class:`BcdError`) so the caller fails fast.
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


def read_reply_value(frame: Frame, *, address: str, di: int) -> bytes:
    """Check that ``frame`` answers our read of ``di`` from ``address`` and return the value bytes.

    Raises :class:`MeterReplyError` for a ``D1H`` answer and :class:`UnexpectedReplyError` for a frame
    from another meter, for another identifier or with another control code (a stale or duplicated reply
    on a shared bus).
    """
    if address not in (frame.address, BROADCAST_ADDRESS) and "AA" not in address:
        raise UnexpectedReplyError(f"reply from meter {frame.address}, expected {address}")
    if frame.control == Control.REPLY_READ_ERROR:
        raise MeterReplyError(frame.data[0] if frame.data else 0)
    if frame.control not in (Control.REPLY_READ, Control.REPLY_READ_MORE):
        raise UnexpectedReplyError(f"control {frame.control:#04x} is not a read reply")
    if len(frame.data) < 4:
        raise UnexpectedReplyError(f"read reply carries {len(frame.data)} data bytes, fewer than the DI")
    got = di_from_bytes(frame.data)
    if got != di:
        raise UnexpectedReplyError(f"reply for DI {got:08X}, expected {di:08X}")
    return frame.data[4:]


def decode_bcd(raw: bytes, *, decimals: int, signed: bool = False) -> float:
    """Little-endian packed BCD -> number with ``decimals`` digits after the point.

    With ``signed``, bit 7 of the most significant (last) byte is the sign, as DL/T 645 uses for
    currents and powers. ``26 00 00 00`` with 2 decimals is 0.26.
    """
    if not raw:
        raise BcdError("no value bytes")
    digits = bytearray(raw)
    negative = False
    if signed:
        negative = bool(digits[-1] & 0x80)
        digits[-1] &= 0x7F
    number = 0
    for byte in reversed(digits):
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            raise BcdError(f"value byte {byte:#04x} is not BCD")
        number = number * 100 + high * 10 + low
    value = float(number) / float(10**decimals)
    return -value if negative else value


def encode_bcd(value: float, *, n_bytes: int, decimals: int, signed: bool = False) -> bytes:
    """Inverse of :func:`decode_bcd`; raises ValueError when ``value`` does not fit the digits."""
    scaled = round(abs(value) * 10**decimals)
    if scaled >= _bcd_capacity(n_bytes, signed):
        raise ValueError(f"{value} does not fit {n_bytes} BCD bytes with {decimals} decimals")
    out = bytearray()
    for _ in range(n_bytes):
        scaled, pair = divmod(scaled, 100)
        out.append((pair // 10) << 4 | pair % 10)
    if signed and value < 0:
        out[-1] |= 0x80
    return bytes(out)


def _bcd_capacity(n_bytes: int, signed: bool) -> int:
    """Number of distinct magnitudes: 10^(2n), or 8 x 10^(2n-1) when bit 7 of the top byte is the sign."""
    digits: int = 2 * n_bytes
    return int(8 * 10 ** (digits - 1)) if signed else int(10**digits)


def register_max(*, n_bytes: int, decimals: int, signed: bool = False) -> float:
    """Largest value a BCD register can show (999999.99 for 4 bytes with 2 decimals, 799.999 for XXX.XXX A)."""
    return float(_bcd_capacity(n_bytes, signed) - 1) / float(10**decimals)


def decode_meter_clock(date_value: bytes, time_value: bytes, *, utc_offset: timedelta) -> datetime:
    """Meter date (DI 04000101, ``YYMMDDWW``) and time (DI 04000102, ``hhmmss``) -> aware UTC datetime.

    Meters keep local civil time without a zone; ``utc_offset`` is the meter's zone (+08:00 in China).
    """
    try:
        week_day, day, month, year = (int(f"{b:02x}") for b in date_value[:4])
        second, minute, hour = (int(f"{b:02x}") for b in time_value[:3])
        local = datetime(2000 + year, month, day, hour, minute, second, tzinfo=timezone(utc_offset))
    except ValueError as exc:
        raise BcdError(f"meter clock is not a valid BCD date/time: {exc}") from None
    del week_day
    return local.astimezone(UTC)


def encode_meter_clock(moment: datetime, *, utc_offset: timedelta) -> tuple[bytes, bytes]:
    """Inverse of :func:`decode_meter_clock` (simulators): ``(date value, time value)`` plain bytes."""
    local = moment.astimezone(timezone(utc_offset))

    def bcd(n: int) -> int:
        return (n // 10) << 4 | n % 10

    week_day = local.isoweekday() % 7  # DL/T 645: 0 = Sunday
    date_value = bytes([bcd(week_day), bcd(local.day), bcd(local.month), bcd(local.year % 100)])
    time_value = bytes([bcd(local.second), bcd(local.minute), bcd(local.hour)])
    return date_value, time_value


__all__ = [
    "BROADCAST_ADDRESS",
    "PREAMBLE",
    "WILDCARD_ADDRESS",
    "Control",
    "Frame",
    "FrameError",
    "address_from_bytes",
    "address_reply_value",
    "address_to_bytes",
    "checksum",
    "decode_bcd",
    "decode_frame",
    "decode_meter_clock",
    "di_from_bytes",
    "di_to_bytes",
    "encode_address_query",
    "encode_address_reply",
    "encode_bcd",
    "encode_error_reply",
    "encode_frame",
    "encode_meter_clock",
    "encode_read_reply",
    "encode_read_request",
    "read_reply_value",
    "register_max",
    "scan_frame",
]

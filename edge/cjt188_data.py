"""CJ/T 188 data records: the current data of DI 901FH, unit codes, clock and status bytes. Pure, no I/O.

After ``DI SER``, a 901FH reply carries little-endian packed BCD values, most of them followed by a unit
code (:data:`UNIT_CODES`)::

    water, gas:  current volume XXXXXX.XX +unit | settlement-day volume XXXXXX.XX +unit |
                 real time (7) | status ST (2)                                               L = 16H
    heat:        settlement-day heat XXXXXX.XX +unit | current heat XXXXXX.XX +unit |
                 heat power XXXXXX.XX +unit | flow rate XXXX.XXXX +unit |
                 cumulative volume XXXXXX.XX +unit | supply temperature XXXX.XX degC |
                 return temperature XXXX.XX degC | working time XXXXXX h |
                 real time (7) | status ST (2)                                               L = 2EH

The real time is ``ss mm hh DD MM YY YY`` (BCD, low byte first: ``31 01 22 11 05 15 20`` is
2015-05-11 22:01:31, the meter's local civil time). Status byte ST1: bits D1 D0 the valve (00 open,
01 closed, 11 abnormal), D2 the battery (1 = low); ST2 is manufacturer-defined.

Both editions define these layouts for 901FH. Meters that append manufacturer fields (a cooling register on
a 22H meter, the working-condition volume of a gas meter with a volume converter) declare them as
``extra_fields`` in their profile; they are decoded after ST. Every malformed record raises a
:class:`edge.errors.FrameError` subclass naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from edge.cjt188 import (
    BROADCAST_ADDRESS,
    DI_CURRENT_DATA,
    Cjt188ReplyError,
    Control,
    DiOrder,
    Frame,
    di_to_bytes,
    encode_frame,
    meter_family,
)
from edge.dlt645 import decode_bcd, encode_bcd
from edge.errors import BcdError, FrameError, UnexpectedReplyError
from schemas import UnitError, get_unit

#: Unit codes -> (unit symbol in :mod:`schemas.units`, multiplier). ``0AH`` and ``13H`` count hundreds.
UNIT_CODES: Final[dict[int, tuple[str, float]]] = {
    0x01: ("J", 1.0),
    0x02: ("Wh", 1.0),
    0x05: ("kWh", 1.0),
    0x08: ("MWh", 1.0),
    0x0A: ("MWh", 100.0),
    0x0B: ("kJ", 1.0),
    0x0E: ("MJ", 1.0),
    0x11: ("GJ", 1.0),
    0x13: ("GJ", 100.0),
    0x14: ("W", 1.0),
    0x17: ("kW", 1.0),
    0x1A: ("MW", 1.0),
    0x29: ("L", 1.0),
    0x2C: ("m3", 1.0),
    0x32: ("L/h", 1.0),
    0x35: ("m3/h", 1.0),
}
#: The plain (multiplier 1) code of each unit symbol, for encoders.
UNIT_CODE_OF: Final[dict[str, int]] = {symbol: code for code, (symbol, k) in UNIT_CODES.items() if k == 1.0}


FieldKind = Literal["value", "time", "status"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One item of a data record.

    ``kind="value"``: ``n_bytes`` of BCD with ``decimals``, then a unit code when ``dimension`` is set
    (``energy``, ``power``, ``volume``, ``volume_flow`` in :mod:`schemas.units`), else in ``fixed_unit``.
    ``kind="time"`` is the 7-byte real time, ``kind="status"`` the 2-byte ST.
    """

    name: str
    n_bytes: int
    decimals: int = 0
    dimension: str | None = None
    fixed_unit: str | None = None
    kind: FieldKind = "value"

    @property
    def size(self) -> int:
        """Bytes on the wire, unit code included."""
        return self.n_bytes + (1 if self.dimension is not None else 0)


def _coded(name: str, dimension: str, decimals: int = 2) -> FieldSpec:
    return FieldSpec(name, 4, decimals, dimension=dimension)


_TIME = FieldSpec("meter_time", 7, kind="time")
_STATUS = FieldSpec("status", 2, kind="status")

#: 901FH of water and gas meters.
VOLUME_LAYOUT: Final = (_coded("current_volume", "volume"), _coded("settlement_volume", "volume"), _TIME, _STATUS)
#: 901FH of heat (and cooling) meters.
HEAT_LAYOUT: Final = (
    _coded("settlement_heat", "energy"), _coded("current_heat", "energy"), _coded("heat_power", "power"),
    _coded("flow_rate", "volume_flow", decimals=4), _coded("cumulative_volume", "volume"),
    FieldSpec("supply_temperature", 3, 2, fixed_unit="degC"), FieldSpec("return_temperature", 3, 2, fixed_unit="degC"),
    FieldSpec("working_time", 3, 0, fixed_unit="h"), _TIME, _STATUS,
)
#: Pseudo-fields derived from ST that a profile may map onto metrics.
STATUS_FIELDS: Final = ("battery_low", "valve_state")


def layout_for(meter_type: int, extra: tuple[FieldSpec, ...] = ()) -> tuple[FieldSpec, ...]:
    """The 901FH record of a meter type, with a profile's manufacturer fields appended after ST."""
    family = meter_family(meter_type)
    if family == "heat":
        return HEAT_LAYOUT + extra
    if family in ("water", "gas"):
        return VOLUME_LAYOUT + extra
    raise ValueError(f"meter type {meter_type:#04x} has no known current-data layout (water 10H-19H, heat 20H-29H, "
                     f"gas 30H-39H)")


def record_length(layout: tuple[FieldSpec, ...]) -> int:
    """Data length ``L`` of a 901FH reply with this layout (DI and SER included)."""
    return 3 + sum(f.size for f in layout)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A value with its unit symbol (:mod:`schemas.units`), after the unit code's multiplier."""

    value: float
    unit: str


Valve = Literal["open", "closed", "abnormal", "unknown"]
_VALVE: Final[dict[int, Valve]] = {0b00: "open", 0b01: "closed", 0b11: "abnormal", 0b10: "unknown"}
#: ``valve_state`` metric values: 0 open, 1 closed, 2 abnormal (``unknown`` gives no reading).
VALVE_STATE_VALUES: Final[dict[Valve, float]] = {"open": 0.0, "closed": 1.0, "abnormal": 2.0}


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """Status bytes ST1 ST2 as sent; :attr:`valve` and :attr:`battery_low` decode ST1."""

    raw: bytes = b"\x00\x00"

    @property
    def valve(self) -> Valve:
        """Valve position from ST1 D1 D0 (meters without a valve report ``open``)."""
        return _VALVE[self.raw[0] & 0b11]

    @property
    def battery_low(self) -> bool:
        """ST1 D2: the battery voltage is low."""
        return bool(self.raw[0] & 0b100)

    @classmethod
    def of(cls, *, valve: Valve = "open", battery_low: bool = False, st2: int = 0) -> MeterStatus:
        """Build status bytes (simulators and tests)."""
        code = {v: k for k, v in _VALVE.items()}[valve]
        return cls(bytes([code | (0b100 if battery_low else 0), st2 & 0xFF]))


@dataclass(frozen=True, slots=True)
class CurrentData:
    """A decoded 901FH reply: values by field name, the meter's local clock (None if unset), status."""

    meter_type: int
    address: str
    ser: int
    values: dict[str, Quantity] = field(default_factory=dict)
    meter_time: datetime | None = None
    status: MeterStatus = MeterStatus()


def _bcd_digits(raw: bytes, what: str) -> list[int]:
    """Decimal value of each BCD byte; raises :class:`BcdError` naming ``what``."""
    out = []
    for byte in raw:
        if byte >> 4 > 9 or byte & 0x0F > 9:
            raise BcdError(f"{what}: byte {byte:#04x} is not BCD")
        out.append((byte >> 4) * 10 + (byte & 0x0F))
    return out


def decode_meter_time(raw: bytes) -> datetime | None:
    """``ss mm hh DD MM YY YY`` -> naive local datetime; None for an unset clock (all 00 or all FF)."""
    if raw in (b"\x00" * 7, b"\xff" * 7):
        return None
    second, minute, hour, day, month, year_low, year_high = _bcd_digits(raw, "meter_time")
    try:
        return datetime(year_high * 100 + year_low, month, day, hour, minute, second)  # noqa: DTZ001 - local time
    except ValueError as exc:
        raise BcdError(f"meter_time: {raw.hex(' ')} is not a date and time ({exc})") from None


def encode_meter_time(moment: datetime) -> bytes:
    """Inverse of :func:`decode_meter_time` for a naive local datetime (simulators)."""
    parts = (moment.second, moment.minute, moment.hour, moment.day, moment.month, moment.year % 100,
             moment.year // 100)
    return bytes((n // 10) << 4 | n % 10 for n in parts)


def _decode_value(spec: FieldSpec, raw: bytes) -> Quantity:
    try:
        number = decode_bcd(raw[:spec.n_bytes], decimals=spec.decimals)
    except BcdError as exc:
        raise BcdError(f"{spec.name}: {exc}") from None
    if spec.dimension is None:
        return Quantity(number, spec.fixed_unit or "1")
    code = raw[spec.n_bytes]
    if code not in UNIT_CODES:
        raise FrameError(f"{spec.name}: unit code {code:#04x} is not a CJ/T 188 unit")
    symbol, multiplier = UNIT_CODES[code]
    if get_unit(symbol).dimension != spec.dimension:
        raise FrameError(f"{spec.name}: unit code {code:#04x} ({symbol}) is not a unit of {spec.dimension}")
    return Quantity(number * multiplier, symbol)


def _matches_di(raw: bytes, di: int) -> bool:
    return raw in (di.to_bytes(2, "big"), di.to_bytes(2, "little"))


def decode_current_data(frame: Frame, layout: tuple[FieldSpec, ...]) -> CurrentData:
    """Decode a ``81H`` reply to a 901FH read with ``layout``; raises a :class:`FrameError` subclass.

    Fields beyond the data a meter sent are an error (a short record is not a reading); bytes after the
    layout's last field are ignored (manufacturer additions the profile does not declare).
    """
    data = frame.data
    if len(data) < 3:
        raise UnexpectedReplyError(f"read reply carries {len(data)} data byte(s), fewer than DI and SER")
    if not _matches_di(data[:2], DI_CURRENT_DATA):
        raise UnexpectedReplyError(f"reply for DI {data[:2].hex().upper()}, expected 901F")
    need = record_length(layout)
    if len(data) < need:
        raise FrameError(f"current-data reply has {len(data)} data bytes, the layout needs {need} "
                         f"(is the profile's meter type or extra_fields right?)")
    values: dict[str, Quantity] = {}
    meter_time: datetime | None = None
    status = MeterStatus()
    pos = 3
    for spec in layout:
        chunk = data[pos:pos + spec.size]
        pos += spec.size
        if spec.kind == "time":
            meter_time = decode_meter_time(chunk)
        elif spec.kind == "status":
            status = MeterStatus(bytes(chunk))
        else:
            values[spec.name] = _decode_value(spec, chunk)
    return CurrentData(meter_type=frame.meter_type, address=frame.address, ser=data[2], values=values,
                       meter_time=meter_time, status=status)


def read_reply(frame: Frame, *, address: str, meter_type: int, layout: tuple[FieldSpec, ...]) -> CurrentData:
    """Check that ``frame`` answers our 901FH read of ``address`` and decode it.

    Raises :class:`UnexpectedReplyError` for a frame from another meter or of another kind (a stale or
    echoed frame on a shared bus: skip it), :class:`Cjt188ReplyError` for the meter's error reply and the
    decoding errors of :func:`decode_current_data`.
    """
    if not frame.is_reply:
        raise UnexpectedReplyError(f"frame with control {frame.control:#04x} is a request (an echo), not a reply")
    if address not in (BROADCAST_ADDRESS, frame.address):
        raise UnexpectedReplyError(f"reply from meter {frame.address}, expected {address}")
    if frame.is_error:
        raise Cjt188ReplyError(frame.control, frame.data)
    if frame.function != Control.READ_DATA:
        raise UnexpectedReplyError(f"control {frame.control:#04x} is not a read-data reply")
    if meter_family(frame.meter_type) != meter_family(meter_type):
        raise UnexpectedReplyError(f"reply from a meter of type {frame.meter_type:#04x}, expected {meter_type:#04x}")
    return decode_current_data(frame, layout)


def encode_value(spec: FieldSpec, quantity: Quantity) -> bytes:
    """BCD bytes (and unit code) of one value; ValueError if it does not fit or has the wrong unit."""
    if spec.dimension is None:
        if quantity.unit != spec.fixed_unit:
            raise ValueError(f"{spec.name} is in {spec.fixed_unit}, got {quantity.unit}")
        return encode_bcd(quantity.value, n_bytes=spec.n_bytes, decimals=spec.decimals)
    try:
        dimension = get_unit(quantity.unit).dimension
    except UnitError as exc:
        raise ValueError(str(exc)) from None
    if quantity.unit not in UNIT_CODE_OF or dimension != spec.dimension:
        raise ValueError(f"{spec.name}: {quantity.unit} has no CJ/T 188 unit code of {spec.dimension}")
    return (encode_bcd(quantity.value, n_bytes=spec.n_bytes, decimals=spec.decimals)
            + bytes([UNIT_CODE_OF[quantity.unit]]))


def encode_current_data(data: CurrentData, layout: tuple[FieldSpec, ...], *, order: DiOrder) -> bytes:
    """The data field of a 901FH reply (DI, SER, the layout's fields); inverse of :func:`decode_current_data`."""
    out = bytearray(di_to_bytes(DI_CURRENT_DATA, order) + bytes([data.ser & 0xFF]))
    for spec in layout:
        if spec.kind == "time":
            out += encode_meter_time(data.meter_time) if data.meter_time is not None else b"\x00" * 7
        elif spec.kind == "status":
            out += data.status.raw[:2].ljust(2, b"\x00")
        else:
            out += encode_value(spec, data.values[spec.name])
    return bytes(out)


def encode_current_data_reply(data: CurrentData, layout: tuple[FieldSpec, ...], *, order: DiOrder,
                              preamble: bool = False) -> bytes:
    """A meter's complete ``81H`` reply frame; used by simulators and tests."""
    return encode_frame(data.meter_type, data.address, Control.REPLY_DATA,
                        encode_current_data(data, layout, order=order), preamble=preamble)


__all__ = [
    "HEAT_LAYOUT",
    "STATUS_FIELDS",
    "UNIT_CODES",
    "VALVE_STATE_VALUES",
    "VOLUME_LAYOUT",
    "CurrentData",
    "FieldSpec",
    "MeterStatus",
    "Quantity",
    "decode_current_data",
    "decode_meter_time",
    "encode_current_data",
    "encode_current_data_reply",
    "encode_meter_time",
    "encode_value",
    "layout_for",
    "read_reply",
    "record_length",
]

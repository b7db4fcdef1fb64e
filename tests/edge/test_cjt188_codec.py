"""CJ/T 188 codec: a published water-meter exchange byte for byte, both editions, then every way a frame fails.

Expected values are worked out here from the bytes (BCD digits read by hand, checksums summed), never
taken from the codec's own output.
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cjt188 import (
    Cjt188ReplyError,
    Control,
    DiOrder,
    address_from_bytes,
    address_to_bytes,
    checksum,
    decode_frame,
    di_to_bytes,
    encode_frame,
    encode_read_address_request,
    encode_read_request,
    meter_family,
    normalise_address,
    scan_frame,
)
from edge.cjt188_data import (
    HEAT_LAYOUT,
    UNIT_CODES,
    VOLUME_LAYOUT,
    CurrentData,
    FieldSpec,
    MeterStatus,
    Quantity,
    decode_current_data,
    decode_meter_time,
    encode_current_data,
    encode_current_data_reply,
    encode_meter_time,
    layout_for,
    read_reply,
    record_length,
)
from edge.errors import (
    BcdError,
    ChecksumError,
    FrameEndError,
    FrameError,
    FrameSyncError,
    IncompleteFrameError,
    UnexpectedReplyError,
)

# A cold-water meter read as published in a CJ/T 188 protocol walk-through (meter 0011223344, manufacturer
# code 7833; DI sent 1F 90). Reply: 556677.00 m3 current, 556677.00 m3 settlement day, 2015-05-11 22:01:31,
# ST 21 84. CS of the request: 68+10+44+33+22+11+00+33+78+01+03+1F+90+00 = 0x280 -> 80.
WATER_ADDRESS = "78330011223344"
WATER_REQUEST = bytes.fromhex("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
WATER_REPLY_BODY = bytes.fromhex(
    "68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C 31 01 22 11 05 15 20 21 84")


def water_reply() -> bytes:
    return WATER_REPLY_BODY + bytes([sum(WATER_REPLY_BODY) & 0xFF, 0x16])


def test_published_request_byte_for_byte() -> None:
    assert encode_read_request(0x10, WATER_ADDRESS, order=DiOrder.LOW_FIRST) == WATER_REQUEST
    assert sum(WATER_REQUEST[4:-2]) == 0x280


def test_2004_order_sends_the_identifier_high_byte_first() -> None:
    request = encode_read_request(0x10, WATER_ADDRESS, order=DiOrder.HIGH_FIRST, preamble=False)
    assert request[11:14] == bytes.fromhex("90 1F 00")
    assert request[-2] == (sum(request[:-2])) & 0xFF


def test_published_reply_decodes_to_its_values() -> None:
    frame, used = decode_frame(b"\xfe\xfe" + water_reply())
    assert used == 2 + len(WATER_REPLY_BODY) + 2
    assert (frame.meter_type, frame.address, frame.control) == (0x10, WATER_ADDRESS, 0x81)
    data = read_reply(frame, address=WATER_ADDRESS, meter_type=0x10, layout=VOLUME_LAYOUT)
    assert data.values["current_volume"] == Quantity(556677.00, "m3")
    assert data.values["settlement_volume"] == Quantity(556677.00, "m3")
    assert data.meter_time == datetime(2015, 5, 11, 22, 1, 31)
    assert data.status.raw == bytes([0x21, 0x84])
    assert data.status.valve == "closed"  # ST1 = 0010 0001: D1 D0 = 01
    assert data.status.battery_low is False  # D2 = 0


def test_reply_with_the_identifier_in_2004_order_decodes_too() -> None:
    body = bytearray(WATER_REPLY_BODY)
    body[11:13] = b"\x90\x1f"
    frame, _ = decode_frame(bytes(body) + bytes([sum(body) & 0xFF, 0x16]))
    assert decode_current_data(frame, VOLUME_LAYOUT).values["current_volume"].value == 556677.0


def test_heat_record_decodes_each_field_with_its_unit_code() -> None:
    # settlement 123456.78 kWh, current 234567.89 kWh, power 12.34 kW, flow 1.2345 m3/h,
    # volume 3456.78 m3, supply 75.50 degC, return 55.25 degC, 1234 h, 2024-01-31 23:59:58, ST 04 00
    data = bytes.fromhex(
        "1F 90 05  78 56 34 12 05  89 67 45 23 05  34 12 00 00 17  45 23 01 00 35  78 56 34 00 2C"
        "  50 75 00  25 55 00  34 12 00  58 59 23 31 01 24 20  04 00")
    frame = decode_frame(encode_frame(0x20, "00000000000001", 0x81, data))[0]
    got = read_reply(frame, address="00000000000001", meter_type=0x20, layout=HEAT_LAYOUT)
    assert len(data) == record_length(HEAT_LAYOUT) == 0x2E
    assert got.ser == 5
    assert got.values["settlement_heat"] == Quantity(123456.78, "kWh")
    assert got.values["current_heat"] == Quantity(234567.89, "kWh")
    assert got.values["heat_power"] == Quantity(12.34, "kW")
    assert got.values["flow_rate"] == Quantity(1.2345, "m3/h")
    assert got.values["cumulative_volume"] == Quantity(3456.78, "m3")
    assert got.values["supply_temperature"] == Quantity(75.5, "degC")
    assert got.values["return_temperature"] == Quantity(55.25, "degC")
    assert got.values["working_time"] == Quantity(1234.0, "h")
    assert got.meter_time == datetime(2024, 1, 31, 23, 59, 58)
    assert got.status.battery_low is True
    assert got.status.valve == "open"


@pytest.mark.parametrize(("code", "symbol", "value"), [
    (0x02, "Wh", 1.5), (0x05, "kWh", 1.5), (0x08, "MWh", 1.5), (0x0A, "MWh", 150.0), (0x0B, "kJ", 1.5),
    (0x0E, "MJ", 1.5), (0x11, "GJ", 1.5), (0x13, "GJ", 150.0), (0x01, "J", 1.5),
])
def test_energy_unit_codes_including_the_hundredfold_ones(code: int, symbol: str, value: float) -> None:
    record = bytes.fromhex("1F 90 00") + b"".join(bytes.fromhex("50 01 00 00") + bytes([c])
                                                  for c in (code, code, 0x17, 0x35, 0x2C))
    record += bytes(3 + 3 + 3 + 7 + 2)
    frame = decode_frame(encode_frame(0x20, "00000000000001", 0x81, record))[0]
    assert decode_current_data(frame, HEAT_LAYOUT).values["current_heat"] == Quantity(value, symbol)


def test_unit_code_table_names_only_units_the_registry_knows() -> None:
    from schemas import get_unit

    dims = {get_unit(symbol).dimension for symbol, _ in UNIT_CODES.values()}
    assert dims == {"energy", "power", "volume", "volume_flow"}


def test_wrong_unit_for_a_field_is_a_frame_error() -> None:
    body = bytearray(WATER_REPLY_BODY)
    body[18] = 0x05  # current volume "in kWh"
    frame = decode_frame(bytes(body) + bytes([sum(body) & 0xFF, 0x16]))[0]
    with pytest.raises(FrameError, match=r"current_volume: unit code 0x05 .* not a unit of volume"):
        decode_current_data(frame, VOLUME_LAYOUT)


def test_unknown_unit_code_is_a_frame_error() -> None:
    body = bytearray(WATER_REPLY_BODY)
    body[18] = 0x99
    frame = decode_frame(bytes(body) + bytes([sum(body) & 0xFF, 0x16]))[0]
    with pytest.raises(FrameError, match="unit code 0x99"):
        decode_current_data(frame, VOLUME_LAYOUT)


def test_bad_bcd_names_the_field() -> None:
    body = bytearray(WATER_REPLY_BODY)
    body[20] = 0x7A  # a nibble above 9 in the settlement-day volume
    frame = decode_frame(bytes(body) + bytes([sum(body) & 0xFF, 0x16]))[0]
    with pytest.raises(BcdError, match="settlement_volume"):
        decode_current_data(frame, VOLUME_LAYOUT)


def test_short_record_says_the_layout_may_be_wrong() -> None:
    frame = decode_frame(encode_frame(0x10, WATER_ADDRESS, 0x81, WATER_REPLY_BODY[11:-4]))[0]
    with pytest.raises(FrameError, match="layout needs 22"):
        decode_current_data(frame, VOLUME_LAYOUT)


def test_error_reply_and_foreign_frames() -> None:
    error = decode_frame(encode_frame(0x10, WATER_ADDRESS, Control.ERROR_DATA, b"\x00\x21\x84"))[0]
    with pytest.raises(Cjt188ReplyError, match="error reply 0xc1") as caught:
        read_reply(error, address=WATER_ADDRESS, meter_type=0x10, layout=VOLUME_LAYOUT)
    assert caught.value.data == b"\x00\x21\x84"
    reply = decode_frame(water_reply())[0]
    with pytest.raises(UnexpectedReplyError, match="from meter"):
        read_reply(reply, address="00000000000001", meter_type=0x10, layout=VOLUME_LAYOUT)
    with pytest.raises(UnexpectedReplyError, match="type"):
        read_reply(reply, address=WATER_ADDRESS, meter_type=0x30, layout=VOLUME_LAYOUT)
    echo = decode_frame(WATER_REQUEST)[0]
    with pytest.raises(UnexpectedReplyError, match="echo"):
        read_reply(echo, address=WATER_ADDRESS, meter_type=0x10, layout=VOLUME_LAYOUT)


def test_address_order_and_validation() -> None:
    assert address_to_bytes("00000011223344") == bytes.fromhex("44 33 22 11 00 00 00")
    assert address_from_bytes(bytes.fromhex("44 33 22 11 00 33 78")) == WATER_ADDRESS
    assert normalise_address("7833001122aabb") == "7833001122AABB"
    with pytest.raises(ValueError, match="14 digits"):
        normalise_address("123")


def test_read_address_broadcast_and_families() -> None:
    request = encode_read_address_request(order=DiOrder.HIGH_FIRST)
    frame = decode_frame(request)[0]
    assert (frame.meter_type, frame.address, frame.control, frame.data) == (0xAA, "A" * 14, 0x03, b"\x81\x0a\x00")
    assert [meter_family(t) for t in (0x10, 0x13, 0x20, 0x21, 0x22, 0x30, 0x40)] == [
        "water", "water", "heat", "heat", "heat", "gas", "other"]
    with pytest.raises(ValueError, match="no known current-data layout"):
        layout_for(0x40)


def test_meter_time_unset_or_impossible() -> None:
    assert decode_meter_time(bytes(7)) is None
    assert decode_meter_time(b"\xff" * 7) is None
    with pytest.raises(BcdError, match="not a date"):
        decode_meter_time(bytes.fromhex("00 00 00 31 02 24 20"))  # 31 February
    moment = datetime(2031, 12, 24, 6, 7, 8)
    assert encode_meter_time(moment) == bytes.fromhex("08 07 06 24 12 31 20")


def test_frame_errors_in_order_of_detection() -> None:
    reply = water_reply()
    with pytest.raises(IncompleteFrameError):
        decode_frame(reply[:5])
    with pytest.raises(IncompleteFrameError):
        decode_frame(reply[:-1])
    with pytest.raises(FrameSyncError):
        decode_frame(b"\x00" + reply)
    bad_cs = reply[:-2] + bytes([(reply[-2] + 1) & 0xFF, 0x16])
    with pytest.raises(ChecksumError):
        decode_frame(bad_cs)
    with pytest.raises(FrameEndError):
        decode_frame(reply[:-1] + b"\x17")


def test_scan_skips_noise_and_waits_for_the_rest() -> None:
    reply = water_reply()
    frame, used = scan_frame(b"\x00\x13\xfe\xfe" + reply + b"\x68")
    assert frame is not None
    assert used == 4 + len(reply)
    assert scan_frame(b"\x01\x02" + reply[:10]) == (None, 2)
    assert scan_frame(b"\x01\x02\x03") == (None, 3)


# -- properties -------------------------------------------------------------------------------------------

addresses = st.text(alphabet="0123456789ABCDEF", min_size=14, max_size=14)
orders = st.sampled_from(list(DiOrder))
registers = st.integers(min_value=0, max_value=99_999_999).map(lambda n: n / 100)
statuses = st.builds(MeterStatus.of, valve=st.sampled_from(["open", "closed", "abnormal"]), battery_low=st.booleans(),
                     st2=st.integers(0, 255))
times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))


@st.composite
def water_gas_records(draw: st.DrawFn) -> CurrentData:
    unit = draw(st.sampled_from(["m3", "L"]))
    return CurrentData(
        meter_type=draw(st.sampled_from([0x10, 0x11, 0x12, 0x13, 0x30])), address=draw(addresses),
        ser=draw(st.integers(0, 255)),
        values={"current_volume": Quantity(draw(registers), unit),
                "settlement_volume": Quantity(draw(registers), unit)},
        meter_time=draw(times).replace(microsecond=0), status=draw(statuses))


@st.composite
def heat_records(draw: st.DrawFn) -> CurrentData:
    energy = draw(st.sampled_from(["Wh", "kWh", "MWh", "J", "kJ", "MJ", "GJ"]))
    temps = st.integers(min_value=0, max_value=999_999).map(lambda n: n / 100)
    values = {
        "settlement_heat": Quantity(draw(registers), energy), "current_heat": Quantity(draw(registers), energy),
        "heat_power": Quantity(draw(registers), draw(st.sampled_from(["W", "kW", "MW"]))),
        "flow_rate": Quantity(draw(st.integers(0, 99_999_999)) / 10_000, draw(st.sampled_from(["m3/h", "L/h"]))),
        "cumulative_volume": Quantity(draw(registers), "m3"),
        "supply_temperature": Quantity(draw(temps), "degC"), "return_temperature": Quantity(draw(temps), "degC"),
        "working_time": Quantity(float(draw(st.integers(0, 999_999))), "h"),
    }
    return CurrentData(meter_type=draw(st.sampled_from([0x20, 0x21, 0x22])), address=draw(addresses),
                       ser=draw(st.integers(0, 255)), values=values, meter_time=draw(times).replace(microsecond=0),
                       status=draw(statuses))


@given(st.one_of(water_gas_records(), heat_records()), orders, st.integers(0, 4))
def test_round_trip_through_the_wire(data: CurrentData, order: DiOrder, noise: int) -> None:
    layout = layout_for(data.meter_type)
    wire = b"\x00" * noise + b"\xfe" * 2 + encode_current_data_reply(data, layout, order=order)
    frame, used = scan_frame(wire)
    assert frame is not None
    assert used == len(wire)
    assert read_reply(frame, address=data.address, meter_type=data.meter_type, layout=layout) == data


@given(st.integers(0, 0xFFFF), orders)
def test_identifier_bytes_follow_the_order(di: int, order: DiOrder) -> None:
    raw = di_to_bytes(di, order)
    assert int.from_bytes(raw, "big" if order is DiOrder.HIGH_FIRST else "little") == di


def _decode_all(buf: bytes) -> None:
    """Everything a reader does with received bytes: scan, decode as a water or heat record."""
    frame, _ = scan_frame(buf)
    if frame is None:
        return
    for meter_type in (0x10, 0x20):
        with contextlib.suppress(FrameError):
            read_reply(frame, address=frame.address, meter_type=meter_type, layout=layout_for(meter_type))


@given(st.binary(max_size=80))
def test_random_bytes_only_ever_raise_frame_errors(buf: bytes) -> None:
    with contextlib.suppress(FrameError):
        _decode_all(buf)


@given(water_gas_records(), orders, st.data())
def test_damaged_frames_only_ever_raise_frame_errors(data: CurrentData, order: DiOrder, draw: st.DataObject) -> None:
    wire = bytearray(encode_current_data_reply(data, layout_for(data.meter_type), order=order))
    how = draw.draw(st.sampled_from(["truncate", "flip", "checksum", "bcd"]))
    if how == "truncate":
        wire = wire[:draw.draw(st.integers(0, len(wire) - 1))]
    elif how == "flip":
        at = draw.draw(st.integers(0, len(wire) - 1))
        wire[at] ^= draw.draw(st.integers(1, 255))
    elif how == "checksum":
        wire[-2] = (wire[-2] + draw.draw(st.integers(1, 255))) & 0xFF
    else:  # a non-BCD digit inside a value, with a checksum that matches it
        at = draw.draw(st.integers(14, 17))
        wire[at] = 0xA0 | (wire[at] & 0x0F)
        wire[-2] = checksum(bytes(wire[:-2]))
    with contextlib.suppress(FrameError):
        _decode_all(bytes(wire))
    if how == "checksum":
        with pytest.raises(ChecksumError):
            decode_frame(bytes(wire))
    if how == "bcd":
        frame, _ = scan_frame(bytes(wire))
        assert frame is not None
        with pytest.raises(BcdError, match="current_volume"):
            decode_current_data(frame, layout_for(data.meter_type))


def test_encode_refuses_values_that_do_not_fit_or_have_no_unit_code() -> None:
    record = CurrentData(0x10, "00000000000001", 0, {"current_volume": Quantity(1e7, "m3"),
                                                     "settlement_volume": Quantity(0.0, "m3")})
    with pytest.raises(ValueError, match="does not fit"):
        encode_current_data(record, VOLUME_LAYOUT, order=DiOrder.LOW_FIRST)
    record = CurrentData(0x10, "00000000000001", 0, {"current_volume": Quantity(1.0, "kWh"),
                                                     "settlement_volume": Quantity(0.0, "m3")})
    with pytest.raises(ValueError, match="no CJ/T 188 unit code"):
        encode_current_data(record, VOLUME_LAYOUT, order=DiOrder.LOW_FIRST)
    extra = FieldSpec("working_volume", 4, 2, dimension="volume")
    assert record_length((*VOLUME_LAYOUT, extra)) == 0x16 + 5
    assert checksum(b"\x68\x10") == 0x78

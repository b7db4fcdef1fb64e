"""DL/T 645-2007 codec: the domain.md §7.2 worked example byte for byte, then every way a frame can fail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.dlt645 import (
    Control,
    address_from_bytes,
    address_to_bytes,
    checksum,
    decode_bcd,
    decode_frame,
    decode_meter_clock,
    encode_bcd,
    encode_error_reply,
    encode_frame,
    encode_meter_clock,
    encode_read_reply,
    encode_read_request,
    read_reply_value,
    register_max,
    scan_frame,
)
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

# domain.md §7.2, from a capture: read DI 00010000 from meter 000000000161
REQUEST = bytes.fromhex("FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")
REPLY = bytes.fromhex("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8A 16")
ADDRESS = "000000000161"
DI_FORWARD_ACTIVE = 0x00010000
DI_VOLTAGE_A = 0x02010100


def test_worked_example_request_byte_for_byte() -> None:
    assert encode_read_request(ADDRESS, DI_FORWARD_ACTIVE) == REQUEST


def test_worked_example_request_checksum_arithmetic() -> None:
    # CS = 68+61+01+00+00+00+00+68+11+04+33+33+34+33 = 0x214 -> low byte 0x14
    body = REQUEST[4:-2]
    assert sum(body) == 0x68 + 0x61 + 0x01 + 0x68 + 0x11 + 0x04 + 0x33 + 0x33 + 0x34 + 0x33 == 0x214
    assert checksum(body) == 0x14


def test_worked_example_reply_decodes_to_0_26_kwh() -> None:
    frame, used = decode_frame(REPLY)
    assert used == len(REPLY)
    assert frame.address == ADDRESS
    assert frame.control == Control.REPLY_READ
    assert frame.is_reply
    assert not frame.is_error
    assert not frame.has_follow_up
    # data -33H: 33 33 34 33 -> 00 00 01 00 (DI0..DI3), 59 33 33 33 -> 26 00 00 00
    assert frame.data == bytes.fromhex("00 00 01 00 26 00 00 00")
    value = read_reply_value(frame, address=ADDRESS, di=DI_FORWARD_ACTIVE)
    assert value == bytes.fromhex("26 00 00 00")
    # little-endian BCD 00000026 with two decimals: 000000.26 kWh
    assert decode_bcd(value, decimals=2) == 0.26
    assert checksum(REPLY[:-2]) == 0x8A


def test_worked_example_reply_is_what_our_encoder_builds() -> None:
    assert encode_read_reply(ADDRESS, DI_FORWARD_ACTIVE, bytes.fromhex("26 00 00 00")) == REPLY


def test_worked_example_voltage_reply_100_1_volt() -> None:
    # "... 91 06 33 34 34 35 34 43 ...": DI 02010100 (phase A voltage), value 34 43 -> 01 10 -> 1001 -> 100.1 V
    wire = encode_read_reply(ADDRESS, DI_VOLTAGE_A, encode_bcd(100.1, n_bytes=2, decimals=1))
    assert wire[8:16] == bytes.fromhex("91 06 33 34 34 35 34 43")
    frame, _ = decode_frame(wire)
    assert decode_bcd(read_reply_value(frame, address=ADDRESS, di=DI_VOLTAGE_A), decimals=1) == 100.1


def test_address_is_bcd_low_byte_first() -> None:
    assert address_to_bytes("000000000161") == bytes([0x61, 0x01, 0, 0, 0, 0])
    assert address_to_bytes("123456789012") == bytes([0x12, 0x90, 0x78, 0x56, 0x34, 0x12])
    assert address_to_bytes("AAAAAAAAAA61") == bytes([0x61, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA])
    assert address_from_bytes(bytes([0x61, 0x01, 0, 0, 0, 0])) == "000000000161"
    with pytest.raises(ValueError, match="12 BCD digits"):
        address_to_bytes("00000000016")
    with pytest.raises(BcdError):
        address_from_bytes(bytes([0x6A, 0, 0, 0, 0, 0]))


@pytest.mark.parametrize("prefix", [b"", b"\xfe", b"\xfe\xfe\xfe\xfe", b"\xfe" * 9])
def test_any_number_of_preamble_bytes_is_skipped(prefix: bytes) -> None:
    frame, used = decode_frame(prefix + REPLY)
    assert used == len(prefix) + len(REPLY)
    assert frame.address == ADDRESS


@pytest.mark.parametrize("cut", [0, 1, 5, 9, 10, 15, len(REPLY) - 1])
def test_partial_frame_asks_for_more_bytes(cut: int) -> None:
    with pytest.raises(IncompleteFrameError) as info:
        decode_frame(REPLY[:cut])
    assert info.value.needed >= 1
    if cut >= 10:  # header complete: the exact remainder is known
        assert info.value.needed == len(REPLY) - cut


def test_scan_frame_waits_on_partial_frame_and_keeps_it() -> None:
    frame, used = scan_frame(b"\x00\x13" + REPLY[:12])
    assert frame is None
    assert used == 2  # the two noise bytes may go; the partial frame must stay


def test_scan_frame_skips_noise_and_false_starts() -> None:
    noise = bytes([0x00, 0x68, 0x01, 0x02, 0xFF, 0x68, 0x68])  # 68s that are not followed by a second 68
    frame, used = scan_frame(noise + REPLY + b"\x00")
    assert frame is not None
    assert frame.data[4:] == bytes.fromhex("26 00 00 00")
    assert used == len(noise) + len(REPLY)


def test_scan_frame_drops_pure_noise() -> None:
    assert scan_frame(bytes(range(0x10, 0x40))) == (None, 0x30)


def test_checksum_error_is_precise() -> None:
    bad = REPLY[:-2] + bytes([0x8B, 0x16])
    with pytest.raises(ChecksumError) as info:
        decode_frame(bad)
    assert (info.value.expected, info.value.found) == (0x8A, 0x8B)


def test_missing_end_marker() -> None:
    with pytest.raises(FrameEndError):
        decode_frame(REPLY[:-1] + b"\x17")


def test_second_start_byte_missing() -> None:
    bad = bytearray(REPLY)
    bad[7] = 0x69
    with pytest.raises(FrameSyncError):
        decode_frame(bytes(bad))
    with pytest.raises(FrameSyncError):
        decode_frame(b"\x00" + REPLY)


def test_non_bcd_value_byte() -> None:
    frame, _ = decode_frame(encode_read_reply(ADDRESS, DI_FORWARD_ACTIVE, bytes([0x2A, 0, 0, 0])))
    with pytest.raises(BcdError):
        decode_bcd(read_reply_value(frame, address=ADDRESS, di=DI_FORWARD_ACTIVE), decimals=2)


def test_error_reply_d1_names_the_error_bits() -> None:
    frame, _ = decode_frame(encode_error_reply(ADDRESS, 0x02))
    assert frame.control == 0xD1
    assert frame.is_error
    with pytest.raises(MeterReplyError, match="no data requested") as info:
        read_reply_value(frame, address=ADDRESS, di=DI_FORWARD_ACTIVE)
    assert info.value.error_byte == 0x02


def test_reply_for_another_identifier_or_meter_is_not_ours() -> None:
    frame, _ = decode_frame(encode_read_reply(ADDRESS, DI_VOLTAGE_A, bytes([0x01, 0x10])))
    with pytest.raises(UnexpectedReplyError, match="DI 02010100"):
        read_reply_value(frame, address=ADDRESS, di=DI_FORWARD_ACTIVE)
    with pytest.raises(UnexpectedReplyError, match="meter 000000000161"):
        read_reply_value(frame, address="000000000162", di=DI_VOLTAGE_A)
    request, _ = decode_frame(REQUEST)
    with pytest.raises(UnexpectedReplyError, match="control"):
        read_reply_value(request, address=ADDRESS, di=DI_FORWARD_ACTIVE)


def test_signed_bcd_uses_bit_7_of_the_top_byte() -> None:
    # -12.345 A as XXX.XXX: digits 012345 -> bytes 45 23 01, sign bit -> 45 23 81
    assert encode_bcd(-12.345, n_bytes=3, decimals=3, signed=True) == bytes([0x45, 0x23, 0x81])
    assert decode_bcd(bytes([0x45, 0x23, 0x81]), decimals=3, signed=True) == -12.345
    assert decode_bcd(bytes([0x45, 0x23, 0x01]), decimals=3, signed=True) == 12.345


def test_register_max_of_the_energy_register() -> None:
    assert register_max(n_bytes=4, decimals=2) == 999999.99
    assert register_max(n_bytes=3, decimals=3, signed=True) == 799.999  # top digit shares its byte with the sign
    assert encode_bcd(-799.999, n_bytes=3, decimals=3, signed=True) == bytes([0x99, 0x99, 0xF9])
    assert encode_bcd(999999.99, n_bytes=4, decimals=2) == bytes([0x99] * 4)
    with pytest.raises(ValueError, match="does not fit"):
        encode_bcd(1_000_000.0, n_bytes=4, decimals=2)


def test_meter_clock_roundtrip_in_beijing_time() -> None:
    moment = datetime(2026, 11, 20, 22, 5, 9, tzinfo=UTC)  # 2026-11-21 06:05:09 +08:00, a Saturday
    date_value, time_value = encode_meter_clock(moment, utc_offset=timedelta(hours=8))
    assert date_value == bytes([0x06, 0x21, 0x11, 0x26])  # WW=6 (Saturday) DD MM YY, low byte first
    assert time_value == bytes([0x09, 0x05, 0x06])        # ss mm hh
    assert decode_meter_clock(date_value, time_value, utc_offset=timedelta(hours=8)) == moment
    with pytest.raises(BcdError):
        decode_meter_clock(bytes([0, 0x32, 0x13, 0x26]), time_value, utc_offset=timedelta(hours=8))


@given(
    address=st.text(alphabet="0123456789", min_size=12, max_size=12),
    control=st.integers(0, 255),
    data=st.binary(max_size=200),
    preamble=st.booleans(),
)
def test_encode_decode_roundtrip(address: str, control: int, data: bytes, preamble: bool) -> None:
    wire = encode_frame(address, control, data, preamble=preamble)
    frame, used = decode_frame(wire)
    assert (frame.address, frame.control, frame.data, used) == (address, control, data, len(wire))


@given(value=st.integers(0, 99_999_999), decimals=st.integers(0, 4))
def test_bcd_roundtrip(value: int, decimals: int) -> None:
    number = value / 10**decimals
    assert decode_bcd(encode_bcd(number, n_bytes=4, decimals=decimals), decimals=decimals) == number


@given(st.binary(max_size=300))
def test_scan_frame_on_garbage_only_raises_frame_errors(noise: bytes) -> None:
    try:
        frame, used = scan_frame(noise)
    except FrameError:
        return
    assert 0 <= used <= len(noise)
    if frame is None:
        assert used <= len(noise)

"""Pure parts of the serial work: malformed DL/T 645 frames, the address query, the reply matcher, bus config.

Hypothesis builds valid frames and damages them the ways a line does (a flipped byte, a frame cut short,
noise before it); the codec must answer with one of its own errors, never another exception and never a
different frame. ``serial_buses`` entries from arbitrary YAML either validate or fail with a ConfigError
naming the field.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge.config import parse_config
from edge.dlt645 import (
    PREAMBLE,
    WILDCARD_ADDRESS,
    Control,
    address_reply_value,
    address_to_bytes,
    decode_frame,
    encode_address_query,
    encode_address_reply,
    encode_frame,
    encode_read_reply,
    scan_frame,
)
from edge.errors import ConfigError, FrameError, IncompleteFrameError, UnexpectedReplyError
from edge.readers.dlt645 import Dlt645SerialEndpoint, _ReplyMatcher
from edge.serial_bus import SerialBus, SerialBusSettings

addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)
frames = st.builds(lambda a, c, d, p: encode_frame(a, c, d, preamble=p),
                   addresses, st.integers(0, 255), st.binary(max_size=60), st.booleans())


@given(frame=frames, data=st.data())
def test_a_flipped_byte_is_always_an_error(frame: bytes, data: st.DataObject) -> None:
    start = len(PREAMBLE) if frame.startswith(PREAMBLE) else 0
    index = data.draw(st.integers(start + 1, len(frame) - 1).filter(lambda i: i != start + 9), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    damaged = bytearray(frame)
    damaged[index] ^= flip
    with pytest.raises(FrameError):
        decode_frame(bytes(damaged))


@given(frame=frames, data=st.data())
def test_a_damaged_start_or_length_byte_never_crashes(frame: bytes, data: st.DataObject) -> None:
    start = len(PREAMBLE) if frame.startswith(PREAMBLE) else 0
    index = data.draw(st.sampled_from([start, start + 9]))
    damaged = bytearray(frame)
    damaged[index] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(FrameError):  # any other exception fails the test
        decode_frame(bytes(damaged))


@given(frame=frames, data=st.data())
def test_a_frame_cut_short_asks_for_more(frame: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(IncompleteFrameError):
        decode_frame(frame[:cut])
    assert scan_frame(frame[:cut])[0] is None


@given(noise=st.binary(max_size=40).map(lambda b: b.replace(b"\x68", b"")), frame=frames)
def test_the_frame_after_line_noise_is_found_whole(noise: bytes, frame: bytes) -> None:
    found, used = scan_frame(noise + frame)
    expected, _ = decode_frame(frame)
    assert found == expected
    assert used == len(noise) + len(frame)


@given(address=addresses, preamble=st.booleans())
def test_address_query_round_trip(address: str, preamble: bool) -> None:
    frame, _ = decode_frame(encode_address_reply(address, preamble=preamble))
    assert frame.control == Control.REPLY_ADDRESS
    assert address_reply_value(frame) == address
    query, _ = decode_frame(encode_address_query())
    assert (query.address, query.control, query.data) == (WILDCARD_ADDRESS, Control.READ_ADDRESS, b"")


def test_address_query_worked_example() -> None:
    # FE x4, 68 AA x6 68 13 00 CS 16 with CS = (0x68*2 + 0xAA*6 + 0x13) mod 256
    expected_cs = (0x68 * 2 + 0xAA * 6 + 0x13) % 256
    assert encode_address_query() == (PREAMBLE + bytes([0x68, *[0xAA] * 6, 0x68, 0x13, 0x00, expected_cs, 0x16]))
    reply, _ = decode_frame(encode_address_reply("000000000161"))
    assert reply.data == bytes([0x61, 0x01, 0, 0, 0, 0])


@given(other=st.sampled_from([Control.REPLY_READ, Control.REPLY_READ_ERROR, Control.READ_ADDRESS]),
       data=st.binary(max_size=8))
def test_only_93h_frames_announce_an_address(other: int, data: bytes) -> None:
    frame, _ = decode_frame(encode_frame("000000000161", other, data))
    with pytest.raises(UnexpectedReplyError):
        address_reply_value(frame)


@given(noise=st.binary(max_size=60), value=st.binary(min_size=4, max_size=4),
       stale_di=st.integers(0, 0xFFFFFFFF))
def test_reply_matcher_returns_our_value_or_a_frame_error(noise: bytes, value: bytes, stale_di: int) -> None:
    assume(stale_di != 0x00010000)
    endpoint = Dlt645SerialEndpoint(SerialBus(SerialBusSettings(id="b", port="/dev/null", baudrate=9600, parity="E")))
    matcher = _ReplyMatcher(endpoint, "000000000161", 0x00010000, "m")
    stale = encode_read_reply("000000000161", stale_di, value)         # a late answer to another question
    ours = encode_read_reply("000000000161", 0x00010000, value)
    stream = noise + stale + ours
    try:
        got, used = matcher(stream)
    except FrameError:
        assert b"\x68" in noise  # only noise that looks like a frame start can make a corrupt "frame"
        return
    if b"\x68" not in noise:
        assert (got, used) == (value, len(stream))
        assert endpoint.stale_frames == 1


_bus_fields = st.fixed_dictionaries(
    {"id": st.one_of(st.just("bus-1"), st.text(max_size=8)),
     "port": st.one_of(st.just("/dev/ttyUSB0"), st.text(max_size=4)),
     "baudrate": st.one_of(st.integers(-10, 2_000_000), st.text(max_size=3)),
     "parity": st.sampled_from(["N", "E", "O", "X", "", 1])},
    optional={"bytesize": st.sampled_from([5, 7, 8, "8"]), "stopbits": st.sampled_from([0, 1, 2, 1.5]),
              "timeout_s": st.floats(allow_nan=True), "retries": st.integers(-1, 9),
              "turnaround_s": st.one_of(st.none(), st.floats(-1, 10)), "frame_gap_s": st.floats(-1, 10),
              "speed": st.integers()},
)


@given(bus=_bus_fields)
def test_serial_bus_config_is_valid_or_a_clear_config_error(bus: dict[str, Any]) -> None:
    data = {"agent_id": "gw", "park_id": "p", "serial_buses": [bus],
            "devices": [{"id": "m1", "profile": "dlt645_2007_3p",
                         "transport": {"kind": "dlt645_serial", "bus": "bus-1", "address": "000000000161"}}]}
    try:
        config = parse_config(data, origin="edge.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert "edge.yaml" in message
        assert "serial_buses" in message or "unknown serial bus" in message
        return
    settings = config.serial_buses[0]
    assert 300 <= settings.baudrate <= 921_600
    assert settings.parity in ("N", "E", "O")
    assert config.devices[0].transport.bus_settings is settings  # type: ignore[union-attr]


def test_line_timing_of_8e1() -> None:
    line = SerialBusSettings(id="b", port="/dev/ttyUSB0", baudrate=9600, parity="E")
    assert line.char_time_s == pytest.approx(11 / 9600)          # start + 8 data + parity + stop
    assert line.wire_time_s(96) == pytest.approx(0.11)
    assert line.turnaround == pytest.approx(3.5 * 11 / 9600)
    assert line.frame_gap == pytest.approx(0.05)                  # at least 50 ms (USB adapter latency)
    n81 = SerialBusSettings(id="b", port="/dev/ttyUSB0", baudrate=2400, parity="N", frame_gap_s=0.2)
    assert n81.char_time_s == pytest.approx(10 / 2400)
    assert n81.frame_gap == 0.2
    assert address_to_bytes(WILDCARD_ADDRESS) == b"\xaa" * 6

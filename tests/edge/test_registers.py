"""Modbus value decoding: word orders, data types, scale and CT/PT, with hand-computed registers."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import RegisterDecodeError
from edge.profile import ModbusFunction, ModbusPoint, Scaling
from edge.readers.base import ReadResult, make_reading, modbus_value, tidy
from edge.registers import (
    DataType,
    WordOrder,
    decode_registers,
    encode_registers,
    float32_display,
    register_count,
    wrap_max,
)

# 230.0 as IEEE-754 float32 is 0x43660000: bytes A=43 B=66 C=00 D=00
FLOAT_230 = {
    WordOrder.ABCD: [0x4366, 0x0000],
    WordOrder.CDAB: [0x0000, 0x4366],
    WordOrder.BADC: [0x6643, 0x0000],
    WordOrder.DCBA: [0x0000, 0x6643],
}


@pytest.mark.parametrize(("order", "registers"), list(FLOAT_230.items()))
def test_float32_in_every_word_order(order: WordOrder, registers: list[int]) -> None:
    assert decode_registers(registers, DataType.FLOAT32, order) == 230.0
    assert encode_registers(230.0, DataType.FLOAT32, order) == registers


def test_integer_types() -> None:
    assert decode_registers([0xFFFF], DataType.INT16, WordOrder.ABCD) == -1
    assert decode_registers([0xFFFF], DataType.UINT16, WordOrder.ABCD) == 65535
    assert decode_registers([0xFFFF, 0xFFFE], DataType.INT32, WordOrder.ABCD) == -2
    # 0x12345678 word-swapped: low word first
    assert decode_registers([0x5678, 0x1234], DataType.UINT32, WordOrder.CDAB) == 0x12345678
    words = [0x0102, 0x0304, 0x0506, 0x0708]
    assert decode_registers(words, DataType.UINT64, WordOrder.ABCD) == 0x0102030405060708
    assert decode_registers(words[::-1], DataType.UINT64, WordOrder.CDAB) == 0x0102030405060708
    assert decode_registers([0x0201, 0x0403, 0x0605, 0x0807], DataType.UINT64, WordOrder.BADC) == 0x0102030405060708


def test_register_count_and_errors() -> None:
    assert [register_count(t) for t in DataType] == [1, 1, 2, 2, 2, 4, 4, 4]
    with pytest.raises(RegisterDecodeError, match="needs 2"):
        decode_registers([1], DataType.FLOAT32, WordOrder.ABCD)
    with pytest.raises(RegisterDecodeError, match="outside"):
        decode_registers([70000, 0], DataType.UINT32, WordOrder.ABCD)
    with pytest.raises(RegisterDecodeError, match="does not fit"):
        encode_registers(70000, DataType.UINT16, WordOrder.ABCD)


def test_wrap_max_of_integer_registers() -> None:
    assert wrap_max(DataType.UINT32, 0.01) == pytest.approx(42949672.95)  # (2**32 - 1) * 0.01
    assert wrap_max(DataType.INT32, 1.0) == 2**31 - 1
    assert wrap_max(DataType.FLOAT32, 1.0) is None


def test_float32_display_drops_digits_the_meter_never_had() -> None:
    exact = decode_registers(encode_registers(230.07628, DataType.FLOAT32, WordOrder.ABCD),
                             DataType.FLOAT32, WordOrder.ABCD)
    assert exact == 230.07627868652344
    assert float32_display(exact) == 230.07628
    assert math.isnan(float32_display(math.nan))


def _point(**kw: object) -> ModbusPoint:
    base: dict[str, object] = {
        "metric": "active_power", "address": 0x2012, "function": ModbusFunction.HOLDING, "type": DataType.FLOAT32,
        "word_order": WordOrder.ABCD, "scale": 0.1, "unit": "W", "scaling": Scaling.CTPT, "unit_factor": 0.001,
    }
    base.update(kw)
    return ModbusPoint(**base)  # type: ignore[arg-type]


def test_dtsu666_power_with_ct_and_pt() -> None:
    # register 12345.5 (0.1 W units) -> 1234.55 W secondary -> x CT 200 x PT 10 -> 2469100 W -> 2469.1 kW
    regs = encode_registers(12345.5, DataType.FLOAT32, WordOrder.ABCD)
    assert modbus_value(_point(), regs, ct_ratio=200.0, pt_ratio=10.0) == pytest.approx(2469.1)


def test_current_scales_with_ct_only_and_voltage_with_pt_only() -> None:
    regs = encode_registers(5000.0, DataType.FLOAT32, WordOrder.ABCD)
    current = _point(metric="current_l1", unit="A", scale=0.001, scaling=Scaling.CT, unit_factor=1.0)
    voltage = _point(metric="voltage_l1", unit="V", scale=0.001, scaling=Scaling.PT, unit_factor=1.0)
    assert modbus_value(current, regs, ct_ratio=200.0, pt_ratio=10.0) == pytest.approx(5.0 * 200)  # 5 A x CT
    assert modbus_value(voltage, regs, ct_ratio=200.0, pt_ratio=10.0) == pytest.approx(5.0 * 10)   # 5 V x PT


def test_nan_register_is_skipped_not_fatal() -> None:
    result = ReadResult()
    ts = datetime(2026, 1, 1, tzinfo=UTC)
    make_reading(ts, "active_power", math.nan, result)
    make_reading(ts, "voltage_l1", 230.0, result)
    assert [r.metric for r in result.readings] == ["voltage_l1"]
    assert result.skipped[0][0] == "active_power"


def test_tidy_removes_scaling_noise() -> None:
    assert 0.1 * 3 == 0.30000000000000004
    assert tidy(0.1 * 3) == 0.3
    assert tidy(999999.99 * 5000) == 4999999950.0


@given(
    data_type=st.sampled_from(list(DataType)),
    order=st.sampled_from(list(WordOrder)),
    value=st.integers(-(2**15), 2**15 - 1),
)
def test_roundtrip_every_type_and_order(data_type: DataType, order: WordOrder, value: int) -> None:
    if data_type.startswith("uint"):
        value = abs(value)
    regs = encode_registers(value, data_type, order)
    assert len(regs) == register_count(data_type)
    assert decode_registers(regs, data_type, order) == value

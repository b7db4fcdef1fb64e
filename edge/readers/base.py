"""What every device reader returns, and the pure conversions from raw register values to readings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from edge.dlt645 import decode_bcd
from edge.errors import BcdError
from edge.payload import Reading
from edge.profile import Dlt645PointSpec, ModbusPoint
from edge.registers import DataType, decode_registers, float32_display
from schemas import METRICS


@dataclass(slots=True)
class ReadResult:
    """The outcome of one poll of one device.

    ``readings`` are the good values; ``skipped`` names each point that gave no value this time and why
    (a Modbus exception for one block, a DL/T 645 "no data" reply, a NaN register). A poll with some
    skipped points still delivers the others: one bad register never blocks a device's data.
    """

    readings: list[Reading] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    meter_clock: datetime | None = None
    meter_clock_read_at: datetime | None = None


class DeviceReader(Protocol):
    """Reads one device; implementations share connections per gateway and serialise the bus."""

    device_id: str

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Read every point of the device's profile, stamping the readings with ``ts`` (UTC)."""
        ...


def modbus_value(point: ModbusPoint, registers: list[int], *, ct_ratio: float, pt_ratio: float) -> float:
    """Primary value of a Modbus point in its metric's canonical unit.

    ``raw x scale`` is the value in the profile's unit on the meter's side of the transformers;
    ``x CT/PT`` gives the primary quantity, ``x unit_factor`` the canonical unit (W -> kW ...).
    """
    raw = decode_registers(registers, point.type, point.word_order)
    if point.type is DataType.FLOAT32:
        raw = float32_display(raw)
    return raw * point.scale * point.scaling.factor(ct_ratio, pt_ratio) * point.unit_factor


def dlt645_value(point: Dlt645PointSpec, value: bytes, *, ct_ratio: float, pt_ratio: float) -> float:
    """Primary value of a DL/T 645 point (BCD) in its metric's canonical unit."""
    if len(value) < point.n_bytes:
        raise BcdError(f"{point.metric}: {len(value)} value byte(s), format needs {point.n_bytes}")
    raw = decode_bcd(value[:point.n_bytes], decimals=point.decimals, signed=point.signed)
    return raw * point.scaling.factor(ct_ratio, pt_ratio) * point.unit_factor


def tidy(value: float) -> float:
    """Round away binary noise from scaling (``0.1 * 3 = 0.30000000000000004`` -> ``0.3``).

    Twelve significant digits keep far more than any meter resolves (a 999999.99 kWh register times a CT
    ratio of 5000 still has all its digits).
    """
    return float(f"{value:.12g}")


def make_reading(ts: datetime, metric: str, value: float, result: ReadResult) -> None:
    """Append a reading to ``result``, or record it as skipped when the value is NaN or infinite.

    A NaN from one register is one skipped point, never a stopped upload (emonhub #45).
    """
    if not math.isfinite(value):
        result.skipped.append((metric, f"non-finite value {value}"))
        return
    result.readings.append(Reading(ts=ts, metric=metric, value=tidy(value), unit=METRICS[metric].unit))

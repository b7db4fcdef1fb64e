"""Payload encoding (pure): readings, birth and status messages, and deliberately malformed payloads.

Everything follows ``schemas.payload``: readings carry timestamps with the park's UTC offset, values in
the metric's canonical unit, ``quality: "good"``. Floats are written with orjson's shortest round-trip
form, so a value parsed back from the JSON is bit-identical to the one recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, NamedTuple

import orjson

from schemas import METRICS, PAYLOAD_VERSION
from simulators._device_specs import DeviceSpec

#: Readings per message; keeps each payload far below the ingest limits (10,000 readings, 1 MiB).
MAX_READINGS_PER_MESSAGE: Final = 5000
UNKNOWN_METRIC: Final = "simulated_unknown_metric"


class PublishedReading(NamedTuple):
    """One valid reading exactly as published (``ts`` in UTC, ``value`` in ``unit``, the canonical unit)."""

    device_id: str
    metric: str
    ts: datetime
    value: float
    unit: str


class MalformedKind(StrEnum):
    """Ways an injected bad message is broken; each yields zero storable readings."""

    TRUNCATED_JSON = "truncated_json"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"


SampleRow = tuple[str, Mapping[str, float]]  # (ts as ISO text with offset, {metric: value})


def encode_readings(device_id: str, seq: int, sent_at: datetime, samples: Sequence[SampleRow],
                    metrics: Sequence[str]) -> bytes:
    """A readings message with one reading per metric per sample, in ``metrics`` order."""
    units = [METRICS[m].unit for m in metrics]
    readings = [
        {"ts": ts, "metric": metric, "value": values[metric], "unit": unit, "quality": "good"}
        for ts, values in samples
        for metric, unit in zip(metrics, units, strict=True)
    ]
    return orjson.dumps({"v": PAYLOAD_VERSION, "device": device_id, "seq": seq, "sent_at": sent_at,
                         "readings": readings})


def encode_birth(spec: DeviceSpec, *, park_id: str, metrics: Sequence[str], sample_interval_s: int,
                 sent_at: datetime) -> bytes:
    """The retained birth message: the contract fields plus ``park``, ``name``, ``parent``, ``metrics``."""
    body: dict[str, Any] = {
        "v": PAYLOAD_VERSION, "device": spec.id, "kind": spec.kind, "carrier": spec.carrier, "site": spec.site,
        "role": spec.role, "profile": spec.profile, "firmware": spec.firmware, "register_max": spec.register_max,
        "multiplier": spec.multiplier, "rated_power_kw": spec.rated_power_kw, "sent_at": sent_at,
        # extras (BirthMessage allows them): useful metadata for the catalog and for people
        "park": park_id, "name": spec.name, "parent": spec.parent, "metrics": list(metrics),
        "sample_interval_s": sample_interval_s,
    }
    if spec.metering_level is not None:
        body["metering_level"] = spec.metering_level
    return orjson.dumps(body)


def encode_status(device_id: str, *, online: bool, sent_at: datetime, backlog: int = 0) -> bytes:
    """A status message (``online`` true at session start, false at a clean end)."""
    return orjson.dumps({"v": PAYLOAD_VERSION, "device": device_id, "online": online, "sent_at": sent_at,
                         "backlog": backlog})


def encode_malformed(kind: MalformedKind, *, device_id: str, seq: int, sent_at: datetime, ts: str,
                     valid_payload: bytes, metric: str) -> bytes:
    """A payload ingest must reject entirely (zero readings stored), for fault-injection tests.

    ``valid_payload`` is cut in half for :attr:`MalformedKind.TRUNCATED_JSON`; the others carry a single
    reading with an unregistered metric, or with a unit of the wrong dimension for ``metric``.
    """
    if kind is MalformedKind.TRUNCATED_JSON:
        return valid_payload[: max(1, len(valid_payload) // 2)]
    if kind is MalformedKind.UNKNOWN_METRIC:
        reading = {"ts": ts, "metric": UNKNOWN_METRIC, "value": 1.0, "unit": "kWh", "quality": "good"}
    else:
        wrong_unit = "kWh" if METRICS[metric].unit == "degC" else "degC"
        reading = {"ts": ts, "metric": metric, "value": 1.0, "unit": wrong_unit, "quality": "good"}
    return orjson.dumps({"v": PAYLOAD_VERSION, "device": device_id, "seq": seq, "sent_at": sent_at,
                         "readings": [reading]})

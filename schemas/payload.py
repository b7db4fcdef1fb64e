"""Message payloads (JSON) and their decoding into validated readings.

One ``readings`` message carries a batch of readings from one device::

    {"v": 1, "device": "m-001", "seq": 42, "sent_at": "2026-11-20T08:00:05Z",
     "readings": [{"ts": "2026-11-20T08:00:00Z", "metric": "active_energy_import",
                   "value": 1234.56, "unit": "kWh", "quality": "good"}]}

Decoding is pure: :func:`decode_readings` takes the raw bytes, the topic and the current time and returns
the readings that passed (values converted to the metric's canonical unit) and a :class:`Rejection` for
each reading or message that did not, with a precise reason. Nothing here raises on bad input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, NotRequired

import pydantic_core
from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from schemas.errors import UnitError
from schemas.metrics import METRICS
from schemas.topics import ID_PATTERN, TopicAddress
from schemas.units import conversion_factor

PAYLOAD_VERSION: Final = 1


class Quality(IntEnum):
    """Quality flag of a stored value (``int2`` in the database)."""

    GOOD = 0        # measured, device reports no problem
    ESTIMATED = 1   # estimated or substituted by the device or a VEE step
    SUSPECT = 2     # measured but flagged by the device (e.g. clock adjusted, CT fault)
    BAD = 3         # the device itself says the value is wrong; kept for audit, never aggregated


QualityName = Literal["good", "estimated", "suspect", "bad"]
_QUALITY_CODES: Final[dict[str, int]] = {q.name.lower(): int(q) for q in Quality}

DeviceId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]


@with_config(ConfigDict(extra="forbid"))
class ReadingIn(TypedDict):
    """One measurement: when, what, how much, in which unit, how trustworthy."""

    ts: AwareDatetime
    metric: Annotated[str, Field(min_length=1, max_length=64)]
    value: FiniteFloat
    unit: Annotated[str, Field(min_length=1, max_length=16)]
    quality: NotRequired[QualityName]


@with_config(ConfigDict(extra="forbid"))
class ReadingsMessage(TypedDict):
    """A batch of readings from one device (topic ``parkpulse/v1/{park}/{device}/readings``)."""

    v: Literal[1]
    device: DeviceId
    seq: Annotated[int, Field(ge=0, lt=2**63)]
    sent_at: NotRequired[AwareDatetime]
    readings: Annotated[list[ReadingIn], Field(min_length=1)]


@with_config(ConfigDict(extra="forbid"))
class _Envelope(TypedDict):
    v: Literal[1]
    device: DeviceId
    seq: Annotated[int, Field(ge=0, lt=2**63)]
    sent_at: NotRequired[AwareDatetime]
    readings: Annotated[list[Any], Field(min_length=1)]


@with_config(ConfigDict(extra="allow"))
class BirthMessage(TypedDict):
    """Retained device metadata (topic ``.../birth``), published when a device session starts."""

    v: Literal[1]
    device: DeviceId
    kind: Annotated[str, Field(max_length=64)]
    carrier: NotRequired[Literal["electricity", "gas", "heat", "cooling", "water", "steam", "none"]]
    metering_level: NotRequired[Literal[1, 2, 3]]
    site: NotRequired[DeviceId | None]
    role: NotRequired[Annotated[str, Field(max_length=64)] | None]
    profile: NotRequired[Annotated[str, Field(max_length=64)] | None]
    firmware: NotRequired[Annotated[str, Field(max_length=64)] | None]
    register_max: NotRequired[Annotated[float, Field(gt=0, allow_inf_nan=False)] | None]
    multiplier: NotRequired[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    rated_power_kw: NotRequired[Annotated[float, Field(gt=0, allow_inf_nan=False)] | None]
    sent_at: NotRequired[AwareDatetime]


@with_config(ConfigDict(extra="allow"))
class StatusMessage(TypedDict):
    """Device session status (topic ``.../status``); also the MQTT last will with ``online: false``."""

    v: Literal[1]
    device: DeviceId
    online: bool
    sent_at: NotRequired[AwareDatetime]
    backlog: NotRequired[Annotated[int, Field(ge=0)]]


READINGS_ADAPTER: Final = TypeAdapter(ReadingsMessage)
BIRTH_ADAPTER: Final = TypeAdapter(BirthMessage)
STATUS_ADAPTER: Final = TypeAdapter(StatusMessage)
_ENVELOPE_ADAPTER: Final = TypeAdapter(_Envelope)
_READING_ADAPTER: Final = TypeAdapter(ReadingIn)


class RejectReason(StrEnum):
    """Why a message or reading was quarantined. Stable codes: they label metrics and dashboards."""

    OVERSIZED = "oversized"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    INVALID_TOPIC = "invalid_topic"
    DEVICE_MISMATCH = "device_mismatch"
    TOO_MANY_READINGS = "too_many_readings"
    NON_FINITE_VALUE = "non_finite_value"
    UNKNOWN_METRIC = "unknown_metric"
    UNIT_MISMATCH = "unit_mismatch"
    OUT_OF_RANGE = "out_of_range"
    FUTURE_TIMESTAMP = "future_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One rejected reading (``index`` >= 0) or a whole rejected message (``index`` is None)."""

    reason: RejectReason
    detail: str
    index: int | None = None


class ValidReading(NamedTuple):
    """A reading that passed validation: value in the metric's canonical unit, ``ts`` timezone-aware.

    ``ts`` keeps the offset the device sent (an aware datetime is one instant whatever its offset; the
    database stores it as UTC). Converting each reading here would cost more than the rest of validation.
    """

    metric: str
    ts: datetime
    value: float
    quality: int


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Limits applied to every message; ingest and CSV import share it."""

    max_message_bytes: int = 1_048_576
    max_readings: int = 10_000
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=400)
    earliest: datetime = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class DecodedMessage:
    """The outcome of decoding one message: what to store and what to quarantine."""

    device_id: str | None = None
    seq: int | None = None
    sent_at: datetime | None = None
    readings: list[ValidReading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    n_readings_in: int = 0

    @property
    def whole_message_rejected(self) -> bool:
        """True when the message itself (not only some readings) was rejected."""
        return any(r.index is None for r in self.rejections)

    def summary(self, limit: int = 5) -> str:
        """Human-readable reason text for the quarantine table: first ``limit`` rejections and a count."""
        parts = [
            (f"readings[{r.index}]: " if r.index is not None else "") + f"{r.reason.value}: {r.detail}"
            for r in self.rejections[:limit]
        ]
        more = len(self.rejections) - limit
        if more > 0:
            parts.append(f"... and {more} more")
        return "; ".join(parts)


def _error_text(exc: ValidationError, limit: int = 3) -> str:
    errs = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errs[:limit])
    return text + (f" (+{len(errs) - limit} more)" if len(errs) > limit else "")


def _reading_rejection(exc: ValidationError, index: int) -> Rejection:
    types = {e["type"] for e in exc.errors(include_url=False, include_input=False)}
    reason = RejectReason.NON_FINITE_VALUE if "finite_number" in types else RejectReason.SCHEMA_VIOLATION
    return Rejection(reason, _error_text(exc), index)


def _unit_check(metric: str, unit: str) -> tuple[float, float, float] | tuple[RejectReason, str]:
    """Conversion factor and physical range for a (metric, unit) pair, or why the pair is rejected."""
    spec = METRICS.get(metric)
    if spec is None:
        return RejectReason.UNKNOWN_METRIC, f"metric {metric!r} is not registered"
    try:
        factor = conversion_factor(unit, spec.unit)
    except UnitError as exc:
        return RejectReason.UNIT_MISMATCH, f"{metric}: {exc}"
    low = spec.min_value if spec.min_value is not None else -math.inf
    high = spec.max_value if spec.max_value is not None else math.inf
    return factor, low, high


def _whole(result: DecodedMessage, reason: RejectReason, detail: str) -> DecodedMessage:
    result.rejections.append(Rejection(reason, detail))
    return result


def decode_readings(  # noqa: PLR0911, PLR0912, PLR0915 -- one flat pass: this is the ingest hot loop
    address: TopicAddress, raw: bytes, *, now: datetime, policy: ValidationPolicy | None = None
) -> DecodedMessage:
    """Validate a ``readings`` payload received on ``address``'s topic.

    Returns the readings that passed, converted to canonical units, and a rejection per bad reading or
    for the whole message. The fast path validates the whole message in one pydantic call; only when that
    fails are readings validated one by one, so one bad reading never discards its neighbours.
    """
    pol = policy or ValidationPolicy()
    result = DecodedMessage()
    if len(raw) > pol.max_message_bytes:
        return _whole(result, RejectReason.OVERSIZED, f"{len(raw)} bytes > limit {pol.max_message_bytes}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _whole(result, RejectReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")

    items: list[Any]
    try:
        msg: dict[str, Any] = READINGS_ADAPTER.validate_json(raw)  # type: ignore[assignment]
        items = msg["readings"]
        prevalidated = True
    except ValidationError:
        try:
            parsed = pydantic_core.from_json(raw, allow_inf_nan=True)
        except ValueError as exc:
            return _whole(result, RejectReason.INVALID_JSON, str(exc)[:200])
        try:
            msg = _ENVELOPE_ADAPTER.validate_python(parsed)  # type: ignore[assignment]
        except ValidationError as exc:
            return _whole(result, RejectReason.SCHEMA_VIOLATION, _error_text(exc))
        items = msg["readings"]
        prevalidated = False

    result.device_id, result.seq, result.sent_at = msg["device"], msg["seq"], msg.get("sent_at")
    result.n_readings_in = len(items)
    if msg["device"] != address.device_id:
        return _whole(result, RejectReason.DEVICE_MISMATCH,
                      f"payload device {msg['device']!r} != topic device {address.device_id!r}")
    if len(items) > pol.max_readings:
        return _whole(result, RejectReason.TOO_MANY_READINGS, f"{len(items)} readings > limit {pol.max_readings}")

    latest, oldest = now + pol.max_future, max(now - pol.max_age, pol.earliest)
    # (metric, unit) -> (factor, min, max) or a Rejection: one dict lookup per reading on the hot path
    checks: dict[tuple[str, str], tuple[float, float, float] | tuple[RejectReason, str]] = {}
    accepted, rejected = result.readings, result.rejections
    quality_codes, inf = _QUALITY_CODES, math.inf
    for index, item in enumerate(items):
        if not prevalidated:
            try:
                item = _READING_ADAPTER.validate_python(item)  # noqa: PLW2901
            except ValidationError as exc:
                rejected.append(_reading_rejection(exc, index))
                continue
        metric, unit, ts = item["metric"], item["unit"], item["ts"]
        check = checks.get((metric, unit))
        if check is None:
            check = checks[(metric, unit)] = _unit_check(metric, unit)
        if len(check) == 2:
            rejected.append(Rejection(check[0], check[1], index))
            continue
        factor, low, high = check
        if ts > latest:
            rejected.append(Rejection(RejectReason.FUTURE_TIMESTAMP,
                                      f"{ts.isoformat()} is more than {pol.max_future} ahead of {now.isoformat()}",
                                      index))
            continue
        if ts < oldest:
            rejected.append(Rejection(RejectReason.STALE_TIMESTAMP, f"{ts.isoformat()} is before {oldest.isoformat()}",
                                      index))
            continue
        value = item["value"] * factor
        if not low <= value <= high or value in (inf, -inf):
            rejected.append(Rejection(RejectReason.OUT_OF_RANGE,
                                      f"{metric}={value} {METRICS[metric].unit} outside [{low}, {high}]", index))
            continue
        accepted.append(ValidReading(metric, ts, value, quality_codes[item.get("quality", "good")]))
    return result


def payload_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas (draft 2020-12) of every payload, for device vendors (``parkpulse schema export``)."""
    return {
        "readings": READINGS_ADAPTER.json_schema(),
        "birth": BIRTH_ADAPTER.json_schema(),
        "status": STATUS_ADAPTER.json_schema(),
    }

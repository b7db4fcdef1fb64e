"""Message payloads (JSON) and their decoding into validated readings.

One ``readings`` message carries a batch of readings from one device::

    {"v": 1, "device": "m-001", "seq": 42, "sent_at": "2026-11-20T08:00:05Z",
     "readings": [{"ts": "2026-11-20T08:00:00Z", "metric": "active_energy_import",
                   "value": 1234.56, "unit": "kWh", "quality": "good"}]}

Decoding is pure: :func:`decode_readings` takes the raw bytes, the topic and the current time and returns
the readings that passed (values converted to the metric's canonical unit) and a :class:`Rejection` for
each reading or message that did not, with a precise reason. Nothing here raises on bad input.

The JSON is held to a stricter contract than pydantic's parser alone enforces (:mod:`schemas._strict_json`):
an object that repeats a member name is rejected (``duplicate_key``: parsers disagree on which value counts),
timestamps must be ISO-8601 strings (a number is not read as Unix time), and birth and status strings must
not hold NUL, other C0 control characters or surrogates (PostgreSQL cannot store them in text or jsonb).
:func:`decode_birth` and :func:`decode_status` apply the same checks as :func:`decode_readings`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Final, Literal, NamedTuple, NotRequired

import pydantic_core
from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from schemas._strict_json import (
    StrictTimestamp,
    count_keys_and_strings,
    find_unsafe_string,
    has_duplicate_keys,
    printable,
)
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

    ts: StrictTimestamp
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
    sent_at: NotRequired[StrictTimestamp]
    readings: Annotated[list[ReadingIn], Field(min_length=1)]


@with_config(ConfigDict(extra="forbid"))
class _Envelope(TypedDict):
    v: Literal[1]
    device: DeviceId
    seq: Annotated[int, Field(ge=0, lt=2**63)]
    sent_at: NotRequired[StrictTimestamp]
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
    sent_at: NotRequired[StrictTimestamp]


@with_config(ConfigDict(extra="allow"))
class StatusMessage(TypedDict):
    """Device session status (topic ``.../status``); also the MQTT last will with ``online: false``."""

    v: Literal[1]
    device: DeviceId
    online: bool
    sent_at: NotRequired[StrictTimestamp]
    backlog: NotRequired[Annotated[int, Field(ge=0)]]


def _reject_unsafe_strings(message: Any) -> Any:
    """Reject a birth/status message whose keys or strings (extra fields too) PostgreSQL cannot store."""
    where = find_unsafe_string(message)
    if where is not None:
        raise PydanticCustomError("unsafe_string", "{where}, which PostgreSQL cannot store", {"where": where})
    return message


READINGS_ADAPTER: Final = TypeAdapter(ReadingsMessage)
# The string check is part of the adapters (not only of decode_birth/decode_status), so every caller of
# validate_json/validate_python gets it; it does not change the exported JSON schema.
BIRTH_ADAPTER: Final[TypeAdapter[BirthMessage]] = TypeAdapter(
    Annotated[BirthMessage, AfterValidator(_reject_unsafe_strings)])
STATUS_ADAPTER: Final[TypeAdapter[StatusMessage]] = TypeAdapter(
    Annotated[StatusMessage, AfterValidator(_reject_unsafe_strings)])
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
    DUPLICATE_KEY = "duplicate_key"  # an object repeats a member name: parsers disagree on which value counts
    UNREGISTERED = "unregistered"    # the device or park is not in the registry (ingest)
    STORE_ERROR = "store_error"      # the database refused the message (ingest)


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
    """The first ``limit`` errors as one line; escaped, since locations can hold keys the device sent."""
    errs = exc.errors(include_url=False, include_input=False)
    text = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errs[:limit])
    return printable(text + (f" (+{len(errs) - limit} more)" if len(errs) > limit else ""))


class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen[key] = value
    return seen


def _duplicate_key_detail(raw: bytes) -> str:
    """Rejection detail naming the repeated member. Runs only for a rejected message, so a second parse
    (the standard library's, which can report pairs) costs nothing on the accepting path."""
    try:
        json.loads(raw, object_pairs_hook=_refuse_duplicates)
    except _DuplicateKeyError as exc:
        return f"member name {printable(repr(exc.key))} appears more than once in one object"
    except (ValueError, RecursionError):
        pass
    return "a member name appears more than once in one object"


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
    fails are readings validated one by one, so one bad reading never discards its neighbours. A member name
    repeated in any object (envelope or reading) rejects the whole message as ``duplicate_key``: which value
    counts depends on the parser, so no reading of it can be trusted. The check counts tokens in the raw
    bytes against the parsed result (:func:`schemas._strict_json.has_duplicate_keys`): no second parse.
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
        # Every key is a string token, and so are device, sent_at and each reading's fields except value
        # (the schema accepts nothing else there); seq may be a numeric string: then the count is a lower
        # bound and has_duplicate_keys falls back to its exact count.
        n_item_keys = sum(map(len, items))
        n_keys = len(msg) + n_item_keys
        if has_duplicate_keys(raw, n_keys, n_keys + 1 + ("sent_at" in msg) + n_item_keys - len(items)):
            return _whole(result, RejectReason.DUPLICATE_KEY, _duplicate_key_detail(raw))
    except ValidationError:
        try:
            parsed = pydantic_core.from_json(raw, allow_inf_nan=True)
        except ValueError as exc:
            return _whole(result, RejectReason.INVALID_JSON, printable(str(exc)[:200]))
        if has_duplicate_keys(raw, *count_keys_and_strings(parsed)):
            return _whole(result, RejectReason.DUPLICATE_KEY, _duplicate_key_detail(raw))
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


@dataclass(frozen=True, slots=True)
class DecodedDeviceMessage:
    """The outcome of decoding a birth or status payload: the validated message, or why it was rejected."""

    message: dict[str, Any] | None
    rejection: Rejection | None = None


def _decode_device_message(  # noqa: PLR0911 -- a flat sequence of checks, each with its own rejection
    adapter: TypeAdapter[Any], address: TopicAddress, raw: bytes, policy: ValidationPolicy | None
) -> DecodedDeviceMessage:
    """Shared birth/status decoding: size, UTF-8, JSON, duplicate keys, schema and storable strings, device."""
    pol = policy or ValidationPolicy()

    def reject(reason: RejectReason, detail: str) -> DecodedDeviceMessage:
        return DecodedDeviceMessage(None, Rejection(reason, detail))

    if len(raw) > pol.max_message_bytes:
        return reject(RejectReason.OVERSIZED, f"{len(raw)} bytes > limit {pol.max_message_bytes}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(RejectReason.INVALID_UTF8, f"byte {exc.start}: {exc.reason}")
    try:
        message: dict[str, Any] = adapter.validate_json(raw)
    except ValidationError as exc:
        try:
            parsed = pydantic_core.from_json(raw, allow_inf_nan=True)
        except ValueError as json_exc:
            return reject(RejectReason.INVALID_JSON, printable(str(json_exc)[:200]))
        if has_duplicate_keys(raw, *count_keys_and_strings(parsed)):
            return reject(RejectReason.DUPLICATE_KEY, _duplicate_key_detail(raw))
        return reject(RejectReason.SCHEMA_VIOLATION, _error_text(exc))
    # The validated dict keeps every key and extra value as parsed; its strings and datetimes (sent_at,
    # strict: only from a string) are string tokens, and a lax field that took "1.5" only lowers the bound.
    if has_duplicate_keys(raw, *count_keys_and_strings(message)):
        return reject(RejectReason.DUPLICATE_KEY, _duplicate_key_detail(raw))
    if message["device"] != address.device_id:
        return reject(RejectReason.DEVICE_MISMATCH,
                      f"payload device {message['device']!r} != topic device {address.device_id!r}")
    return DecodedDeviceMessage(message)


def decode_birth(address: TopicAddress, raw: bytes, *, policy: ValidationPolicy | None = None
                 ) -> DecodedDeviceMessage:
    """Validate a ``birth`` payload received on ``address``'s topic.

    Rejections, each with a detail: ``oversized``, ``invalid_utf8``, ``invalid_json``, ``duplicate_key``
    (at any depth, extra fields included), ``schema_violation`` (also for a key or string holding NUL,
    another C0 control character or a surrogate, named in the detail) and ``device_mismatch``.
    """
    return _decode_device_message(BIRTH_ADAPTER, address, raw, policy)


def decode_status(address: TopicAddress, raw: bytes, *, policy: ValidationPolicy | None = None
                  ) -> DecodedDeviceMessage:
    """Validate a ``status`` payload (or last will) received on ``address``'s topic; as :func:`decode_birth`."""
    return _decode_device_message(STATUS_ADAPTER, address, raw, policy)


def payload_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas (draft 2020-12) of every payload, for device vendors (``parkpulse schema export``)."""
    return {
        "readings": READINGS_ADAPTER.json_schema(),
        "birth": BIRTH_ADAPTER.json_schema(),
        "status": STATUS_ADAPTER.json_schema(),
    }

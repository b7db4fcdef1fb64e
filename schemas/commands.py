"""The dispatch contract: setpoint commands to a device and the device's acknowledgement.

The VPP dispatcher publishes a :class:`CommandMessage` on ``parkpulse/v1/{park}/{device}/cmd`` (QoS 1, not
retained); the broker ACL lets only that device read it. The device, or the edge agent's session for it,
answers exactly once per ``command_id`` with a :class:`CommandAck` on ``parkpulse/v1/{park}/{device}/ack``,
which only that device may write::

    {"schema": "parkpulse-command-v1", "command_id": "3f0c…", "park": "park-a", "device": "bess-1",
     "action": "set_active_power", "value": -250.0, "unit": "kW", "issued_at": "2026-12-05T08:00:00Z",
     "expires_at": "2026-12-05T08:01:00Z", "hold_until": "2026-12-05T10:00:00Z", "event_id": "oadr2:vtn/ev-7",
     "issued_by": "vpp-dispatcher", "reason": "DR event oadr2:vtn/ev-7 interval 0"}

    {"schema": "parkpulse-command-ack-v1", "command_id": "3f0c…", "device": "bess-1", "status": "applied",
     "reason": null, "detail": "", "applied_value": -250.0, "unit": "kW", "acked_at": "2026-12-05T08:00:00.4Z"}

Sign convention (the metering convention): ``set_active_power`` is the power the device draws from the
park bus, positive = consuming (battery charging, charger delivering), negative = feeding (battery
discharging). ``release`` hands the device back to its own control (``value`` is ignored). A command
whose ``expires_at`` has passed when it arrives is rejected as ``expired`` and never applied; an applied
setpoint holds until ``hold_until`` (or a newer command) and then the device returns to its own control.

Pure code (pydantic only): the edge agent decodes commands in the slim install.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from schemas._control_message import decode_control_message, validated
from schemas._strict_json import StrictTimestamp
from schemas.errors import InvalidCommandError, InvalidTopicError
from schemas.topics import ID_PATTERN, TOPIC_ROOT, TOPIC_VERSION, is_valid_id

COMMAND_SCHEMA: Final = "parkpulse-command-v1"
ACK_SCHEMA: Final = "parkpulse-command-ack-v1"
COMMAND_LEVEL: Final = "cmd"
ACK_LEVEL: Final = "ack"
MAX_COMMAND_BYTES: Final = 4096
_T = TypeVar("_T")


class CommandAction(StrEnum):
    """What the device is told to do; each names the physical quantity and its unit."""

    SET_ACTIVE_POWER = "set_active_power"          # kW drawn from the bus, + consume / − feed (battery, EV charger)
    SET_POWER_LIMIT = "set_power_limit"            # kW, an upper bound on the draw (EV charger, process load)
    SET_TEMPERATURE_SETPOINT = "set_temperature_setpoint"  # °C (HVAC)
    RELEASE = "release"                            # back to the device's own control


#: The unit each action's value is given in.
ACTION_UNITS: Final[dict[CommandAction, str]] = {
    CommandAction.SET_ACTIVE_POWER: "kW",
    CommandAction.SET_POWER_LIMIT: "kW",
    CommandAction.SET_TEMPERATURE_SETPOINT: "degC",
    CommandAction.RELEASE: "",
}


class AckStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"


class RejectCode(StrEnum):
    """Why a device refused a command."""

    EXPIRED = "expired"                    # arrived after expires_at
    OUT_OF_RANGE = "out_of_range"          # outside the device's writable limits
    UNSUPPORTED_ACTION = "unsupported_action"  # the device's profile has no writable register for it
    DEVICE_OFFLINE = "device_offline"      # the edge agent cannot reach the device
    WRITE_FAILED = "write_failed"          # the protocol write failed or read-back differed
    OVERRIDE_ACTIVE = "override_active"    # a local human override or safety interlock is in force
    INVALID_COMMAND = "invalid_command"    # the payload did not decode, or names another device


CommandId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
DeviceId = Annotated[str, Field(pattern=rf"^{ID_PATTERN}$")]
Text = Annotated[str, Field(max_length=300)]


@with_config(ConfigDict(extra="ignore"))
class CommandMessage(TypedDict):
    """One setpoint for one device (see the module docstring). Unknown members are ignored when decoding."""

    schema: Literal["parkpulse-command-v1"]
    command_id: CommandId
    park: DeviceId
    device: DeviceId
    action: CommandAction
    value: Annotated[float, Field(allow_inf_nan=False, strict=True)]
    unit: Literal["kW", "degC", ""]
    issued_at: StrictTimestamp
    expires_at: StrictTimestamp
    hold_until: StrictTimestamp | None
    event_id: Annotated[str, Field(max_length=200)] | None
    issued_by: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Text


@with_config(ConfigDict(extra="ignore"))
class CommandAck(TypedDict):
    """The device's answer to one command: applied (with the value actually written) or rejected with why."""

    schema: Literal["parkpulse-command-ack-v1"]
    command_id: CommandId
    device: DeviceId
    status: AckStatus
    reason: RejectCode | None
    detail: Text
    applied_value: Annotated[float, Field(allow_inf_nan=False, strict=True)] | None
    unit: Literal["kW", "degC", ""]
    acked_at: StrictTimestamp


COMMAND_ADAPTER: Final = TypeAdapter(CommandMessage)
ACK_ADAPTER: Final = TypeAdapter(CommandAck)


def _device_topic(park_id: str, device_id: str, level: str) -> str:
    for label, value in (("park", park_id), ("device", device_id)):
        if not is_valid_id(value):
            raise InvalidTopicError(f"{park_id}/{device_id}", f"{label} id {value!r} is not {ID_PATTERN}")
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{park_id}/{device_id}/{level}"


def command_topic(park_id: str, device_id: str) -> str:
    """``parkpulse/v1/{park}/{device}/cmd``; raises :class:`InvalidTopicError` on invalid ids."""
    return _device_topic(park_id, device_id, COMMAND_LEVEL)


def ack_topic(park_id: str, device_id: str) -> str:
    """``parkpulse/v1/{park}/{device}/ack``; raises :class:`InvalidTopicError` on invalid ids."""
    return _device_topic(park_id, device_id, ACK_LEVEL)


def parse_device_topic(topic: str, level: str) -> tuple[str, str]:
    """``(park_id, device_id)`` of a ``…/{level}`` topic; raises :class:`InvalidTopicError` for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or (parts[0], parts[1]) != (TOPIC_ROOT, TOPIC_VERSION) or parts[4] != level:
        raise InvalidTopicError(topic, f"expected {TOPIC_ROOT}/{TOPIC_VERSION}/{{park}}/{{device}}/{level}")
    for label, value in (("park", parts[2]), ("device", parts[3])):
        if not is_valid_id(value):
            raise InvalidTopicError(topic, f"{label} id {value!r} is not {ID_PATTERN}")
    return parts[2], parts[3]


def _utc(name: str, ts: datetime) -> datetime:
    if ts.tzinfo is None:
        raise InvalidCommandError(name, "must be timezone-aware (UTC)")
    return ts.astimezone(UTC)


def build_command(*, command_id: str, park: str, device: str, action: CommandAction, value: float,
                  issued_at: datetime, expires_at: datetime, hold_until: datetime | None = None,
                  event_id: str | None = None, issued_by: str, reason: str = "") -> CommandMessage:
    """A validated command; the unit follows from ``action``. Raises :class:`InvalidCommandError`."""
    if expires_at <= issued_at:
        raise InvalidCommandError("expires_at", "must be after issued_at")
    message = {
        "schema": COMMAND_SCHEMA, "command_id": command_id, "park": park, "device": device, "action": action,
        "value": value, "unit": ACTION_UNITS[CommandAction(action)], "issued_at": _utc("issued_at", issued_at),
        "expires_at": _utc("expires_at", expires_at),
        "hold_until": None if hold_until is None else _utc("hold_until", hold_until),
        "event_id": event_id, "issued_by": issued_by, "reason": reason,
    }
    return _validate(COMMAND_ADAPTER, message)


def build_ack(*, command_id: str, device: str, status: AckStatus, acked_at: datetime,
              reason: RejectCode | None = None, detail: str = "", applied_value: float | None = None,
              unit: str = "") -> CommandAck:
    """A validated acknowledgement. A rejection must carry a reason; an applied ack must not."""
    if (status == AckStatus.REJECTED) != (reason is not None):
        raise InvalidCommandError("reason", "a rejected ack needs a reason and an applied ack has none")
    message = {
        "schema": ACK_SCHEMA, "command_id": command_id, "device": device, "status": status, "reason": reason,
        "detail": detail[:300], "applied_value": applied_value, "unit": unit, "acked_at": _utc("acked_at", acked_at),
    }
    return _validate(ACK_ADAPTER, message)


def _validate(adapter: TypeAdapter[_T], message: object) -> _T:
    return validated(adapter, message, InvalidCommandError)


def encode_command(message: CommandMessage) -> bytes:
    """Compact JSON, timestamps in ISO 8601 UTC."""
    return COMMAND_ADAPTER.dump_json(message)


def encode_ack(message: CommandAck) -> bytes:
    """Compact JSON, timestamps in ISO 8601 UTC."""
    return ACK_ADAPTER.dump_json(message)


def _decode(adapter: TypeAdapter[_T], raw: bytes) -> _T:
    return decode_control_message(adapter, raw, max_bytes=MAX_COMMAND_BYTES, error=InvalidCommandError)


def decode_command(raw: bytes) -> CommandMessage:
    """Parse and validate a command; raises :class:`InvalidCommandError` naming the first bad field."""
    return _decode(COMMAND_ADAPTER, raw)


def decode_ack(raw: bytes) -> CommandAck:
    """Parse and validate an acknowledgement; raises :class:`InvalidCommandError` naming the first bad field."""
    return _decode(ACK_ADAPTER, raw)


__all__ = [
    "ACK_ADAPTER", "ACK_LEVEL", "ACK_SCHEMA", "ACTION_UNITS", "COMMAND_ADAPTER", "COMMAND_LEVEL", "COMMAND_SCHEMA",
    "AckStatus", "CommandAck", "CommandAction", "CommandMessage", "InvalidCommandError", "RejectCode", "ack_topic",
    "build_ack", "build_command", "command_topic", "decode_ack", "decode_command", "encode_ack", "encode_command",
    "parse_device_topic",
]

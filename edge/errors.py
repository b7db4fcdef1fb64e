"""Errors raised by the edge agent.

Hierarchy::

    EdgeError
    ├── ConfigError                  edge.yaml or a device profile is invalid (fail at start-up)
    ├── DeviceError                  one device could not be read this cycle (the others carry on)
    │   ├── DeviceTimeoutError       no (complete) answer within the timeout
    │   ├── DeviceConnectionError    TCP connect/reset/closed by the device or gateway
    │   ├── ModbusExceptionError     the device answered with a Modbus exception code
    │   ├── SetpointWriteError       a setpoint write was refused or read back differently (write_failed)
    │   │   └── DeviceOfflineError     the device could not be reached for a write (device_offline)
    │   └── FrameError               a DL/T 645 frame that cannot be decoded
    │       ├── IncompleteFrameError   more bytes are needed (partial frame; not garbage yet)
    │       ├── FrameSyncError         no 68 ... 68 start where one must be
    │       ├── ChecksumError          CS byte does not match the sum of the frame
    │       ├── FrameEndError          the frame does not end with 16H
    │       ├── BcdError               a data byte is not packed BCD after removing 33H
    │       ├── UnexpectedReplyError   valid frame, but not the answer to our request
    │       └── MeterReplyError          the meter answered D1H (abnormal reply) with an error byte
    ├── RegisterDecodeError          registers cannot be decoded as the profile says (count, type)
    ├── OutboxError                  the local store-and-forward database failed
    ├── CommandAuditError            the local command audit database failed
    └── PublishRejectedError         the broker refused a publish (PUBACK reason code >= 0x80)
        └── NoSubscribersError         the broker accepted a reading but had nobody to deliver it to (0x10)

``DeviceError`` subclasses carry the device id (when known) so a log line or status message says which
meter misbehaved. Protocol errors are pure values: the codec raises them without doing any I/O.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class for every error of the ``edge`` package."""


class ConfigError(EdgeError):
    """The agent configuration or a device profile is invalid."""


class DeviceError(EdgeError):
    """A device could not be read during one poll; the agent logs it and tries again next cycle."""

    def __init__(self, message: str, *, device_id: str | None = None) -> None:
        super().__init__(f"{device_id}: {message}" if device_id else message)
        self.device_id = device_id


class DeviceTimeoutError(DeviceError):
    """The device (or its gateway) did not answer completely within the timeout."""


class DeviceConnectionError(DeviceError):
    """The TCP connection to the device or gateway failed or was closed."""


class ModbusExceptionError(DeviceError):
    """The device answered a Modbus request with an exception response."""

    def __init__(self, function_code: int, exception_code: int, *, device_id: str | None = None) -> None:
        super().__init__(f"modbus exception {exception_code} to function {function_code:#04x}",
                         device_id=device_id)
        self.function_code = function_code
        self.exception_code = exception_code


class FrameError(DeviceError):
    """A DL/T 645-2007 frame cannot be decoded."""


class IncompleteFrameError(FrameError):
    """The bytes seen so far are the start of a frame; more are needed."""

    def __init__(self, needed: int) -> None:
        super().__init__(f"incomplete frame: at least {needed} more byte(s) needed")
        self.needed = needed


class FrameSyncError(FrameError):
    """The frame does not start with ``68 A0..A5 68``."""


class ChecksumError(FrameError):
    """The checksum byte does not equal the sum of the frame bytes modulo 256."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"checksum {found:#04x} != computed {expected:#04x}")
        self.expected = expected
        self.found = found


class FrameEndError(FrameError):
    """The byte after the checksum is not the end marker ``16H``."""


class BcdError(FrameError):
    """A data byte is not valid packed BCD (a nibble above 9)."""


class UnexpectedReplyError(FrameError):
    """A valid frame that is not the reply to our request (other address, data identifier or control)."""


class MeterReplyError(FrameError):
    """The meter sent an abnormal reply (control ``D1H``); ``error_byte`` carries the DL/T 645 error bits."""

    ERROR_BITS: tuple[tuple[int, str], ...] = (
        (0x01, "other error"),
        (0x02, "no data requested"),
        (0x04, "password error / unauthorised"),
        (0x08, "baud rate cannot be changed"),
        (0x10, "annual time zones exceeded"),
        (0x20, "daily time slots exceeded"),
        (0x40, "tariffs exceeded"),
    )

    def __init__(self, error_byte: int, *, device_id: str | None = None) -> None:
        names = [name for bit, name in self.ERROR_BITS if error_byte & bit] or ["unknown"]
        super().__init__(f"meter error reply {error_byte:#04x} ({', '.join(names)})", device_id=device_id)
        self.error_byte = error_byte


class RegisterDecodeError(EdgeError):
    """Registers read from a device cannot be decoded as the profile describes."""


class OutboxError(EdgeError):
    """The local SQLite outbox failed (disk full, corrupt file, locked by another agent)."""


class PublishRejectedError(EdgeError):
    """The broker answered a QoS 1 publish with an error reason code (e.g. 0x87 not authorised).

    The message stays in the outbox: a wrong ACL must delay data, never delete it.
    """

    def __init__(self, topic: str, reason_code: int, reason: str) -> None:
        super().__init__(f"broker refused publish to {topic}: {reason} ({reason_code:#04x})")
        self.topic = topic
        self.reason_code = reason_code
        self.reason = reason


class NoSubscribersError(PublishRejectedError):
    """PUBACK reason 0x10 "No matching subscribers" for a readings message: nobody will ever receive it.

    A non-retained QoS 1 message that matched no subscription is dropped by the broker. Ingest's persistent
    sessions normally always match; the exception is the window after a broker restart in which Mosquitto
    has not yet got its *shared* subscriptions back (it does not persist them). Keeping the message in the
    outbox and retrying a little later turns that window into a delay instead of a loss.
    """


class SetpointWriteError(DeviceError):
    """A setpoint could not be applied: the device refused the write or read back another value.

    Answered as ``write_failed`` (schemas.commands.RejectCode); the command is never retried by the edge.
    """


class DeviceOfflineError(SetpointWriteError):
    """The device (or its gateway) could not be reached to apply a setpoint: answered ``device_offline``."""


class CommandAuditError(EdgeError):
    """The local command audit database (edge/commands_store.py) failed."""

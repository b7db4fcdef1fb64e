"""Errors raised by the contract layer.

Hierarchy::

    SchemaError
    ├── InvalidTopicError        the topic does not follow the ParkPulse grammar
    ├── UnknownMetricError       a metric name that is not in the registry
    ├── UnitError                a unit that is unknown or does not fit the metric
    ├── InvalidFeedbackError     a feedback payload (``…/errors`` topic) that does not follow its schema
    └── UplinkWireError          an energy-monitoring platform's wire format (schemas.uplink_wire)
        ├── UplinkProfileError       wire.yaml missing or invalid
        ├── UplinkDecodeError        a body that breaks the profile's schema
        ├── UplinkTransientError     5xx, down, unreadable or incomplete answer: resend later
        ├── UplinkTokenExpired       401 with the token-expired code: renew the token, resend
        ├── UplinkAuthError          credentials refused: fix the endpoint's auth
        └── UplinkRequestRejected    the whole request refused (4xx)

Rejected *payloads* are not exceptions: decoding returns :class:`schemas.Rejection` records so one bad
reading never hides the good ones next to it.
"""

from __future__ import annotations


class SchemaError(Exception):
    """Base class for every error of the ``schemas`` package."""


class InvalidTopicError(SchemaError):
    """The MQTT topic does not follow ``parkpulse/v1/{park}/{device}/{kind}``."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"invalid topic {topic!r}: {reason}")
        self.topic = topic
        self.reason = reason


class UnknownMetricError(SchemaError):
    """The metric name is not registered in :data:`schemas.METRICS`."""

    def __init__(self, metric: str) -> None:
        super().__init__(f"unknown metric {metric!r}")
        self.metric = metric


class UnitError(SchemaError):
    """The unit is unknown, or has a different dimension than the metric's canonical unit."""

    def __init__(self, unit: str, reason: str) -> None:
        super().__init__(f"unit {unit!r}: {reason}")
        self.unit = unit
        self.reason = reason


class InvalidFeedbackError(SchemaError):
    """A feedback payload that does not follow ``parkpulse-feedback-v1``; ``field`` names the first bad one."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"feedback payload, {field}: {reason}; expected a parkpulse-feedback-v1 message from "
                         f"ParkPulse ingest (is another publisher writing to the errors topic?)")
        self.field = field
        self.reason = reason


class InvalidCommandError(SchemaError):
    """A command or command acknowledgement (``…/cmd``, ``…/ack`` topics) that does not follow its schema."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"command payload, {field}: {reason}; expected a parkpulse-command-v1 or "
                         f"parkpulse-command-ack-v1 message (`parkpulse schema export` prints the schemas)")
        self.field = field
        self.reason = reason


class UplinkWireError(SchemaError):
    """A platform profile's wire format could not be used: bad profile file, body or answer (schemas.uplink_wire)."""


class UplinkProfileError(UplinkWireError):
    """``schemas/uplink_profiles/<profile>/wire.yaml`` is missing or invalid."""


class UplinkDecodeError(UplinkWireError):
    """A request or response body does not follow the profile's schema; the message names the first bad field."""


class UplinkTransientError(UplinkWireError):
    """The platform did not answer usably (5xx, down, unparseable or incomplete answer): resend later."""


class UplinkTokenExpired(UplinkWireError):  # noqa: N818 -- name agreed with the uplink worker
    """The platform answered 401 with its token-expired code: get a new token, then resend."""


class UplinkAuthError(UplinkWireError):
    """The platform refused the credentials (or the token for another reason): fix the endpoint's auth settings."""


class UplinkRequestRejected(UplinkWireError):  # noqa: N818 -- name agreed with the uplink worker
    """The platform refused the whole request (4xx other than 401); ``reason`` is the platform's text."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"platform refused the request (HTTP {status_code}): {reason}")
        self.status_code = status_code
        self.reason = reason

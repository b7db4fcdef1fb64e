"""Errors raised by the contract layer.

Hierarchy::

    SchemaError
    ├── InvalidTopicError        the topic does not follow the ParkPulse grammar
    ├── UnknownMetricError       a metric name that is not in the registry
    ├── UnitError                a unit that is unknown or does not fit the metric
    └── InvalidFeedbackError     a feedback payload (``…/errors`` topic) that does not follow its schema

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

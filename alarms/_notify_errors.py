"""Errors of notification delivery (config, secrets, channels).

Hierarchy::

    NotifyError
    ├── NotifyConfigError         the notify config file is unreadable or invalid (names the field, says the fix)
    │   └── SecretUnavailableError    a secret reference points at an unset variable or an unreadable file
    └── DeliveryError             one channel could not deliver one message (``retryable`` says whether to try again)
        ├── TemporaryDeliveryError    timeouts, refused connections, 5xx, 429, robot rate limits: try again later
        └── PermanentDeliveryError    refused for good (bad address, 4xx, robot signature or key errors)

Messages never contain secret values: channels redact them before raising (:mod:`alarms._channels`).
"""

from __future__ import annotations

from alarms.errors import AlarmsPackageError


class NotifyError(AlarmsPackageError):
    """Base class of every notification error."""


class NotifyConfigError(NotifyError):
    """The notify config cannot be used; the message names the file, the field and what to change."""


class SecretUnavailableError(NotifyConfigError):
    """A ``{env: NAME}`` or ``{file: PATH}`` secret reference cannot be resolved."""

    def __init__(self, reference: str, reason: str) -> None:
        super().__init__(f"secret {reference} is unavailable: {reason}")
        self.reference = reference
        self.reason = reason


class DeliveryError(NotifyError):
    """One delivery attempt failed; ``response`` is what the far end answered, if anything."""

    retryable: bool = True

    def __init__(self, channel: str, detail: str, *, response: str | None = None) -> None:
        super().__init__(f"channel {channel!r}: {detail}")
        self.channel = channel
        self.detail = detail
        self.response = response


class TemporaryDeliveryError(DeliveryError):
    """Worth trying again later (network, timeouts, server errors, rate limits)."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """Trying again will not help until someone fixes the config or the far end."""

    retryable = False

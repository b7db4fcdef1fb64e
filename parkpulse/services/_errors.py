"""Exceptions raised by :mod:`parkpulse.services`.

The hierarchy lets callers catch at the right level::

    ServicesError                   any failure while starting, stopping or probing a service
    └── ServicesUnavailableError    no way to provide the services on this machine
"""

from __future__ import annotations

__all__ = ["ServicesError", "ServicesUnavailableError"]


class ServicesError(RuntimeError):
    """A local service could not be started, stopped or reached."""


class ServicesUnavailableError(ServicesError):
    """No supported way to run Mosquitto and TimescaleDB exists here; the message says what to install."""

"""Errors of the platform simulator (part of :class:`simulators.errors.SimulatorError`)."""

from __future__ import annotations

from simulators.errors import SimulatorError


class PlatformSimError(SimulatorError):
    """Base class of the platform simulator's errors."""


class PlatformStartError(PlatformSimError):
    """The simulator could not listen (port taken, bad certificate files) or did not start in time."""

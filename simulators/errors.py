"""Errors raised by the park simulator.

Hierarchy::

    SimulatorError
    ├── ScenarioError            the scenario file is missing, not YAML, or does not validate
    └── PublishError             the broker refused the connection or a publish was not acknowledged

Physics never raises on plausible input; configuration problems are caught when the scenario loads.
"""

from __future__ import annotations

from pathlib import Path


class SimulatorError(Exception):
    """Base class for every error of the ``simulators`` package."""


class ScenarioError(SimulatorError, ValueError):
    """A scenario file could not be read or validated; ``problems`` lists each one as ``where: what``."""

    def __init__(self, source: Path | str, problems: list[str]) -> None:
        text = "; ".join(problems) if len(problems) <= 1 else "\n  " + "\n  ".join(problems)
        super().__init__(f"invalid scenario {source}: {text}")
        self.source = str(source)
        self.problems = problems


class PublishError(SimulatorError):
    """Publishing to the MQTT broker failed (connection refused, lost, or a PUBACK timed out)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"MQTT publishing to {url} failed: {reason}")
        self.url = url
        self.reason = reason

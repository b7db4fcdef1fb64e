"""A simulated energy online-monitoring platform (``parkpulse uplink platform-sim``).

It speaks one wire profile (``schemas/uplink_profiles/<profile>/wire.yaml``) over HTTPS with a real
certificate chain, issues expiring tokens, validates every request with the profile's decoder, keeps what
it received (idempotent by record key, highest revision wins, duplicates counted), answers per record,
and injects faults (5xx, hangs, lost answers, rejected items, expired tokens, down with 503 or connection
refused) set at start or at run time through ``/admin``. Tests and ``make demo`` use it.
"""

from __future__ import annotations

from simulators.platform._errors import PlatformSimError, PlatformStartError
from simulators.platform._server import PlatformSimulator
from simulators.platform._state import Faults, PlatformState, Stats, Stored

__all__ = ["Faults", "PlatformSimError", "PlatformSimulator", "PlatformStartError", "PlatformState", "Stats", "Stored"]

"""Errors of the OpenADR 3 VTN stand-in (part of the ``simulators`` hierarchy).

Hierarchy::

    SimulatorError
    └── Vtn3Error              the OpenADR 3 VTN stand-in failed
        └── Vtn3StartError     it could not bind or start its HTTP server

Requests that break the OpenADR 3 spec are not exceptions: the stand-in answers them with 400 problems.
"""

from __future__ import annotations

from simulators.errors import SimulatorError


class Vtn3Error(SimulatorError):
    """Base class for errors of the OpenADR 3 VTN stand-in."""


class Vtn3StartError(Vtn3Error):
    """The stand-in's HTTP server did not start (port in use, bad host)."""

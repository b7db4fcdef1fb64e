"""Errors of the VPP loop. Every one says what went wrong and what to do next.

Each job of the loop adds its own subclasses here (additively) under :class:`VppError`.
"""

from __future__ import annotations


class VppError(Exception):
    """Base of every VPP error."""


class VppServiceError(VppError):
    """``parkpulse vpp run`` cannot start one of its components (the message names it and why)."""


class Oadr3Error(VppError):
    """The OpenADR 3 VEN failed (C2): a VTN that refuses us, or a document it sent that we cannot read."""


class Oadr3EventError(Oadr3Error, ValueError):
    """An OpenADR 3 event object cannot become an IncomingEvent; the message names the field at fault."""


class Oadr3AuthError(Oadr3Error):
    """The VTN's token endpoint refused the client credentials: check PARKPULSE_VEN3_CLIENT_ID/_SECRET."""


class Oadr3RequestError(Oadr3Error):
    """The VTN answered a request with an error status (``status``, ``body``, ``url``)."""

    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"the VTN answered {status} to {url}: {body[:300]}")
        self.status = status
        self.body = body
        self.url = url


class IntakeError(VppError):
    """The event intake cannot record an event (database unreachable, unknown park for a policy)."""


class Oadr2Error(VppError):
    """The OpenADR 2.0b VEN cannot run (bad settings, VTN unreachable at start, registration refused)."""


class DispatchError(VppError):
    """The dispatcher cannot plan or send an event's commands (unknown event, no assets, broker refused)."""


class DispatchStoreError(DispatchError):
    """The dispatch audit or override tables refused a write or cannot be reached; the message says which."""


class OverrideNotFoundError(DispatchError):
    """No uncleared override with this id exists for the park."""

    def __init__(self, park_id: str, override_id: int) -> None:
        super().__init__(f"park {park_id!r} has no live override {override_id}; list them with "
                         "`parkpulse vpp override list --park PARK`")
        self.park_id = park_id
        self.override_id = override_id

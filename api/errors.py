"""Errors of the utility API and the OpenADR VEN client.

Hierarchy::

    ApiError
    ├── KeyFormatError        an API key that is not ``pp_<client id>_<secret>``
    ├── KeyStoreError         the key store cannot create, find or revoke a client
    └── VenError              the OpenADR 3 VEN could not deliver a report
        ├── VtnAuthError      the VTN's token endpoint refused the client credentials
        └── VtnRequestError   the VTN answered a report POST with an error status (``status``, ``body``)

HTTP problems returned to API callers are not exceptions of this tree: routes raise FastAPI's
``HTTPException`` and the app renders every 4xx as an RFC 9457 problem document.
"""

from __future__ import annotations


class ApiError(Exception):
    """Base class for every error of the ``api`` package."""


class KeyFormatError(ApiError):
    """The presented API key does not have the ParkPulse format."""


class KeyStoreError(ApiError):
    """Creating, looking up or revoking an API client failed."""


class VenError(ApiError):
    """Delivering a report to the VTN failed."""


class VtnAuthError(VenError):
    """The VTN's OAuth2 token endpoint refused the client credentials (or answered nonsense)."""


class VtnRequestError(VenError):
    """The VTN answered with an error status."""

    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"VTN {url} answered {status}: {body[:300]}")
        self.status = status
        self.body = body
        self.url = url

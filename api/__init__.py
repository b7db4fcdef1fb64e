"""The ParkPulse utility API (FastAPI) and the OpenADR 3 VEN that pushes the same data to a VTN.

* :func:`create_app` — the production app on the configured database; :func:`build_app` wires any
  :class:`flex.DrService` and :class:`KeyStore` (tests use in-memory ones). OpenAPI at ``/openapi.json``.
* API keys: :func:`new_key` / :class:`PgKeyStore` — per-utility keys scoped to parks, stored hashed.
* OpenADR 3: :func:`availability_report`, :func:`event_report` build report documents;
  :class:`VenClient` posts them with OAuth2 client credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.lazy import lazy_exports

if TYPE_CHECKING:
    from api._app import build_app, create_app
    from api._keys import ApiClient, new_key, parse_key
    from api._keystore import KeyStore, MemoryKeyStore, PgKeyStore
    from api._openadr import availability_report, event_report, payload_values
    from api._settings import ApiSettings, VenSettings
    from api._ven import VenClient, VtnConfig
    from api.errors import ApiError, KeyFormatError, KeyStoreError, VenError, VtnAuthError, VtnRequestError

# Public name -> defining module; imported on first access so importing the package (e.g. for the
# CLI) does not pull in Polars, psycopg or FastAPI.
_EXPORTS: dict[str, str] = {
    "ApiClient": "api._keys",
    "ApiError": "api.errors",
    "ApiSettings": "api._settings",
    "KeyFormatError": "api.errors",
    "KeyStore": "api._keystore",
    "KeyStoreError": "api.errors",
    "MemoryKeyStore": "api._keystore",
    "PgKeyStore": "api._keystore",
    "VenClient": "api._ven",
    "VenError": "api.errors",
    "VenSettings": "api._settings",
    "VtnAuthError": "api.errors",
    "VtnConfig": "api._ven",
    "VtnRequestError": "api.errors",
    "availability_report": "api._openadr",
    "build_app": "api._app",
    "create_app": "api._app",
    "event_report": "api._openadr",
    "new_key": "api._keys",
    "parse_key": "api._keys",
    "payload_values": "api._openadr",
}

__all__ = [
    "ApiClient",
    "ApiError",
    "ApiSettings",
    "KeyFormatError",
    "KeyStore",
    "KeyStoreError",
    "MemoryKeyStore",
    "PgKeyStore",
    "VenClient",
    "VenError",
    "VenSettings",
    "VtnAuthError",
    "VtnConfig",
    "VtnRequestError",
    "availability_report",
    "build_app",
    "create_app",
    "event_report",
    "new_key",
    "parse_key",
    "payload_values",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)

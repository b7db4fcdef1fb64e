"""API-key authentication (``X-API-Key`` header or ``Authorization: Bearer``) and park scoping.

401 when no key, a malformed, unknown, wrong, expired or revoked key is presented (with a
``WWW-Authenticate`` challenge); 403 when a valid key asks for a park outside its scope — whether or not
that park exists, so keys cannot enumerate other utilities' parks — or lacks the scope of the request:
``read`` for every GET (checked here for all routes), ``write`` for operator actions
(:func:`require_scope`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api._keys import ApiClient, VerifiedKeyCache, parse_key, verify
from api._keystore import KeyStore
from api.errors import KeyFormatError

logger = logging.getLogger(__name__)

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="pp_<client id>_<secret>")
_bearer = HTTPBearer(auto_error=False, description="the same API key as a bearer token")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="parkpulse", ApiKey header="X-API-Key"'}


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers=CHALLENGE)


class Authenticator:
    """Resolves a presented key to an :class:`ApiClient` via the key store and a short cache."""

    def __init__(self, keys: KeyStore, cache: VerifiedKeyCache) -> None:
        """Use ``keys`` for look-ups and ``cache`` for recently verified keys."""
        self.keys = keys
        self.cache = cache

    def authenticate(self, key: str) -> ApiClient:
        """The client for ``key``; raises a 401 ``HTTPException`` otherwise."""
        client = self.cache.get(key)
        if client is None:
            try:
                client_id, secret = parse_key(key)
            except KeyFormatError as exc:
                raise _unauthorized(str(exc)) from None
            stored = self.keys.get(client_id)
            if stored is None or not verify(stored, secret):
                logger.info("rejected API key for client %s", client_id)
                raise _unauthorized("invalid API key")
            client = stored.client
            self.cache.put(key, client)
        now = datetime.now(UTC)
        if client.revoked_at is not None and client.revoked_at <= now:
            raise _unauthorized("API key revoked")
        if client.expires_at is not None and client.expires_at <= now:
            raise _unauthorized("API key expired")
        return client


def current_client(
    request: Request,
    api_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiClient:
    """FastAPI dependency: the authenticated client of this request.

    Every presented credential must be valid: an empty ``X-API-Key`` header, a malformed
    ``Authorization`` header or two different keys are rejected rather than falling back to the other.
    """
    presented: list[str] = []
    if "x-api-key" in request.headers:
        presented.append(api_key or "")
    if "authorization" in request.headers:
        presented.append(bearer.credentials if bearer is not None else "")
    if not presented:
        raise _unauthorized("missing API key: send X-API-Key or Authorization: Bearer")
    if len(set(presented)) > 1:
        raise _unauthorized("X-API-Key and Authorization carry different credentials")
    if not presented[0]:
        raise _unauthorized("empty or malformed credentials")
    authenticator: Authenticator = request.app.state.authenticator
    client = authenticator.authenticate(presented[0])
    if request.method in ("GET", "HEAD"):
        require_scope(client, "read")
    return client


Client = Annotated[ApiClient, Depends(current_client)]


def require_park(client: ApiClient, park_id: str) -> None:
    """403 unless ``park_id`` is in the client's scope."""
    if park_id not in client.park_ids:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this API key is not scoped to park {park_id!r}")


def require_scope(client: ApiClient, scope: str, action: str = "this request") -> None:
    """403 unless the client's key carries ``scope``; the detail says how to get such a key.

    The response carries the RFC 6750 ``insufficient_scope`` challenge so clients can tell it from a
    park-scope refusal.
    """
    if scope not in client.scopes:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail=(f"this API key lacks the {scope!r} scope needed for {action} (it has: "
                    f"{', '.join(sorted(client.scopes)) or 'none'}); ask an operator for a key with it: "
                    f"`parkpulse api-keys create NAME --park PARK --scope {scope}`"),
            headers={"WWW-Authenticate": f'Bearer realm="parkpulse", error="insufficient_scope", scope="{scope}"'},
        )

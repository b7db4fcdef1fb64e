"""Shared plumbing of the operator endpoints (registry, meter events, imports, reports).

The operator's workflow runs on the database directly, so these routes need the database URL that
:func:`api.build_app` stores on ``app.state.database_url`` (``None`` in tests built on in-memory fakes,
where they answer 503). Reading needs the key's ``read`` scope like every GET; changing anything needs
``write``, and the park must be in the key's scope either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, HTTPException, Path, Request, status

from api._auth import Client, require_park, require_scope
from api._keys import ApiClient
from api._models import Problem
from schemas.topics import ID_PATTERN

ParkId = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", max_length=64, description="park id")]
DeviceId = Annotated[str, Path(pattern=f"^{ID_PATTERN}$", max_length=64, description="device id")]

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
OPERATOR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "the request body cannot be parsed", "content": _PROBLEM},
    401: {"model": Problem, "description": "missing, malformed, unknown, expired or revoked API key",
          "content": _PROBLEM},
    403: {"model": Problem, "description": "the key is not scoped to this park, or lacks the scope the request "
                                           "needs (read for GET, write for changes)", "content": _PROBLEM},
    404: {"model": Problem, "description": "no such park, device or record", "content": _PROBLEM},
    422: {"model": Problem, "description": "invalid parameters or content", "content": _PROBLEM},
    503: {"model": Problem, "description": "the database is unavailable; retry later", "content": _PROBLEM},
}


def database_url(request: Request) -> str:
    """The database URL of the app, or 503 when the app was built without one."""
    url: str | None = getattr(request.app.state, "database_url", None)
    if not url:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail="this API was started without a database; set PARKPULSE_DATABASE_URL")
    return url


DatabaseUrl = Annotated[str, Depends(database_url)]


def connection(url: DatabaseUrl) -> Iterator[Any]:
    """An autocommit psycopg connection for one request (503 with a hint when the database is down)."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"the database is unavailable ({exc.__class__.__name__}); retry later") from None
    try:
        yield conn
    finally:
        conn.close()


Connection = Annotated[Any, Depends(connection)]


def _reader(client: Client, park_id: ParkId) -> ApiClient:
    require_park(client, park_id)
    require_scope(client, "read", "reading park data")
    return client


def _writer(client: Client, park_id: ParkId) -> ApiClient:
    """Checked before the body is read, so a read-only key always gets 403, never 422."""
    require_park(client, park_id)
    require_scope(client, "write", "changing park data")
    return client


ParkReader = Annotated[ApiClient, Depends(_reader)]
ParkWriter = Annotated[ApiClient, Depends(_writer)]

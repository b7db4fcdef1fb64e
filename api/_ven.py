"""OpenADR 3 VEN client: OAuth2 client-credentials token, then ``POST {vtn}/reports`` (plain HTTP).

The token is cached until shortly before ``expires_in``; a 401 on a report POST refreshes it once.
Client authentication at the token endpoint is HTTP Basic by default (RFC 6749 §2.3.1, which every
authorization server must support) or form fields (``auth_method='post'``, as some VTNs expect).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from api.errors import VtnAuthError, VtnRequestError

logger = logging.getLogger(__name__)

_REFRESH_MARGIN_S = 30.0


@dataclass(frozen=True, slots=True)
class VtnConfig:
    """Where the VTN is and the credentials it issued to this VEN."""

    base_url: str
    client_id: str
    client_secret: str
    token_url: str | None = None
    scope: str | None = None
    auth_method: Literal["basic", "post"] = "basic"
    timeout_s: float = 10.0

    @property
    def token_endpoint(self) -> str:
        """The token URL (default: ``{base_url}/auth/token`` as in the OpenADR 3 spec)."""
        return self.token_url or f"{self.base_url.rstrip('/')}/auth/token"


class VenClient:
    """Posts reports to one VTN; use as a context manager to close the HTTP connection pool."""

    def __init__(self, config: VtnConfig, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Create the HTTP client (``transport`` lets tests route requests in-process)."""
        self.config = config
        self._http = httpx.Client(timeout=config.timeout_s, transport=transport)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    def __enter__(self) -> VenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def token(self, *, refresh: bool = False) -> str:
        """A valid access token, requesting a new one when missing, expiring or ``refresh``."""
        if not refresh and self._token and self._clock() < self._expires_at - _REFRESH_MARGIN_S:
            return self._token
        cfg = self.config
        data = {"grant_type": "client_credentials"}
        if cfg.scope:
            data["scope"] = cfg.scope
        auth: httpx.BasicAuth | None = None
        if cfg.auth_method == "basic":
            auth = httpx.BasicAuth(cfg.client_id, cfg.client_secret)
        else:
            data |= {"client_id": cfg.client_id, "client_secret": cfg.client_secret}
        try:
            response = self._http.post(cfg.token_endpoint, data=data,
                                       auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise VtnAuthError(f"token request to {cfg.token_endpoint} failed: {exc}") from exc
        if response.status_code != httpx.codes.OK:
            raise VtnAuthError(f"token endpoint answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in", 300))
        except (ValueError, KeyError, TypeError) as exc:
            raise VtnAuthError(f"token endpoint returned no access_token: {response.text[:200]}") from exc
        self._token, self._expires_at = token, self._clock() + expires_in
        logger.debug("obtained VTN token valid for %.0f s", expires_in)
        return token

    def post_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """POST a report; returns the VTN's created object. Raises :class:`VtnRequestError` on failure."""
        url = f"{self.config.base_url.rstrip('/')}/reports"
        response = self._post(url, report, self.token())
        if response.status_code == httpx.codes.UNAUTHORIZED:
            response = self._post(url, report, self.token(refresh=True))
        if response.status_code not in (httpx.codes.OK, httpx.codes.CREATED):
            raise VtnRequestError(response.status_code, response.text, url)
        try:
            created: dict[str, Any] = response.json()
        except ValueError:
            created = {}
        logger.info("report %s delivered to %s (id %s)", report.get("reportName"), url, created.get("id"))
        return created

    def _post(self, url: str, body: dict[str, Any], token: str) -> httpx.Response:
        try:
            return self._http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise VtnRequestError(0, str(exc), url) from exc

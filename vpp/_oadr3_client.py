"""Async OpenADR 3 REST client for the VEN: OAuth2 client-credentials token, programs, events, subscriptions,
reports (httpx).

The token request sends the credentials as form fields (the spec's ``clientCredentialRequest``). The token is
cached until shortly before ``expires_in``; a request answered 401 or 403 (the spec's "Forbidden") fetches a
new token and is retried once. Lists are read page by page (``skip``/``limit``, the spec allows at most 50).
Every failure is an :class:`Oadr3Error` subclass naming the URL and the VTN's answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from vpp.errors import Oadr3AuthError, Oadr3RequestError

logger = logging.getLogger(__name__)

_REFRESH_MARGIN_S = 30.0
PAGE = 50


class Oadr3Client:
    """One VEN's HTTP session with one VTN; ``async with`` closes the connection pool."""

    def __init__(self, base_url: str, client_id: str, client_secret: str, *, token_url: str | None = None,
                 scope: str | None = None, timeout_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``token_url`` defaults to ``{base_url}/auth/token`` (the spec's convenience endpoint)."""
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url or f"{self.base_url}/auth/token"
        self._credentials = (client_id, client_secret)
        self._scope = scope
        self._http = httpx.AsyncClient(timeout=timeout_s, transport=transport)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def token(self, *, refresh: bool = False) -> str:
        """A valid access token (a new one when missing, about to expire, or ``refresh``)."""
        if not refresh and self._token and self._clock() < self._expires_at - _REFRESH_MARGIN_S:
            return self._token
        client_id, secret = self._credentials
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        if self._scope:
            form["scope"] = self._scope
        try:
            response = await self._http.post(self.token_url, data=form)
        except httpx.HTTPError as exc:
            raise Oadr3AuthError(f"token request to {self.token_url} failed: {exc}; is the VTN up?") from exc
        if response.status_code != httpx.codes.OK:
            raise Oadr3AuthError(f"the token endpoint {self.token_url} answered {response.status_code}: "
                                 f"{response.text[:200]}; check the VEN's client id and secret")
        try:
            body = response.json()
            token, expires_in = str(body["access_token"]), float(body.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError) as exc:
            raise Oadr3AuthError(f"the token endpoint {self.token_url} sent no access_token: "
                                 f"{response.text[:200]}") from exc
        self._token, self._expires_at = token, self._clock() + expires_in
        return token

    async def request(self, method: str, path: str, *, json: Any = None,
                      params: dict[str, Any] | None = None) -> Any:
        """One authorised request; the decoded JSON answer (None when empty)."""
        url = f"{self.base_url}{path}"
        response = await self._send(method, url, json, params, await self.token())
        if response.status_code in (httpx.codes.UNAUTHORIZED, httpx.codes.FORBIDDEN):
            response = await self._send(method, url, json, params, await self.token(refresh=True))
        if response.status_code >= httpx.codes.BAD_REQUEST:
            raise Oadr3RequestError(response.status_code, response.text, f"{method} {url}")
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise Oadr3RequestError(response.status_code, "the answer is not JSON: " + response.text[:200],
                                    f"{method} {url}") from exc

    async def _send(self, method: str, url: str, body: Any, params: dict[str, Any] | None,
                    token: str) -> httpx.Response:
        try:
            return await self._http.request(method, url, json=body, params=params,
                                            headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise Oadr3RequestError(0, str(exc), f"{method} {url}") from exc

    async def _all(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", path, params={**params, "skip": len(found), "limit": PAGE})
            if not isinstance(page, list):
                raise Oadr3RequestError(200, f"expected a JSON array, got {type(page).__name__}", path)
            found.extend(item for item in page if isinstance(item, dict))
            if len(page) < PAGE:
                return found

    async def programs(self) -> list[dict[str, Any]]:
        """Every program the VTN lets this VEN see."""
        return await self._all("/programs", {})

    async def events(self, program_id: str | None = None) -> list[dict[str, Any]]:
        """Every event (of one program when ``program_id`` is given)."""
        return await self._all("/events", {"programID": program_id} if program_id else {})

    async def register_ven(self, ven_name: str) -> dict[str, Any]:
        """This VEN's ``ven`` object at the VTN, created when the VTN does not know the name yet."""
        for ven in await self._all("/vens", {}):
            if ven.get("venName") == ven_name:
                return ven
        created: dict[str, Any] = await self.request("POST", "/vens", json={"objectType": "VEN", "venName": ven_name})
        return created

    async def subscribe(self, *, client_name: str, program_id: str, callback_url: str,
                        bearer_token: str) -> dict[str, Any]:
        """Ask for CREATE/UPDATE/DELETE notifications of the program's events at ``callback_url``."""
        body = {"objectType": "SUBSCRIPTION", "clientName": client_name, "programID": program_id,
                "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE", "DELETE"],
                                      "callbackUrl": callback_url, "bearerToken": bearer_token}]}
        created: dict[str, Any] = await self.request("POST", "/subscriptions", json=body)
        return created

    async def unsubscribe(self, subscription_id: str) -> None:
        """Delete a subscription."""
        await self.request("DELETE", f"/subscriptions/{subscription_id}")

    async def post_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """Create a report; the VTN's stored copy."""
        created: dict[str, Any] = await self.request("POST", "/reports", json=report)
        logger.info("OpenADR 3 report %s delivered (id %s)", report.get("reportName"), created.get("id"))
        return created

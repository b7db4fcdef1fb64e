"""The business-logic side of the stand-in over its own HTTP API: programs and events in, reports out.

Tests, the end-to-end loop and ``parkpulse vpp vtn3-sim`` use it to play the utility: it fetches a token
with the ``bl`` client's credentials and calls the spec's operations like any OpenADR 3 business logic.
:func:`event_body` builds a spec-shaped event with consecutive intervals of one payload type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx

from simulators.openadr3_vtn._state import BL_CLIENT_ID, BL_CLIENT_SECRET
from simulators.openadr3_vtn.errors import Vtn3Error


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _duration(step: timedelta) -> str:
    seconds = step.total_seconds()
    return f"PT{int(seconds)}S" if seconds == int(seconds) else f"PT{seconds:g}S"


def event_body(program_id: str, *, start: datetime, step: timedelta, values: Sequence[float],
               payload_type: str = "IMPORT_CAPACITY_LIMIT", units: str | None = "KW",
               report_payloads: Sequence[str] = ("USAGE", "BASELINE", "DELTA_USAGE"), report_every: int = 1,
               targets: Sequence[dict[str, Any]] = (), name: str | None = None) -> dict[str, Any]:
    """An event of consecutive ``step``-long intervals from ``start``, one value each, asking for reports
    of ``report_payloads`` every ``report_every`` intervals (no descriptors when empty)."""
    body: dict[str, Any] = {
        "programID": program_id,
        "eventName": name,
        "intervalPeriod": {"start": _iso(start), "duration": _duration(step)},
        "intervals": [{"id": i, "payloads": [{"type": payload_type, "values": [v]}]} for i, v in enumerate(values)],
    }
    if units:
        body["payloadDescriptors"] = [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type,
                                       "units": units}]
    if report_payloads:
        body["reportDescriptors"] = [{"payloadType": p, "readingType": "DIRECT_READ", "units": "KW",
                                      "frequency": report_every, "repeat": -1} for p in report_payloads]
    if targets:
        body["targets"] = list(targets)
    return body


class Vtn3Admin:
    """Business logic for one VTN (``async with``)."""

    def __init__(self, base_url: str, client_id: str = BL_CLIENT_ID, client_secret: str = BL_CLIENT_SECRET,
                 *, timeout_s: float = 10.0) -> None:
        """Credentials default to the stand-in's built-in business-logic client."""
        self.base_url = base_url.rstrip("/")
        self._credentials = {"grant_type": "client_credentials", "client_id": client_id,
                             "client_secret": client_secret}
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._token: str | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One call (a refused token is renewed once); the JSON answer. :class:`Vtn3Error` on an error status."""
        response = await self._send(method, path, body, refresh=False)
        if response.status_code == httpx.codes.FORBIDDEN:
            response = await self._send(method, path, body, refresh=True)
        if response.status_code >= httpx.codes.BAD_REQUEST:
            raise Vtn3Error(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    async def _send(self, method: str, path: str, body: Any, *, refresh: bool) -> httpx.Response:
        if self._token is None or refresh:
            answer = await self._http.post(f"{self.base_url}/auth/token", data=self._credentials)
            if answer.status_code != httpx.codes.OK:
                raise Vtn3Error(f"token refused ({answer.status_code}): {answer.text[:200]}")
            self._token = str(answer.json()["access_token"])
        return await self._http.request(method, f"{self.base_url}{path}", json=body,
                                        headers={"Authorization": f"Bearer {self._token}"})

    async def create_program(self, name: str, **fields: Any) -> dict[str, Any]:
        """POST /programs."""
        created: dict[str, Any] = await self.call("POST", "/programs", {"programName": name, **fields})
        return created

    async def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /events."""
        created: dict[str, Any] = await self.call("POST", "/events", body)
        return created

    async def update_event(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /events/{id} (a modification: the VTN stamps a new modificationDateTime)."""
        updated: dict[str, Any] = await self.call("PUT", f"/events/{event_id}", body)
        return updated

    async def delete_event(self, event_id: str) -> dict[str, Any]:
        """DELETE /events/{id} (a cancellation)."""
        deleted: dict[str, Any] = await self.call("DELETE", f"/events/{event_id}")
        return deleted

    async def reports(self, event_id: str | None = None) -> list[dict[str, Any]]:
        """GET /reports (those of one event when ``event_id`` is given)."""
        found: list[dict[str, Any]] = await self.call("GET", "/reports")
        return [r for r in found if event_id is None or r.get("eventID") == event_id]

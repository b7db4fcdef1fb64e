"""The OpenADR 3 VTN stand-in's HTTP face: one FastAPI route that checks everything against the spec.

Every request is matched to an operation of the vendored OpenADR 3.0.1 OpenAPI document; its query and
body are validated against the document's schemas (a mismatch answers 400 with a problem document and is
recorded in ``state.rejected_requests``), and every response the stand-in gives is validated too (a
mismatch is recorded in ``state.response_problems`` and answered as 500, so a test sees it). Access
control follows the spec's scopes: VENs read everything and write reports, subscriptions and VENs; the
business-logic client (role ``bl``) writes programs and events. Subscription notifications are POSTed to
the callback URLs in the background after the change they describe, validated against ``notification``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Any
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.openadr3_vtn._spec import OpenApiSpec, openadr3_spec
from simulators.openadr3_vtn._state import Client, Notification, VtnState

logger = logging.getLogger(__name__)

#: Collections each role may write (the spec's write_* scopes).
_WRITES = {"bl": {"programs", "events", "subscriptions", "vens"}, "ven": {"reports", "subscriptions", "vens"}}
_NOTIFY_TIMEOUT_S = 5.0


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


def _form(raw: bytes, authorization: str | None) -> dict[str, str]:
    """The token request's form fields, with HTTP Basic client credentials merged in (RFC 6749 §2.3.1)."""
    form = {key: values[0] for key, values in parse_qs(raw.decode("utf-8", "replace")).items()}
    if authorization and authorization.startswith("Basic "):
        try:
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return form
        form.setdefault("client_id", client_id)
        form.setdefault("client_secret", secret)
    return form


class Vtn3App:
    """Builds the FastAPI app over a :class:`VtnState` and sends its notifications."""

    def __init__(self, state: VtnState, spec: OpenApiSpec | None = None) -> None:
        """Bind the state and the spec (default: the vendored OpenADR 3.0.1 document)."""
        self.state = state
        self.spec = spec or openadr3_spec()
        self._sending: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None  # one pool for every notification (made in the server's loop)
        self.app = FastAPI(title="OpenADR 3 VTN stand-in", version=self.spec.version, openapi_url=None,
                           docs_url=None, redoc_url=None)
        self.app.add_api_route("/{path:path}", self._handle, methods=["GET", "POST", "PUT", "DELETE"])

    async def _handle(self, request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        template = self.spec.match_path(path)
        method = request.method
        if template is None or not self.spec.has_operation(method, template):
            return JSONResponse(_problem(404, "Not Found", f"no OpenADR 3 operation {method} {path}"), 404)
        status, body = await self._answer(request, method, template, path)
        problems = self.spec.response_errors(method, template, status, body)
        if problems:
            self.state.response_problems.append(f"{method} {path} -> {status}: {problems}")
            status, body = 500, _problem(500, "Internal Server Error", "; ".join(problems)[:500])
        return JSONResponse(body, status_code=status)

    def _reject(self, method: str, path: str, problems: list[str]) -> tuple[int, dict[str, Any]]:
        self.state.rejected_requests.append(f"{method} {path}: {problems}")
        return 400, _problem(400, "Bad Request", "; ".join(problems)[:1000])

    async def _answer(self, request: Request, method: str, template: str, path: str) -> tuple[int, Any]:
        raw = await request.body()
        if template == "/auth/token":
            return self._token(_form(raw, request.headers.get("authorization")), path)
        client = self.state.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer ").strip())
        if client is None:
            return 403, _problem(403, "Forbidden", "missing or unknown bearer token: fetch one at /auth/token")
        query = {key: request.query_params.getlist(key) for key in request.query_params}
        problems = self.spec.query_errors(method, template, query)
        body: Any = None
        if raw:
            try:
                body = await request.json()
            except ValueError:
                return self._reject(method, path, ["(root): the body is not JSON"])
        problems += self.spec.request_errors(method, template, body)
        if problems:
            return self._reject(method, path, problems)
        return self._dispatch(client, method, path, query, body)

    def _token(self, form: dict[str, str], path: str) -> tuple[int, Any]:
        problems = self.spec.request_errors("POST", "/auth/token", form, "application/x-www-form-urlencoded")
        if problems:
            self.state.rejected_requests.append(f"POST {path}: {problems}")
            return 400, {"error": "invalid_request", "error_description": "; ".join(problems)[:500]}
        token = self.state.issue_token(form["client_id"], form["client_secret"])
        if token is None:
            return 400, {"error": "invalid_client", "error_description": "unknown client id or wrong secret"}
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def _dispatch(self, client: Client, method: str, path: str,
                  query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        collection = parts[0]
        refusal = self._refusal(client, method, parts)
        if refusal is not None:
            return refusal
        if len(parts) == 2:
            return self._item(method, collection, parts[1], body)
        if method == "GET":
            return 200, self.state.search(
                collection, program_id=_first(query, "programID"), target_type=_first(query, "targetType"),
                target_values=query.get("targetValues", []), skip=int(_first(query, "skip") or 0),
                limit=int(_first(query, "limit") or 50))
        if collection == "subscriptions" and self.state.get("programs", body["programID"]) is None:
            return self._reject(method, path, [f"programID: no program {body['programID']}"])
        created, notes = self.state.create(collection, body)
        self._notify(notes)
        return 201, created

    def _refusal(self, client: Client, method: str, parts: list[str]) -> tuple[int, Any] | None:
        """Why this request is refused (not implemented, not in the client's scopes), or None."""
        collection = parts[0]
        if len(parts) > 2:
            return 404, _problem(404, "Not Found", "VEN resources are not implemented by this stand-in")
        if method != "GET" and collection not in _WRITES[client.role]:
            return 403, _problem(403, "Forbidden", f"a {client.role} client may not write {collection}")
        if collection == "subscriptions" and method in ("POST", "PUT") and not self.state.supports_subscriptions:
            return 403, _problem(403, "Forbidden", "this VTN does not offer subscriptions: poll instead")
        return None

    def _item(self, method: str, collection: str, object_id: str, body: Any) -> tuple[int, Any]:
        """GET, PUT or DELETE one object."""
        if method == "GET":
            found = self.state.get(collection, object_id)
        else:
            changed = (self.state.replace(collection, object_id, body) if method == "PUT"
                       else self.state.delete(collection, object_id))
            found = None if changed is None else changed[0]
            self._notify([] if changed is None else changed[1])
        if found is None:
            return 404, _problem(404, "Not Found", f"no {collection.rstrip('s')} {object_id}")
        return 200, found

    def _notify(self, notes: list[Notification]) -> None:
        for note in notes:
            problems = self.spec.callback_errors(note.body)
            if problems:
                self.state.response_problems.append(f"notification to {note.url}: {problems}")
                continue
            task = asyncio.get_running_loop().create_task(self._send(note), name=f"vtn3-notify:{note.url}")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, note: Notification) -> None:
        headers = {"Authorization": f"Bearer {note.bearer_token}"} if note.bearer_token else {}
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=_NOTIFY_TIMEOUT_S)
        try:
            response = await self._http.post(note.url, json=note.body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("notification to %s failed: %s", note.url, exc)
            self.state.delivered.append((note.url, 0, note.body))
            return
        self.state.delivered.append((note.url, response.status_code, note.body))


    async def aclose(self) -> None:
        """Wait for the notifications under way and close their connection pool."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def make_vtn3_app(state: VtnState, spec: OpenApiSpec | None = None) -> FastAPI:
    """The stand-in as an ASGI app."""
    return Vtn3App(state, spec).app

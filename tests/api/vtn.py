"""A tiny OpenADR 3 VTN for tests: OAuth2 client-credentials token endpoint and POST /reports.

Runs in a uvicorn thread on 127.0.0.1 (a real socket, a real HTTP stack). It enforces what a VTN checks
for a VEN report: a valid bearer token from its own token endpoint and the report's required fields.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

CLIENT_ID = "ven-park-a"
CLIENT_SECRET = "s3cret-" + "x" * 16


@dataclass
class VtnState:
    """What the VTN saw."""

    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    reports: list[dict[str, Any]] = field(default_factory=list)
    reject_next_with_401: bool = False


def make_vtn(state: VtnState) -> FastAPI:
    """The VTN app."""
    app = FastAPI()

    @app.post("/auth/token")
    async def token(request: Request, authorization: str | None = Header(None)) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        grant_type, client_id, client_secret = form.get("grant_type"), form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
        if grant_type != "client_credentials" or (client_id, client_secret) != (CLIENT_ID, CLIENT_SECRET):
            raise HTTPException(401, detail="invalid_client")
        state.token_requests += 1
        token = secrets.token_hex(16)
        state.tokens.add(token)
        return {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    @app.post("/reports", status_code=201)
    async def create_report(request: Request, authorization: str | None = Header(None)) -> Any:
        token = (authorization or "").removeprefix("Bearer ")
        if state.reject_next_with_401:
            state.reject_next_with_401 = False
            state.tokens.discard(token)
        if token not in state.tokens:
            return JSONResponse({"title": "Unauthorized", "status": 401}, status_code=401)
        report = await request.json()
        missing = [k for k in ("objectType", "programID", "eventID", "clientName", "resources") if k not in report]
        if missing or report["objectType"] != "REPORT":
            problem = {"title": "Bad Request", "status": 400, "detail": f"missing {missing}"}
            return JSONResponse(problem, status_code=400)
        stored = {**report, "id": f"report-{len(state.reports) + 1}"}
        state.reports.append(stored)
        return stored

    return app


@contextmanager
def running_vtn() -> Iterator[tuple[str, VtnState]]:
    """Start the VTN on 127.0.0.1 (free port); yield its base URL and state; stop it afterwards."""
    state = VtnState()
    server = uvicorn.Server(uvicorn.Config(make_vtn(state), host="127.0.0.1", port=0, log_level="warning",
                                          lifespan="off", ws="none"))
    thread = threading.Thread(target=server.run, name="test-vtn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test VTN did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)

"""Run the OpenADR 3 VTN stand-in on a real socket (uvicorn), inside the caller's event loop.

:func:`running_vtn3` is for tests and the end-to-end loop: it serves on 127.0.0.1 (port 0 picks a free
one) as a task of the running loop and yields a :class:`RunningVtn3` with the base URL and the state.
:func:`serve_vtn3` is ``parkpulse vpp vtn3-sim``: it serves until cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn

from simulators.openadr3_vtn._app import Vtn3App
from simulators.openadr3_vtn._state import VtnState
from simulators.openadr3_vtn.errors import Vtn3StartError

_START_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class RunningVtn3:
    """A serving stand-in: its base URL (``http://host:port``) and its state."""

    base_url: str
    state: VtnState


def _server(app: Vtn3App, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app.app, host=host, port=port, log_level="warning",
                                         lifespan="off", ws="none", access_log=False))


@asynccontextmanager
async def running_vtn3(state: VtnState | None = None, *, host: str = "127.0.0.1",
                       port: int = 0) -> AsyncIterator[RunningVtn3]:
    """Serve the stand-in while the block runs; stop it (and wait for it) afterwards."""
    state = state if state is not None else VtnState()
    app = Vtn3App(state)
    server = _server(app, host, port)
    task = asyncio.get_running_loop().create_task(server.serve(), name=f"vtn3-sim:{host}:{port}")
    try:
        async with asyncio.timeout(_START_TIMEOUT_S):
            while not server.started:
                if task.done():
                    raise Vtn3StartError(f"the OpenADR 3 VTN stand-in did not start on {host}:{port}")
                await asyncio.sleep(0.01)
    except TimeoutError as exc:
        server.should_exit = True
        await app.aclose()
        raise Vtn3StartError(f"the OpenADR 3 VTN stand-in did not start on {host}:{port} within "
                             f"{_START_TIMEOUT_S:.0f} s") from exc
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningVtn3(f"http://{host}:{bound}", state)
    finally:
        server.should_exit = True
        await task
        await app.aclose()


async def serve_vtn3(state: VtnState, *, host: str, port: int) -> None:
    """Serve until cancelled (the CLI)."""
    app = Vtn3App(state)
    try:
        await _server(app, host, port).serve()
    finally:
        await app.aclose()

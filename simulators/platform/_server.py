"""Run a simulated platform over HTTPS (uvicorn) inside the caller's event loop.

:class:`PlatformSimulator` is an async context manager: it binds the platform port (TLS with the given
certificate chain, client certificates required when ``client_ca`` is set), optionally a plain-HTTP admin
port on loopback, and runs a small reconciler task that closes the platform's listening socket while the
fault set says ``down: refuse`` (clients see *connection refused*) and opens it again on the same port
when the fault is lifted or its ``down_for_s`` has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from schemas.uplink_wire import WireProfile, load_wire_profile
from simulators.platform._app import add_admin_routes, make_platform_app
from simulators.platform._errors import PlatformStartError
from simulators.platform._state import Faults, PlatformState

_START_TIMEOUT_S = 10.0
_RECONCILE_S = 0.05


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise PlatformStartError(f"cannot listen on {host}:{port}: {error}; pick another --port") from None
    sock.set_inheritable(True)
    return sock


class PlatformSimulator:
    """One simulated energy online-monitoring platform (one receiving data centre)."""

    def __init__(self, profile: str | WireProfile, *, host: str = "127.0.0.1", port: int = 0,
                 tls_cert: Path | None = None, tls_key: Path | None = None, client_ca: Path | None = None,
                 credentials: dict[str, str] | None = None, token_ttl_s: float = 7200.0,
                 faults: Faults | None = None, clock: Callable[[], float] = time.monotonic,
                 admin_port: int | None = None) -> None:
        self.profile = load_wire_profile(profile) if isinstance(profile, str) else profile
        if (tls_cert is None) != (tls_key is None):
            raise PlatformStartError("give both --tls-cert and --tls-key, or neither (plain HTTP, "
                                     "for trying the admin API only)")
        self.host, self.port = host, port
        self.tls_cert, self.tls_key, self.client_ca = tls_cert, tls_key, client_ca
        self.state = PlatformState(clock=clock, credentials=dict(credentials or {}), token_ttl_s=token_ttl_s)
        if faults is not None:
            self.state.set_faults(faults)
        self.admin_port = admin_port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._admin: tuple[uvicorn.Server, asyncio.Task[None]] | None = None
        self._reconciler: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def base_url(self) -> str:
        """``https://host:port`` of the platform endpoints."""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str | None:
        """``http://127.0.0.1:port`` of the separate admin listener, if any."""
        return f"http://{self.host}:{self.admin_port}" if self.admin_port is not None else None

    @property
    def listening(self) -> bool:
        """Whether the platform port accepts connections now."""
        return self._server is not None

    async def set_faults(self, faults: Faults) -> None:
        """Change faults now (also reachable as ``POST /admin/faults``); ``refuse`` closes the port at once."""
        self.state.set_faults(faults)
        await self._reconcile()

    # --------------------------------------------------------------------------------- lifecycle
    def _config(self, app: object, *, tls: bool) -> uvicorn.Config:
        options: dict[str, object] = {}
        if tls and self.tls_cert and self.tls_key:
            options = {"ssl_certfile": str(self.tls_cert), "ssl_keyfile": str(self.tls_key)}
            if self.client_ca is not None:
                options |= {"ssl_ca_certs": str(self.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        return uvicorn.Config(app, log_level="warning", lifespan="off", ws="none", access_log=False,  # type: ignore[arg-type]
                              timeout_graceful_shutdown=1, **options)  # type: ignore[arg-type]

    async def _serve(self, config: uvicorn.Config, port: int, name: str) -> tuple[uvicorn.Server, asyncio.Task[None]]:
        sock = _bind(self.host, port)
        server = uvicorn.Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name=name)
        try:
            async with asyncio.timeout(_START_TIMEOUT_S):
                while not server.started and not task.done():  # noqa: ASYNC110 -- uvicorn offers no started event
                    await asyncio.sleep(0.01)
        except TimeoutError:
            server.should_exit = True
            sock.close()
            raise PlatformStartError(f"platform simulator did not start on {self.host}:{port} in "
                                     f"{_START_TIMEOUT_S:.0f} s") from None
        if not server.started:
            sock.close()
            raise PlatformStartError(f"platform simulator did not start on {self.host}:{port}; check the "
                                     f"certificate and key files")
        return server, task   # the asyncio server owns ``sock`` now and closes it on shutdown

    async def _open(self) -> None:
        app = make_platform_app(self.profile, self.state)
        server, self._task = await self._serve(self._config(app, tls=True), self.port,
                                               f"platform-sim:{self.profile.name}:{self.port}")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server = server

    async def _close(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server, self._task = None, None

    async def _reconcile(self) -> None:
        refuse = self.state.is_down() == "refuse"
        if refuse and self._server is not None:
            await self._close()
        elif not refuse and self._server is None:
            await self._open()

    async def _reconcile_forever(self) -> None:
        while True:
            await self._reconcile()
            await asyncio.sleep(_RECONCILE_S)

    async def __aenter__(self) -> PlatformSimulator:
        await self._open()
        if self.admin_port is not None:
            admin = FastAPI(title="platform simulator admin", openapi_url=None, docs_url=None, redoc_url=None)
            add_admin_routes(admin, self.profile, self.state)
            server, task = await self._serve(self._config(admin, tls=False), self.admin_port,
                                             f"platform-sim-admin:{self.admin_port}")
            self.admin_port = server.servers[0].sockets[0].getsockname()[1]
            self._admin = (server, task)
        self._reconciler = asyncio.get_running_loop().create_task(self._reconcile_forever(),
                                                                  name=f"platform-sim-reconcile:{self.port}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._reconciler is not None:
            self._reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciler
        await self._close()
        if self._admin is not None:
            server, task = self._admin
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._admin = None

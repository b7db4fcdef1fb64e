"""The delivery worker (``parkpulse uplink run``): one named task per endpoint, each draining its queue.

Per endpoint: take the oldest waiting records (back-fill drains in period order), send them in batches
through the profile's wire format (:mod:`schemas.uplink_wire`), and apply the platform's per-record
answers. Acknowledged records leave the queue; rejected ones keep the platform's reason and leave it too
(a reject never blocks). Transport failures (5xx, timeouts, connection errors, unreadable answers) put the
batch back and the endpoint backs off with capped, jittered exponential delays; an expired token is
renewed once and the batch resent. A request the platform refuses as a whole is split in halves until the
offending record is isolated and rejected alone. Endpoints share nothing, so one that is down never
delays another. Database calls run in a worker thread on the endpoint's own connection, which holds the
endpoint's advisory lock while it drains: a second ``uplink run`` process serving the same endpoint waits
instead of sending the same batches again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import psycopg

from schemas import uplink_wire as wire
from schemas.errors import (
    UplinkAuthError,
    UplinkRequestRejected,
    UplinkTokenExpired,
    UplinkTransientError,
    UplinkWireError,
)
from schemas.uplink_record import RecordAck, UplinkRecord
from schemas.uplink_wire_types import WireProfile
from uplink._endpoints import EndpointConfig
from uplink._metrics import UplinkMetrics
from uplink._registers import sync_registers
from uplink._store import (
    apply_acks,
    endpoint_status,
    mark_failed,
    mark_sent,
    next_batch,
    try_lock_endpoint,
    unlock_endpoint,
)

logger = logging.getLogger(__name__)
_FAILURES = (UplinkTransientError, UplinkTokenExpired, UplinkAuthError, UplinkWireError, httpx.HTTPError, OSError)


@dataclass(slots=True)
class DrainResult:
    """What one drain of one endpoint did; ``error`` is set when it stopped on a failure."""

    sent: int = 0
    acked: int = 0
    rejected: int = 0
    error: str | None = None


@dataclass(slots=True)
class _Link:
    """One endpoint's connections and token."""

    endpoint: EndpointConfig
    profile: WireProfile
    client: httpx.AsyncClient
    conn: psycopg.Connection[Any]
    token: str | None = None
    token_deadline: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def ssl_context(endpoint: EndpointConfig) -> ssl.SSLContext:
    """Verify the platform against the endpoint's CA (system CAs when none); present the client certificate."""
    ctx = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
    if endpoint.auth.kind == "client_cert" and endpoint.auth.cert_file is not None:
        ctx.load_cert_chain(str(endpoint.auth.cert_file),
                            str(endpoint.auth.key_file) if endpoint.auth.key_file else None)
    return ctx


class UplinkWorker:
    """Async context manager delivering every configured endpoint's queue."""

    def __init__(self, database_url: str, endpoints: Sequence[EndpointConfig], *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, backoff_base_s: float = 2.0,
                 backoff_cap_s: float = 300.0, poll_s: float = 30.0, rng: random.Random | None = None,
                 metrics: UplinkMetrics | None = None, send_registers: bool = True) -> None:
        self._database_url = database_url
        self._endpoints = list(endpoints)
        self._sleep = sleep
        self._base, self._cap, self._poll = backoff_base_s, backoff_cap_s, poll_s
        self._rng = rng or random.Random()
        self.metrics = metrics or UplinkMetrics()
        self._send_registers = send_registers
        self._links: dict[str, _Link] = {}

    async def __aenter__(self) -> Self:
        try:
            for ep in self._endpoints:
                profile = wire.load_wire_profile(ep.profile)
                client = httpx.AsyncClient(base_url=ep.base_url, verify=ssl_context(ep), timeout=ep.timeout_s)
                conn = await asyncio.to_thread(_connect, self._database_url)
                self._links[ep.name] = _Link(ep, profile, client, conn)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self._close()

    async def _close(self) -> None:
        for link in self._links.values():
            await link.client.aclose()
            await asyncio.to_thread(link.conn.close)
        self._links.clear()

    def backoff_s(self, failures: int) -> float:
        """Delay after ``failures`` consecutive failures: exponential, capped, with 50-100 % jitter."""
        delay = min(self._cap, self._base * 2.0 ** max(0, failures - 1))
        return delay * (0.5 + 0.5 * self._rng.random())

    async def drain_once(self, endpoint: str | None = None) -> dict[str, DrainResult]:
        """Drain each endpoint (or one) until its queue is empty or its first failure; no sleeping."""
        names = [endpoint] if endpoint is not None else list(self._links)
        unknown = [n for n in names if n not in self._links]
        if unknown:
            raise KeyError(f"unknown endpoint(s) {unknown}; configured: {sorted(self._links)}")
        async with asyncio.TaskGroup() as tg:
            tasks = {n: tg.create_task(self._drain(self._links[n]), name=f"uplink-drain-{n}") for n in names}
        return {n: t.result() for n, t in tasks.items()}

    async def run(self) -> None:
        """Deliver until cancelled: one task per endpoint."""
        async with asyncio.TaskGroup() as tg:
            for name, link in self._links.items():
                tg.create_task(self._loop(link), name=f"uplink-{name}")

    async def _loop(self, link: _Link) -> None:
        failures = 0
        while True:
            try:
                result = await self._drain(link)
            except psycopg.Error as exc:   # database gone: back off, then reconnect this endpoint's connection
                result = DrainResult(error=f"database: {exc}")
                await asyncio.to_thread(link.conn.close)
                try:
                    link.conn = await asyncio.to_thread(_connect, self._database_url)
                except psycopg.Error as again:
                    result = DrainResult(error=f"database: {again}")
            if result.error is not None:
                failures += 1
                delay = self.backoff_s(failures)
                logger.warning("uplink %s: %s; retrying in %.1f s", link.endpoint.name, result.error, delay)
                await self._sleep(delay)
            else:
                failures = 0
                await self._sleep(self._poll)

    async def _drain(self, link: _Link) -> DrainResult:
        async with link.lock:
            name = link.endpoint.name
            if not await asyncio.to_thread(try_lock_endpoint, link.conn, name):
                self.metrics.send_errors[name] += 1
                return DrainResult(error=f"endpoint {name} is being delivered by another `parkpulse uplink run` "
                                         "process; stop one of them (this one retries later)")
            try:
                return await self._drain_locked(link)
            finally:
                await asyncio.to_thread(unlock_endpoint, link.conn, name)

    async def _drain_locked(self, link: _Link) -> DrainResult:
        result = DrainResult()
        name = link.endpoint.name
        size = min(link.endpoint.batch_size, link.profile.max_records_per_request)
        if self._send_registers:
            error = await self._registers(link)
            if error is not None:
                result.error = error
                self.metrics.send_errors[name] += 1
                await self._gauges(link)
                return result
        while True:
            batch = await asyncio.to_thread(next_batch, link.conn, name, size)
            if not batch:
                break
            upload_id = uuid.uuid4().hex
            await asyncio.to_thread(mark_sent, link.conn, name, batch, upload_id)
            try:
                acks = await self._deliver(link, batch, upload_id)
            except _FAILURES as exc:
                await asyncio.to_thread(mark_failed, link.conn, name, batch, f"{type(exc).__name__}: {exc}")
                self.metrics.send_errors[name] += 1
                result.error = f"{type(exc).__name__}: {exc}"
                break
            acked, rejected = await asyncio.to_thread(apply_acks, link.conn, name, acks)
            result.sent += len(batch)
            result.acked += acked
            result.rejected += rejected
            self.metrics.acked[name] += acked
            self.metrics.rejected[name] += rejected
            if acked + rejected == 0:  # answers for revisions that moved on meanwhile: look again later
                break
        await self._gauges(link)
        return result

    async def _gauges(self, link: _Link) -> None:
        status = await asyncio.to_thread(endpoint_status, link.conn, link.endpoint.name)
        self.metrics.backlog[link.endpoint.name] = status.backlog
        self.metrics.oldest_age_s[link.endpoint.name] = 0.0 if status.oldest_unacked_start is None else max(
            0.0, (datetime.now(UTC) - status.oldest_unacked_start).total_seconds())

    async def _registers(self, link: _Link) -> str | None:
        try:
            async def post(path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
                return await self._post(link, path, body, ctype)

            await sync_registers(link.conn, link.endpoint, link.profile, post)
        except _FAILURES as exc:
            return f"register upload: {type(exc).__name__}: {exc}"
        return None

    async def _deliver(self, link: _Link, batch: Sequence[UplinkRecord], upload_id: str) -> list[RecordAck]:
        """Send one batch; a request refused as a whole is split until the bad record is alone.

        Records go out under the endpoint's enterprise code (each platform may know the unit by its own code).
        """
        code = link.endpoint.enterprise_code
        outgoing = [r if r.enterprise_code == code else replace(r, enterprise_code=code) for r in batch]
        body, ctype = wire.encode_data_request(link.profile, outgoing, upload_id=upload_id)
        try:
            status, content = await self._post(link, link.profile.paths.data, body, ctype)
            return wire.decode_data_response(link.profile, status, content, outgoing)
        except UplinkRequestRejected as exc:
            if len(batch) == 1:
                return [RecordAck(batch[0].record_key, batch[0].revision, False, str(exc))]
            half = len(batch) // 2
            return [*await self._deliver(link, batch[:half], f"{upload_id}-a"),
                    *await self._deliver(link, batch[half:], f"{upload_id}-b")]

    async def _post(self, link: _Link, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
        """POST with the endpoint's token; an expired token is renewed once and the request resent."""
        for attempt in (0, 1):
            token = await self._token(link, renew=attempt == 1)
            headers = wire.auth_headers(link.profile, token)
            headers["Content-Type"] = ctype
            response = await link.client.post(path, content=body, headers=headers)
            try:
                wire.raise_for_error(link.profile, response.status_code, response.content)
            except UplinkTokenExpired:
                if attempt == 0 and token is not None:
                    link.token = None
                    continue
                raise
            return response.status_code, response.content
        raise AssertionError("unreachable")

    async def _token(self, link: _Link, *, renew: bool) -> str | None:
        auth = link.endpoint.auth
        if link.profile.auth.kind != "token" or auth.kind != "token":
            return None
        if not renew and link.token is not None and time.monotonic() < link.token_deadline:
            return link.token
        path, body, ctype = wire.token_request(link.profile, auth.client_id or "", auth.read_secret())
        response = await link.client.post(path, content=body, headers={"Content-Type": ctype})
        token, ttl = wire.decode_token_response(link.profile, response.status_code, response.content)
        link.token, link.token_deadline = token, time.monotonic() + max(1.0, ttl * 0.9)
        return token

"""Async access to the outbox: one worker thread, group commit of concurrent polls.

SQLite calls (and their fsyncs) run on a dedicated thread so the event loop keeps polling and
publishing. Polls that finish in the same loop iteration are committed in one transaction: a site whose
100 meters are all polled on the same 15-second tick costs one fsync, not 100.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from edge.outbox import EnqueueResult, NewMessage, Outbox, OutboxStats, StoredMessage

T = TypeVar("T")


class AsyncOutbox:
    """The :class:`Outbox` behind an executor; use as ``async with AsyncOutbox(factory) as store``."""

    def __init__(self, factory: Callable[[], Outbox]) -> None:
        """``factory`` opens the outbox (called on the worker thread)."""
        self._factory = factory
        self._executor: ThreadPoolExecutor | None = None
        self._outbox: Outbox | None = None
        self._pending: list[tuple[NewMessage, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AsyncOutbox:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-outbox")
        try:
            self._outbox = await self._run(self._factory)
        except BaseException:
            self._executor.shutdown(wait=True)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._outbox is not None:
            await self._run(self._outbox.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def outbox(self) -> Outbox:
        """The underlying outbox (only call it through :meth:`_run`)."""
        if self._outbox is None:
            raise RuntimeError("outbox is not open")
        return self._outbox

    async def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def enqueue(self, message: NewMessage) -> int:
        """Commit ``message`` durably (grouped with concurrent calls); returns its sequence number."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((message, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="edge.outbox.group_commit")
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the other polls of this tick join the transaction
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                result: EnqueueResult = await self._run(self.outbox.enqueue, [m for m, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting poll, which logs it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), seq in zip(batch, result.seqs, strict=True):
                if not future.done():
                    future.set_result(seq)

    async def fetch(self, device_id: str, *, after_id: int = 0, up_to_id: int | None = None,
                    limit: int = 500) -> list[StoredMessage]:
        """See :meth:`Outbox.fetch`."""
        return await self._run(self.outbox.fetch, device_id, after_id=after_id, up_to_id=up_to_id, limit=limit)

    async def ack(self, ids: Sequence[int]) -> int:
        """See :meth:`Outbox.ack`."""
        return await self._run(self.outbox.ack, list(ids))

    async def max_id(self) -> int:
        """See :meth:`Outbox.max_id`."""
        return await self._run(self.outbox.max_id)

    async def stats(self) -> OutboxStats:
        """See :meth:`Outbox.stats`."""
        return await self._run(self.outbox.stats)

    async def device_backlog(self, device_id: str) -> int:
        """See :meth:`Outbox.device_backlog`."""
        return await self._run(self.outbox.device_backlog, device_id)


__all__ = ["AsyncOutbox"]

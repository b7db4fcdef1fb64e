"""Parallel reads and writes over a few ADBC connections, for the batch pipeline of a backfill.

Why: a backfill reads every reading once and writes every interval and rollup once. On a small machine the
read (server scan + binary COPY out + Arrow decode) and the write (binary COPY into a hypertable) cost more
than the Polars compute. ADBC and Polars release the GIL, so running reads ahead and writes behind on
worker threads, each with its own connection, overlaps the server's work with the compute and lets the
server use more than one core.

* :class:`Prefetcher` — ``fetch(bulk, item)`` for each item, results in submission order, ``connections``
  reads in flight.
* :class:`Writers` — ``write(bulk)`` callables, each run and committed as one transaction on an idle
  connection, at most ``connections`` in flight; :meth:`Writers.drain` waits for all and re-raises the
  first failure.

The caller guarantees that work in flight at the same time touches disjoint rows (the job's batches hold
disjoint series), so the overlap changes no result.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Generic, Self, TypeVar

from aggregation._bulk import Bulk

T = TypeVar("T")
R = TypeVar("R")


class _Connections:
    """``n`` connections and ``n`` worker threads; each task borrows an idle connection."""

    def __init__(self, database_url: str, connections: int, name: str) -> None:
        self._n = max(1, connections)
        self._idle: queue.SimpleQueue[Bulk] = queue.SimpleQueue()
        self._conns: list[Bulk] = []
        self._pool = ThreadPoolExecutor(self._n, name)
        try:
            for _ in range(self._n):
                conn = Bulk(database_url)
                self._conns.append(conn)
                self._idle.put(conn)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Wait for the tasks in flight (queued ones are cancelled), then close every connection."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for conn in self._conns:
            conn.close()
        self._conns.clear()


class Prefetcher(_Connections, Generic[T, R]):
    """Runs ``fetch(bulk, item)`` for each item; iterate :meth:`map` once.

    ``fetch`` must leave its connection outside a transaction (commit or roll back).
    """

    def __init__(self, database_url: str, connections: int, fetch: Callable[[Bulk, T], R]) -> None:
        super().__init__(database_url, connections, "aggregation-prefetch")
        self._fetch = fetch

    def _run(self, item: T) -> R:
        conn = self._idle.get()
        try:
            return self._fetch(conn, item)
        finally:
            self._idle.put(conn)

    def map(self, items: Iterable[T]) -> Iterator[R]:
        """Results of ``fetch`` for ``items`` in order, with up to ``connections`` reads ahead."""
        pending: deque[Future[R]] = deque()
        source = iter(items)
        for item in source:
            pending.append(self._pool.submit(self._run, item))
            if len(pending) >= self._n:
                break
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(self._pool.submit(self._run, item))
                break
            yield result


class Writers(_Connections):
    """Runs ``write(bulk)`` tasks, each committed as one transaction, at most ``connections`` in flight."""

    def __init__(self, database_url: str, connections: int) -> None:
        super().__init__(database_url, connections, "aggregation-writer")
        self._pending: deque[Future[None]] = deque()

    def _run(self, write: Callable[[Bulk], None]) -> None:
        conn = self._idle.get()
        try:
            write(conn)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self._idle.put(conn)

    def submit(self, write: Callable[[Bulk], None]) -> None:
        """Queue ``write``; first waits for the oldest task when ``connections`` are busy (re-raising)."""
        while len(self._pending) >= self._n:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._run, write))

    def drain(self) -> None:
        """Wait for every queued write; re-raises the first failure."""
        while self._pending:
            self._pending.popleft().result()

"""The durable store-and-forward outbox: one SQLite file in WAL mode.

Every poll's readings are committed here *before* anything is published; a row is deleted only after the
broker's PUBACK for it. So neither a broker outage of hours nor ``kill -9`` of the agent loses a committed
reading: on restart the rows are still there and are sent again (ingest drops the duplicates by key).

Design:

* ``outbox(id, device_id, seq, body, n_items, size, created_at)``: ``id`` is AUTOINCREMENT so ids grow
  forever and draining ``ORDER BY id`` is oldest-first. ``seq`` is the per-device message sequence
  number, taken from ``sequences`` in the same transaction, so it survives restarts and a gap in it tells
  ingest that messages were dropped.
* ``counters`` holds running totals (pending, enqueued, published, dropped), also updated in the same
  transactions, so opening a large backlog is O(1) and the figures stay exact across crashes.
* Bounded disk: ``max_messages`` and ``max_bytes`` (payload bytes). When a new batch does not fit, the
  explicit :class:`FullPolicy` applies: ``drop_oldest`` deletes the oldest rows (default: fresh data is
  worth more than old on a full disk) or ``drop_newest`` refuses the new rows. Either way the dropped
  messages and readings are counted, logged at error level and reported in status messages.
* One process per file: an ``flock`` on ``<file>.lock`` (released by the kernel even on ``kill -9``).

The class is synchronous and not thread-safe; the agent calls it from one dedicated worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from edge.errors import OutboxError

logger = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    body        BLOB NOT NULL,
    n_items     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    created_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_device_idx ON outbox (device_id, id);
CREATE TABLE IF NOT EXISTS sequences (device_id TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_COUNTERS: Final = (
    "pending_messages", "pending_readings", "pending_bytes",
    "enqueued_messages", "enqueued_readings",
    "published_messages", "published_readings",
    "dropped_messages", "dropped_readings",
)
_IN_CHUNK: Final = 500


class FullPolicy(StrEnum):
    """What the outbox does when a new batch would exceed its limits."""

    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


class Durability(StrEnum):
    """SQLite ``synchronous`` level: ``full`` survives power loss, ``normal`` survives process crashes."""

    FULL = "full"
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to enqueue: which device, its readings JSON array and how many readings it holds."""

    device_id: str
    body: bytes
    n_items: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message waiting in the outbox."""

    id: int
    device_id: str
    seq: int
    body: bytes
    n_items: int
    created_at: float


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """Outcome of one :meth:`Outbox.enqueue` call."""

    ids: tuple[int, ...]          # ids of the stored messages (empty when drop_newest refused them)
    seqs: tuple[int, ...]         # sequence numbers given to every new message, stored or not
    dropped_messages: int         # messages dropped by the full policy in this call (old or new)
    dropped_readings: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Backlog and lifetime counters, for status messages, the CLI and tests."""

    pending_messages: int
    pending_readings: int
    pending_bytes: int
    enqueued_messages: int
    enqueued_readings: int
    published_messages: int
    published_readings: int
    dropped_messages: int
    dropped_readings: int
    oldest_created_at: float | None


class Outbox:
    """A bounded, durable FIFO of readings messages per device; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        max_messages: int = 1_000_000,
        max_bytes: int = 512 * 1024 * 1024,
        policy: FullPolicy = FullPolicy.DROP_OLDEST,
        durability: Durability = Durability.FULL,
    ) -> None:
        """Open (creating if needed) the outbox at ``path`` and take its lock."""
        if max_messages < 1 or max_bytes < 1:
            raise OutboxError("outbox limits must be positive")
        self.path = path
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.policy = policy
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutboxError(f"outbox {path} is in use by another agent process") from None
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"cannot put {path} in WAL mode (got {mode})")
            self._db.execute(f"PRAGMA synchronous={durability.value.upper()}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA journal_size_limit=67108864")
            self._db.executescript(_SCHEMA)
            self._db.executemany("INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)",
                                 [(n,) for n in _COUNTERS])
            self._counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            self._next_seq: dict[str, int] = dict(self._db.execute("SELECT device_id, next_seq FROM sequences"))
        except sqlite3.Error as exc:
            self._release_lock()
            raise OutboxError(f"cannot open outbox {path}: {exc}") from exc

    # -- lifecycle ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the WAL into the main file and release the lock."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._release_lock()

    def _release_lock(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        counters_before = dict(self._counters)
        seqs_before = dict(self._next_seq)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.executemany("UPDATE counters SET value = ? WHERE name = ?",
                                 [(v, k) for k, v in self._counters.items() if counters_before.get(k) != v])
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._counters, self._next_seq = counters_before, seqs_before
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise OutboxError(f"outbox {self.path}: {exc}") from exc
            raise

    # -- writing -----------------------------------------------------------------------------------------

    def enqueue(self, messages: Sequence[NewMessage], *, now: float | None = None) -> EnqueueResult:
        """Store ``messages`` in one transaction, giving each the next sequence number of its device.

        Applies the full policy so that, after the call, the outbox is within its limits.
        """
        if not messages:
            return EnqueueResult((), (), 0, 0)
        created = time.time() if now is None else now
        ids: list[int] = []
        seqs: list[int] = []
        dropped_msgs = dropped_readings = 0
        c = self._counters
        with self._transaction() as db:
            drop_new = self.policy is FullPolicy.DROP_NEWEST
            for msg in messages:
                seq = self._next_seq.get(msg.device_id, 0)
                self._next_seq[msg.device_id] = seq + 1
                seqs.append(seq)
                size = len(msg.body)
                if drop_new and (c["pending_messages"] + 1 > self.max_messages
                                 or c["pending_bytes"] + size > self.max_bytes):
                    dropped_msgs += 1
                    dropped_readings += msg.n_items
                    c["dropped_messages"] += 1
                    c["dropped_readings"] += msg.n_items
                    continue
                cur = db.execute(
                    "INSERT INTO outbox (device_id, seq, body, n_items, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (msg.device_id, seq, msg.body, msg.n_items, size, created),
                )
                ids.append(int(cur.lastrowid or 0))
                c["pending_messages"] += 1
                c["pending_readings"] += msg.n_items
                c["pending_bytes"] += size
            excess_msgs = c["pending_messages"] - self.max_messages
            excess_bytes = c["pending_bytes"] - self.max_bytes
            if excess_msgs > 0 or excess_bytes > 0:
                dropped_msgs, dropped_readings = self._drop_oldest(db, excess_msgs, excess_bytes)
            for msg in messages:
                c["enqueued_messages"] += 1
                c["enqueued_readings"] += msg.n_items
            db.executemany(
                "INSERT INTO sequences (device_id, next_seq) VALUES (?, ?) "
                "ON CONFLICT (device_id) DO UPDATE SET next_seq = excluded.next_seq",
                [(d, self._next_seq[d]) for d in {m.device_id for m in messages}],
            )
        if dropped_msgs:
            logger.error("outbox full (%s): dropped %d message(s) with %d reading(s); %d dropped in total",
                         self.policy.value, dropped_msgs, dropped_readings, c["dropped_messages"])
        return EnqueueResult(tuple(ids), tuple(seqs), dropped_msgs, dropped_readings)

    def _drop_oldest(self, db: sqlite3.Connection, excess_msgs: int, excess_bytes: int) -> tuple[int, int]:
        """Delete the oldest rows until ``excess_msgs`` messages and ``excess_bytes`` bytes are freed."""
        freed_msgs = freed_bytes = freed_readings = 0
        last_id: int | None = None
        for row_id, size, n_items in db.execute("SELECT id, size, n_items FROM outbox ORDER BY id"):
            if freed_msgs >= excess_msgs and freed_bytes >= excess_bytes:
                break
            last_id = row_id
            freed_msgs += 1
            freed_bytes += size
            freed_readings += n_items
        if last_id is not None:
            db.execute("DELETE FROM outbox WHERE id <= ?", (last_id,))
        c = self._counters
        c["pending_messages"] -= freed_msgs
        c["pending_bytes"] -= freed_bytes
        c["pending_readings"] -= freed_readings
        c["dropped_messages"] += freed_msgs
        c["dropped_readings"] += freed_readings
        return freed_msgs, freed_readings

    def ack(self, ids: Sequence[int]) -> int:
        """Delete the messages the broker acknowledged; returns how many rows were deleted.

        Ids already gone (dropped meanwhile by the full policy) are ignored.
        """
        if not ids:
            return 0
        deleted = 0
        with self._transaction() as db:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start:start + _IN_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"DELETE FROM outbox WHERE id IN ({marks}) RETURNING n_items, size", chunk).fetchall()
                c = self._counters
                for n_items, size in rows:
                    deleted += 1
                    c["pending_messages"] -= 1
                    c["pending_readings"] -= n_items
                    c["pending_bytes"] -= size
                    c["published_messages"] += 1
                    c["published_readings"] += n_items
        if self._counters["pending_messages"] == 0:
            self._reclaim_space()
        return deleted

    def _reclaim_space(self) -> None:
        """Give free pages back to the file system once the backlog is empty (keeps the disk bounded)."""
        with contextlib.suppress(sqlite3.Error):
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            if free > 1024:
                self._db.execute("PRAGMA incremental_vacuum")

    # -- reading -----------------------------------------------------------------------------------------

    def fetch(self, device_id: str, *, after_id: int = 0, up_to_id: int | None = None,
              limit: int = 500) -> list[StoredMessage]:
        """Oldest pending messages of ``device_id`` with ``after_id < id <= up_to_id``."""
        upper = up_to_id if up_to_id is not None else 2**63 - 1
        try:
            rows = self._db.execute(
                "SELECT id, device_id, seq, body, n_items, created_at FROM outbox "
                "WHERE device_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (device_id, after_id, upper, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        return [StoredMessage(*row) for row in rows]

    def max_id(self) -> int:
        """The highest id ever given (0 for a new outbox); everything at or below it is 'already queued'."""
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        return int(row[0]) if row else 0

    def device_backlog(self, device_id: str) -> int:
        """Pending messages of one device."""
        return int(self._db.execute("SELECT count(*) FROM outbox WHERE device_id = ?", (device_id,)).fetchone()[0])

    def next_seq(self, device_id: str) -> int:
        """The sequence number the next message of ``device_id`` will get."""
        return self._next_seq.get(device_id, 0)

    def stats(self) -> OutboxStats:
        """Backlog and lifetime counters."""
        c = self._counters
        row = self._db.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        return OutboxStats(
            pending_messages=c["pending_messages"], pending_readings=c["pending_readings"],
            pending_bytes=c["pending_bytes"], enqueued_messages=c["enqueued_messages"],
            enqueued_readings=c["enqueued_readings"], published_messages=c["published_messages"],
            published_readings=c["published_readings"], dropped_messages=c["dropped_messages"],
            dropped_readings=c["dropped_readings"], oldest_created_at=row[0] if row else None,
        )

    def integrity_check(self) -> str:
        """SQLite's own consistency check (``ok`` when the file is sound)."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])


def read_stats(path: Path) -> OutboxStats:
    """Counters of an outbox file without taking its lock (for the CLI while an agent runs)."""
    if not path.exists():
        raise OutboxError(f"no outbox at {path}")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            row = db.execute("SELECT created_at FROM outbox ORDER BY id LIMIT 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot read outbox {path}: {exc}") from exc
    return OutboxStats(**{n: int(counters.get(n, 0)) for n in _COUNTERS}, oldest_created_at=row[0] if row else None)


__all__ = [
    "Durability",
    "EnqueueResult",
    "FullPolicy",
    "NewMessage",
    "Outbox",
    "OutboxStats",
    "StoredMessage",
    "read_stats",
]

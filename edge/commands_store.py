"""The edge's local command audit: every command received, every ack sent, and the site override.

Why on the edge (the dispatcher keeps its own audit too): the agent is what touched the device, and a
site engineer must be able to answer "who changed this battery's setpoint at 14:02, and did it take?"
without a connection to the cloud. The same database holds the override that site staff set with
``parkpulse edge-override set`` while the agent runs; the agent reads it for every command.

One SQLite file (WAL, so the CLI can read while the agent writes), one connection guarded by a lock;
the async wrappers run the calls on a worker thread so the event loop never waits on a disk flush.
A row's ack is stored as the exact bytes sent, so a redelivered command gets the same ack again.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import CommandAuditError

T = TypeVar("T")
ALL_DEVICES = "*"  # an override row for every device of the agent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    command_id TEXT,
    received_at TEXT NOT NULL,
    action TEXT,
    value REAL,
    issued_by TEXT,
    event_id TEXT,
    expires_at TEXT,
    hold_until TEXT,
    payload TEXT NOT NULL,
    status TEXT,
    reason TEXT,
    detail TEXT,
    applied_value REAL,
    acked_at TEXT,
    ack BLOB,
    deliveries INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS commands_device_command ON commands (device, command_id);
CREATE TABLE IF NOT EXISTS overrides (
    device TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS override_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    device TEXT NOT NULL,
    change TEXT NOT NULL,
    reason TEXT NOT NULL,
    by TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class CommandRow:
    """One audited command and the ack it got (``status`` None: no ack sent yet)."""

    id: int
    device: str
    command_id: str | None
    received_at: str
    action: str | None
    value: float | None
    issued_by: str | None
    event_id: str | None
    expires_at: str | None
    hold_until: str | None
    status: str | None
    reason: str | None
    detail: str | None
    applied_value: float | None
    acked_at: str | None
    deliveries: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(frozen=True, slots=True)
class Override:
    """A local override: the device (or ``*``) is under site control."""

    device: str
    reason: str
    set_by: str
    set_at: str


def _ts(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CommandAudit:
    """The audit database (see the module docstring); sync methods plus ``a…`` async wrappers."""

    def __init__(self, path: Path) -> None:
        """Remember ``path``; the database is opened (and created) on first use."""
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise CommandAuditError(f"cannot open the command audit {self.path}: {exc}; check the directory exists "
                                    f"and is writable (commands.audit_path in edge.yaml)") from None
        return db

    def close(self) -> None:
        """Close the connection (the next call reopens it)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._db is None:
                self._db = self._open()
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise CommandAuditError(f"command audit {self.path}: {exc}") from None

    # -- commands ---------------------------------------------------------------------------------------

    def record(self, device: str, command_id: str | None, payload: bytes, received_at: datetime,
               fields: dict[str, Any] | None = None) -> tuple[int, bytes | None]:
        """Book a received command; returns ``(row id, ack already sent or None)``.

        A command id seen before for this device counts one more delivery and returns the stored ack.
        """
        f = fields or {}
        text = payload[:4096].decode("utf-8", "replace")

        def run(db: sqlite3.Connection) -> tuple[int, bytes | None]:
            if command_id is not None:
                row = db.execute("UPDATE commands SET deliveries = deliveries + 1 WHERE device = ? AND command_id = ? "
                                 "RETURNING id, ack", (device, command_id)).fetchone()
                if row is not None:
                    return int(row[0]), None if row[1] is None else bytes(row[1])
            cur = db.execute(
                "INSERT INTO commands (device, command_id, received_at, action, value, issued_by, event_id, "
                "expires_at, hold_until, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (device, command_id, _ts(received_at), f.get("action"), f.get("value"), f.get("issued_by"),
                 f.get("event_id"), _ts(f.get("expires_at")), _ts(f.get("hold_until")), text))
            return int(cur.lastrowid or 0), None

        return self._call(run)

    async def arecord(self, device: str, command_id: str | None, payload: bytes, received_at: datetime,
                      fields: dict[str, Any] | None = None) -> tuple[int, bytes | None]:
        """Async :meth:`record`."""
        return await asyncio.to_thread(self.record, device, command_id, payload, received_at, fields)

    def record_ack(self, row_id: int, *, status: str, reason: str | None, detail: str, applied_value: float | None,
                   acked_at: datetime, ack: bytes) -> None:
        """Store the ack sent for the command in row ``row_id``."""
        self._call(lambda db: db.execute(
            "UPDATE commands SET status = ?, reason = ?, detail = ?, applied_value = ?, acked_at = ?, ack = ? "
            "WHERE id = ?", (status, reason, detail, applied_value, _ts(acked_at), ack, row_id)))

    async def arecord_ack(self, row_id: int, *, status: str, reason: str | None, detail: str,
                          applied_value: float | None, acked_at: datetime, ack: bytes) -> None:
        """Async :meth:`record_ack`."""
        await asyncio.to_thread(self.record_ack, row_id, status=status, reason=reason, detail=detail,
                                applied_value=applied_value, acked_at=acked_at, ack=ack)

    def commands(self, *, device: str | None = None, limit: int = 50) -> list[CommandRow]:
        """The newest ``limit`` commands (of one device, or all), newest first."""
        where, args = ("WHERE device = ?", (device, limit)) if device else ("", (limit,))
        rows = self._call(lambda db: db.execute(
            "SELECT id, device, command_id, received_at, action, value, issued_by, event_id, expires_at, hold_until, "
            f"status, reason, detail, applied_value, acked_at, deliveries FROM commands {where} "
            "ORDER BY id DESC LIMIT ?", args).fetchall())
        return [CommandRow(*r) for r in rows]

    # -- override ---------------------------------------------------------------------------------------

    def set_override(self, device: str, *, reason: str, by: str, at: datetime) -> None:
        """Put ``device`` (or ``*``: every device) under local control."""
        def run(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO overrides (device, reason, set_by, set_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                       "(device) DO UPDATE SET reason = excluded.reason, set_by = excluded.set_by, "
                       "set_at = excluded.set_at", (device, reason, by, _ts(at)))
            db.execute("INSERT INTO override_log (at, device, change, reason, by) VALUES (?, ?, 'set', ?, ?)",
                       (_ts(at), device, reason, by))
        self._call(run)

    def clear_override(self, device: str, *, by: str, at: datetime) -> bool:
        """Hand ``device`` (or ``*``) back to remote control; False when no override was set."""
        def run(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM overrides WHERE device = ?", (device,)).rowcount
            if gone:
                db.execute("INSERT INTO override_log (at, device, change, reason, by) VALUES (?, ?, 'clear', '', ?)",
                           (_ts(at), device, by))
            return bool(gone)
        return self._call(run)

    def overrides(self) -> list[Override]:
        """Every override in force."""
        rows = self._call(lambda db: db.execute(
            "SELECT device, reason, set_by, set_at FROM overrides ORDER BY device").fetchall())
        return [Override(*r) for r in rows]

    def override_for(self, device: str) -> Override | None:
        """The override in force for ``device`` (its own or the agent-wide one), if any."""
        row = self._call(lambda db: db.execute(
            "SELECT device, reason, set_by, set_at FROM overrides WHERE device IN (?, ?) ORDER BY device = ? LIMIT 1",
            (device, ALL_DEVICES, ALL_DEVICES)).fetchone())
        return None if row is None else Override(*row)

    async def aoverride_for(self, device: str) -> Override | None:
        """Async :meth:`override_for`."""
        return await asyncio.to_thread(self.override_for, device)


__all__ = ["ALL_DEVICES", "CommandAudit", "CommandRow", "Override"]

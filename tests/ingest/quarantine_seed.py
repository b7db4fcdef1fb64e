"""Quarantine rows written straight into the database, as ingest and CSV import would have left them.

Shared by the quarantine CLI and API tests: a readings message of a park that was not registered yet, an
oversized message kept truncated, a CSV import chunk, an invalid payload, and payloads with bytes that
must never reach a terminal unescaped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

RAW_CAP = 65_536
RECEIVED = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
HOSTILE_JSON = b'{"v": 1, "device": "m-5", "note": "nul \\u0000 esc \\u001b[2J bidi \\u202e", "seq": 1}'
BINARY = b"\x00\xff\x1b[2J\x07binary"


def readings_message(device: str, n: int, *, received_at: datetime = RECEIVED, value: float = 100.0) -> bytes:
    """A valid readings message: ``n`` energy register values in the ten minutes before ``received_at``."""
    readings = [{"ts": (received_at - timedelta(minutes=10 - i)).isoformat(), "metric": "active_energy_import",
                 "value": value + i, "unit": "kWh"} for i in range(n)]
    return json.dumps({"v": 1, "device": device, "seq": 7, "readings": readings}).encode()


def insert_quarantine(conn: psycopg.Connection, *, park_id: str | None, device_id: str | None, reason: str,
                      raw: bytes, source: str = "mqtt", topic: str | None = None, detail: str = "test",
                      received_at: datetime = RECEIVED, n_rejected: int = 1, n_accepted: int = 0) -> int:
    """One quarantine row; raw bytes over the cap are kept truncated, with the full length and SHA-256."""
    if topic is None and source == "mqtt":
        topic = f"parkpulse/v1/{park_id}/{device_id}/readings"
    kept = raw[:RAW_CAP]
    row = conn.execute(
        """INSERT INTO quarantine (received_at, source, topic, park_id, device_id, reason, detail, n_rejected,
                                  n_accepted, raw, raw_length, raw_sha256, raw_truncated)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING quarantine_id""",
        (received_at, source, topic, park_id, device_id, reason, detail, n_rejected, n_accepted, kept, len(raw),
         hashlib.sha256(raw).digest(), len(kept) < len(raw))).fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class Seeded:
    """Ids of the rows :func:`seed` inserted."""

    unregistered: int   # a valid readings message (3 readings) of device m-1, held as unregistered
    truncated: int      # an oversized message, raw kept truncated
    imported: int       # a CSV import chunk of device m-2 (2 valid rows), held as unregistered
    invalid: int        # a payload that is not JSON
    hostile: int        # JSON whose strings carry NUL, ESC and a bidi override
    binary: int         # bytes that are not UTF-8

    @property
    def all(self) -> list[int]:
        return [self.unregistered, self.truncated, self.imported, self.invalid, self.hostile, self.binary]


def register_park(conn: psycopg.Connection, park_id: str, *, auto_register: bool = True) -> None:
    """Register the test's park (devices are created on first sight when ``auto_register``).

    An upsert: the shared ``park_id`` fixture may already have registered the park (with auto-register on).
    """
    conn.execute("""INSERT INTO parks (park_id, auto_register) VALUES (%s, %s)
                    ON CONFLICT (park_id) DO UPDATE SET auto_register = EXCLUDED.auto_register""",
                 (park_id, auto_register))


def seed(conn: psycopg.Connection, park_id: str) -> Seeded:
    """The six kinds of record, received two hours ago (oldest first in this order)."""
    at = RECEIVED
    unregistered = insert_quarantine(
        conn, park_id=park_id, device_id="m-1", reason="unregistered", raw=readings_message("m-1", 3),
        detail=f"park {park_id!r} is not registered", n_rejected=3, received_at=at)
    oversized = b'{"v": 1, "device": "m-1", "seq": 8, "readings": [' + b" " * 70_000 + b"]}"
    truncated = insert_quarantine(conn, park_id=park_id, device_id="m-1", reason="oversized", raw=oversized,
                                  detail=f"{len(oversized)} bytes > limit 65536", received_at=at + timedelta(seconds=1))
    csv_lines = (f"device_id,ts,metric,value,unit\n"
                 f"m-2,{(at - timedelta(minutes=15)).isoformat()},active_energy_import,10.5,kWh\n"
                 f"m-2,{at.isoformat()},active_energy_import,11.0,kWh").encode()
    imported = insert_quarantine(conn, park_id=park_id, device_id="m-2", reason="unregistered", raw=csv_lines,
                                 source="import", topic=f"parkpulse/v1/{park_id}/m-2/readings", n_rejected=2,
                                 received_at=at + timedelta(seconds=2))
    invalid = insert_quarantine(conn, park_id=park_id, device_id="m-3", reason="invalid_json",
                                raw=b'{"v": 1, "device": "m-3", "readings": [', detail="EOF while parsing",
                                received_at=at + timedelta(seconds=3))
    hostile = insert_quarantine(conn, park_id=park_id, device_id="m-5", reason="schema_violation", raw=HOSTILE_JSON,
                                detail="extra field note", n_rejected=0, received_at=at + timedelta(seconds=4))
    binary = insert_quarantine(conn, park_id=park_id, device_id="m-6", reason="invalid_utf8", raw=BINARY,
                               detail="byte 1: invalid start byte", received_at=at + timedelta(seconds=5))
    return Seeded(unregistered, truncated, imported, invalid, hostile, binary)


def count_readings(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute(
        """SELECT count(*) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s""", (park_id,)).fetchone()
    return int(row[0]) if row else 0


def count_quarantine(conn: psycopg.Connection, park_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM quarantine WHERE park_id = %s", (park_id,)).fetchone()
    return int(row[0]) if row else 0

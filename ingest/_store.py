"""The database adapter: writes one :class:`~ingest._batch.Batch` per transaction, idempotently.

Readings are written idempotently (primary key ``(series_id, ts)``: a redelivered or replayed reading is
skipped, never duplicated), by one of two paths, both from one binary COPY buffer built from the decoder's
columns (:mod:`ingest._copy_rows`):

* **direct** (the usual batch): when the batch is certainly free of internal duplicates and every series'
  first time is after the newest this instance committed (:class:`~ingest._copy_rows.RecentTimes`), the
  buffer is copied straight into ``readings`` inside a savepoint. That check is only a hint — another
  instance may hold the same messages after a redelivery — so the primary key stays the guard: a COPY that
  meets a stored row fails as a whole, the savepoint rolls it back, and the batch takes the staging path.
* **staging**: COPY into a per-connection temporary table, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``.

In the same transaction the store appends the change log (``reading_changes``) that aggregation jobs use as
their dirty-range source, writes quarantine records, device metadata from birth messages, and per-device
session status. Acknowledgements still follow the commit (ingest.service); ``synchronous_commit`` stays on,
since acknowledging a commit whose WAL is not yet flushed could lose acknowledged readings in a crash.

Errors are split in two: a lost or refused connection is :class:`StorageUnavailableError` (retry the same
batch later), anything else the database refuses (bad data that validation let through, a constraint) is
:class:`BatchRejectedError`, and the service then isolates the offending message instead of retrying
forever. Parks are never created here: only devices of parks that auto-register (``Batch.new_devices``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from ingest._admission import RegistryView
from ingest._batch import Batch, RowKey
from ingest._copy_rows import COPY_COLUMNS, PreparedRows, RecentTimes, prepare_rows
from ingest._quarantine_gate import clean_text
from ingest.errors import BatchRejectedError, StorageUnavailableError
from schemas import METRICS
from schemas.payload_fast import PG_EPOCH

#: What the database may refuse in a batch that is not about the connection: the data or a constraint.
#: (ValueError and friends come from adapting a Python value; KeyError from a series that vanished.)
#: Refusals that no message causes (schema not migrated, privileges): retried like an outage, not isolated.
_SYSTEMIC: Final = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction,
                    psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)
_REFUSALS: Final = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.InternalError,
                    psycopg.NotSupportedError, ValueError, OverflowError, KeyError, TypeError)

logger = logging.getLogger(__name__)

_STAGE_DDL: Final = """
CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    series_id integer, ts timestamptz, value double precision, quality smallint
) ON COMMIT DELETE ROWS"""
_BIRTH_FIELDS: Final = ("kind", "carrier", "metering_level", "site", "role", "profile", "firmware",
                        "register_max", "multiplier", "rated_power_kw")
#: A birth sets the device attributes except those the operator set (``operator_fields``, migration 0005).
_BIRTH_UPDATE: Final = """
UPDATE devices SET
    kind = CASE WHEN 'kind' = ANY(operator_fields) THEN kind ELSE %s END,
    carrier = CASE WHEN 'carrier' = ANY(operator_fields) THEN carrier ELSE %s END,
    metering_level = CASE WHEN 'metering_level' = ANY(operator_fields) THEN metering_level ELSE %s END,
    site_id = CASE WHEN 'site_id' = ANY(operator_fields) THEN site_id ELSE %s END,
    role = CASE WHEN 'role' = ANY(operator_fields) THEN role ELSE %s END,
    profile = CASE WHEN 'profile' = ANY(operator_fields) THEN profile ELSE %s END,
    firmware = %s,
    register_max = CASE WHEN 'register_max' = ANY(operator_fields) THEN register_max ELSE %s END,
    multiplier = CASE WHEN 'multiplier' = ANY(operator_fields) THEN multiplier ELSE %s END,
    rated_power_kw = CASE WHEN 'rated_power_kw' = ANY(operator_fields) THEN rated_power_kw ELSE %s END,
    metadata = %s, birth_at = now()
WHERE park_id = %s AND device_id = %s"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch did."""

    staged: int
    stored: int
    quarantined_messages: int
    quarantine_ids: tuple[int, ...] = ()  # ids of the batch's quarantine records, in record order
    direct: bool = False  # the readings went straight into ``readings`` (no staging table)

    @property
    def duplicates(self) -> int:
        """Readings skipped because an identical (series, ts) row was already stored."""
        return self.staged - self.stored


@dataclass(slots=True)
class ReadingStore:
    """Owns one async connection and the (park, device, metric) → series_id cache.

    Connection failures surface as :class:`StorageUnavailableError`; the caller retries the same batch
    with backoff, which is safe because every write is idempotent and nothing was acknowledged yet.
    """

    database_url: str
    _conn: psycopg.AsyncConnection[Any] | None = None
    _series: dict[RowKey, int] = field(default_factory=dict)
    _recent: RecentTimes = field(default_factory=RecentTimes)
    #: batches written by the direct path / by the staging path (after a failed direct COPY or by choice)
    direct_batches: int = 0
    staged_batches: int = 0
    direct_refused: int = 0

    async def connect(self) -> None:
        """Open the connection (if closed) and create the session's staging table."""
        if self._conn is not None and not self._conn.closed:
            return
        try:
            self._conn = await psycopg.AsyncConnection.connect(self.database_url, autocommit=False,
                                                                application_name="parkpulse-ingest")
            async with self._conn.transaction():
                await self._conn.execute(_STAGE_DDL)
        except psycopg.OperationalError as exc:
            self._conn = None
            raise StorageUnavailableError(f"cannot connect to the database: {exc}") from exc

    async def close(self) -> None:
        """Close the connection; safe to call twice."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def write(self, batch: Batch) -> WriteResult:
        """Commit everything in ``batch`` in one transaction and return what was stored.

        Raises :class:`StorageUnavailableError` when the connection failed (nothing committed; retry) and
        :class:`BatchRejectedError` when the database refused the batch's content (nothing committed;
        isolate the message that causes it).
        """
        if batch.is_empty:
            return WriteResult(staged=0, stored=0, quarantined_messages=0)
        await self.connect()
        assert self._conn is not None
        conn = self._conn
        try:
            await self._resolve_series(conn, batch)
            quarantine_ids: tuple[int, ...] = ()
            prepared = prepare_rows(batch.rows, self._series) if batch.rows else None
            direct = False
            async with conn.transaction():
                if batch.births:
                    await self._upsert_births(conn, batch)
                staged, stored, direct = await self._write_readings(conn, prepared)
                if batch.quarantine:
                    quarantine_ids = await self._write_quarantine(conn, batch)
                if batch.suppressed:
                    await self._write_suppressed(conn, batch)
                if batch.activity:
                    await self._write_activity(conn, batch)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            await self._drop_connection()
            raise StorageUnavailableError(f"batch not committed: {exc}") from exc
        except _SYSTEMIC as exc:
            await self._recover_after_refusal()
            raise StorageUnavailableError(f"the database cannot take any batch ({exc}); check that "
                                          "`parkpulse db migrate` ran and the ingest role's privileges") from exc
        except _REFUSALS as exc:
            await self._recover_after_refusal()
            raise BatchRejectedError(clean_text(f"{type(exc).__name__}: {exc}", 500)) from exc
        if prepared is not None:  # committed: later batches of these series are new if they are later
            self._recent.committed(prepared)
        return WriteResult(staged=staged, stored=stored, quarantined_messages=len(batch.quarantine),
                           quarantine_ids=quarantine_ids, direct=direct)

    async def _recover_after_refusal(self) -> None:
        """Make sure the connection is usable after a refused batch (drop it if it is not idle)."""
        conn = self._conn
        if conn is not None and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await self._drop_connection()

    async def load_registry(self) -> RegistryView:
        """The registry snapshot ingest enforces: parks with their auto-register flag, and devices."""
        await self.connect()
        assert self._conn is not None
        conn = self._conn
        try:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.execute("SELECT park_id, auto_register FROM parks")
                parks = {p: bool(auto) for p, auto in await cur.fetchall()}
                await cur.execute("SELECT park_id, device_id FROM devices")
                devices = {(p, d) for p, d in await cur.fetchall()}
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            await self._drop_connection()
            raise StorageUnavailableError(f"registry not read: {exc}") from exc
        return RegistryView(parks=parks, devices=devices)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except psycopg.Error:
                logger.debug("ignoring error while closing a broken connection", exc_info=True)

    async def _resolve_series(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
        """Give every new (park, device, metric) a series id, creating the batch's new devices first.

        Runs in its own short transaction before the batch so the cache only ever holds committed ids.
        Only devices in ``batch.new_devices`` (admitted because their park auto-registers) are created;
        parks are never created here.
        """
        missing = [k for k in batch.rows if k not in self._series]
        if not missing and not batch.new_devices:
            return
        async with conn.transaction(), conn.cursor() as cur:
            if batch.new_devices:
                await cur.executemany(
                    """INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, %s, 'auto')
                       ON CONFLICT (park_id, device_id) DO NOTHING""", sorted(batch.new_devices))
            if missing:
                await cur.executemany(
                    """INSERT INTO series (device_key, metric, unit)
                       SELECT device_key, %s, %s FROM devices WHERE park_id = %s AND device_id = %s
                       ON CONFLICT (device_key, metric) DO NOTHING""",
                    [(k.metric, METRICS[k.metric].unit, k.park_id, k.device_id) for k in missing])
                await cur.execute(
                    """SELECT d.park_id, d.device_id, s.metric, s.series_id
                       FROM series s JOIN devices d USING (device_key)
                       WHERE (d.park_id, d.device_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))""",
                    ([k.park_id for k in missing], [k.device_id for k in missing]))
                found = {RowKey(p, d, m): sid for p, d, m, sid in await cur.fetchall()}
                self._series.update(found)

    async def _write_readings(self, conn: psycopg.AsyncConnection[Any], prepared: PreparedRows | None
                              ) -> tuple[int, int, bool]:
        """Write the batch's readings (direct when provably new, else staged); (staged, stored, direct)."""
        if prepared is None or not prepared.n_rows:
            return 0, 0, False
        if self._recent.all_new(prepared):
            try:
                async with conn.transaction(), conn.cursor() as cur:  # a savepoint: a refusal keeps the batch
                    async with cur.copy(f"COPY readings {COPY_COLUMNS} FROM STDIN (FORMAT BINARY)") as cp:
                        await cp.write(prepared.copy_data)
                    await self._append_changes(cur, prepared)
            except psycopg.errors.UniqueViolation:
                self.direct_refused += 1  # another instance (or an earlier run) stored some of it: stage
            else:
                self.direct_batches += 1
                return prepared.n_rows, prepared.n_rows, True
        self.staged_batches += 1
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY readings_stage {COPY_COLUMNS} FROM STDIN (FORMAT BINARY)") as cp:
                await cp.write(prepared.copy_data)
            await cur.execute(
                "INSERT INTO readings (series_id, ts, value, quality) "
                "SELECT series_id, ts, value, quality FROM readings_stage ON CONFLICT DO NOTHING")
            stored = max(cur.rowcount, 0)
            if stored:
                await cur.execute(
                    """INSERT INTO reading_changes (series_id, ts_min, ts_max, n_rows, committed_at)
                       SELECT series_id, min(ts), max(ts), count(*), clock_timestamp()
                       FROM readings_stage GROUP BY series_id""")
        return prepared.n_rows, stored, False

    @staticmethod
    async def _append_changes(cur: psycopg.AsyncCursor[Any], prepared: PreparedRows) -> None:
        """One change-log row per series of a directly copied batch (its time range and row count)."""
        await cur.execute(
            """INSERT INTO reading_changes (series_id, ts_min, ts_max, n_rows, committed_at)
               SELECT s, %(epoch)s + lo * interval '1 microsecond', %(epoch)s + hi * interval '1 microsecond', n,
                      clock_timestamp()
               FROM unnest(%(s)s::int4[], %(lo)s::int8[], %(hi)s::int8[], %(n)s::int4[]) AS c (s, lo, hi, n)""",
            {"epoch": PG_EPOCH, "s": prepared.series_ids.tolist(), "lo": prepared.ts_min.tolist(),
             "hi": prepared.ts_max.tolist(), "n": prepared.counts.tolist()})

    async def _write_quarantine(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> tuple[int, ...]:
        """Insert the batch's quarantine records; their ids in record order (for the device feedback)."""
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO quarantine (received_at, source, topic, park_id, device_id, reason, detail,
                                          n_rejected, n_accepted, raw, raw_length, raw_sha256, raw_truncated)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, sha256(%s)), %s)
                   RETURNING quarantine_id""",
                [(q.received_at, q.source, q.topic, q.park_id, q.device_id, q.reason, q.detail, q.n_rejected,
                  q.n_accepted, q.raw, q.raw_length if q.raw_length is not None else len(q.raw), q.raw_sha256,
                  q.raw, q.raw_length is not None and q.raw_length > len(q.raw)) for q in batch.quarantine],
                returning=True)
            ids: list[int] = []
            while True:  # one result set per inserted row
                row = await cur.fetchone()
                if row is not None:
                    ids.append(int(row[0]))
                if not cur.nextset():
                    return tuple(ids)

    async def _write_suppressed(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO quarantine_suppressed AS q (park_id, device_id, reason, window_start, n_messages,
                                                           n_bytes)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (park_id, device_id, reason, window_start) DO UPDATE SET
                       n_messages = q.n_messages + EXCLUDED.n_messages, n_bytes = q.n_bytes + EXCLUDED.n_bytes""",
                [(park, device, reason, minute, n, size)
                 for (park, device, reason, minute), (n, size) in sorted(batch.suppressed.items())])

    async def _upsert_births(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
        params = []
        for (park, device), birth in batch.births.items():
            extra = {k: v for k, v in birth.items() if k not in _BIRTH_FIELDS and k not in ("v", "device", "sent_at")}
            params.append((birth.get("kind"), birth.get("carrier"), birth.get("metering_level"), birth.get("site"),
                           birth.get("role"), birth.get("profile"), birth.get("firmware"), birth.get("register_max"),
                           birth.get("multiplier", 1.0), birth.get("rated_power_kw"), Jsonb(extra), park, device))
        # The operator's registry wins: a birth never overwrites an attribute listed in operator_fields
        # (migration 0005); it sets only the others (the precedence rule is in infra/db/_registry.py).
        async with conn.cursor() as cur:
            await cur.executemany(_BIRTH_UPDATE, params)

    async def _write_activity(self, conn: psycopg.AsyncConnection[Any], batch: Batch) -> None:
        params: list[tuple[Any, ...]] = []
        for (park, device), act in batch.activity.items():
            params.append((act.last_seen_at, act.last_reading_ts, act.last_seq, act.clock_offset_s, act.online,
                           act.backlog, act.status_at, park, device))
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO device_status AS s (device_key, last_seen_at, last_reading_ts, last_seq,
                                                  clock_offset_s, online, backlog, status_at)
                   SELECT device_key, %s, %s, %s, %s, coalesce(%s, true), %s, %s FROM devices
                   WHERE park_id = %s AND device_id = %s
                   ON CONFLICT (device_key) DO UPDATE SET
                       last_seen_at = GREATEST(s.last_seen_at, EXCLUDED.last_seen_at),
                       last_reading_ts = GREATEST(s.last_reading_ts, EXCLUDED.last_reading_ts),
                       last_seq = GREATEST(s.last_seq, EXCLUDED.last_seq),
                       clock_offset_s = coalesce(EXCLUDED.clock_offset_s, s.clock_offset_s),
                       online = CASE WHEN EXCLUDED.status_at IS NOT NULL THEN EXCLUDED.online ELSE true END,
                       backlog = coalesce(EXCLUDED.backlog, s.backlog),
                       status_at = coalesce(EXCLUDED.status_at, s.status_at)""", params)


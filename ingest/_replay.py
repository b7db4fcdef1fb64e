"""Replaying quarantined messages through validation and the idempotent store (``parkpulse quarantine replay``).

A record is replayed exactly as ingest would have handled it when it arrived: its topic is parsed and its
raw bytes decoded by a fresh :class:`~ingest._batch.Batch` with the record's own ``received_at`` as "now"
(so timestamp-age checks judge it as they did then), and what passes is written by
:class:`~ingest._store.ReadingStore`, whose ``ON CONFLICT DO NOTHING`` makes a second replay store nothing
new. CSV-import records (``source = 'import'``) hold the original CSV lines, not a message: they go through
the same path as ``parkpulse import readings`` (grouped per device, import validation policy).

The outcome is written on the original row (``replayed_at``, ``replay_outcome``, ``replay_detail``):
``stored``, ``rejected`` (the new reason; no new quarantine row is inserted, the batch's quarantine list
is dropped before the write) or ``not_replayable`` (raw bytes truncated at capture, or not usable CSV).
Database failures are reported per record as ``error`` and leave the row unchanged.

Registry: replay enforces the registry exactly as ingest does. A snapshot is loaded once per replay
(``registry_loader``, default :meth:`ReadingStore.load_registry`) and every Batch is built by
``batch_factory(policy, registry)``, so an ``unregistered`` record stores once its park or device has been
registered, and stays rejected before. Import records are admitted as ``parkpulse import readings`` admits
them: any device of a registered park (:func:`import_registry`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self

import psycopg
from psycopg import sql

from ingest._admission import OpenRegistry, RegistryView
from ingest._batch import Batch
from ingest._import import IMPORT_POLICY, CsvFormatError, read_chunks
from ingest._quarantine import (
    QuarantineEntry,
    QuarantineFilter,
    QuarantineNotFoundError,
    QuarantineQueries,
    ReplayOutcome,
    entry_from_row,
    select_entries,
)
from ingest._store import ReadingStore
from ingest.errors import BatchRejectedError, StorageUnavailableError
from schemas import RejectReason, TopicKind, ValidationPolicy, build_topic, is_valid_id

BatchFactory = Callable[[ValidationPolicy, RegistryView], Batch]
RegistryLoader = Callable[[], Awaitable[RegistryView]]
_READING_INDEX: Final = re.compile(r"readings\[(\d+)\]")
_DETAIL_MAX: Final = 2000
IMPORT_HINT: Final = "fix the source file and re-run `parkpulse import readings FILE --park PARK`"


def default_batch_factory(policy: ValidationPolicy, registry: RegistryView) -> Batch:
    """The ingest Batch, checking senders against ``registry``."""
    return Batch(policy=policy, registry=registry)


def import_registry(registry: RegistryView) -> RegistryView:
    """What CSV import admits: any device of a registered park (the operator's own file), as ``import`` does."""
    return RegistryView(parks=dict.fromkeys(registry.parks, True), devices=registry.devices)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What replaying one record did (``stored``/``duplicates`` are None on a dry run)."""

    quarantine_id: int
    park_id: str | None
    device_id: str | None
    outcome: ReplayOutcome
    readings: int
    stored: int | None
    duplicates: int | None
    reason: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"quarantine_id": self.quarantine_id, "park_id": self.park_id, "device_id": self.device_id,
                "outcome": self.outcome.value, "readings": self.readings, "stored": self.stored,
                "duplicates": self.duplicates, "reason": self.reason, "detail": self.detail}


@dataclass(slots=True)
class ReplayReport:
    """Every record's result, in replay order (oldest first)."""

    dry_run: bool
    results: list[ReplayResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Records per outcome (every outcome present, zeros included)."""
        counts = {o.value: 0 for o in ReplayOutcome}
        for r in self.results:
            counts[r.outcome.value] += 1
        return counts

    @property
    def stored(self) -> int:
        """Readings newly stored by this replay."""
        return sum(r.stored or 0 for r in self.results)

    @property
    def duplicates(self) -> int:
        """Readings that were already stored (a previous replay, or the accepted part of the message)."""
        return sum(r.duplicates or 0 for r in self.results)

    @property
    def errors(self) -> int:
        """Records the database refused (the only failures; rejections are normal outcomes)."""
        return sum(1 for r in self.results if r.outcome is ReplayOutcome.ERROR)


@dataclass(slots=True)
class Prepared:
    """A record decoded again: the batches to write, what validation rejected, or why it cannot run."""

    batches: list[Batch] = field(default_factory=list)
    readings: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)
    not_replayable: str | None = None


def _truncated_message(entry: QuarantineEntry) -> str:
    kept = len(entry.raw) if entry.raw is not None else 0
    head = (f"raw bytes were truncated at capture ({kept:,} of {entry.raw_length:,} bytes kept); "
            "this message cannot be replayed")
    if entry.source == "import":
        return f"{head}; {IMPORT_HINT}"
    return (f"{head}; have device {entry.device_id or '?'} resend the data of that period (from its outbox or "
            "local memory) in messages under the size limit, or import it from a meter export with "
            f"`parkpulse import readings`; SHA-256 {entry.raw_sha256.hex()[:16]}… identifies the original")


def prepare(entry: QuarantineEntry, *, policy: ValidationPolicy, registry: RegistryView,
            import_policy: ValidationPolicy = IMPORT_POLICY,
            batch_factory: BatchFactory = default_batch_factory) -> Prepared:
    """Decode ``entry`` again, as of its ``received_at`` (pure: no I/O). ``entry.raw`` must be loaded."""
    if entry.raw_truncated:
        return Prepared(not_replayable=_truncated_message(entry))
    if entry.raw is None:
        raise ValueError(f"quarantine record {entry.quarantine_id} was loaded without its raw bytes")
    if entry.source == "import":
        return _prepare_import(entry, entry.raw, import_policy, batch_factory(import_policy, import_registry(registry)))
    if entry.source != "mqtt":
        return Prepared(not_replayable=f"unknown source {entry.source!r}: only mqtt and import records replay")
    batch = batch_factory(policy, registry)
    batch.add(entry.topic or "", entry.raw, received_at=entry.received_at, ack=None)
    rejections = [(q.reason, q.detail) for q in batch.quarantine]
    batch.quarantine.clear()  # the original row is the record: never insert another one
    return Prepared([batch], batch.n_readings_valid, rejections)


def _excerpt_lines(detail: str, line_numbers: list[int]) -> str:
    """``readings[i]`` in a rejection as the line of the kept CSV excerpt it came from (header = line 1)."""

    def line_of(match: re.Match[str]) -> str:
        index = int(match[1])
        return f"excerpt line {line_numbers[index]}" if index < len(line_numbers) else match[0]

    return _READING_INDEX.sub(line_of, detail)


def _prepare_import(entry: QuarantineEntry, raw: bytes, policy: ValidationPolicy, batch: Batch) -> Prepared:
    """CSV lines (header first) grouped per device into messages, as ``parkpulse import readings`` does."""
    text = raw.decode("utf-8-sig", errors="replace")
    try:
        chunks = list(read_chunks(text, park_id=entry.park_id, chunk=policy.max_readings))
    except CsvFormatError as exc:
        return Prepared(not_replayable=f"the kept CSV lines cannot be read ({exc}); {IMPORT_HINT}")
    rejections: list[tuple[str, str]] = []
    for piece in chunks:
        if not (is_valid_id(piece.park_id) and is_valid_id(piece.device_id)):
            rejections.append(("invalid_topic", f"park or device id {piece.park_id!r}/{piece.device_id!r} is not "
                                                "[a-z0-9][a-z0-9_-]{0,63}"))
            continue
        # The same message the import builds for a chunk (ingest/_import.py), sequence number 0.
        payload = json.dumps({"v": 1, "device": piece.device_id, "seq": 0, "readings": piece.readings}).encode()
        before = len(batch.quarantine)
        batch.add(build_topic(piece.park_id, piece.device_id, TopicKind.READINGS), payload,
                  received_at=entry.received_at, ack=None)
        rejections += [(q.reason, _excerpt_lines(q.detail, piece.line_numbers)) for q in batch.quarantine[before:]]
    batch.quarantine.clear()
    return Prepared([batch], batch.n_readings_valid, rejections)


def _readings(n: int) -> str:
    return f"{n} reading" if n == 1 else f"{n} readings"


def _has_writes(batch: Batch) -> bool:
    return bool(batch.rows or batch.births or batch.activity)


def conclude(entry: QuarantineEntry, prepared: Prepared, *, stored: int | None,
             duplicates: int | None) -> ReplayResult:
    """The outcome and an operator-readable detail (``stored is None`` means a dry run)."""

    def result(outcome: ReplayOutcome, reason: str | None, detail: str) -> ReplayResult:
        return ReplayResult(entry.quarantine_id, entry.park_id, entry.device_id, outcome, prepared.readings,
                            stored, duplicates, reason, detail[:_DETAIL_MAX])

    if prepared.not_replayable is not None:  # nothing was attempted: no counts
        return ReplayResult(entry.quarantine_id, entry.park_id, entry.device_id, ReplayOutcome.NOT_REPLAYABLE, 0,
                            None, None, None, prepared.not_replayable[:_DETAIL_MAX])
    if stored is None:
        written = f"would store {_readings(prepared.readings)} (dry run: nothing written, duplicates not checked)"
    elif prepared.readings or not prepared.batches or not any(_has_writes(b) for b in prepared.batches):
        written = f"{_readings(prepared.readings)}: {stored} stored, {duplicates} already present"
    else:
        written = "no readings; the device's metadata or status was applied"
    if not prepared.rejections:
        return result(ReplayOutcome.STORED, None, written)
    reason, detail = prepared.rejections[0]
    # Decoder summaries already name their reason code ("readings[3]: out_of_range: …"); registry
    # explanations do not.
    text = f"still rejected: {detail if f'{reason}:' in detail[:120] else f'{reason}: {detail}'}"
    if len(prepared.rejections) > 1:
        text += f" (+{len(prepared.rejections) - 1} more)"
    if prepared.readings:
        text += f"; valid part: {written}"
    if entry.source == "import":
        text += f"; {IMPORT_HINT}"
    return result(ReplayOutcome.REJECTED, reason, text)


class QuarantineReplayer:
    """Replays quarantine records on PostgreSQL and records each outcome on its row.

    ``policy`` is the live ingest validation policy (``IngestSettings.validation_policy()``) for MQTT
    records; import records use ``import_policy``. ``store`` may be shared (it is then not closed here).
    ``registry_loader`` (default: the store's registry snapshot) and ``batch_factory`` are the hooks for
    how senders are admitted.
    """

    def __init__(self, database_url: str, *, policy: ValidationPolicy | None = None,
                 import_policy: ValidationPolicy = IMPORT_POLICY, batch_factory: BatchFactory = default_batch_factory,
                 registry_loader: RegistryLoader | None = None, store: ReadingStore | None = None,
                 page_size: int = 200) -> None:
        """Nothing is opened until :meth:`replay` runs."""
        self.database_url = database_url
        self.policy = policy or ValidationPolicy()
        self.import_policy = import_policy
        self.batch_factory = batch_factory
        self.page_size = page_size
        self._own_store = store is None
        self._store = store or ReadingStore(database_url)
        self._registry_loader = registry_loader or self._store.load_registry
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections this replayer opened; safe to call twice."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
        if self._own_store:
            await self._store.close()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True, application_name="parkpulse-quarantine-replay")
            except psycopg.OperationalError as exc:
                raise StorageUnavailableError(f"cannot connect to the database: {exc}") from exc
        return self._conn

    async def replay(self, flt: QuarantineFilter, *, dry_run: bool = False, limit: int | None = None,
                     on_result: Callable[[ReplayResult], None] | None = None) -> ReplayReport:
        """Replay every record matching ``flt`` (at most ``limit``), oldest first.

        Raises :class:`QuarantineNotFoundError` before replaying anything when an id in ``flt.ids`` does not
        match, and :class:`StorageUnavailableError` when the database cannot be reached.
        """
        conn = await self._connection()
        if flt.ids:
            await self._check_ids(conn, flt)
        registry = await self._registry_loader()
        report = ReplayReport(dry_run=dry_run)
        cursor: tuple[datetime, int] | None = None
        while limit is None or len(report.results) < limit:
            page = self.page_size if limit is None else min(self.page_size, limit - len(report.results))
            extra = sql.SQL("(received_at, quarantine_id) > (%s, %s)") if cursor is not None else None
            query, params = select_entries(flt, with_raw=True, order="ASC", extra=extra)
            try:
                rows = await (await conn.execute(query + sql.SQL(" LIMIT %s"),
                                                 [*params, *(cursor or ()), page])).fetchall()
            except psycopg.OperationalError as exc:
                raise StorageUnavailableError(f"cannot read the quarantine: {exc}") from exc
            for row in rows:
                entry = entry_from_row(row, with_raw=True)
                result = await self._replay_one(conn, entry, registry, dry_run=dry_run)
                report.results.append(result)
                if on_result is not None:
                    on_result(result)
            if len(rows) < page:
                break
            last = rows[-1]
            cursor = (last[1], last[0])
        return report

    async def _check_ids(self, conn: psycopg.AsyncConnection[Any], flt: QuarantineFilter) -> None:
        where, params = flt.where()
        rows = await (await conn.execute(sql.SQL("SELECT quarantine_id FROM quarantine WHERE {}").format(where),
                                         params)).fetchall()
        missing = set(flt.ids) - {r[0] for r in rows}
        if missing:
            raise QuarantineNotFoundError(missing, flt.park_id)

    async def _replay_one(self, conn: psycopg.AsyncConnection[Any], entry: QuarantineEntry,
                          registry: RegistryView, *, dry_run: bool) -> ReplayResult:
        prepared = prepare(entry, policy=self.policy, registry=registry, import_policy=self.import_policy,
                           batch_factory=self.batch_factory)
        if dry_run:
            return conclude(entry, prepared, stored=None, duplicates=None)
        stored = duplicates = 0
        try:
            for batch in prepared.batches:
                if not _has_writes(batch):
                    continue
                written = await self._store.write(batch)
                stored += written.stored
                duplicates += written.duplicates
                # A store that isolates poison messages files them in batch.quarantine during the write.
                prepared.rejections += [(q.reason, q.detail) for q in batch.quarantine]
        except BatchRejectedError as exc:  # the database refuses this message's content: still poison
            prepared.rejections.insert(0, (RejectReason.STORE_ERROR.value, f"the database refused it: {exc}"))
            stored = duplicates = 0
        except psycopg.Error as exc:  # not a lost connection (the store raises StorageUnavailableError then)
            return ReplayResult(entry.quarantine_id, entry.park_id, entry.device_id, ReplayOutcome.ERROR,
                                prepared.readings, None, None, None,
                                f"database error, record unchanged (fix the cause and replay again): {exc}"[:2000])
        result = conclude(entry, prepared, stored=stored, duplicates=duplicates)
        try:
            await conn.execute(
                """UPDATE quarantine SET replayed_at = now(), replay_outcome = %s, replay_detail = %s
                   WHERE quarantine_id = %s""", (result.outcome.value, result.detail, entry.quarantine_id))
        except psycopg.OperationalError as exc:
            raise StorageUnavailableError(f"replayed record {entry.quarantine_id} but could not record the "
                                          f"outcome (replaying again is safe): {exc}") from exc
        return result


class PgQuarantine(QuarantineQueries):
    """Reads and replay on PostgreSQL: the backend the API serves (``api.build_app(quarantine=...)``)."""

    def __init__(self, conninfo: str, *, policy: ValidationPolicy | None = None,
                 batch_factory: BatchFactory = default_batch_factory,
                 registry_loader: RegistryLoader | None = None) -> None:
        """``policy`` is the ingest validation policy used for MQTT records; the hooks as for the replayer."""
        super().__init__(conninfo)
        self.policy = policy or ValidationPolicy()
        self.batch_factory = batch_factory
        self.registry_loader = registry_loader

    async def replay(self, flt: QuarantineFilter, *, dry_run: bool = False,
                     limit: int | None = None) -> ReplayReport:
        """Replay the matching records (see :meth:`QuarantineReplayer.replay`)."""
        async with QuarantineReplayer(self.conninfo, policy=self.policy, batch_factory=self.batch_factory,
                                      registry_loader=self.registry_loader) as r:
            return await r.replay(flt, dry_run=dry_run, limit=limit)


@dataclass
class MemoryQuarantine:
    """Quarantine records in memory with the same filters and replay semantics (tests, API contract runs).

    "Storing" a reading adds its (park, device, metric, ts) to a set, so replay is idempotent here too.
    """

    entries: dict[int, QuarantineEntry] = field(default_factory=dict)
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    registry: RegistryView = field(default_factory=OpenRegistry)
    batch_factory: BatchFactory = default_batch_factory
    stored_keys: set[tuple[str, str, str, datetime]] = field(default_factory=set)

    def add(self, entry: QuarantineEntry) -> None:
        """Keep ``entry`` (its raw bytes must be loaded)."""
        self.entries[entry.quarantine_id] = entry

    def _matching(self, flt: QuarantineFilter) -> list[QuarantineEntry]:
        return sorted((e for e in self.entries.values() if flt.matches(e)),
                      key=lambda e: (e.received_at, e.quarantine_id))

    def list_records(self, flt: QuarantineFilter, *, limit: int = 50,
                     offset: int = 0) -> tuple[list[QuarantineEntry], int]:
        """One page, newest first, without raw bytes, and the total."""
        found = self._matching(flt)[::-1]
        return [replace(e, raw=None) for e in found[offset:offset + limit]], len(found)

    def get_record(self, quarantine_id: int) -> QuarantineEntry | None:
        """One record with its raw bytes."""
        return self.entries.get(quarantine_id)

    async def replay(self, flt: QuarantineFilter, *, dry_run: bool = False,
                     limit: int | None = None) -> ReplayReport:
        """Replay the matching records, oldest first, recording outcomes on the entries."""
        if flt.ids:
            missing = set(flt.ids) - {e.quarantine_id for e in self._matching(flt)}
            if missing:
                raise QuarantineNotFoundError(missing, flt.park_id)
        report = ReplayReport(dry_run=dry_run)
        for entry in self._matching(flt)[:limit]:
            prepared = prepare(entry, policy=self.policy, registry=self.registry, batch_factory=self.batch_factory)
            if dry_run:
                report.results.append(conclude(entry, prepared, stored=None, duplicates=None))
                continue
            stored = duplicates = 0
            for batch in prepared.batches:
                for key, ts, _value, _quality in batch.readings():
                    identity = (key.park_id, key.device_id, key.metric, ts)
                    if identity in self.stored_keys:
                        duplicates += 1
                    else:
                        self.stored_keys.add(identity)
                        stored += 1
            result = conclude(entry, prepared, stored=stored, duplicates=duplicates)
            self.entries[entry.quarantine_id] = replace(entry, replayed_at=datetime.now(UTC),
                                                        replay_outcome=result.outcome.value,
                                                        replay_detail=result.detail)
            report.results.append(result)
        return report

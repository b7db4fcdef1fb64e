"""Reading the quarantine: filters, records, per-park/device/reason summaries (``parkpulse quarantine``, API).

Ingest and CSV import keep every rejected message in ``quarantine`` with its raw bytes (capped, with the
full length and SHA-256) and the reason; rejects over a device's rate limit are only counted, per minute,
in ``quarantine_suppressed``. This module is how operators see both without writing SQL: one
:class:`QuarantineFilter` drives the SQL ``WHERE`` (:meth:`QuarantineFilter.where`) and the in-memory
equivalent (:meth:`QuarantineFilter.matches`), so the CLI, the API and replay select the same records.
Queries use short synchronous connections, like the API key store: they are small and operator-driven.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import psycopg
from psycopg import sql

from ingest.errors import IngestError, StorageUnavailableError

#: Columns every listing shows (the raw bytes are loaded only for one record or for replay).
ENTRY_COLUMNS: Final = (
    "quarantine_id", "received_at", "source", "topic", "park_id", "device_id", "reason", "detail", "n_rejected",
    "n_accepted", "raw_length", "raw_sha256", "raw_truncated", "replayed_at", "replay_outcome", "replay_detail",
)
SOURCES: Final = ("mqtt", "import")
#: ``never`` selects records no replay has touched yet.
OUTCOME_FILTERS: Final = ("stored", "rejected", "not_replayable", "never")
LIST_HINT: Final = "list them with `parkpulse quarantine list`"


class ReplayOutcome(StrEnum):
    """What replaying one record did; the first three are stored in ``quarantine.replay_outcome``."""

    STORED = "stored"                   # every reading passed: stored now or already present
    REJECTED = "rejected"               # validation still rejects it (the new reason is in replay_detail)
    NOT_REPLAYABLE = "not_replayable"   # the raw bytes are incomplete or not a message (never retried)
    ERROR = "error"                     # the database refused the write; reported, never stored


class QuarantineNotFoundError(IngestError):
    """Quarantine ids that do not exist (or not in the park asked for)."""

    def __init__(self, ids: Collection[int], park_id: str | None = None) -> None:
        self.ids = sorted(ids)
        where = f" in park {park_id!r}" if park_id else ""
        names = ", ".join(str(i) for i in self.ids)
        noun = "record" if len(self.ids) == 1 else "records"
        super().__init__(f"no quarantine {noun} {names}{where}; {LIST_HINT}"
                         + (f" --park {park_id}" if park_id else ""))


@dataclass(frozen=True, slots=True)
class QuarantineFilter:
    """Which quarantine records to select; ``None`` (or empty ``ids``) means "any".

    ``since`` is inclusive and ``until`` exclusive, on ``received_at``. ``replayable`` selects records whose
    raw bytes are complete (True) or truncated at capture (False). ``outcome`` is the last replay outcome,
    or ``never`` for records not replayed yet.
    """

    ids: tuple[int, ...] = ()
    park_id: str | None = None
    device_id: str | None = None
    reason: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    replayable: bool | None = None
    outcome: str | None = None

    def is_unbounded(self) -> bool:
        """True when nothing narrows the selection (replay refuses that without an explicit --all)."""
        return self == QuarantineFilter()

    def where(self) -> tuple[sql.Composable, list[Any]]:
        """The SQL condition (``TRUE`` when unfiltered) and its parameters."""
        parts: list[sql.Composable] = []
        params: list[Any] = []
        if self.ids:
            parts.append(sql.SQL("quarantine_id = ANY(%s)"))
            params.append(list(self.ids))
        _equal_and_between(parts, params, (("park_id", self.park_id), ("device_id", self.device_id),
                                           ("reason", self.reason), ("source", self.source)),
                           "received_at", since=self.since, until=self.until)
        if self.replayable is not None:
            parts.append(sql.SQL("NOT raw_truncated" if self.replayable else "raw_truncated"))
        if self.outcome == "never":
            parts.append(sql.SQL("replay_outcome IS NULL"))
        elif self.outcome is not None:
            parts.append(sql.SQL("replay_outcome = %s"))
            params.append(self.outcome)
        return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")), params

    def matches(self, entry: QuarantineEntry) -> bool:
        """The in-memory twin of :meth:`where` (for :class:`~ingest._replay.MemoryQuarantine`)."""
        checks = (
            not self.ids or entry.quarantine_id in self.ids,
            self.park_id is None or entry.park_id == self.park_id,
            self.device_id is None or entry.device_id == self.device_id,
            self.reason is None or entry.reason == self.reason,
            self.source is None or entry.source == self.source,
            self.since is None or entry.received_at >= self.since,
            self.until is None or entry.received_at < self.until,
            self.replayable is None or entry.replayable == self.replayable,
            self.outcome is None or (entry.replay_outcome is None if self.outcome == "never"
                                     else entry.replay_outcome == self.outcome),
        )
        return all(checks)


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One ``quarantine`` row; ``raw`` is None unless the bytes were asked for."""

    quarantine_id: int
    received_at: datetime
    source: str
    topic: str | None
    park_id: str | None
    device_id: str | None
    reason: str
    detail: str
    n_rejected: int
    n_accepted: int
    raw_length: int
    raw_sha256: bytes
    raw_truncated: bool
    replayed_at: datetime | None = None
    replay_outcome: str | None = None
    replay_detail: str | None = None
    raw: bytes | None = None

    @property
    def replayable(self) -> bool:
        """Whether the whole message was kept, so it can go through validation again."""
        return not self.raw_truncated

    def to_json(self, *, include_raw: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: times in ISO 8601, the SHA-256 in hex, the raw bytes only when asked (hex)."""
        data = asdict(self)
        raw = data.pop("raw")
        data["raw_sha256"] = self.raw_sha256.hex()
        for key in ("received_at", "replayed_at"):
            value = data[key]
            data[key] = value.isoformat() if value is not None else None
        data["replayable"] = self.replayable
        if include_raw and raw is not None:
            data["raw_hex"] = bytes(raw).hex()
        return data


@dataclass(frozen=True, slots=True)
class SummaryGroup:
    """Quarantined messages of one (park, device, reason)."""

    park_id: str | None
    device_id: str | None
    reason: str
    n_messages: int
    n_rejected: int
    n_truncated: int
    n_replayed_stored: int
    first_at: datetime
    last_at: datetime


@dataclass(frozen=True, slots=True)
class SuppressedGroup:
    """Rejects over a device's rate limit that were only counted (``quarantine_suppressed``)."""

    park_id: str
    device_id: str
    reason: str
    n_messages: int
    n_bytes: int
    first_window: datetime
    last_window: datetime


@dataclass(frozen=True, slots=True)
class QuarantineSummary:
    """Counts by park, device and reason, kept and suppressed."""

    groups: list[SummaryGroup] = field(default_factory=list)
    suppressed: list[SuppressedGroup] = field(default_factory=list)


def entry_from_row(row: Sequence[Any], *, with_raw: bool = False) -> QuarantineEntry:
    """A :class:`QuarantineEntry` from a row of :data:`ENTRY_COLUMNS` (then ``raw`` if ``with_raw``)."""
    values = dict(zip(ENTRY_COLUMNS, row, strict=False))
    values["raw_sha256"] = bytes(values["raw_sha256"])  # bytea may arrive as memoryview
    raw = bytes(row[len(ENTRY_COLUMNS)]) if with_raw else None
    return QuarantineEntry(**values, raw=raw)


def select_entries(flt: QuarantineFilter, *, with_raw: bool = False, order: str = "DESC",
                   extra: sql.Composable | None = None) -> tuple[sql.Composed, list[Any]]:
    """``SELECT`` of the entries matching ``flt`` (plus an ``extra`` condition), ordered by receive time."""
    where, params = flt.where()
    columns = [*ENTRY_COLUMNS, "raw"] if with_raw else list(ENTRY_COLUMNS)
    direction = sql.SQL("DESC" if order == "DESC" else "ASC")
    condition = sql.SQL("({}) AND ({})").format(where, extra) if extra is not None else where
    query = sql.SQL("SELECT {} FROM quarantine WHERE {} ORDER BY received_at {}, quarantine_id {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), condition, direction, direction)
    return query, params


class QuarantineQueries:
    """Read access to ``quarantine`` and ``quarantine_suppressed``; one short connection per call."""

    def __init__(self, conninfo: str) -> None:
        """Remember the connection string (nothing is opened until a query runs)."""
        self.conninfo = conninfo

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.conninfo, autocommit=True, application_name="parkpulse-quarantine")
        except psycopg.OperationalError as exc:
            raise StorageUnavailableError(f"cannot connect to the database: {exc}") from exc

    def list_records(self, flt: QuarantineFilter, *, limit: int = 50,
                     offset: int = 0) -> tuple[list[QuarantineEntry], int]:
        """One page of matching records, newest first, and how many match in all."""
        query, params = select_entries(flt)
        where, count_params = flt.where()
        with self._connect() as conn:
            rows = conn.execute(query + sql.SQL(" LIMIT %s OFFSET %s"), [*params, limit, offset]).fetchall()
            total_row = conn.execute(sql.SQL("SELECT count(*) FROM quarantine WHERE {}").format(where),
                                     count_params).fetchone()
        return [entry_from_row(r) for r in rows], int(total_row[0]) if total_row else 0

    def get_record(self, quarantine_id: int) -> QuarantineEntry | None:
        """One record with its raw bytes, or None."""
        query, params = select_entries(QuarantineFilter(ids=(quarantine_id,)), with_raw=True)
        with self._connect() as conn:
            row = conn.execute(query, params).fetchone()
        return entry_from_row(row, with_raw=True) if row is not None else None

    def summary(self, flt: QuarantineFilter) -> QuarantineSummary:
        """Counts by (park, device, reason), most messages first, and the suppressed counts.

        The suppressed counts follow the park, device, reason and time filters (on the window start);
        they exist only for MQTT and have no bytes to replay, so filters on ids, ``source='import'``,
        replayability or replay outcome leave them out.
        """
        where, params = flt.where()
        groups_sql = sql.SQL(
            """SELECT park_id, device_id, reason, count(*), coalesce(sum(n_rejected), 0),
                      count(*) FILTER (WHERE raw_truncated), count(*) FILTER (WHERE replay_outcome = 'stored'),
                      min(received_at), max(received_at)
               FROM quarantine WHERE {} GROUP BY park_id, device_id, reason
               ORDER BY count(*) DESC, park_id NULLS LAST, device_id NULLS LAST, reason""").format(where)
        with self._connect() as conn:
            groups = [SummaryGroup(*r) for r in conn.execute(groups_sql, params).fetchall()]
            suppressed: list[SuppressedGroup] = []
            if flt.source in (None, "mqtt") and not flt.ids and flt.replayable is None and flt.outcome is None:
                s_where, s_params = _suppressed_where(flt)
                suppressed = [SuppressedGroup(*r) for r in conn.execute(sql.SQL(
                    """SELECT park_id, device_id, reason, sum(n_messages)::bigint, sum(n_bytes)::bigint,
                              min(window_start), max(window_start)
                       FROM quarantine_suppressed WHERE {} GROUP BY park_id, device_id, reason
                       ORDER BY sum(n_messages) DESC, park_id, device_id, reason""").format(s_where),
                    s_params).fetchall()]
        return QuarantineSummary(groups, suppressed)


def _equal_and_between(parts: list[sql.Composable], params: list[Any], equal: tuple[tuple[str, Any], ...],
                       time_column: str, *, since: datetime | None, until: datetime | None) -> None:
    """Append ``column = value`` for each given value and ``since <= time_column < until`` to a condition."""
    for column, value in equal:
        if value is not None:
            parts.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    for bound, op in ((since, ">="), (until, "<")):
        if bound is not None:
            parts.append(sql.SQL("{} " + op + " %s").format(sql.Identifier(time_column)))
            params.append(bound)


def _suppressed_where(flt: QuarantineFilter) -> tuple[sql.Composable, list[Any]]:
    parts: list[sql.Composable] = []
    params: list[Any] = []
    _equal_and_between(parts, params, (("park_id", flt.park_id), ("device_id", flt.device_id),
                                       ("reason", flt.reason)), "window_start", since=flt.since,
                       until=flt.until)
    return (sql.SQL(" AND ").join(parts) if parts else sql.SQL("TRUE")), params

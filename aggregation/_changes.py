"""The dirty-range source: the ingest change log (``reading_changes``) read past a watermark.

A plain "last change id" watermark loses data: ``change_id`` comes from a sequence, and a transaction that
took id 10 may commit after the one that took id 11. So the feed also remembers the ids it skipped
(``aggregation_pending_changes``) and looks for them again on every run until they appear or a timeout
passes (a rolled-back transaction leaves a permanent hole). The watermark and the pending set are
advanced only by :meth:`ChangeFeed.commit`, after the results are written: a crash in between makes the
next run recompute the same ranges, which is harmless because every result is upserted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg.types.json import Jsonb

from aggregation.errors import ConfigurationChangedError

logger = logging.getLogger(__name__)

_MAX_PENDING = 1_000  # beyond this many open gaps the watermark waits instead of growing the pending set
CHANGES_SCHEMA = pl.Schema({"change_id": pl.Int64(), "series_id": pl.Int32(), "ts_min": pl.Datetime("us", "UTC"),
                            "ts_max": pl.Datetime("us", "UTC")})


@dataclass(slots=True)
class ChangeBatch:
    """Changes to process now and how the feed state moves once they are done."""

    changes: pl.DataFrame
    last_change_id: int
    new_last_change_id: int
    found_pending: list[int] = field(default_factory=list)
    new_gaps: list[int] = field(default_factory=list)


class ChangeFeed:
    """Reads ``reading_changes`` for one job and keeps its watermark."""

    def __init__(self, conn: psycopg.Connection[Any], job: str, gap_timeout: timedelta) -> None:
        self._conn = conn
        self.job = job
        self._gap_timeout = gap_timeout

    def check_params(self, params: dict[str, Any], rebuild: bool) -> bool:
        """Fail when results were computed with other parameters (interval length), unless rebuilding.

        Returns True when this job has never run (it has no watermark yet).
        """
        with self._conn.cursor() as cur:
            cur.execute("INSERT INTO aggregation_watermarks (job, params) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        (self.job, Jsonb(params)))
            created = cur.rowcount == 1
            cur.execute("SELECT params FROM aggregation_watermarks WHERE job = %s", (self.job,))
            row = cur.fetchone()
        stored = dict(row[0]) if row and row[0] else {}
        if stored and stored != params and not rebuild:
            raise ConfigurationChangedError(
                f"results of job {self.job!r} were computed with {stored}, settings say {params}; "
                "run `parkpulse aggregate --rebuild` to recompute everything")
        return created

    def snapshot(self) -> ChangeBatch:
        """Where a rebuild leaves the feed: past the newest change, still waiting for recent open ids."""
        with self._conn.cursor() as cur:
            cur.execute("SELECT last_change_id FROM aggregation_watermarks WHERE job = %s", (self.job,))
            row = cur.fetchone()
            last = int(row[0]) if row else 0
            cur.execute("SELECT COALESCE(max(change_id), 0) FROM reading_changes WHERE committed_at < now() - %s",
                        (self._gap_timeout,))
            old = cur.fetchone()
            settled = int(old[0]) if old else 0
            cur.execute("SELECT change_id FROM reading_changes WHERE change_id > %s ORDER BY change_id", (settled,))
            recent = [int(r[0]) for r in cur.fetchall()]
        top = max([settled, *recent])
        present = set(recent)
        gaps = [i for i in range(settled + 1, top) if i not in present]
        if len(gaps) > _MAX_PENDING:
            top, gaps = gaps[_MAX_PENDING] - 1, gaps[:_MAX_PENDING]
        return ChangeBatch(pl.DataFrame(schema=CHANGES_SCHEMA), last, top, [], gaps)

    def read(self, limit: int, park_id: str | None = None) -> ChangeBatch:
        """Changes after the watermark (up to ``limit``) plus skipped ids that have appeared since.

        With ``park_id`` only that park's changes are returned, but the watermark and the gap tracking
        still cover every change id (other parks' ids are not gaps).
        """
        with self._conn.cursor() as cur:
            cur.execute("SELECT last_change_id FROM aggregation_watermarks WHERE job = %s", (self.job,))
            row = cur.fetchone()
            last = int(row[0]) if row else 0
            cur.execute("""DELETE FROM aggregation_pending_changes
                           WHERE job = %s AND first_seen_at < now() - %s RETURNING change_id""",
                        (self.job, self._gap_timeout))
            expired = [int(r[0]) for r in cur.fetchall()]
            if expired:
                logger.warning("change ids %s never appeared within %s; treated as rolled back",
                               expired[:10], self._gap_timeout)
            cur.execute("SELECT change_id FROM aggregation_pending_changes WHERE job = %s", (self.job,))
            pending = [int(r[0]) for r in cur.fetchall()]
            cur.execute("""WITH c AS (
                               (SELECT change_id, series_id, ts_min, ts_max, committed_at FROM reading_changes
                                WHERE change_id > %s ORDER BY change_id LIMIT %s)
                               UNION
                               SELECT change_id, series_id, ts_min, ts_max, committed_at FROM reading_changes
                               WHERE change_id = ANY(%s))
                           SELECT c.change_id, c.series_id, c.ts_min, c.ts_max,
                                  %s::text IS NULL OR d.park_id = %s::text AS mine,
                                  c.committed_at >= now() - %s AS recent
                           FROM c LEFT JOIN series s USING (series_id) LEFT JOIN devices d USING (device_key)
                           ORDER BY c.change_id""", (last, limit, pending, park_id, park_id, self._gap_timeout))
            rows = cur.fetchall()
        changes = pl.DataFrame([r[:4] for r in rows if r[4]], schema=CHANGES_SCHEMA, orient="row")
        fresh = [(int(r[0]), bool(r[5])) for r in rows if int(r[0]) > last]
        new_last = fresh[-1][0] if fresh else last
        # A missing id below a present one was taken before it. If the present one is older than the gap
        # timeout, so is the missing one: its transaction rolled back long ago, nothing to wait for.
        gaps: list[int] = []
        previous = last
        for change_id, recent in fresh:
            if recent:
                gaps.extend(range(previous + 1, change_id))
            previous = change_id
        found = [int(r[0]) for r in rows if int(r[0]) <= last]
        if len(gaps) > _MAX_PENDING:
            # too many open gaps to remember one by one: stop the watermark below the first one left out, so
            # the changes above it are read again next time (recomputing them is harmless)
            new_last = gaps[_MAX_PENDING] - 1
            gaps = gaps[:_MAX_PENDING]
        return ChangeBatch(changes, last, new_last, found, gaps)

    def commit(self, batch: ChangeBatch, params: dict[str, Any]) -> None:
        """Advance the watermark past ``batch`` and update the set of pending ids (one transaction)."""
        with self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute("""UPDATE aggregation_watermarks SET last_change_id = GREATEST(last_change_id, %s),
                               params = %s, updated_at = now() WHERE job = %s""",
                        (batch.new_last_change_id, Jsonb(params), self.job))
            if batch.found_pending:
                cur.execute("DELETE FROM aggregation_pending_changes WHERE job = %s AND change_id = ANY(%s)",
                            (self.job, batch.found_pending))
            if batch.new_gaps:
                cur.executemany("""INSERT INTO aggregation_pending_changes (job, change_id) VALUES (%s, %s)
                                   ON CONFLICT DO NOTHING""", [(self.job, i) for i in batch.new_gaps])

def merge_windows(changes: pl.DataFrame, merge_gap: timedelta) -> pl.DataFrame:
    """Per series, merge change ranges closer than ``merge_gap`` into windows ``(series_id, w0, w1)``."""
    if changes.height == 0:
        return pl.DataFrame(schema={"series_id": pl.Int32(), "w0": pl.Datetime("us", "UTC"),
                                    "w1": pl.Datetime("us", "UTC")})
    s = (changes.select("series_id", w0="ts_min", w1="ts_max").sort("series_id", "w0")
         .with_columns(reach=pl.col("w1").cum_max().over("series_id").shift(1).over("series_id")))
    s = s.with_columns(new=(pl.col("reach").is_null() | (pl.col("w0") > pl.col("reach") + merge_gap)))
    s = s.with_columns(win=pl.col("new").cast(pl.Int32()).cum_sum())
    return (s.group_by("series_id", "win").agg(pl.col("w0").min(), pl.col("w1").max())
            .sort("series_id", "w0").select("series_id", "w0", "w1"))

"""A batch's readings as one binary COPY buffer, built from columns (pure: no I/O).

The decoder hands over per-metric columns (:class:`schemas.payload_fast.MetricColumns`); here they become
one numpy structured array laid out exactly like PostgreSQL's binary COPY rows (field count, then a length
and a big-endian value per field), so the buffer is written with one ``Copy.write`` instead of a Python
call per row. The same pass gives the change-log rows (series, first and last time, count) and tells
whether the batch is *certainly free of internal duplicates* (each series' times strictly increasing in
batch order), which the store needs before it may COPY straight into ``readings``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from ingest._batch import RowKey
from schemas.payload_fast import MetricColumns

#: binary COPY: signature, flags (no OIDs), header extension length; the trailer is a field count of -1
COPY_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER: Final = b"\xff\xff"
COPY_COLUMNS: Final = "(series_id, ts, value, quality)"

#: one row of ``(series_id int4, ts timestamptz, value float8, quality int2)`` in binary COPY format
_ROW: Final = np.dtype([("fields", ">i2"), ("sid_len", ">i4"), ("sid", ">i4"), ("ts_len", ">i4"), ("ts", ">i8"),
                        ("value_len", ">i4"), ("value", ">f8"), ("quality_len", ">i4"), ("quality", ">i2")])


@dataclass(frozen=True, slots=True)
class PreparedRows:
    """A batch's readings ready to write, with what the store needs to choose how."""

    n_rows: int
    copy_data: bytes                         # header + rows + trailer
    series_ids: npt.NDArray[np.int32]        # one per series, in batch order
    ts_min: npt.NDArray[np.int64]            # µs since 2000-01-01 UTC, per series
    ts_max: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    increasing: bool                         # every series' times strictly increase: no duplicate inside


def prepare_rows(rows: Mapping[RowKey, Sequence[MetricColumns]], series: Mapping[RowKey, int]) -> PreparedRows:
    """Concatenate every series' chunks into one binary COPY buffer (``series`` maps keys to ids)."""
    keys = list(rows)
    counts = np.fromiter((sum(len(c.ts_us) for c in rows[k]) for k in keys), np.int64, len(keys))
    n = int(counts.sum())
    chunks = [c for k in keys for c in rows[k]]
    ts = np.concatenate([c.ts_us for c in chunks]) if chunks else np.empty(0, np.int64)
    out = np.empty(n, _ROW)
    out["fields"] = 4
    out["sid_len"], out["ts_len"], out["value_len"], out["quality_len"] = 4, 8, 8, 2
    sids = np.fromiter((series[k] for k in keys), np.int32, len(keys))
    out["sid"] = np.repeat(sids, counts)
    out["ts"] = ts
    if chunks:
        out["value"] = np.concatenate([c.value for c in chunks])
        out["quality"] = np.concatenate([c.quality for c in chunks])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])) if keys else np.empty(0, np.int64)
    nonempty = counts > 0
    starts, sids, counts = starts[nonempty], sids[nonempty], counts[nonempty]
    ts_min = np.minimum.reduceat(ts, starts) if n else np.empty(0, np.int64)
    ts_max = np.maximum.reduceat(ts, starts) if n else np.empty(0, np.int64)
    step = np.diff(ts)
    boundary = np.zeros(max(n - 1, 0), bool)
    boundary[starts[1:] - 1] = True  # a new series starts: its first time need not exceed the last one's
    increasing = bool(np.all((step > 0) | boundary))
    return PreparedRows(n, COPY_HEADER + out.tobytes() + COPY_TRAILER, sids, ts_min, ts_max, counts, increasing)


@dataclass(slots=True)
class RecentTimes:
    """The newest committed time per series written by this instance: a cheap "is this batch new?" check.

    Only a hint: another instance may have written the same series since (after a redelivery to it), so a
    direct COPY can still meet a stored row; the primary key refuses it and the store falls back to the
    staging path. The check only keeps that (costly) case rare.
    """

    limit: int = 1_000_000
    _last: dict[int, int] | None = None

    def all_new(self, prepared: PreparedRows) -> bool:
        """True when each series' first time in the batch is after its newest committed time."""
        last = self._last
        if not last:
            return prepared.increasing
        if not prepared.increasing:
            return False
        known = [last.get(int(s), -(2**63)) for s in prepared.series_ids]
        return bool(np.all(prepared.ts_min > np.array(known, np.int64)))

    def committed(self, prepared: PreparedRows) -> None:
        """Record a committed batch's newest times (call only after its transaction committed)."""
        if self._last is None or len(self._last) > self.limit:
            self._last = {}
        last = self._last
        for sid, newest in zip(prepared.series_ids.tolist(), prepared.ts_max.tolist(), strict=True):
            if newest > last.get(sid, -(2**63)):
                last[sid] = newest

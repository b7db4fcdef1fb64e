"""Backfill from CSV meter exports through the same validation, quarantine and idempotent write as MQTT.

CSV columns (header required, UTF-8, comma-separated)::

    device_id,ts,metric,value,unit[,quality][,park_id]

``ts`` is ISO 8601 with a UTC offset (``2026-10-01T00:15:00+08:00``); ``park_id`` may instead be given for
the whole file. Rows are grouped per device into readings messages of at most ``chunk`` readings, exactly
as a device would have published them, and handed to the ingest :class:`~ingest._batch.Batch`: the same
decoder checks them, the same store writes them (a re-import is skipped as duplicates), and rejected rows
land in ``quarantine`` with ``source = 'import'``, their reason, and the original CSV lines as raw bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from ingest._admission import RegistryView
from ingest._batch import Batch, QuarantineRecord
from ingest._quarantine_gate import capped_raw
from ingest._store import ReadingStore
from schemas import TopicKind, ValidationPolicy, build_topic, is_valid_id

_READING_INDEX: Final = re.compile(r"readings\[(\d+)\]")
REQUIRED_COLUMNS: Final = ("device_id", "ts", "metric", "value", "unit")
#: Historical exports may reach back years; the future limit stays as strict as for live data.
IMPORT_POLICY: Final = ValidationPolicy(max_age=timedelta(days=366 * 20), max_readings=10_000)


class CsvFormatError(ValueError):
    """The file itself is unusable (no header, missing columns, no park id)."""


@dataclass(slots=True)
class ImportReport:
    """What one import did."""

    rows: int = 0
    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected_rows: int = 0
    quarantined_messages: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Chunk:
    park_id: str
    device_id: str
    first_line: int
    line_numbers: list[int]
    lines: list[str]
    readings: list[dict[str, object]]


def _number(text: str) -> object:
    """A float when the cell is numeric, else the text itself (so validation names the problem)."""
    try:
        return float(text)
    except ValueError:
        return text


def read_chunks(text: str, *, park_id: str | None, chunk: int) -> Iterator[_Chunk]:
    """Group CSV rows into per-device chunks of at most ``chunk`` rows, in file order."""
    lines = text.splitlines()
    if not lines:
        raise CsvFormatError("the file is empty")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise CsvFormatError(f"missing columns {missing}; expected {', '.join(REQUIRED_COLUMNS)}[,quality][,park_id]")
    if park_id is None and "park_id" not in (reader.fieldnames or []):
        raise CsvFormatError("no park_id column: pass --park")
    open_chunks: dict[tuple[str, str], _Chunk] = {}
    for row in reader:
        line_no = reader.line_num
        key = ((row.get("park_id") or park_id or "").strip(), (row.get("device_id") or "").strip())
        current = open_chunks.get(key)
        if current is None or len(current.readings) >= chunk:
            if current is not None:
                yield current
            current = open_chunks[key] = _Chunk(key[0], key[1], line_no, [], [], [])
        reading: dict[str, object] = {"ts": row.get("ts"), "metric": row.get("metric"),
                                      "value": _number(row.get("value") or ""), "unit": row.get("unit")}
        if row.get("quality"):
            reading["quality"] = row["quality"]
        current.readings.append(reading)
        current.line_numbers.append(line_no)
        current.lines.append(lines[line_no - 1] if line_no - 1 < len(lines) else "")
    yield from open_chunks.values()


def _with_line_numbers(detail: str, line_numbers: list[int]) -> str:
    """Rewrite ``readings[i]`` in a rejection summary as the CSV line the reading came from."""

    def line_of(match: re.Match[str]) -> str:
        index = int(match[1])
        return f"CSV line {line_numbers[index]}" if index < len(line_numbers) else match[0]

    return _READING_INDEX.sub(line_of, detail)


def read_csv_text(path: Path) -> str:
    """The file as text (UTF-8, an optional BOM dropped; undecodable bytes become U+FFFD and fail validation)."""
    return path.read_bytes().decode("utf-8-sig", errors="replace")


async def import_readings_csv(text: str, store: ReadingStore, *, park_id: str | None = None,
                              chunk: int = 5000, now: datetime | None = None) -> ImportReport:
    """Import one CSV document; returns what was stored, skipped as duplicate, and quarantined."""
    report = ImportReport()
    header = text.splitlines()[0] if text else ""
    known = await store.load_registry()
    # The operator's own import may add devices to any registered park; unknown parks stay unregistered.
    registry = RegistryView(parks=dict.fromkeys(known.parks, True), devices=known.devices)
    batch = Batch(policy=IMPORT_POLICY, registry=registry)
    received_at = now or datetime.now(UTC)
    for seq, piece in enumerate(read_chunks(text, park_id=park_id, chunk=chunk)):
        report.rows += len(piece.readings)
        report.messages += 1
        raw_csv = "\n".join([header, *piece.lines]).encode()
        kept = capped_raw(raw_csv, batch.limits.raw_cap_bytes)
        if not (is_valid_id(piece.park_id) and is_valid_id(piece.device_id)):
            batch.quarantine.append(QuarantineRecord(
                topic="", park_id=piece.park_id[:64], device_id=piece.device_id[:64], reason="invalid_topic",
                detail=f"CSV lines {piece.line_numbers[0]}..{piece.line_numbers[-1]}: park or device id "
                       "is not [a-z0-9][a-z0-9_-]{0,63}", n_rejected=len(piece.readings), n_accepted=0,
                raw=kept.kept, received_at=received_at, source="import", raw_length=kept.length,
                raw_sha256=kept.sha256))
            continue
        payload = json.dumps({"v": 1, "device": piece.device_id, "seq": seq, "readings": piece.readings}).encode()
        before = len(batch.quarantine)
        batch.add(build_topic(piece.park_id, piece.device_id, TopicKind.READINGS), payload, received_at=received_at,
                  ack=None)
        for i in range(before, len(batch.quarantine)):  # keep the CSV lines, say which line readings[i] is
            q = batch.quarantine[i]
            batch.quarantine[i] = QuarantineRecord(
                topic=q.topic, park_id=q.park_id, device_id=q.device_id, reason=q.reason,
                detail=_with_line_numbers(q.detail, piece.line_numbers),
                n_rejected=q.n_rejected,
                n_accepted=q.n_accepted, raw=kept.kept, received_at=q.received_at, source="import",
                raw_length=kept.length, raw_sha256=kept.sha256)
        if batch.n_readings_in >= 50_000:
            await _flush(batch, store, report)
            batch = Batch(policy=IMPORT_POLICY, registry=registry)
    await _flush(batch, store, report)
    return report


async def _flush(batch: Batch, store: ReadingStore, report: ImportReport) -> None:
    if not batch.n_messages and not batch.quarantine:
        return
    result = await store.write(batch)
    report.stored += result.stored
    report.duplicates += result.duplicates
    report.quarantined_messages += len(batch.quarantine)
    for q in batch.quarantine:
        report.rejected_rows += q.n_rejected
        report.reasons[q.reason] = report.reasons.get(q.reason, 0) + q.n_rejected

"""Ingest: MQTT v5 shared subscription → validation → idempotent batched writes into TimescaleDB.

Public API: :class:`IngestService` (async context manager), :func:`run_ingest` (entry point),
:class:`IngestSettings`, :class:`ReadingStore` and :class:`Batch` (reused by ``parkpulse import``).
"""

from ingest._batch import AckHandle, Batch, QuarantineRecord
from ingest._import import CsvFormatError, ImportReport, import_readings_csv, read_csv_text
from ingest._metrics import IngestMetrics
from ingest._store import ReadingStore, WriteResult
from ingest.errors import BrokerUnavailableError, IngestError, StorageUnavailableError
from ingest.service import IngestService, run_ingest
from ingest.settings import IngestSettings

__all__ = [
    "AckHandle",
    "Batch",
    "BrokerUnavailableError",
    "CsvFormatError",
    "ImportReport",
    "IngestError",
    "IngestMetrics",
    "IngestService",
    "IngestSettings",
    "QuarantineRecord",
    "ReadingStore",
    "StorageUnavailableError",
    "WriteResult",
    "import_readings_csv",
    "read_csv_text",
    "run_ingest",
]

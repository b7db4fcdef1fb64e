"""Errors of the ingest service.

Hierarchy::

    IngestError
    ├── StorageUnavailableError   the database cannot be reached or failed mid-batch: retry with backoff
    └── BrokerUnavailableError    the MQTT broker cannot be reached: reconnect with backoff

Bad *input* is never an exception here: decoding returns rejections (``schemas.decode_readings``) and the
service stores them in the quarantine table.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every ingest error."""


class StorageUnavailableError(IngestError):
    """A batch could not be committed; nothing of it is stored and nothing of it was acknowledged."""


class BrokerUnavailableError(IngestError):
    """The broker connection failed; unacknowledged messages will be redelivered on reconnect."""

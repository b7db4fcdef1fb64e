"""Errors of the ingest service.

Hierarchy::

    IngestError
    ├── StorageUnavailableError   the database cannot be reached or failed mid-batch: retry with backoff
    ├── BatchRejectedError        the database refused a batch's content: isolate the message, never retry
    ├── DeadLetterError           not even the local dead-letter file could take a message: stop acking
    └── BrokerUnavailableError    the MQTT broker cannot be reached: reconnect with backoff

Bad *input* is never an exception here: decoding returns rejections (``schemas.decode_readings``) and the
service stores them in the quarantine table.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every ingest error."""


class StorageUnavailableError(IngestError):
    """A batch could not be committed; nothing of it is stored and nothing of it was acknowledged."""


class BatchRejectedError(IngestError):
    """The database refused what a batch holds (not the connection); nothing of it was committed.

    ``str(exc)`` is the database's reason, already sanitised for storage in the quarantine table.
    """


class DeadLetterError(IngestError):
    """A message could be neither stored, nor quarantined, nor written to the dead-letter file."""


class BrokerUnavailableError(IngestError):
    """The broker connection failed; unacknowledged messages will be redelivered on reconnect."""

"""Committing one batch, whatever it holds: retry outages, isolate refusals, never lose a message.

The :class:`Committer` sits between the service's flush loop and :class:`~ingest._store.ReadingStore`:

* **Outage** (:class:`StorageUnavailableError`): the same batch is retried with capped, jittered backoff;
  nothing is acknowledged meanwhile, so the broker keeps the messages.
* **Refusal** (:class:`BatchRejectedError`: the database refused content that validation let through):
  the batch is rebuilt from its held messages and split in halves until the refused message stands
  alone. That message is quarantined as ``store_error`` with the database's reason (sanitised); if even
  that insert is refused, it goes to the local dead-letter file. The rest of the batch is stored.
  One poison message costs about log2(batch size) extra transactions and never stops the instance.
* **Registry**: the snapshot is re-read every ``registry_refresh_s``, and at once (at most once a second)
  when a batch holds senders it calls unregistered, so a device registered a moment ago is not refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest._admission import RegistryView
from ingest._backoff import Backoff
from ingest._batch import Batch, HeldMessage, QuarantineLimits
from ingest._dead_letter import DeadLetter, write_dead_letters
from ingest._metrics import IngestMetrics
from ingest._quarantine_gate import RejectRateLimit
from ingest._store import ReadingStore
from ingest.errors import BatchRejectedError, DeadLetterError, StorageUnavailableError
from ingest.settings import IngestSettings
from schemas import RejectReason

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class CommitOutcome:
    """What committing one batch stored, over however many transactions it took."""

    stored: int = 0
    duplicates: int = 0


class Committer:
    """Writes batches for one ingest instance (see the module docstring)."""

    def __init__(self, settings: IngestSettings, metrics: IngestMetrics, store: ReadingStore) -> None:
        """Bind to the instance's settings, counters and store; the registry starts empty until loaded."""
        self.settings, self.metrics, self.store = settings, metrics, store
        self.registry = RegistryView()
        self.limits = QuarantineLimits(
            raw_cap_bytes=settings.quarantine_raw_cap_bytes,
            rate_limit=RejectRateLimit(per_minute=settings.quarantine_rate_per_minute,
                                       burst=settings.quarantine_burst))
        self._policy = settings.validation_policy()
        self._registry_read_at = -1e9
        self._name = f"ingest[{settings.client_id}]"
        #: called with each committed batch and its quarantine ids (ingest._feedback); must not wait or raise
        self.on_quarantined: Callable[[Batch, Sequence[int]], None] | None = None

    def new_batch(self) -> Batch:
        """An empty batch that decodes against the current registry snapshot."""
        return Batch(policy=self._policy, registry=self.registry, limits=self.limits)

    async def refresh_registry(self, *, max_age_s: float | None = None) -> bool:
        """Re-read the registry if the snapshot is older than ``max_age_s``; True when it was re-read."""
        age = time.monotonic() - self._registry_read_at
        if age < (self.settings.registry_refresh_s if max_age_s is None else max_age_s):
            return False
        self.registry.replace(await self.store.load_registry())  # in place: batches share the object
        self._registry_read_at = time.monotonic()
        self.metrics.registry_refreshes += 1
        return True

    async def commit(self, batch: Batch, *, stopping: asyncio.Event) -> bool:
        """Store ``batch`` (retrying outages); False only when stopping with the database still down."""
        s = self.settings
        backoff = Backoff(s.backoff_initial_s, s.backoff_max_s)
        while True:
            started = time.perf_counter()
            try:
                await self.refresh_registry()
                written = await self._recheck_unregistered(batch)
                outcome = await self._write_or_isolate(written)
            except StorageUnavailableError as exc:
                self.metrics.db_connected = False
                self.metrics.storage_errors += 1
                if stopping.is_set():
                    logger.warning("%s stopping with the database unavailable: %d messages left unacknowledged "
                                   "for redelivery (%s)", self._name, batch.n_messages, exc)
                    return False
                delay = backoff.next_delay()
                logger.warning("%s database write failed (%s); retrying in %.1f s, not acknowledging meanwhile",
                               self._name, exc, delay)
                await asyncio.sleep(delay)
                continue
            m = self.metrics
            m.db_connected = True
            m.batches_committed += 1
            m.batch_seconds_sum += time.perf_counter() - started
            m.readings_stored += outcome.stored
            m.readings_duplicate += outcome.duplicates
            if batch.oldest_received_at is not None:
                m.lag_seconds = (datetime.now(UTC) - batch.oldest_received_at).total_seconds()
            logger.debug("%s committed %d messages: %d stored, %d duplicates", self._name, batch.n_messages,
                         outcome.stored, outcome.duplicates)
            return True

    async def _recheck_unregistered(self, batch: Batch) -> Batch:
        """The batch to write: rebuilt if a sender it called unregistered has been registered since."""
        if not batch.unregistered:
            return batch
        refreshed = await self.refresh_registry(max_age_s=1.0)
        if not refreshed and batch.unregistered_version == self.registry.version:
            return batch
        return batch.rebuilt(registry=self.registry)  # admits the newly registered, explains the rest anew

    def _count(self, batch: Batch, quarantine_ids: Sequence[int]) -> None:
        m = self.metrics
        for q in batch.quarantine:
            m.messages_quarantined[q.reason] += 1
            m.readings_quarantined[q.reason] += q.n_rejected
        for (_park, _device, reason, _minute), (n, _size) in batch.suppressed.items():
            m.quarantine_suppressed[reason] += n
        if self.on_quarantined is not None and (batch.quarantine or batch.suppressed):
            self.on_quarantined(batch, quarantine_ids)

    async def _write_or_isolate(self, batch: Batch) -> CommitOutcome:
        try:
            result = await self.store.write(batch)
        except BatchRejectedError as exc:
            logger.warning("%s the database refused a batch of %d messages (%s); isolating the cause",
                           self._name, batch.n_messages, exc)
            self.metrics.batches_isolated += 1
            return await self._isolate(batch)
        self._count(batch, result.quarantine_ids)
        self.metrics.batches_direct += result.direct
        return CommitOutcome(result.stored, result.duplicates)

    async def _isolate(self, batch: Batch) -> CommitOutcome:
        """Split the refused batch until each refused message stands alone; store everything else."""
        outcome = CommitOutcome()
        stack: list[list[HeldMessage]] = [batch.messages]
        while stack:
            messages = stack.pop()
            part = batch.rebuilt(messages)
            try:
                result = await self.store.write(part)
            except BatchRejectedError as exc:
                if len(messages) == 1:
                    await self._quarantine_refused(messages[0], str(exc))
                    continue
                half = len(messages) // 2
                stack.extend((messages[half:], messages[:half]))  # first half is written first
                continue
            self._count(part, result.quarantine_ids)
            outcome.stored += result.stored
            outcome.duplicates += result.duplicates
        return outcome

    async def _quarantine_refused(self, message: HeldMessage, reason: str) -> None:
        """Quarantine one refused message as ``store_error``; dead-letter it if that is refused too."""
        record = Batch(policy=self._policy, registry=self.registry, limits=self.limits)
        record.quarantine_whole(message, reason=RejectReason.STORE_ERROR.value,
                                detail=f"the database refused this message: {reason}")
        try:
            result = await self.store.write(record)
        except BatchRejectedError as exc:
            letter = DeadLetter(message.received_at, message.topic, RejectReason.STORE_ERROR.value,
                                f"{reason}; quarantine: {exc}", message.payload)
            try:
                path = write_dead_letters(self.settings.dead_letter_dir, self.settings.client_id, [letter])
            except DeadLetterError as dl_exc:  # keep it unacknowledged: the broker holds it until we can
                raise StorageUnavailableError(f"a refused message could not be quarantined nor dead-lettered "
                                              f"({dl_exc}); fix {self.settings.dead_letter_dir}") from dl_exc
            self.metrics.messages_dead_lettered += 1
            logger.error("%s message on %r refused by the database, even as a quarantine record; written to %s",  # noqa: TRY400
                         self._name, message.topic[:200], path)
            return
        self._count(record, result.quarantine_ids)
        self.metrics.messages_store_refused += 1
        logger.warning("%s message on %r refused by the database; quarantined as store_error: %s", self._name,
                       message.topic[:200], reason)

"""The dispatcher: route queued notifications, escalate unacknowledged critical alarms, send what is due.

One *pass* (:meth:`Dispatcher.run_once`) does three things, each with the injected clock's ``now``:

1. **route**: every queued notification gets one delivery per channel of the lists its park's route names
   for its severity (``notify.yaml``); a park without a route gets none (logged);
2. **escalate**: a critical notification about an alarm (``alarm_id`` set) whose route has an escalation
   gets, once ``after_minutes`` have passed since it was created, deliveries to the escalation lists, unless
   the alarm was acknowledged or cleared meanwhile (read from the ``alarms`` table when it exists; without
   it an alarm counts as unacknowledged, since a missed escalation costs more than an extra message);
3. **send**: due deliveries are claimed with a lease; each is held to the end of its list's quiet hours
   (park time zone; critical may override), or sent. A failure is retried with capped, jittered
   exponential backoff until ``max_attempts``; a permanent refusal stops at once. Every attempt is recorded.

:class:`NotifyService` runs passes as an async service: a dispatch loop and a LISTEN loop (woken by
:func:`alarms._notify.enqueue_notification`'s NOTIFY) in one TaskGroup, stopped cleanly by
:meth:`NotifyService.request_stop` (SIGINT/SIGTERM in ``parkpulse alarms notify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self

import psycopg

from alarms import _notify_store as store
from alarms._channels import Channel, open_channels
from alarms._notify import NOTIFY_CHANNEL
from alarms._notify_config import NotifyConfig
from alarms._notify_errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from alarms._notify_format import Outgoing
from alarms._notify_policy import escalation_due, gives_up, plan_deliveries, quiet_until, retry_delay_s

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
AlarmLookup = Callable[[psycopg.AsyncConnection, Sequence[int]], Awaitable[dict[int, store.AlarmState] | None]]


def system_clock() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(slots=True)
class PassReport:
    """What one pass did (counts)."""

    routed: int = 0
    deliveries_created: int = 0
    escalated: int = 0
    escalation_skipped: int = 0   # acknowledged or cleared before the escalation was due
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    cancelled: int = 0

    @property
    def busy(self) -> bool:
        """Whether the pass did anything at all."""
        return any(getattr(self, f.name) for f in fields(self))

    def summary(self) -> str:
        """``routed 1, sent 2, …`` with only the non-zero counts (or ``nothing to do``)."""
        parts = [f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing to do"


@dataclass(frozen=True, slots=True)
class _Result:
    job: store.DueDelivery
    attempt: int
    started_at: datetime
    finished_at: datetime
    response: str | None = None
    error: DeliveryError | None = None


@dataclass(slots=True)
class Dispatcher:
    """Passes over the outbox with one config and its channels (see the module docstring)."""

    config: NotifyConfig
    channels: Mapping[str, Channel]
    parks: Sequence[str] | None = None        # only these parks (None: all)
    clock: Clock = system_clock
    rng: random.Random = field(default_factory=random.Random)
    batch_size: int = 50
    lease_s: float = 120.0
    max_concurrent: int = 8
    alarm_lookup: AlarmLookup = store.alarm_states   # acknowledged/cleared per alarm id (None: unknown)

    async def run_once(self, conn: psycopg.AsyncConnection) -> PassReport:
        """One pass: route, escalate, send due (``conn``: autocommit)."""
        report = PassReport()
        await self._route(conn, report)
        await self._escalate(conn, report)
        await self._send_due(conn, report)
        return report

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC)

    # -- routing -----------------------------------------------------------------------------------------
    async def _route(self, conn: psycopg.AsyncConnection, report: PassReport) -> None:
        now = self._now()
        async with conn.transaction():
            for row in await store.lock_unrouted(conn, self.parks, self.batch_size):
                n = row.notification
                route = self.config.route_for(n.park_id)
                lists = route.lists_for(n.severity) if route else []
                if not lists:
                    logger.info("notification %s (%s, %s) has no recipients: park %s has no route for %s",
                                row.notification_id, n.dedupe_key, n.severity, n.park_id, n.severity)
                report.deliveries_created += await store.insert_deliveries(
                    conn, row.notification_id, "primary", plan_deliveries(self.config, lists), now)
                escalates = n.severity == "critical" and n.alarm_id is not None and route is not None \
                    and route.escalation is not None
                await store.mark_routed(conn, row.notification_id, now, None if escalates else "not_applicable")
                report.routed += 1

    # -- escalation --------------------------------------------------------------------------------------
    async def _escalate(self, conn: psycopg.AsyncConnection, report: PassReport) -> None:
        delays = [r.escalation.after_minutes for r in self.config.routes.values() if r.escalation is not None]
        if not delays:
            return
        now = self._now()
        async with conn.transaction():
            candidates = await store.lock_escalation_candidates(
                conn, self.parks, now - timedelta(minutes=min(delays)), self.batch_size)
            if not candidates:
                return
            ids = [c.notification.alarm_id for c in candidates if c.notification.alarm_id is not None]
            states = await self.alarm_lookup(conn, ids)
            if states is None:
                logger.debug("no alarms table with acknowledged_at: escalating without an acknowledgement check")
            for row in candidates:
                n = row.notification
                route = self.config.route_for(n.park_id)
                if route is None or route.escalation is None:
                    await store.set_escalation(conn, row.notification_id, "not_applicable", now)
                    continue
                state = states.get(n.alarm_id) if states is not None and n.alarm_id is not None else None
                if state is not None and (state.acknowledged or state.cleared):
                    await store.set_escalation(conn, row.notification_id,
                                               "acknowledged" if state.acknowledged else "cleared", now)
                    report.escalation_skipped += 1
                    continue
                after = route.escalation.after_minutes
                if not escalation_due(n.created_at, after, now):
                    continue
                plan = plan_deliveries(self.config, route.escalation.to)
                report.deliveries_created += await store.insert_deliveries(
                    conn, row.notification_id, "escalation", plan, now)
                await store.set_escalation(conn, row.notification_id, "escalated", now, after)
                report.escalated += 1
                logger.warning("alarm %s of park %s not acknowledged within %d min: escalated to %s",
                               n.alarm_id, n.park_id, after, ", ".join(route.escalation.to))

    # -- sending -----------------------------------------------------------------------------------------
    async def _send_due(self, conn: psycopg.AsyncConnection, report: PassReport) -> None:
        now = self._now()
        jobs = await store.claim_due(conn, self.parks, now, now + timedelta(seconds=self.lease_s), self.batch_size)
        if not jobs:
            return
        jobs = await self._drop_needless_escalations(conn, jobs, now, report)
        to_send: list[store.DueDelivery] = []
        for job in jobs:
            rlist = self.config.lists.get(job.list_name)
            until = quiet_until(rlist.quiet_hours if rlist else None, job.message.notification.severity, now,
                                job.message.timezone)
            if until is not None:
                await store.hold(conn, job.delivery_id, until, now)
                report.held += 1
                logger.info("delivery %s (%s) held until %s: quiet hours of list %s", job.delivery_id,
                            job.channel, until.isoformat(), job.list_name)
            else:
                to_send.append(job)
        if not to_send:
            return
        limit = asyncio.Semaphore(self.max_concurrent)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(self._attempt(job, limit), name=f"alarms-notify.send[{job.delivery_id}]")
                     for job in to_send]
        for task in tasks:
            await self._record(conn, task.result(), report)

    async def _drop_needless_escalations(self, conn: psycopg.AsyncConnection, jobs: list[store.DueDelivery],
                                         now: datetime, report: PassReport) -> list[store.DueDelivery]:
        """Cancel escalation deliveries whose alarm was acknowledged or cleared after they were created."""
        ids = [j.message.notification.alarm_id for j in jobs
               if j.stage == "escalation" and j.message.notification.alarm_id is not None]
        states = await self.alarm_lookup(conn, ids) if ids else None
        if not states:
            return jobs
        keep: list[store.DueDelivery] = []
        for job in jobs:
            alarm_id = job.message.notification.alarm_id
            state = states.get(alarm_id) if job.stage == "escalation" and alarm_id is not None else None
            if state is not None and (state.acknowledged or state.cleared):
                await store.cancel(conn, job.delivery_id, "alarm acknowledged or cleared before escalation was sent",
                                   now)
                report.cancelled += 1
            else:
                keep.append(job)
        return keep

    def _outgoing(self, job: store.DueDelivery, attempt: int) -> Outgoing:
        m = job.message
        escalated = m.escalated_after_minutes if job.stage == "escalation" else None
        return Outgoing(m.notification, m.notification_id, job.delivery_id, attempt, m.timezone, escalated)

    async def _attempt(self, job: store.DueDelivery, limit: asyncio.Semaphore) -> _Result:
        attempt = job.attempts + 1
        async with limit:
            started = self._now()
            channel = self.channels.get(job.channel)
            if channel is None:
                error: DeliveryError = PermanentDeliveryError(
                    job.channel, "channel is no longer in the notify config; add it back or cancel the delivery")
                return _Result(job, attempt, started, self._now(), error=error)
            try:
                async with asyncio.timeout(self.lease_s / 2):
                    response = await channel.send(self._outgoing(job, attempt))
            except DeliveryError as exc:
                return _Result(job, attempt, started, self._now(), response=exc.response, error=exc)
            except TimeoutError:
                error = TemporaryDeliveryError(job.channel, f"no result within {self.lease_s / 2:g} s")
                return _Result(job, attempt, started, self._now(), error=error)
            return _Result(job, attempt, started, self._now(), response=response)

    async def _record(self, conn: psycopg.AsyncConnection, result: _Result, report: PassReport) -> None:
        job, exc = result.job, result.error
        started, finished = result.started_at, max(result.finished_at, result.started_at)
        if exc is None:
            await store.record_attempt(conn, job.delivery_id, result.attempt, started_at=started, finished_at=finished,
                                       outcome="sent", response=result.response, error=None, next_attempt_at=None)
            report.sent += 1
            logger.info("delivery %s sent via %s (attempt %d)", job.delivery_id, job.channel, result.attempt)
            return
        if exc.retryable and not gives_up(result.attempt, self.config.retry):
            delay = retry_delay_s(result.attempt, self.config.retry, self.rng)
            due = result.finished_at + timedelta(seconds=delay)
            await store.record_attempt(conn, job.delivery_id, result.attempt, started_at=started, finished_at=finished,
                                       outcome="retry", response=result.response, error=str(exc), next_attempt_at=due)
            report.retried += 1
            logger.warning("delivery %s via %s failed (attempt %d of %d): %s; retrying in %.0f s", job.delivery_id,
                           job.channel, result.attempt, self.config.retry.max_attempts, exc.detail, delay)
            return
        await store.record_attempt(conn, job.delivery_id, result.attempt, started_at=started, finished_at=finished,
                                   outcome="failed", response=result.response, error=str(exc), next_attempt_at=None)
        report.failed += 1
        why = "refused for good" if not exc.retryable else f"gave up after {result.attempt} attempts"
        logger.error("delivery %s of notification %s via %s %s: %s", job.delivery_id, job.message.notification_id,
                     job.channel, why, exc.detail)


class NotifyService:
    """``async with NotifyService(url, config) as svc: await svc.wait()``: passes until stopped.

    A pass runs every ``poll_interval_s``, and at once when a producer's NOTIFY arrives. Database outages
    are waited out with capped, jittered backoff; the service never gives up on its own.
    """

    def __init__(self, database_url: str, config: NotifyConfig, *, parks: Sequence[str] | None = None,
                 poll_interval_s: float = 5.0, clock: Clock = system_clock, batch_size: int = 50,
                 lease_s: float = 120.0, max_concurrent: int = 8) -> None:
        self.database_url = database_url
        self.config = config
        self.poll_interval_s = poll_interval_s
        self._dispatcher_args = {"parks": parks, "clock": clock, "batch_size": batch_size, "lease_s": lease_s,
                                 "max_concurrent": max_concurrent}
        self.dispatcher: Dispatcher | None = None
        self.passes = 0
        self._stack = contextlib.AsyncExitStack()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.listening = asyncio.Event()   # set while the LISTEN connection is up (producers' NOTIFY wakes a pass)
        self._runner: asyncio.Task[None] | None = None
        self._name = "alarms-notify"

    async def __aenter__(self) -> Self:
        channels = await self._stack.enter_async_context(open_channels(self.config))
        self.dispatcher = Dispatcher(self.config, channels, **self._dispatcher_args)  # type: ignore[arg-type]
        self._runner = asyncio.create_task(self._run(), name=self._name)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.request_stop()
        if self._runner is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._runner), timeout=30)
            except TimeoutError:
                logger.warning("%s did not stop in time; cancelling", self._name)
                self._runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._runner
        await self._stack.aclose()

    def request_stop(self) -> None:
        """Finish the current pass, then stop."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Run a pass now (as a producer's NOTIFY does)."""
        self._wake.set()

    async def wait(self) -> None:
        """Run until stopped."""
        if self._runner is not None:
            await asyncio.shield(self._runner)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            listener = tg.create_task(self._listen_loop(), name=f"{self._name}.listen_loop")
            tg.create_task(self._dispatch_loop(), name=f"{self._name}.dispatch_loop")
            await self._stopping.wait()
            listener.cancel()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    def _backoff(self, failures: int) -> float:
        return random.uniform(0.5, min(60.0, 2.0 ** min(failures, 6)))

    async def _dispatch_loop(self) -> None:
        assert self.dispatcher is not None
        failures = 0
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                    if failures:
                        logger.warning("%s database reachable again", self._name)
                    failures = 0
                    while not self._stopping.is_set():
                        report = await self.dispatcher.run_once(conn)
                        self.passes += 1
                        if report.busy:
                            logger.info("%s pass: %s", self._name, report.summary())
                        await self._pause(self.poll_interval_s)
            except psycopg.OperationalError as exc:
                failures += 1
                delay = self._backoff(failures)
                logger.warning("%s database unavailable (%s); retrying in %.1f s", self._name, exc, delay)
                await self._pause(delay)

    async def _listen_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    failures = 0
                    self.listening.set()
                    async for _ in conn.notifies():
                        self._wake.set()
            except psycopg.OperationalError as exc:
                self.listening.clear()
                failures += 1
                logger.debug("%s listen connection lost (%s); polling meanwhile", self._name, exc)
                await asyncio.sleep(self._backoff(failures))


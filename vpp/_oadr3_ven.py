"""The OpenADR 3 VEN: events in (polling, and webhook subscriptions where the VTN offers them), reports out.

``async with Ven3(settings, intake, values) as ven:`` starts the webhook listener (aiohttp, bearer token
checked; it only queues what it receives) and three named tasks in one TaskGroup:

* ``ven3-poll`` registers the VEN (a ``ven`` object named ``ven_name``, where the VTN allows it), reads the
  programs and their events and, when subscriptions are on, subscribes to each program's event
  CREATE/UPDATE/DELETE notifications (a VTN that refuses is polled instead). It polls every
  ``poll_interval_s`` without a subscription and every ``poll_with_webhook_s`` with one (a safety net for
  lost notifications). Failures back off, capped and fully jittered.
* ``ven3-notify`` hands the queued notifications to the same handling as the poll.
* ``ven3-reports`` posts 3.0 reports when the event's report descriptors ask for them (opted-in events).

Each event version goes to the intake once (a version already handed over is skipped: the intake is
idempotent anyway). A deletion (notification, or the event vanished from the poll before its end) becomes a
cancelled version. Parse failures are logged and kept in :attr:`Ven3.rejected`, never raised. Leaving the
block stops the tasks, deletes the subscriptions and closes the listener and the HTTP client.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self

import psycopg
from aiohttp import web

from flex import FlexError
from vpp._event_model import EventStatus, IncomingEvent, IntakeResult, OptDecision, ReportValues
from vpp._oadr3_client import Oadr3Client
from vpp._oadr3_parse import addresses, cancelled_copy, next_version, parse_event
from vpp._oadr3_reports import Sample, SampledValues, build_report, report_schedule, take_sample
from vpp._oadr3_settings import Ven3Settings
from vpp.errors import Oadr3Error, Oadr3EventError, Oadr3RequestError, VppError

logger = logging.getLogger(__name__)

_REPORT_TICK_MAX_S = 5.0
_FORGET_AFTER = timedelta(days=2)
_WEBHOOK_PATH = "/openadr3/notifications"


class EventSink(Protocol):
    """Where events go (C1's :class:`vpp._intake.EventIntake`)."""

    async def accept_async(self, event: IncomingEvent) -> IntakeResult:
        """Record and decide one event version."""
        ...


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped, fully jittered exponential backoff: ``uniform(0, min(max_s, initial_s * 2**attempt))``."""
    return rng.uniform(0.0, min(max_s, initial_s * 2.0 ** min(attempt, 30)))


@dataclass
class Tracked:
    """An event the VEN handed to the intake: the last version, the intake's answer, reports already sent and
    the live values sampled as each interval ended (by interval start)."""

    event: IncomingEvent
    result: IntakeResult
    first_seen: datetime
    reports_sent: set[int] = field(default_factory=set)
    samples: dict[datetime, Sample] = field(default_factory=dict)

    @property
    def reporting(self) -> bool:
        """Reports are due for opted-in, not cancelled events that asked for them."""
        return (self.event.status is not EventStatus.CANCELLED and self.result.opt is OptDecision.OPT_IN
                and self.event.report_request is not None)


class Ven3:
    """One park's OpenADR 3 VEN (see the module docstring)."""

    def __init__(self, settings: Ven3Settings, intake: EventSink, values: ReportValues | None = None, *,
                 client: Oadr3Client | None = None, clock: Callable[[], datetime] | None = None,
                 rng: random.Random | None = None) -> None:
        """``client`` and ``clock`` are for tests; by default the VEN talks to ``settings.vtn_url``."""
        self.settings = settings
        self.intake = intake
        self.values = values
        self.client = client or Oadr3Client(
            settings.vtn_url, settings.client_id, settings.client_secret.get_secret_value(),
            token_url=settings.token_url, scope=settings.scope, timeout_s=settings.timeout_s)
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self.events: dict[str, Tracked] = {}
        self.rejected: dict[str, str] = {}
        self.subscriptions: dict[str, str] = {}  # program id -> subscription id
        self.refused_subscriptions: set[str] = set()
        self.reports_posted: list[dict[str, Any]] = []
        self.polls = 0
        self.programs: dict[str, dict[str, Any]] = {}
        self.notifications = 0
        self.webhook_url: str | None = None
        self.ven_id: str | None = None
        self._register_refused = False
        self._bearer = secrets.token_urlsafe(24)
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._wake_reports = asyncio.Event()
        self._wake_poll = asyncio.Event()
        self._queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._group: asyncio.TaskGroup | None = None

    # --- lifecycle ------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self.settings.subscribe:
            try:
                await self._start_webhook()
            except OSError:  # the webhook port is taken or the host cannot be bound
                await self.client.aclose()
                if self._runner is not None:
                    await self._runner.cleanup()
                raise
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._group.create_task(self._poll_loop(), name="ven3-poll")
        self._group.create_task(self._notify_loop(), name="ven3-notify")
        self._group.create_task(self._report_loop(), name="ven3-reports")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._stop.set()
        self._wake_poll.set()
        self._wake_reports.set()
        try:
            if self._group is not None:
                await self._group.__aexit__(exc_type, exc, tb)
        finally:
            await self._unsubscribe_all()
            if self._runner is not None:
                await self._runner.cleanup()
            await self.client.aclose()

    def poll_now(self) -> None:
        """Wake the poll loop (the CLI's and tests' nudge; the loop also runs on its interval)."""
        self._wake_poll.set()

    async def _start_webhook(self) -> None:
        app = web.Application()
        app.router.add_post(_WEBHOOK_PATH, self._on_webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.webhook_host, self.settings.webhook_port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        base = self.settings.webhook_public_url or f"http://{host}:{port}"
        self.webhook_url = base.rstrip("/") + _WEBHOOK_PATH
        logger.info("OpenADR 3 webhook listening at %s", self.webhook_url)

    async def _unsubscribe_all(self) -> None:
        for program_id, subscription_id in list(self.subscriptions.items()):
            try:
                await self.client.unsubscribe(subscription_id)
            except Oadr3Error as exc:
                logger.warning("could not delete subscription %s of program %s: %s", subscription_id,
                               program_id, exc)
        self.subscriptions.clear()

    # --- polling and subscriptions --------------------------------------------------------------------------

    def _followed(self, programs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = set(self.settings.program_names)
        return [p for p in programs if isinstance(p.get("id"), str)
                and (not names or p.get("programName") in names)]

    async def _subscribe(self, program_id: str) -> None:
        if (self.webhook_url is None or program_id in self.subscriptions
                or program_id in self.refused_subscriptions):
            return
        try:
            created = await self.client.subscribe(client_name=self.settings.ven_name, program_id=program_id,
                                                  callback_url=self.webhook_url, bearer_token=self._bearer)
        except Oadr3RequestError as exc:
            if 400 <= exc.status < 500:
                self.refused_subscriptions.add(program_id)
                logger.info("the VTN refused a subscription to program %s (%s): polling instead", program_id,
                            exc.status)
                return
            raise
        self.subscriptions[program_id] = str(created.get("id", ""))
        logger.info("subscribed to events of program %s at %s", program_id, self.webhook_url)

    async def _register(self) -> None:
        """Make sure the VTN has a ``ven`` object named after this VEN (VTNs that refuse are not asked again)."""
        if self.ven_id is not None or self._register_refused:
            return
        try:
            self.ven_id = str((await self.client.register_ven(self.settings.ven_name)).get("id"))
        except Oadr3RequestError as exc:
            if not 400 <= exc.status < 500:
                raise
            self._register_refused = True
            logger.info("the VTN does not let this VEN register itself (%s): continuing without", exc.status)

    async def sync_once(self) -> None:
        """One poll: registration, programs, subscriptions, every event of the followed programs, vanished
        events."""
        await self._register()
        programs = self._followed(await self.client.programs())
        self.programs = {p["id"]: p for p in programs}
        seen: set[str] = set()
        for program in programs:
            if self.settings.subscribe:
                await self._subscribe(program["id"])
            for obj in await self.client.events(program["id"]):
                if isinstance(obj.get("id"), str):
                    seen.add(obj["id"])
                await self.handle_event(obj, program)
        polled = {p["id"] for p in programs}
        now = self.clock()
        for event_id, tracked in list(self.events.items()):
            end = tracked.event.end
            if end is not None and now - end > _FORGET_AFTER:  # long over: forget it (the intake keeps it)
                del self.events[event_id]
                continue
            if (event_id not in seen and tracked.event.program_id in polled
                    and tracked.event.status is not EventStatus.CANCELLED and end is not None and now < end):
                await self.handle_deleted(event_id)
        self.polls += 1

    async def _poll_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                await self.sync_once()
                attempt = 0
                delay = (self.settings.poll_with_webhook_s if self.subscriptions
                         else self.settings.poll_interval_s)
            except (VppError, FlexError, psycopg.Error) as exc:  # VTN unreachable or refusing, the intake's database
                delay = backoff_delay(attempt, initial_s=self.settings.backoff_initial_s,
                                      max_s=self.settings.backoff_max_s, rng=self._rng)
                attempt += 1
                logger.warning("OpenADR 3 poll failed (retry in %.1f s): %s", delay, exc)
            self._wake_poll.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake_poll.wait(), delay)

    # --- notifications --------------------------------------------------------------------------------------

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") != f"Bearer {self._bearer}":
            return web.json_response({"title": "Forbidden", "status": 403}, status=403)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"title": "Bad Request", "status": 400, "detail": "not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("object"), dict):
            return web.json_response({"title": "Bad Request", "status": 400,
                                      "detail": "expected a notification with an object"}, status=400)
        await self._queue.put(body)
        return web.json_response({})

    async def _notify_loop(self) -> None:
        while not self._stop.is_set():
            get = asyncio.ensure_future(self._queue.get())
            stop = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                stop.cancel()
                return
            stop.cancel()
            try:
                await self.handle_notification(get.result())
            except (VppError, FlexError, psycopg.Error) as exc:  # the next poll will catch up
                logger.warning("could not handle an OpenADR 3 notification: %s", exc)

    async def handle_notification(self, body: Mapping[str, Any]) -> None:
        """One webhook notification: EVENT POST/PUT → event version, DELETE → cancellation."""
        self.notifications += 1
        obj = body.get("object")
        if body.get("objectType") != "EVENT" or not isinstance(obj, Mapping):
            return
        if body.get("operation") == "DELETE":
            if isinstance(obj.get("id"), str):
                await self.handle_deleted(obj["id"])
            return
        await self.handle_event(obj, self.programs.get(str(obj.get("programID"))))

    # --- events ---------------------------------------------------------------------------------------------

    def read_event(self, obj: Mapping[str, Any], program: Mapping[str, Any] | None) -> IncomingEvent | None:
        """The event for this VEN, or None: another program, VEN or park; unreadable (logged, kept in
        :attr:`rejected`); or long over."""
        event_id = str(obj.get("id"))
        if self.programs and obj.get("programID") not in self.programs:
            return None  # a program this VEN does not follow (program_names)
        try:
            if not addresses(obj, ven_name=self.settings.ven_name, park_id=self.settings.park_id):
                return None
            event = parse_event(obj, vtn_id=self.settings.vtn_url, park_id=self.settings.park_id,
                                received_at=self.clock(), program=program)
        except Oadr3EventError as exc:
            if self.rejected.get(event_id) != str(exc):
                logger.warning("OpenADR 3 event %s ignored: %s", event_id, exc)
            self.rejected[event_id] = str(exc)
            return None
        if event.end is not None and event.received_at - event.end > _FORGET_AFTER:
            return None  # long over (and forgotten): nothing to do, and nothing new for the intake's audit
        return event

    async def handle_event(self, obj: Mapping[str, Any], program: Mapping[str, Any] | None) -> IntakeResult | None:
        """Read one event object and hand a new version to the intake; None when skipped."""
        event = self.read_event(obj, program)
        if event is None:
            return None
        async with self._lock:
            tracked = self.events.get(event.vtn_event_id)
            if tracked is not None:
                if tracked.event.status is EventStatus.CANCELLED:
                    return tracked.result
                newer = next_version(tracked.event, event)
                if newer is None:
                    return tracked.result
                event = newer
            result = await self.intake.accept_async(event)
            if tracked is None:
                self.events[event.vtn_event_id] = Tracked(event, result, event.received_at)
            else:
                tracked.event, tracked.result = event, result
        self._wake_reports.set()
        return result

    async def handle_deleted(self, event_id: str) -> IntakeResult | None:
        """The VTN deleted the event: tell the intake it is cancelled (once)."""
        async with self._lock:
            tracked = self.events.get(event_id)
            if tracked is None or tracked.event.status is EventStatus.CANCELLED:
                return None
            cancelled = cancelled_copy(tracked.event, received_at=self.clock())
            tracked.result = await self.intake.accept_async(cancelled)
            tracked.event = cancelled
        logger.info("OpenADR 3 event %s deleted by the VTN: cancelled", event_id)
        return tracked.result

    # --- reports --------------------------------------------------------------------------------------------

    async def report_due(self, now: datetime) -> datetime | None:
        """Sample the intervals that ended and post every report due at ``now``; when to look again (the next
        interval end or due report; None when nothing is pending)."""
        upcoming: datetime | None = None
        for tracked in list(self.events.values()):
            if not tracked.reporting or self.values is None:
                continue
            for due in report_schedule(tracked.event):
                if due.index in tracked.reports_sent:
                    continue
                if due.due_at < tracked.first_seen:  # already over when we heard of the event
                    tracked.reports_sent.add(due.index)
                    continue
                for interval in due.intervals:
                    if interval.start in tracked.samples:
                        continue
                    if interval.end <= now:
                        tracked.samples[interval.start] = await asyncio.to_thread(
                            take_sample, self.values, tracked.event.park_id, tracked.result.dr_event_id,
                            interval.start)
                    else:
                        upcoming = interval.end if upcoming is None else min(upcoming, interval.end)
                if due.due_at <= now:
                    report = build_report(tracked.event, due, dr_event_id=tracked.result.dr_event_id,
                                          client_name=self.settings.ven_name, values=SampledValues(tracked.samples))
                    if report is not None:
                        self.reports_posted.append(await self.client.post_report(report))
                    tracked.reports_sent.add(due.index)
                else:
                    upcoming = due.due_at if upcoming is None else min(upcoming, due.due_at)
        return upcoming

    async def _report_loop(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._wake_reports.clear()
            try:
                upcoming = await self.report_due(self.clock())
                attempt = 0
                delay = _REPORT_TICK_MAX_S if upcoming is None else (upcoming - self.clock()).total_seconds()
            except Oadr3Error as exc:
                delay = backoff_delay(attempt, initial_s=self.settings.backoff_initial_s,
                                      max_s=self.settings.backoff_max_s, rng=self._rng)
                attempt += 1
                logger.warning("OpenADR 3 report failed (retry in %.1f s): %s", delay, exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake_reports.wait(), min(max(delay, 0.0), _REPORT_TICK_MAX_S))

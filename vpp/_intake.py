"""Event intake: every OpenADR event version becomes (or updates) one ParkPulse DR event, idempotently.

Both VENs hand :meth:`EventIntake.accept` an :class:`IncomingEvent`. Keyed by (source, vtn_id,
vtn_event_id), a delivery is:

* **new** (first time seen): decided (opt in / out, :func:`vpp._intake_policy.decide`), recorded, and when
  opted in registered as a flex DR event with ``notified_at`` = receipt time (the baseline is fixed there);
* **modified** (higher modification number): decided again; the flex event's window and kW are updated
  (or it is cancelled when the park now opts out, or registered when it now opts in);
* **duplicate** (same number): answered with the stored decision, no side effect;
* **stale** (lower number): ignored with a log line, answered with the stored decision;
* **cancelled** (VTN status cancelled): the flex event is marked cancelled.

Every delivery is stored raw for audit. Listeners (dispatcher, live M&V) hear about new, modified and
cancelled events only, after the transaction committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from flex import Direction, DrEvent, DrService, DrStore, NotFoundError
from vpp._event_model import EventStatus, IncomingEvent, IntakeAction, IntakeResult, OptDecision
from vpp._intake_policy import Decision, IntakePolicy, ParkCapability, decide, local_hours
from vpp._intake_store import IntakeStore, IntakeTransaction, StoredEvent

logger = logging.getLogger(__name__)

Listener = Callable[[IntakeResult], Awaitable[None] | None]


def dr_event_id_for(source: str, vtn_id: str, vtn_event_id: str) -> str:
    """The ParkPulse DR event id of a VTN event: stable across versions and restarts, valid as a flex id."""
    digest = hashlib.sha256(f"{vtn_id}\x1f{vtn_event_id}".encode()).hexdigest()[:24]
    return f"{source}-{digest}"


class CapabilitySource(Protocol):
    """What the intake needs to know about a park to decide on an event."""

    def policy(self, park_id: str) -> IntakePolicy:
        """The park's intake policy (defaults when it has none)."""
        ...

    def capability(self, event: IncomingEvent, policy: IntakePolicy) -> ParkCapability | None:
        """The park's capability for the event's window and direction, None for an unknown park."""
        ...

    def baseline(self, park_id: str) -> tuple[str, dict[str, object]]:
        """The park's baseline method name and full parameters, frozen into the flex event."""
        ...


@dataclass(frozen=True, slots=True)
class _Assessment:
    """The decision on an event version and what it rests on."""

    decision: Decision
    capability: ParkCapability | None
    baseline: tuple[str, dict[str, object]] | None


@dataclass
class DrCapabilities:
    """:class:`CapabilitySource` over flex's DrService (flexibility envelopes, park calendar) and stored policies."""

    service: DrService
    store: IntakeStore
    default_policy: IntakePolicy = field(default_factory=IntakePolicy)

    def policy(self, park_id: str) -> IntakePolicy:
        """Stored policy of the park, else the default."""
        return self.store.get_policy(park_id) or self.default_policy

    def capability(self, event: IncomingEvent, policy: IntakePolicy) -> ParkCapability | None:
        """Flexibility in the event's direction for its duration, at receipt; day type and local hours."""
        del policy
        try:
            park = self.service.park(event.park_id)
        except NotFoundError:
            return None
        start, end = event.start, event.end
        duration_h = (end - start).total_seconds() / 3600 if start and end else 1.0
        flex = self.service.current_flex_for_duration(event.park_id, max(duration_h, 0.25), now=event.received_at)
        available = flex.up_kw if Direction(event.direction) is Direction.UP else flex.down_kw
        resources = frozenset({park.park_id, *(a.asset_id for a in flex.assets)})
        day_type = first_h = last_h = None
        if start and end:
            zone = ZoneInfo(park.timezone)
            day_type = self.service.park_calendar(park.park_id).day_type(start.astimezone(zone).date()).value
            first_h, last_h = local_hours(start, end, zone)
        load = self.service.current_flex(park.park_id, now=event.received_at).park_load_kw \
            if event.signal_kind.value == "setpoint_kw" else None
        return ParkCapability(park.park_id, max(0.0, available), load, day_type, first_h, last_h, resources)

    def baseline(self, park_id: str) -> tuple[str, dict[str, object]]:
        """The park's configured method, fully resolved (so later settings changes do not apply)."""
        method = self.service.method_for(park_id, None, None)
        return method.name, method.model_dump(mode="json")


class EventIntake:
    """Idempotent intake of DR events into the store and the flex DR events, with change listeners."""

    def __init__(self, store: IntakeStore, capabilities: CapabilitySource,
                 *, clock: Callable[[], datetime] | None = None) -> None:
        """``clock`` is only used for log lines; decisions use the event's ``received_at``."""
        self.store = store
        self.capabilities = capabilities
        self._clock = clock or (lambda: datetime.now(UTC))
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(result)`` (sync or async) after each new, modified or cancelled event."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    # --- the decision ---------------------------------------------------------------------------------------

    def _assess(self, event: IncomingEvent) -> _Assessment | None:
        """What the park can do, read before the event's lock is taken (reads only, never under the lock, so
        concurrent deliveries cannot exhaust the connection pools while waiting for each other)."""
        if event.status is EventStatus.CANCELLED:
            return None
        policy = self.capabilities.policy(event.park_id)
        capability = self.capabilities.capability(event, policy)
        baseline = self.capabilities.baseline(event.park_id) if capability is not None else None
        return _Assessment(decide(event, capability, policy), capability, baseline)

    @staticmethod
    def _flex_event(dr_event_id: str, event: IncomingEvent, assessment: _Assessment,
                    notified_at: datetime) -> DrEvent | None:
        start, end, decision = event.start, event.end, assessment.decision
        if start is None or end is None or decision.committed_kw <= 0 or assessment.baseline is None:
            return None
        method, params = assessment.baseline
        return DrEvent(
            event_id=dr_event_id, park_id=event.park_id, start=start.astimezone(UTC), end=end.astimezone(UTC),
            direction=decision.direction, requested_kw=decision.requested_kw,
            declared_kw=assessment.capability.available_kw if assessment.capability else None,
            baseline_method=method, baseline_overrides=params, notified_at=notified_at,
            source=event.source.value, program_id=event.program_id,
        )

    def _apply(self, txn: IntakeTransaction, dr_event_id: str, event: IncomingEvent,
               current: StoredEvent | None, assessment: _Assessment | None) -> tuple[IntakeAction, Decision]:
        """Decide a new or newer version and write the flex event accordingly (inside the locked transaction)."""
        exists = txn.dr_event_exists(dr_event_id)
        if assessment is None:  # cancelled by the VTN
            direction = Direction(current.direction if current else event.direction)
            decision = Decision(OptDecision.OPT_IN, current.requested_kw if current else 0.0, 0.0, direction,
                                "cancelled by the VTN")
            if exists:
                txn.cancel_dr_event(dr_event_id)
            return IntakeAction.CANCELLED, decision
        notified_at = current.first_received_at if current else event.received_at
        flex_event = self._flex_event(dr_event_id, event, assessment, notified_at)
        if flex_event is not None:
            (txn.update_dr_event if exists else txn.create_dr_event)(flex_event)
        elif exists:
            txn.cancel_dr_event(dr_event_id)  # now opted out (or nothing asked): release what was planned
        return (IntakeAction.MODIFIED if current else IntakeAction.NEW), assessment.decision

    def accept_sync(self, event: IncomingEvent) -> IntakeResult:
        """Record and decide one delivery without notifying listeners (runs in a worker thread)."""
        dr_event_id = dr_event_id_for(*event.key)
        assessment = self._assess(event)
        with self.store.locked(event) as txn:
            current = txn.current()
            if current is not None and event.modification_number <= current.modification_number:
                action = IntakeAction.DUPLICATE if event.modification_number == current.modification_number \
                    else IntakeAction.STALE
                if action is IntakeAction.STALE:
                    logger.info("ignoring stale version %d of %s event %s (version %d in force)",
                                event.modification_number, event.source.value, event.vtn_event_id,
                                current.modification_number)
                decision = Decision(OptDecision(current.opt), current.requested_kw, current.committed_kw,
                                    Direction(current.direction), current.opt_reason)
                txn.add_version(action, decision)
                return _result(dr_event_id, action, decision, event, current)
            action, decision = self._apply(txn, dr_event_id, event, current, assessment)
            txn.save(dr_event_id, action, decision, current.first_received_at if current else event.received_at)
            txn.add_version(action, decision)
        logger.info("%s event %s/%s v%d -> %s: %s %.1f kW%s", event.source.value, event.vtn_id,
                    event.vtn_event_id, event.modification_number, dr_event_id, decision.opt.value,
                    decision.committed_kw, f" ({decision.reason})" if decision.reason else "")
        return _result(dr_event_id, action, decision, event, None)

    def accept(self, event: IncomingEvent) -> IntakeResult:
        """Record and decide one delivery, then call the (synchronous) listeners; see :meth:`accept_async`."""
        result = self.accept_sync(event)
        if result.changed:
            for listener in self._listeners:
                outcome = listener(result)
                if inspect.isawaitable(outcome):
                    _close(outcome)
                    raise TypeError("an async listener is registered: call `await intake.accept_async(event)`")
        return result

    async def accept_async(self, event: IncomingEvent) -> IntakeResult:
        """Record and decide one delivery in a worker thread, then call (and await) every listener."""
        result = await asyncio.to_thread(self.accept_sync, event)
        if result.changed:
            for listener in list(self._listeners):
                try:
                    outcome = listener(result)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception:  # a failing listener must not lose the VTN's answer; it is logged in full
                    logger.exception("intake listener %r failed on %s", listener, result.dr_event_id)
        return result


def open_intake(database_url: str, *, service: DrService | None = None) -> tuple[EventIntake, Callable[[], None]]:
    """An intake on the database at ``database_url`` (flex's DrService over a DrStore unless given) and the
    function that closes its connection pools."""
    store = IntakeStore(database_url)
    dr_store = None
    if service is None:
        dr_store = DrStore(database_url)
        service = DrService(dr_store)

    def close() -> None:
        store.close()
        if dr_store is not None:
            dr_store.close()

    return EventIntake(store, DrCapabilities(service, store)), close


def _close(outcome: object) -> None:
    close = getattr(outcome, "close", None)
    if callable(close):
        close()


def _result(dr_event_id: str, action: IntakeAction, decision: Decision, event: IncomingEvent,
            current: StoredEvent | None) -> IntakeResult:
    start = current.start if current else event.start
    end = current.end if current else event.end
    return IntakeResult(
        dr_event_id=dr_event_id, action=action, opt=decision.opt, event=event, requested_kw=decision.requested_kw,
        committed_kw=decision.committed_kw, opt_reason=decision.reason, start=start, end=end,
        direction=decision.direction.value, interval_kw=decision.interval_kw,
    )

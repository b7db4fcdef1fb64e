"""OpenADR 2.0b VEN on openleadr's ``OpenADRClient``: registration, polling, events into the intake, reports.

openleadr does the protocol: registration (``oadrQueryRegistration``/``oadrCreatePartyRegistration``),
polling on the VTN's frequency, ``oadrDistributeEvent`` parsing, the ``oadrCreatedEvent`` answer, report
registration and the ``oadrUpdateReport`` schedule. This module adds ParkPulse's side:

* each event (new or updated) is normalised (:mod:`vpp._oadr2_parse`) and handed to the intake, whose
  opt decision is the answer; an opt-out's reason travels in the event response's ``responseDescription``
  (openleadr always writes "OK" there, so the message factory is wrapped to put the reason in);
* one TELEMETRY_USAGE report with three data points — ``usage`` (metered load), ``baseline`` (fixed at
  notification) and ``available`` (flexibility still available, 2.0b ``upRegulationCapacityAvailable``),
  all real power in kW — whose values come from a :class:`ReportValues` provider at the rate the VTN asks
  (a sampling with no value at all sends nothing, rather than an empty ``oadrUpdateReport``);
* registration is retried with capped, jittered backoff until the VTN answers (a fresh client each time:
  openleadr closes its HTTP session when registration fails).

:class:`Oadr2Ven` is an async context manager running one named task in an asyncio TaskGroup.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

import psycopg
from openleadr import OpenADRClient, enums, objects

from vpp._event_model import IntakeResult, OptDecision, ReportValues
from vpp._intake import EventIntake
from vpp._intake_policy import clip_reason
from vpp._oadr2_parse import Oadr2ParseError, parse_event
from vpp._oadr2_settings import Oadr2Settings
from vpp.errors import IntakeError, Oadr2Error

logger = logging.getLogger(__name__)

REPORT_POINTS: Final = ("usage", "baseline", "available")
_REMEMBER: Final = timedelta(days=1)
_REPORT_TYPES: Final = {
    "usage": (enums.REPORT_TYPE.USAGE, enums.READING_TYPE.DIRECT_READ),
    "baseline": (enums.REPORT_TYPE.BASELINE, enums.READING_TYPE.PROJECTED),
    "available": (enums.REPORT_TYPE.UP_REGULATION_CAPACITY_AVAILABLE, enums.READING_TYPE.PROJECTED),
}


def _power_kw() -> Any:
    """Real power in kW (W with SI scale k), 50 Hz AC, as the report's item base."""
    return objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="k",
                               power_attributes=objects.PowerAttributes(hertz=50, voltage=230, ac=True))


class _ReportsWithData(asyncio.Queue[Any]):
    """openleadr's outgoing report queue, minus reports without a single interval.

    openleadr queues a report at every sampling time even when every callback returned nothing (the park's
    meters are offline, no value to report); the VTN answers an ``oadrUpdateReport`` without intervals with
    an error (openleadr's own VTN: HTTP 500). Such a report carries nothing, so it is dropped and counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped_empty = 0

    def put_nowait(self, item: Any) -> None:
        if not getattr(item, "intervals", None):
            self.dropped_empty += 1
            logger.debug("no report values to send (%d empty reports skipped)", self.dropped_empty)
            return
        super().put_nowait(item)


class Oadr2Ven:
    """One park's OpenADR 2.0b VEN (async context manager)."""

    def __init__(self, settings: Oadr2Settings, intake: EventIntake, values: ReportValues | None = None, *,
                 clock: Callable[[], datetime] | None = None, rng: random.Random | None = None) -> None:
        """``values`` answers the telemetry reports (none: no reports are offered)."""
        self.settings = settings
        self.intake = intake
        self.values = values
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = rng or random.Random()
        self._reasons: dict[str, str] = {}
        self._active: dict[str, tuple[datetime | None, datetime | None]] = {}
        self._results: dict[str, IntakeResult] = {}
        self._client: Any = None
        self._vtn_id: str | None = None
        self._registered = asyncio.Event()
        self._stop = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None

    # --- public state -------------------------------------------------------------------------------------

    @property
    def ven_id(self) -> str | None:
        """The venID the VTN assigned (None before registration)."""
        return None if self._client is None else self._client.ven_id

    @property
    def registration_id(self) -> str | None:
        """The registrationID of the current registration."""
        return None if self._client is None else self._client.registration_id

    @property
    def vtn_id(self) -> str:
        """The VTN's id from the registration response (the VTN URL until then)."""
        return self._vtn_id or self.settings.vtn_url

    def last_result(self, vtn_event_id: str) -> IntakeResult | None:
        """The intake's last answer for a VTN event id (duplicates included)."""
        return self._results.get(vtn_event_id)

    async def wait_registered(self, timeout_s: float | None = None) -> None:
        """Wait until the VEN is registered with the VTN."""
        await asyncio.wait_for(self._registered.wait(), timeout_s)

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Oadr2Ven:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        self._group.create_task(self._run(), name=f"ven2-{self.settings.park_id}")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._stop.set()
        assert self._group is not None
        try:
            await self._group.__aexit__(exc_type, exc, tb)
        finally:
            await self._close_client()

    async def _run(self) -> None:
        """Register (retrying with capped jittered backoff), then stay until stopped; polling runs in openleadr."""
        attempt = 0
        while not self._stop.is_set():
            self._client = self._make_client()
            await self._client.run()
            if self._client.registration_id:
                break
            await self._close_client()
            delay = self._rng.uniform(0, min(self.settings.register_backoff_max_s,
                                             self.settings.register_backoff_initial_s * 2 ** attempt))
            attempt += 1
            logger.warning("VTN %s did not register VEN %s; retrying in %.1f s", self.settings.vtn_url,
                           self.settings.ven_name, delay)
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        if self._stop.is_set():
            return
        self._registered.set()
        logger.info("VEN %s registered with VTN %s as %s", self.settings.ven_name, self.vtn_id, self.ven_id)
        await self._stop.wait()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if client.scheduler.running:
            client.scheduler.shutdown(wait=False)
        if client.report_queue_task:
            client.report_queue_task.cancel()
        if client.client_session is not None and not client.client_session.closed:
            await client.client_session.close()

    # --- the openleadr client -----------------------------------------------------------------------------

    def _make_client(self) -> Any:
        s = self.settings
        try:
            client = OpenADRClient(
                ven_name=s.ven_name, vtn_url=s.vtn_url, ven_id=s.ven_id,
                cert=str(s.cert) if s.cert else None, key=str(s.key) if s.key else None, passphrase=s.passphrase,
                ca_file=str(s.ca_file) if s.ca_file else None, vtn_fingerprint=s.vtn_fingerprint,
                show_fingerprint=False, check_hostname=s.check_hostname, disable_signature=s.cert is None,
            )
        except OSError as exc:
            raise Oadr2Error(f"cannot read the VEN certificate or key: {exc}; check PARKPULSE_VEN2_CERT/KEY") from exc
        client.add_handler("on_event", self._on_event)
        client.add_handler("on_update_event", self._on_event)
        client.pending_reports = _ReportsWithData()
        original_create = client._create_message
        original_register = client.create_party_registration

        def create_message(message_type: str, **payload: Any) -> Any:
            if message_type == "oadrCreatedEvent":
                for response in payload.get("event_responses") or []:
                    reason = self._reasons.get(str(response.get("event_id")))
                    if response.get("opt_type") == OptDecision.OPT_OUT.value and reason:
                        response["response_description"] = reason
            return original_create(message_type, **payload)

        async def create_party_registration(*args: Any, **kwargs: Any) -> Any:
            answer = await original_register(*args, **kwargs)
            if answer:
                self._vtn_id = (answer[1] or {}).get("vtn_id") or self._vtn_id
                if s.poll_interval is not None and client.registration_id:
                    client.poll_frequency = s.poll_interval
            return answer

        client._create_message = create_message
        client.create_party_registration = create_party_registration
        if self.values is not None:
            self._add_reports(client)
        return client

    def _add_reports(self, client: Any) -> None:
        s = self.settings
        for point in REPORT_POINTS:
            report_type, reading_type = _REPORT_TYPES[point]
            client.add_report(
                callback=self._report_callback(point), resource_id=s.report_resource_id, measurement=_power_kw(),
                report_specifier_id=f"parkpulse-{s.park_id}-telemetry", r_id=f"{s.park_id}-{point}",
                report_name=enums.REPORT_NAME.TELEMETRY_USAGE, report_type=report_type, reading_type=reading_type,
                report_duration=timedelta(hours=1), unit=None,
                sampling_rate=objects.SamplingRate(min_period=s.report_min_interval, max_period=timedelta(hours=1),
                                                   on_change=False),
            )

    def _report_callback(self, point: str) -> Callable[[], Awaitable[list[tuple[datetime, float]]]]:
        async def sample() -> list[tuple[datetime, float]]:
            # providers may read the database: keep openleadr's event loop free
            return await asyncio.to_thread(self.sample, point)
        return sample

    def active_event(self, at: datetime) -> str | None:
        """The opted-in event whose window contains ``at`` (else the latest opted-in one still to come)."""
        upcoming: list[tuple[datetime, str]] = []
        for dr_event_id, (start, end) in self._active.items():
            if start is not None and end is not None and start <= at < end:
                return dr_event_id
            if start is not None and start > at:
                upcoming.append((start, dr_event_id))
        return min(upcoming)[1] if upcoming else None

    def sample(self, point: str) -> list[tuple[datetime, float]]:
        """One report value now (empty when the provider has none), as openleadr's report callbacks return."""
        if self.values is None:
            return []
        at = self._clock()
        park, event = self.settings.park_id, self.active_event(at)
        getter = {"usage": self.values.usage_kw, "baseline": self.values.baseline_kw,
                  "available": self.values.available_kw}[point]
        value = getter(park, event, at)
        return [] if value is None else [(at, float(value))]

    async def _on_event(self, event: Mapping[str, Any]) -> str:
        """openleadr's on_event/on_update_event: normalise, hand to the intake, answer optIn/optOut."""
        received = self._clock()
        event_id = str((event.get("event_descriptor") or {}).get("event_id", ""))
        try:
            incoming = parse_event(event, vtn_id=self.vtn_id, park_id=self.settings.park_id, received_at=received)
        except (Oadr2ParseError, KeyError, TypeError) as exc:
            logger.warning("opting out of malformed 2.0b event %s: %s", event_id, exc)
            self._reasons[event_id] = clip_reason(f"malformed event: {exc}")
            return OptDecision.OPT_OUT.value
        try:
            result = await self.intake.accept_async(incoming)
        except (psycopg.Error, IntakeError):  # cannot record it: never commit to what is not recorded
            logger.exception("cannot record 2.0b event %s, opting out", event_id)
            self._reasons[event_id] = clip_reason("ParkPulse cannot record the event now (database unavailable); "
                                                  "send a new modification to retry")
            return OptDecision.OPT_OUT.value
        self._results[incoming.vtn_event_id] = result
        if result.opt_reason and result.opt is OptDecision.OPT_OUT:
            self._reasons[event_id] = result.opt_reason
        else:
            self._reasons.pop(event_id, None)
        if result.opt is OptDecision.OPT_IN and result.committed_kw > 0 and result.action.value != "cancelled":
            self._active[result.dr_event_id] = (result.start, result.end)
        else:
            self._active.pop(result.dr_event_id, None)
        self._forget_finished(received)
        return result.opt.value

    def _forget_finished(self, now: datetime) -> None:
        """Drop what this process remembers about events over for a day (the store keeps everything)."""
        horizon = now - _REMEMBER
        for vtn_event_id, old in list(self._results.items()):
            if old.end is not None and old.end < horizon:
                del self._results[vtn_event_id]
                self._reasons.pop(vtn_event_id, None)
        for dr_event_id, (_, end) in list(self._active.items()):
            if end is not None and end < now:
                del self._active[dr_event_id]

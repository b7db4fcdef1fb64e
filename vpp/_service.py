"""``parkpulse vpp run``: the VEN(s), the dispatcher and live M&V as one service.

:class:`VppService` is an async context manager. On entry it builds the event intake, then runs every
component in one :class:`asyncio.TaskGroup`, each in its own named task (``live-mv``, ``dispatcher``,
``ven-oadr2``, ``ven-oadr3``) that enters the component and holds it until the service stops. Components
start in dependency order — live M&V and the dispatcher are ready before a VEN can deliver the first
event — and stop in reverse order. The intake calls the dispatcher first (the time to the first setpoint
matters most), then live M&V, for every new, modified or cancelled event.

The VENs are built by :data:`VEN_COMPONENTS` (kind → factory); each reads its own settings
(``PARKPULSE_VEN2_*``, ``PARKPULSE_VEN3_*``) and calls the intake with ``accept_async``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError

from flex import DrService, DrStore
from vpp._dispatch import Dispatcher
from vpp._dispatch_settings import DispatchSettings
from vpp._event_model import ReportValues
from vpp._intake import DrCapabilities, EventIntake
from vpp._intake_store import IntakeStore
from vpp._live_mv_service import LiveMv
from vpp._oadr2 import Oadr2Ven
from vpp._oadr2_settings import Oadr2Settings
from vpp._oadr3_settings import Ven3Settings
from vpp._oadr3_ven import Ven3
from vpp._settings import VppSettings
from vpp.errors import VppServiceError

logger = logging.getLogger(__name__)

Component = AbstractAsyncContextManager[Any]


def _oadr2_ven(intake: EventIntake, values: ReportValues) -> Component:
    return Oadr2Ven(Oadr2Settings(), intake, values)  # type: ignore[call-arg]


def _oadr3_ven(intake: EventIntake, values: ReportValues) -> Component:
    return Ven3(Ven3Settings(), intake, values)  # type: ignore[call-arg]


#: VEN kind → factory of the VEN (its own settings from the environment) given the intake and the report values.
VEN_COMPONENTS: Mapping[str, Callable[[EventIntake, ReportValues], Component]] = {
    "oadr2": _oadr2_ven,
    "oadr3": _oadr3_ven,
}


_VEN_ENV: Mapping[str, str] = {"oadr2": "PARKPULSE_VEN2_", "oadr3": "PARKPULSE_VEN3_"}


def _fields(exc: ValidationError) -> str:
    """The settings a validation error names, e.g. ``vtn_url missing``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])} {e['msg'].lower()}" for e in exc.errors())


def ven_factory(kind: str) -> Callable[[EventIntake, ReportValues], Component]:
    """The factory of a VEN kind; raises :class:`VppServiceError` for an unknown kind."""
    try:
        return VEN_COMPONENTS[kind]
    except KeyError:
        raise VppServiceError(f"unknown VEN kind {kind!r}; use one of {sorted(VEN_COMPONENTS)}") from None


def dispatcher_component(database_url: str, mv: LiveMv) -> Component:
    """D1's dispatcher (PARKPULSE_VPP_DISPATCH_* settings) with live M&V told about every plan."""
    settings = DispatchSettings(database_url=database_url)  # type: ignore[call-arg]
    return Dispatcher(settings, on_plan=mv.set_plan)


class VppService:
    """The VPP loop of one ParkPulse deployment (see the module docstring)."""

    def __init__(
        self,
        settings: VppSettings,
        *,
        vens: Mapping[str, Callable[[EventIntake, Any], Component]] | None = None,
        dispatcher: Callable[[str, LiveMv], Component] | None = dispatcher_component,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """``vens`` overrides the VEN lookup (kind → factory); ``dispatcher`` None runs without dispatch."""
        self.settings = settings
        self._vens = vens
        self._dispatcher = dispatcher if settings.vpp_dispatch else None
        self._clock = clock
        self._intake_store: IntakeStore | None = None
        self._dr_store: DrStore | None = None
        self._group: asyncio.TaskGroup | None = None
        self._stop = asyncio.Event()
        self._held: list[tuple[asyncio.Event, asyncio.Event]] = []  # (release, stopped) in start order
        self.intake: EventIntake | None = None
        self.mv: LiveMv | None = None
        self.dispatcher: Any = None
        self.components: dict[str, Any] = {}

    async def __aenter__(self) -> Self:
        url = self.settings.database_url
        self._intake_store = await asyncio.to_thread(IntakeStore, url)
        self._dr_store = DrStore(url)
        self.intake = EventIntake(self._intake_store,
                                  DrCapabilities(DrService(self._dr_store, clock=self._clock), self._intake_store))
        self.mv = LiveMv(url, park_ids=self.settings.vpp_park_ids, tick_s=self.settings.vpp_mv_tick_s,
                         settle=timedelta(seconds=self.settings.vpp_mv_settle_s), clock=self._clock)
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        try:
            await self._start("live-mv", self.mv)
            if self._dispatcher is not None:
                self.dispatcher = self._dispatcher(url, self.mv)
                await self._start("dispatcher", self.dispatcher)
                self.intake.add_listener(self.dispatcher.on_event)
            self.intake.add_listener(self.mv.on_event)
            for kind in self.settings.vpp_vens:
                factory = self._vens[kind] if self._vens is not None else ven_factory(kind)
                try:
                    ven = factory(self.intake, self.mv.report_values)
                except ValidationError as exc:
                    prefix = _VEN_ENV.get(kind, "its")
                    raise VppServiceError(f"the {kind} VEN is not configured: {_fields(exc)}; set {prefix}* "
                                          "(see `parkpulse vpp --help`)") from None
                await self._start(f"ven-{kind}", ven)
        except BaseException:
            await self.__aexit__(None, None, None)  # stop what started; the start error is the one raised
            raise
        logger.info("vpp service running: %s", ", ".join(self.components))
        return self

    async def _start(self, name: str, component: Component) -> None:
        """Run ``component`` in its own task until the service stops; return once it has been entered."""
        assert self._group is not None
        ready, release, stopped = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._held.append((release, stopped))

        failed: list[BaseException] = []

        async def hold() -> None:
            try:
                async with component as entered:
                    self.components[name] = entered if entered is not None else component
                    ready.set()
                    await release.wait()
            except Exception as exc:  # a start failure is re-raised by _start, naming the component
                if ready.is_set():
                    raise
                failed.append(exc)
            finally:
                ready.set()
                stopped.set()
                self._stop.set()  # one component gone (stopped or failed) stops the service
                logger.info("vpp component %s stopped", name)

        self._group.create_task(hold(), name=name)
        await ready.wait()
        if failed:
            raise VppServiceError(f"component {name} failed to start: {failed[0]}") from failed[0]

    async def wait(self) -> None:
        """Run until :meth:`stop` is called (or a component fails)."""
        await self._stop.wait()

    def stop(self) -> None:
        """Ask the service to stop (``async with`` exits after :meth:`wait` returns)."""
        self._stop.set()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        try:
            for release, stopped in reversed(self._held):  # VENs first, live M&V last
                release.set()
                await stopped.wait()
            if self._group is not None:
                group, self._group = self._group, None
                await group.__aexit__(exc_type, exc, tb)
        finally:
            for store in (self._intake_store, self._dr_store):
                if store is not None:
                    await asyncio.to_thread(store.close)
            self._intake_store = self._dr_store = None

"""``parkpulse vpp run``'s service: components start in order in named tasks, events flow from a VEN through
the intake to live M&V, a failing component stops the start with its name, and shutdown is clean."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vpp._event_model import EventInterval, EventSource, EventStatus, IncomingEvent, IntakeResult, SignalKind
from vpp._intake import EventIntake
from vpp._service import VppService, ven_factory
from vpp._settings import VppSettings
from vpp.errors import VppServiceError


def _settings(database_url: str, vens: list[str]) -> VppSettings:
    return VppSettings(database_url=database_url, mqtt_url="mqtt://127.0.0.1:1", vpp_vens=vens,  # type: ignore[arg-type]
                       vpp_dispatch=False, vpp_mv_tick_s=0.05)


def test_a_ven_delivers_through_the_intake_and_the_service_stops_cleanly(database_url: str, park_id: str) -> None:
    results: list[IntakeResult] = []
    seen_tasks: list[str] = []

    @asynccontextmanager
    async def ven(intake: EventIntake, report_values: Any) -> AsyncIterator[str]:
        seen_tasks.extend(t.get_name() for t in asyncio.all_tasks())
        start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=10)
        event = IncomingEvent(EventSource.OADR2, "vtn-test", f"{park_id}-ev", 0, EventStatus.FAR, park_id,
                              "LOAD_DISPATCH", SignalKind.TARGET_KW,
                              (EventInterval(start, timedelta(minutes=5), 100.0),), datetime.now(UTC))
        results.append(await intake.accept_async(event))
        assert report_values.baseline_kw(park_id, None, start) is None
        yield "ven"

    async def scenario() -> None:
        async with VppService(_settings(database_url, ["oadr2"]), vens={"oadr2": ven}) as service:
            assert list(service.components) == ["live-mv", "ven-oadr2"]
            service.stop()
            await service.wait()
        assert not [t for t in asyncio.all_tasks() if t.get_name() in ("live-mv", "ven-oadr2")]

    asyncio.run(scenario())
    assert "live-mv" in seen_tasks  # live M&V was running before the VEN started
    assert results
    assert results[0].dr_event_id


def test_a_component_that_cannot_start_is_named(database_url: str) -> None:
    @asynccontextmanager
    async def broken(intake: EventIntake, report_values: Any) -> AsyncIterator[None]:
        raise OSError("VTN unreachable")
        yield

    async def scenario() -> None:
        async with VppService(_settings(database_url, ["oadr3"]), vens={"oadr3": broken}):
            pass

    with pytest.raises(VppServiceError, match=r"ven-oadr3.*VTN unreachable"):
        asyncio.run(scenario())


def test_unknown_ven_kind_says_what_to_use() -> None:
    with pytest.raises(VppServiceError, match="use one of"):
        ven_factory("oadr1")


def test_cli_run_names_the_missing_ven_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from parkpulse.cli import app

    monkeypatch.setenv("PARKPULSE_VPP_VENS", '["oadr3"]')
    monkeypatch.setenv("PARKPULSE_VPP_DISPATCH", "false")
    for name in ("PARKPULSE_VEN3_VTN_URL", "PARKPULSE_VEN3_CLIENT_ID", "PARKPULSE_VEN3_CLIENT_SECRET",
                 "PARKPULSE_VEN3_PARK_ID"):
        monkeypatch.delenv(name, raising=False)
    out = CliRunner().invoke(app, ["vpp", "run"])
    assert out.exit_code == 1, out.output
    assert "the oadr3 VEN is not configured" in out.output
    assert "PARKPULSE_VEN3_" in out.output

"""Every closed-loop VPP scenario, run concurrently: each is a real event of one-minute intervals.

A scenario takes minutes of wall time (metered pre-event baseline, two or three one-minute intervals, live
M&V finalising), almost all of it waiting. Run one after another they would take about 25 minutes; here
each gets its own park, VTN, simulated site, edge agent, ingest and VPP service, and they run at once:

* OpenADR 2.0b (a real openleadr VTN, tests/vpp/scenarios_oadr2.py): the event sheds load and the M&V
  matches the meters; a modified then cancelled event; the edge agent offline; a command the device rejects;
* OpenADR 3 (the stand-in built from the 3.0.1 OpenAPI document): the same loop with spec-validated reports
  (scenarios_oadr3.py), and a modified then deleted event (scenarios_oadr3_modify.py);
* ``parkpulse demo --dr``'s engine (scenarios_demo_dr.py), in a thread of its own as the CLI runs it.

Every failure is reported, each under its scenario's name.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.vpp import scenarios_oadr2, scenarios_oadr3, scenarios_oadr3_modify
from tests.vpp.scenarios_demo_dr import scenario_demo_prints_planned_vs_delivered
from tests.vpp.test_oadr2_ven import openleadr_vtn

pytestmark = [
    pytest.mark.services,
    pytest.mark.faults,
    # openleadr 0.5.36 keys its aiohttp app with plain strings
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]

Scenario = Callable[..., Coroutine[Any, Any, None]]


def _register_park(database_url: str, name: str) -> str:
    park = f"t-loop-{name}-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (park,))
    return park


async def test_every_loop_scenario(database_url: str, mqtt_url: str, tmp_path: Path) -> None:
    def with_vtn(vtn: Callable[[str], AbstractAsyncContextManager[Any]], scenario: Scenario,
                 name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            park = _register_park(database_url, name)
            folder = tmp_path / name
            folder.mkdir()
            async with vtn(park) as server:
                await scenario(server, database_url, mqtt_url, park, folder)
        return run

    def oadr3(factory: Callable[[], AbstractAsyncContextManager[Any]]
              ) -> Callable[[str], AbstractAsyncContextManager[Any]]:
        return lambda park: factory()  # the stand-in serves any park

    scenarios: dict[str, Callable[[], Awaitable[None]]] = {
        "oadr2-shed": with_vtn(openleadr_vtn,
                               scenarios_oadr2.scenario_openleadr_event_sheds_load_and_mv_matches_the_meters, "o2shed"),
        "oadr2-modify-cancel": with_vtn(openleadr_vtn, scenarios_oadr2.scenario_modified_then_cancelled_event, "o2mod"),
        "oadr2-edge-offline": with_vtn(openleadr_vtn,
                                       scenarios_oadr2.scenario_edge_offline_commands_expire_and_mv_stays_honest,
                                       "o2off"),
        "oadr2-device-rejects": with_vtn(openleadr_vtn,
                                         scenarios_oadr2.scenario_a_command_the_device_rejects_delivers_nothing,
                                         "o2rej"),
        "oadr3-shed": with_vtn(oadr3(scenarios_oadr3.oadr3_vtn),
                               scenarios_oadr3.scenario_openadr3_event_sheds_load_reports_reach_the_vtn_and_mv_matches,
                               "o3shed"),
        "oadr3-modify-delete": with_vtn(
            oadr3(scenarios_oadr3_modify.oadr3_vtn),
            scenarios_oadr3_modify.scenario_oadr3_event_modified_then_deleted_is_replanned_then_released, "o3mod"),
        "demo-dr": lambda: asyncio.to_thread(scenario_demo_prints_planned_vs_delivered, database_url, mqtt_url),
    }
    outcomes = await asyncio.gather(*(run() for run in scenarios.values()), return_exceptions=True)
    failed = [(name, outcome) for name, outcome in zip(scenarios, outcomes, strict=True)
              if isinstance(outcome, BaseException)]
    for name, outcome in failed:
        outcome.add_note(f"loop scenario: {name}")
    if failed:
        raise BaseExceptionGroup(f"{len(failed)} of {len(scenarios)} loop scenarios failed",
                                 [outcome for _, outcome in failed])

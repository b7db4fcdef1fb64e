"""The closed VPP loop end to end against the OpenADR 3 VTN stand-in (built from the 3.0.1 OpenAPI document).

Same loop as test_loop_e2e.py, with C2's OpenADR 3 VEN: the event (DISPATCH_SETPOINT_RELATIVE, −100 kW for
three one-minute intervals) reaches the park, the battery discharges, the metered load drops, the VEN posts
3.0 reports (USAGE, BASELINE, DELTA_USAGE) that the stand-in validates against the spec, and the final M&V
matches the boundary meter.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulators.openadr3_vtn import RunningVtn3, Vtn3Admin, VtnState, event_body, running_vtn3
from tests.ingest.helpers import wait_until
from tests.vpp.loop_rig import GUARD_S, INTERVAL, configure_park, next_start, running_park, wait_metered
from tests.vpp.scenarios_oadr2 import COMMITTED_KW, _check_against_the_meter, _final
from vpp._intake import EventIntake
from vpp._oadr3_settings import Ven3Settings
from vpp._oadr3_ven import Ven3

VEN_ID, VEN_SECRET = "ven-e2e-3", "ven-e2e-secret-abcdefgh"


@contextlib.asynccontextmanager
async def oadr3_vtn() -> AsyncIterator[RunningVtn3]:
    """The OpenADR 3 stand-in with this module's VEN client."""
    state = VtnState()
    state.add_client(VEN_ID, VEN_SECRET, "ven")
    async with running_vtn3(state) as running:
        yield running


async def scenario_openadr3_event_sheds_load_reports_reach_the_vtn_and_mv_matches(vtn3: RunningVtn3, database_url,
                                                                               mqtt_url, park_id,
                                                                               tmp_path: Path) -> None:
    configure_park(database_url, park_id)
    settings = Ven3Settings.model_validate({
        "vtn_url": vtn3.base_url, "client_id": VEN_ID, "client_secret": VEN_SECRET, "park_id": park_id,
        "ven_name": "ven-e2e-3", "poll_interval_s": 1.0, "backoff_initial_s": 0.1, "backoff_max_s": 1.0})

    def ven(intake: EventIntake, values: Any) -> Ven3:
        return Ven3(settings, intake, values)

    async with running_park(database_url, mqtt_url, park_id, tmp_path) as loop, loop.edge(), \
            Vtn3Admin(vtn3.base_url) as admin:
        metered_from = await wait_metered(loop, datetime.now(UTC))
        program = await admin.create_program("e2e-capacity")
        async with loop.service("oadr3", ven):
            start = next_start(metered_from=metered_from)
            created = await admin.create_event(event_body(
                program["id"], start=start, step=INTERVAL, values=[-COMMITTED_KW] * 3,
                payload_type="DISPATCH_SETPOINT_RELATIVE", units="KW", report_every=1))
            assert await wait_until(lambda: loop.battery.remote and loop.battery.setpoint_kw <= -50.0,
                                    timeout=GUARD_S + 90)
            rows = loop.query("SELECT dr_event_id FROM vpp_events WHERE vtn_event_id = %s AND park_id = %s",
                              (created["id"], park_id))
            event_id = rows[0][0]
            doc = await _final(loop, event_id, start + 3 * INTERVAL)
            _check_against_the_meter(loop, doc)
            for row in doc["intervals"]:
                assert row["metered_kw"] < row["baseline_kw"] - 0.5 * COMMITTED_KW
            assert 0.7 <= doc["delivered_ratio"] <= 1.3
            assert await wait_until(lambda: len(vtn3.state.objects["reports"]) >= 1, timeout=GUARD_S)
            reports = await admin.reports(created["id"])
    assert vtn3.state.rejected_requests == []
    assert vtn3.state.response_problems == []
    baselines = [p["values"][0] for r in reports for i in r["resources"][0]["intervals"] for p in i["payloads"]
                 if p["type"] == "BASELINE"]
    assert baselines
    fixed = [row["baseline_kw"] for row in doc["intervals"]]
    # every reported BASELINE is the baseline fixed at notification (the stand-in lists reports in no set order);
    # reports carry kW to 3 decimals (vpp/_oadr3_reports.py), so they match to half a watt
    assert all(any(b == pytest.approx(kw, abs=5e-4) for kw in fixed) for b in baselines), (baselines, fixed)

"""The closed VPP loop of the end-to-end tests, from real parts only.

A simulated flexible park (Modbus TCP: boundary meter, battery, EV charger, chiller) is polled by the real
edge agent, which publishes readings to the session's Mosquitto and takes commands from it; ingest stores
the readings in TimescaleDB; the VPP service (intake, D1's dispatcher, live M&V and a VEN) runs on top.
Events use 1-minute intervals and a 1-minute pre-event baseline so a whole event takes a few minutes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from edge.agent import EdgeAgent
from flex import AssetRecord, Battery, DrSettings, DrStore
from flex._assets import BatteryState
from ingest import IngestService
from simulators.protocol.assets import SimBattery
from simulators.protocol.site import SimSite, build_flex_site
from tests.edge.helpers import agent_config, free_port, running_agent
from tests.ingest.helpers import ingest_settings, wait_until
from vpp._dispatch import Dispatcher
from vpp._dispatch_settings import DispatchSettings
from vpp._intake import EventIntake
from vpp._live_mv_service import LiveMv
from vpp._service import Component, VppService
from vpp._settings import VppSettings

PREFIX = "e2e"
BESS = f"{PREFIX}-bess"
BOUNDARY = f"{PREFIX}-boundary"
INTERVAL = timedelta(minutes=1)
GUARD_S = 60.0  # a guard against hangs, never a performance assertion


@dataclass
class Loop:
    """Handles on every running part of the loop."""

    park: str
    database_url: str
    mqtt_url: str
    site: SimSite
    tmp_path: Path
    agent: EdgeAgent | None = None

    @property
    def battery(self) -> SimBattery:
        model = self.site.assets[BESS]
        assert isinstance(model, SimBattery)
        return model

    def query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of one query on a connection of its own (usable after the loop has stopped)."""
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def counters_since(self, since: datetime) -> int:
        rows = self.query(
            """SELECT count(*) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
               WHERE d.park_id = %s AND d.device_id = %s AND s.metric = 'active_energy_import' AND r.ts >= %s""",
            (self.park, BOUNDARY, since))
        return int(rows[0][0]) if rows else 0

    def mean_power_kw(self, start: datetime, end: datetime) -> float | None:
        """The boundary meter's mean active power over [start, end) from the stored readings (the meter's view)."""
        rows = self.query(
            """SELECT avg(r.value) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
               WHERE d.park_id = %s AND d.device_id = %s AND s.metric = 'active_power' AND r.ts >= %s AND r.ts < %s""",
            (self.park, BOUNDARY, start, end))
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def command_log(self, event_id: str) -> list[tuple[str, str, float, str, str | None]]:
        """(device, action, value, log kind, reason) of every logged step of the event's commands."""
        return [(r[0], r[1], float(r[2]), r[3], r[4]) for r in self.query(
            """SELECT c.device_id, c.action, c.value, l.kind, l.reason FROM vpp_command_log l
               JOIN vpp_commands c USING (command_id) WHERE c.event_id = %s ORDER BY l.log_id""",
            (event_id,))]

    @contextlib.asynccontextmanager
    async def edge(self, **commands: Any) -> AsyncIterator[EdgeAgent]:
        """Run the edge agent (with command handling options ``commands``) until the block ends."""
        extra = {"commands": commands} if commands else {}
        config = agent_config(self.park, self.mqtt_url, self.tmp_path / f"outbox-{uuid.uuid4().hex[:6]}.sqlite",
                              self.site.device_entries(poll_interval_s=1.0), mqtt={"require_subscriber": False},
                              **extra)
        async with running_agent(config) as agent:
            self.agent = agent
            try:
                yield agent
            finally:
                self.agent = None

    def dispatch_settings(self) -> DispatchSettings:
        return DispatchSettings(database_url=self.database_url, mqtt_url=self.mqtt_url,
                                vpp_dispatch_mqtt_url=self.mqtt_url,
                                vpp_dispatch_client_id=f"vpp-{self.park[-12:]}", vpp_dispatch_expiry_s=20.0,
                                vpp_dispatch_resend_s=2.0, vpp_dispatch_interval_minutes=1.0)

    def service(self, kind: str, ven: Callable[[EventIntake, Any], Component]) -> VppService:
        """The VPP service with one VEN of ``kind`` and the test's dispatcher settings."""
        settings = VppSettings(database_url=self.database_url, mqtt_url=self.mqtt_url,
                               vpp_vens=[kind],  # type: ignore[list-item]
                               vpp_park_ids=[self.park], vpp_mv_tick_s=1.0, vpp_mv_settle_s=8.0)

        def dispatcher(url: str, mv: LiveMv) -> Component:
            del url
            return Dispatcher(self.dispatch_settings(), on_plan=mv.set_plan)

        return VppService(settings, vens={kind: ven}, dispatcher=dispatcher)


def next_start(lead: timedelta = timedelta(seconds=50), *, metered_from: datetime | None = None) -> datetime:
    """The first whole minute at least ``lead`` from now (event windows sit on the M&V grid) whose pre-event
    minute lies wholly after ``metered_from`` (the first stored reading), so the baseline can be metered."""
    at = datetime.now(UTC) + lead
    if metered_from is not None:
        at = max(at, metered_from + timedelta(minutes=1))
    return at.replace(second=0, microsecond=0) + timedelta(minutes=1)


def configure_park(database_url: str, park: str) -> None:
    """DR settings (1-minute pre-event baseline) and the battery as the park's one flexible asset."""
    with DrStore(database_url) as store:
        store.put_settings(park, DrSettings(baseline_method="JIANGSU_RT_15MIN",
                                            baseline_overrides={"interval_minutes": 1, "pre_event_minutes": 1}))
        store.put_asset(park, AssetRecord(
            Battery(asset_id="bess", capacity_kwh=500, charge_power_max_kw=250, discharge_power_max_kw=250,
                    charge_efficiency=0.95, discharge_efficiency=0.95, soc_min_pct=10, soc_max_pct=95,
                    state=BatteryState(soc_pct=60.0, power_kw=0.0)),
            device_id=BESS, state_at=datetime.now(UTC)))  # the snapshot stands in for 30 min


@contextlib.asynccontextmanager
async def running_park(database_url: str, mqtt_url: str, park: str, tmp_path: Path) -> AsyncIterator[Loop]:
    """Simulator + ingest (the edge agent is started by the test, so it can also be left off)."""
    site = build_flex_site(port=free_port(), prefix=PREFIX, n_ev=1)
    await site.start()
    try:
        async with IngestService(ingest_settings(database_url, mqtt_url, park)) as ingest:
            await ingest.wait_subscribed()
            yield Loop(park, database_url, mqtt_url, site, tmp_path)
    finally:
        await site.stop()


async def wait_metered(loop: Loop, since: datetime) -> datetime:
    """Until the boundary meter's counter readings from ``since`` on are stored; the first one's time."""
    assert await wait_until(lambda: loop.counters_since(since) >= 3, timeout=GUARD_S)
    rows = loop.query(
        """SELECT min(r.ts) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
           WHERE d.park_id = %s AND d.device_id = %s AND s.metric = 'active_energy_import' AND r.ts >= %s""",
        (loop.park, BOUNDARY, since))
    first: datetime = rows[0][0]
    return first


def performance(loop: Loop, event_id: str) -> dict[str, Any]:
    """The live M&V document of the event, exactly what ``parkpulse vpp mv show --json`` prints (the CLI itself
    is tested in tests/vpp/test_live_mv_api.py; here the scenarios run concurrently in one process, and a CLI
    runner swapping the process-wide stdout would catch other scenarios' output)."""
    from vpp._live_mv_doc import performance_document
    from vpp._live_mv_store import LiveMvStore

    store = LiveMvStore(loop.database_url)
    try:
        found = store.get_event(event_id)
        assert found is not None, f"no live M&V row for {event_id}"
        doc: dict[str, Any] = json.loads(json.dumps(performance_document(found, store.intervals(event_id))))
    finally:
        store.close()
    return doc

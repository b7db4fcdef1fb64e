"""``parkpulse demo --dr``: one DR event through the whole VPP loop on local services, planned vs delivered.

An openleadr VTN runs on 127.0.0.1 and sends one load-reduction event (LOAD_DISPATCH, a few one-minute
intervals) to the demo park's OpenADR 2.0b VEN. The park is the simulated flexible site (boundary meter,
battery, EV charger, chiller behind one Modbus TCP gateway) read and commanded by the real edge agent;
ingest stores its readings; the VPP service plans the battery's setpoints, sends them over MQTT and
measures the event live against the baseline fixed before it started. The text returned lists, per
interval, the baseline, the planned and the delivered reduction, and the totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from openleadr import OpenADRServer

from edge.agent import EdgeAgent
from edge.config import EdgeConfig
from flex import AssetRecord, Battery, DrSettings, DrStore
from flex._assets import BatteryState
from infra.db import ParkRecord, upsert_park
from ingest import IngestService, IngestSettings
from simulators.protocol.site import SimSite, build_flex_site
from vpp._dispatch import Dispatcher
from vpp._dispatch_settings import DispatchSettings
from vpp._intake import EventIntake
from vpp._live_mv_service import LiveMv
from vpp._live_mv_store import LiveMvStore, MvIntervalRow
from vpp._oadr2 import Oadr2Ven
from vpp._oadr2_settings import Oadr2Settings
from vpp._service import Component, VppService
from vpp._settings import VppSettings

PREFIX = "dr"
INTERVAL = timedelta(minutes=1)
GUARD_S = 120.0


@dataclass(frozen=True, slots=True)
class DemoDrResult:
    """What the demo event asked for, what was planned and what the meters say was delivered."""

    park_id: str
    event_id: str
    committed_kw: float
    intervals: tuple[MvIntervalRow, ...]
    delivered_kwh: float
    first_ack_s: float | None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prepare_park(database_url: str, park_id: str) -> None:
    """The demo park (auto-registering devices), its 1-minute pre-event baseline and its battery."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        upsert_park(conn, ParkRecord(park_id, name="DR demo park"), [])
        conn.execute("UPDATE parks SET auto_register = true WHERE park_id = %s", (park_id,))
    with DrStore(database_url) as store:
        store.put_settings(park_id, DrSettings(baseline_method="JIANGSU_RT_15MIN",
                                               baseline_overrides={"interval_minutes": 1, "pre_event_minutes": 1}))
        store.put_asset(park_id, AssetRecord(
            Battery(asset_id="bess", capacity_kwh=500, charge_power_max_kw=250, discharge_power_max_kw=250,
                    charge_efficiency=0.95, discharge_efficiency=0.95, soc_min_pct=10, soc_max_pct=95,
                    state=BatteryState(soc_pct=60.0, power_kw=0.0)),
            device_id=f"{PREFIX}-bess", state_at=datetime.now(UTC)))


def _edge_config(park_id: str, mqtt_url: str, site: SimSite, work: Path) -> EdgeConfig:
    return EdgeConfig.model_validate({
        "agent_id": "demo-dr-agent", "park_id": park_id,
        "mqtt": {"url": mqtt_url, "require_subscriber": False, "backoff": {"initial_s": 0.2, "max_s": 1.0}},
        "outbox": {"path": str(work / "outbox.sqlite")}, "status_interval_s": 5.0,
        "devices": site.device_entries(poll_interval_s=1.0),
    })


class _Vtn:
    """An openleadr VTN that registers any VEN and takes its telemetry at the fastest offered rate."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.server = OpenADRServer(vtn_id="PARKPULSE_DEMO_VTN", http_host="127.0.0.1", http_port=self.port,
                                    requested_poll_freq=timedelta(seconds=1), show_fingerprint=False)
        self.reports: list[tuple[datetime, float]] = []
        self.server.add_handler("on_create_party_registration", self._register)
        self.server.add_handler("on_register_report", self._register_report)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/OpenADR2/Simple/2.0b"

    async def _register(self, info: dict[str, Any]) -> tuple[str, str]:
        name = info["ven_name"]
        return f"ven-{name}", f"reg-{name}"

    async def _register_report(  # noqa: PLR0917 - openleadr calls it with seven positional arguments
            self, ven_id: str, resource_id: str, measurement: str, unit: str, scale: str,
            min_sampling_interval: timedelta, max_sampling_interval: timedelta) -> Any:
        del ven_id, resource_id, measurement, unit, scale, max_sampling_interval
        return self.reports.extend, min_sampling_interval


async def _until(predicate: Any, what: str, timeout_s: float = GUARD_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the DR demo gave up waiting for {what} after {timeout_s:.0f} s")
        await asyncio.sleep(0.5)


async def _first_reading(database_url: str, park_id: str, since: datetime) -> datetime:
    """When the boundary meter's first counter reading from ``since`` on was taken (waits until it is stored)."""
    def query() -> datetime | None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                """SELECT min(r.ts) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
                   WHERE d.park_id = %s AND d.device_id = %s AND s.metric = 'active_energy_import' AND r.ts >= %s""",
                (park_id, f"{PREFIX}-boundary", since)).fetchone()
        return None if row is None else row[0]

    deadline = asyncio.get_running_loop().time() + GUARD_S
    while (first := await asyncio.to_thread(query)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the DR demo gave up waiting for the boundary meter's readings after {GUARD_S:.0f} s")
        await asyncio.sleep(0.5)
    return first


def _first_ack_s(database_url: str, event_id: str, received_at: datetime) -> float | None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            """SELECT min(l.at) FROM vpp_command_log l JOIN vpp_commands c USING (command_id)
               WHERE c.event_id = %s AND l.kind = 'applied'""", (event_id,)).fetchone()
    return None if row is None or row[0] is None else (row[0] - received_at).total_seconds()


async def demo_dr(database_url: str, mqtt_url: str, *, park_id: str = "demo-dr-park", reduction_kw: float = 100.0,
                  n_intervals: int = 3, lead: timedelta = timedelta(seconds=45)) -> DemoDrResult:
    """Run one event through the loop and return its live M&V once final (a few minutes of real time)."""
    await asyncio.to_thread(_prepare_park, database_url, park_id)
    site = build_flex_site(port=_free_port(), prefix=PREFIX, n_ev=1)
    vtn = _Vtn()
    await site.start()
    with contextlib.redirect_stdout(io.StringIO()):  # openleadr prints a banner; the demo's stdout is its result
        await vtn.server.run()
    try:
        with tempfile.TemporaryDirectory(prefix="parkpulse-demo-dr-") as tmp:
            ingest_settings = IngestSettings(database_url=database_url, mqtt_url=mqtt_url,
                                             client_id=f"demo-dr-ingest-{park_id}", park_filter=park_id,
                                             metrics_port=0, flush_interval_s=0.2)
            async with IngestService(ingest_settings) as ingest:
                await ingest.wait_subscribed()
                since = datetime.now(UTC)
                agent = EdgeAgent(_edge_config(park_id, mqtt_url, site, Path(tmp)))
                stop = asyncio.Event()
                agent_task = asyncio.create_task(agent.run(stop), name="demo-dr-edge-agent")
                try:
                    return await _run_event(database_url, mqtt_url, park_id, vtn, reduction_kw=reduction_kw,
                                            n_intervals=n_intervals, lead=lead, since=since)
                finally:
                    stop.set()
                    await asyncio.wait_for(agent_task, timeout=30)
    finally:
        await vtn.server.stop()
        await site.stop()


async def _run_event(database_url: str, mqtt_url: str, park_id: str, vtn: _Vtn, *, reduction_kw: float,
                     n_intervals: int, lead: timedelta, since: datetime) -> DemoDrResult:
    settings = VppSettings(database_url=database_url, mqtt_url=mqtt_url, vpp_park_ids=[park_id],
                           vpp_mv_tick_s=1.0, vpp_mv_settle_s=4.0)
    ven_settings = Oadr2Settings(database_url=database_url, vtn_url=vtn.url, park_id=park_id,
                                 ven_name="parkpulse-demo", poll_interval=timedelta(seconds=1),
                                 report_min_interval=timedelta(seconds=5))

    def ven(intake: EventIntake, values: Any) -> Component:
        return Oadr2Ven(ven_settings, intake, values)

    def dispatcher(url: str, mv: LiveMv) -> Component:
        return Dispatcher(DispatchSettings(database_url=url, mqtt_url=mqtt_url, vpp_dispatch_mqtt_url=mqtt_url,
                                           vpp_dispatch_client_id=f"demo-dr-{park_id}"[:64],
                                           vpp_dispatch_expiry_s=20.0, vpp_dispatch_resend_s=2.0,
                                           vpp_dispatch_interval_minutes=1.0), on_plan=mv.set_plan)

    async with VppService(settings, vens={"oadr2": ven}, dispatcher=dispatcher) as service:
        oadr2 = service.components["ven-oadr2"]
        await oadr2.wait_registered(GUARD_S)
        first = await _first_reading(database_url, park_id, since)
        at = max(datetime.now(UTC) + lead, first + INTERVAL)  # the pre-event minute must be metered
        start = at.replace(second=0, microsecond=0) + INTERVAL
        opted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        vtn_event_id = str(vtn.server.add_event(
            ven_id=oadr2.ven_id, signal_name="LOAD_DISPATCH", signal_type="delta",
            intervals=[{"dtstart": start + i * INTERVAL, "duration": INTERVAL, "signal_payload": -reduction_kw}
                       for i in range(n_intervals)],
            callback=opted, market_context="http://parkpulse.demo/dr"))
        answer = await asyncio.wait_for(opted, GUARD_S)
        result = oadr2.last_result(vtn_event_id)
        if answer != "optIn" or result is None:
            reason = result.opt_reason if result is not None else "no intake result"
            raise RuntimeError(f"the demo park opted out of the event: {reason}")
        store = LiveMvStore(database_url)
        try:
            end = start + n_intervals * INTERVAL

            def final() -> bool:
                event = store.get_event(result.dr_event_id)
                return event is not None and event.status == "final"

            await asyncio.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
            await _until(final, "the event's final M&V")
            event = store.get_event(result.dr_event_id)
            rows = tuple(store.intervals(result.dr_event_id))
        finally:
            store.close()
    assert event is not None
    return DemoDrResult(park_id, result.dr_event_id, event.committed_kw, rows, event.delivered_kwh or 0.0,
                        _first_ack_s(database_url, result.dr_event_id, start))


def render(result: DemoDrResult) -> str:
    """Planned vs delivered reduction per interval and in total, as plain text (80 columns)."""
    lines = [f"DR event {result.event_id} on park {result.park_id}: committed {result.committed_kw:.1f} kW",
             f"{'interval (UTC)':<22}{'baseline kW':>13}{'metered kW':>12}{'planned kW':>12}{'delivered kW':>14}"]
    planned_kwh = 0.0
    for row in result.intervals:
        planned = row.planned_kw if row.planned_kw is not None else result.committed_kw
        planned_kwh += planned * INTERVAL.total_seconds() / 3600.0
        metered = "—" if row.metered_kw is None else f"{row.metered_kw:.1f}"
        delivered = "—" if row.reduction_kw is None else f"{row.reduction_kw:.1f}"
        lines.append(f"{row.ts:%Y-%m-%d %H:%M:%S}   {row.baseline_kw:>13.1f}{metered:>12}{planned:>12.1f}"
                     f"{delivered:>14}")
    ratio = result.delivered_kwh / planned_kwh if planned_kwh else 0.0
    lines.append(f"planned {planned_kwh:.2f} kWh, delivered {result.delivered_kwh:.2f} kWh ({ratio:.0%})")
    if result.first_ack_s is not None:
        lines.append(f"event start → first setpoint acknowledged by the battery: {result.first_ack_s:.2f} s "
                     "(setpoints go out at each interval's start)")
    return "\n".join(lines)


def run_demo_dr(database_url: str, mqtt_url: str, *, park_id: str = "demo-dr-park", reduction_kw: float = 100.0,
                n_intervals: int = 3) -> str:
    """Run the DR demo (blocking, a few minutes) and return its planned-vs-delivered text."""
    return render(asyncio.run(demo_dr(database_url, mqtt_url, park_id=park_id, reduction_kw=reduction_kw,
                                      n_intervals=n_intervals)))

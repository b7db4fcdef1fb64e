"""VPP loop benchmark: event received → first setpoint acknowledged by the device, and delivered ÷ committed.

Runs N short load-reduction events (default 100) through the real loop on the local services: each event
enters the intake as a VEN hands it over (``accept_async``; the VEN's own poll interval comes on top and is
reported separately), D1's dispatcher plans it and sends the battery's setpoint over Mosquitto, the real
edge agent writes it over Modbus TCP to the simulated battery, and the device's acknowledgement comes back.
To fit in a few minutes the events are short (``--event-s`` seconds) and run on ``--parks`` simulated parks
in parallel, one after the other within each park.

* latency: ``received_at`` of the event → the dispatcher's receipt of the first ``applied`` acknowledgement
  (``vpp_command_log``), p50 and p99 over all events;
* delivered ÷ committed: the boundary meter's mean power over the event's active seconds against its mean
  over the second before the event (the simulated meter's own value, sampled in-process every 0.2 s, which
  is what the meter reads), divided by the committed kW; the mean over all events. Events this short
  include the battery's ramp (50 kW/s) and the command round trip, which the ratio shows honestly.

Prints one JSON line. Usage: ``.venv/bin/python scripts/bench_vpp.py [--events 100] [--parks 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from edge.agent import EdgeAgent
from flex import DrService, DrStore
from infra.settings import ServiceSettings
from ingest import IngestService, IngestSettings
from parkpulse._demo_dr import PREFIX, _edge_config, _free_port, _prepare_park
from simulators.protocol.site import SimSite, build_flex_site
from vpp._dispatch import Dispatcher
from vpp._dispatch_settings import DispatchSettings
from vpp._event_model import EventInterval, EventSource, EventStatus, IncomingEvent, IntakeResult, SignalKind
from vpp._intake import DrCapabilities, EventIntake
from vpp._intake_store import IntakeStore


@dataclass
class ParkRun:
    """One simulated park and what its events measured."""

    park_id: str
    site: SimSite
    received: dict[str, datetime] = field(default_factory=dict)  # dr_event_id → received_at
    ratios: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _agent(agent: EdgeAgent) -> AsyncIterator[EdgeAgent]:
    """Run an edge agent until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name="bench-edge-agent")
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _sample(site: SimSite, seconds: float) -> float:
    """Mean boundary power over ``seconds`` (sampled every 0.2 s)."""
    meter = site.meters[f"{PREFIX}-boundary"]
    values: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        values.append(float(meter.power_kw(datetime.now(UTC))))
        await asyncio.sleep(0.2)
    return statistics.fmean(values)


async def _events(run: ParkRun, intake: EventIntake, n: int, *, kw: float, event_s: float) -> None:
    for i in range(n):
        await asyncio.sleep(1.0)  # the battery settles back between events
        before = await _sample(run.site, 1.0)
        now = datetime.now(UTC)
        event = IncomingEvent(
            source=EventSource.OADR2, vtn_id="bench-vtn", vtn_event_id=f"{run.park_id}-{i}-{uuid.uuid4().hex[:6]}",
            modification_number=0, status=EventStatus.ACTIVE, park_id=run.park_id, signal_name="LOAD_DISPATCH",
            signal_kind=SignalKind.TARGET_KW, received_at=now,
            intervals=(EventInterval(now, timedelta(seconds=event_s), kw),))
        result = await intake.accept_async(event)
        if result.committed_kw <= 0:
            raise RuntimeError(f"park {run.park_id} opted out of bench event {i}: {result.opt_reason}")
        run.received[result.dr_event_id] = now
        remaining = (now + timedelta(seconds=event_s) - datetime.now(UTC)).total_seconds()
        during = await _sample(run.site, max(0.2, remaining))
        run.ratios.append((before - during) / result.committed_kw)


async def bench(database_url: str, mqtt_url: str, *, n_events: int, n_parks: int, kw: float,
                event_s: float) -> dict[str, Any]:
    runs: list[ParkRun] = []
    for _ in range(n_parks):
        park_id = f"bench-vpp-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(_prepare_park, database_url, park_id)
        runs.append(ParkRun(park_id, build_flex_site(port=_free_port(), prefix=PREFIX, n_ev=1)))
    intake_store = IntakeStore(database_url)
    dr_store = DrStore(database_url)
    intake = EventIntake(intake_store, DrCapabilities(DrService(dr_store), intake_store))
    settings = DispatchSettings(database_url=database_url, mqtt_url=mqtt_url, vpp_dispatch_mqtt_url=mqtt_url,
                                vpp_dispatch_client_id=f"bench-vpp-{uuid.uuid4().hex[:6]}",
                                vpp_dispatch_expiry_s=10.0, vpp_dispatch_resend_s=1.0,
                                vpp_dispatch_interval_minutes=1.0, vpp_dispatch_tick_s=0.05)
    async with contextlib.AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parkpulse-bench-vpp-")))
        stack.callback(dr_store.close)
        stack.callback(intake_store.close)
        for run in runs:
            await run.site.start()
            stack.push_async_callback(run.site.stop)
            ingest = IngestService(IngestSettings(database_url=database_url, mqtt_url=mqtt_url,
                                                  client_id=f"bench-ingest-{run.park_id}", park_filter=run.park_id,
                                                  metrics_port=0, flush_interval_s=0.2))
            await stack.enter_async_context(ingest)
            await ingest.wait_subscribed()
            work = tmp / run.park_id
            work.mkdir()
            await stack.enter_async_context(_agent(EdgeAgent(_edge_config(run.park_id, mqtt_url, run.site, work))))
        dispatcher = await stack.enter_async_context(Dispatcher(settings))

        async def dispatch(result: IntakeResult) -> None:
            await dispatcher.on_event(result)

        intake.add_listener(dispatch)
        await dispatcher.wait_connected()
        await asyncio.sleep(5.0)  # the agents connect and the devices are read once
        per_park = -(-n_events // n_parks)
        counts = [min(per_park, n_events - i * per_park) for i in range(n_parks)]
        started = time.monotonic()
        await asyncio.gather(*(_events(r, intake, c, kw=kw, event_s=event_s)
                               for r, c in zip(runs, counts, strict=True) if c > 0))
        wall_s = time.monotonic() - started
        await asyncio.sleep(2.0)
    latencies = _latencies(database_url, runs)
    ratios = [r for run in runs for r in run.ratios]
    return {
        "benchmark": "vpp_loop", "events": len(ratios), "parks": n_parks, "event_s": event_s, "committed_kw": kw,
        "acked_events": len(latencies),
        "first_ack_p50_s": round(_pct(latencies, 0.5), 3) if latencies else None,
        "first_ack_p99_s": round(_pct(latencies, 0.99), 3) if latencies else None,
        "first_ack_max_s": round(max(latencies), 3) if latencies else None,
        "delivered_over_committed": round(statistics.fmean(ratios), 3) if ratios else None,
        "wall_s": round(wall_s, 1),
        "note": "latency excludes the VEN's poll interval (openleadr VTN: up to the requested poll frequency)",
    }


def _latencies(database_url: str, runs: list[ParkRun]) -> list[float]:
    received = {e: t for run in runs for e, t in run.received.items()}
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            """SELECT c.event_id, min(l.at) FROM vpp_command_log l JOIN vpp_commands c USING (command_id)
               WHERE c.event_id = ANY(%s) AND l.kind = 'applied' AND c.action <> 'release'
               GROUP BY c.event_id""", (list(received),)).fetchall()
    return [(at - received[event_id]).total_seconds() for event_id, at in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--parks", type=int, default=4)
    parser.add_argument("--kw", type=float, default=50.0, help="committed reduction per event")
    parser.add_argument("--event-s", type=float, default=4.0, help="event duration in seconds")
    args = parser.parse_args()
    services = ServiceSettings()  # type: ignore[call-arg]
    result = asyncio.run(bench(services.database_url, services.mqtt_url, n_events=args.events, n_parks=args.parks,
                               kw=args.kw, event_s=args.event_s))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

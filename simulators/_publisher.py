"""Publishing a simulated park over MQTT: births first, then one readings message per device per batch.

The I/O sits behind :class:`MessageSink` (one ``publish`` coroutine): :func:`run_simulation` plugs in an
aiomqtt 2.x client (MQTT v5, QoS 1, one client per process), tests can plug in a list. Publishes run
concurrently, bounded by a semaphore, and each awaits its PUBACK; paho sends them in call order, so a
device's messages reach the broker in ``seq`` order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol
from zoneinfo import ZoneInfo

import aiomqtt

from infra.settings import parse_mqtt_url
from schemas import METRICS, TopicKind, build_topic
from simulators._device_base import DeviceModel
from simulators._devices import ParkModel
from simulators._ev import EvSession
from simulators._faults import FaultInjector
from simulators._messages import (
    MAX_READINGS_PER_MESSAGE,
    PublishedReading,
    encode_birth,
    encode_malformed,
    encode_readings,
    encode_status,
)
from simulators._scenario import Scenario
from simulators._timing import SimulationWindow, batch_end, batch_index, parse_duration
from simulators.errors import PublishError

logger = logging.getLogger(__name__)

QOS: Final = 1
DEFAULT_MAX_IN_FLIGHT: Final = 256
PUBLISH_TIMEOUT_S: Final = 60.0

ProgressCallback = Callable[[float, float], None]
"""Called as ``progress(simulated_seconds_done, simulated_seconds_total)`` after each batch."""


class MessageSink(Protocol):
    """Where messages go: returns once the message is acknowledged (PUBACK for QoS 1)."""

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        """Publish one message."""


@dataclass(slots=True)
class SimulationReport:
    """What a simulation run published. ``counts`` and ``records`` cover valid, first-time readings only."""

    park_id: str
    simulated_start: datetime
    simulated_end: datetime
    sample_interval_s: int
    batch_interval_s: int
    speed: float
    seed: int
    devices: int = 0
    births_published: int = 0
    status_published: int = 0
    messages_published: int = 0      # valid readings messages (first transmissions)
    readings_published: int = 0      # readings in those messages
    duplicates_published: int = 0    # identical re-publications of a valid message
    malformed_published: int = 0     # invalid payloads; their readings are not counted or recorded
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    records: list[PublishedReading] | None = None
    ev_sessions: list[EvSession] = field(default_factory=list)  # sessions that ended inside the window

    @property
    def ev_unmet_energy_kwh(self) -> dict[str, float]:
        """Energy the EVs that left during the window did not get, per charger (e.g. because of a cap)."""
        unmet: dict[str, float] = {}
        for session in self.ev_sessions:
            unmet[session.charger_id] = unmet.get(session.charger_id, 0.0) + session.unmet_kwh
        return unmet

    @property
    def readings_per_second(self) -> float:
        """Valid readings published per wall-clock second."""
        return self.readings_published / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def summary(self) -> list[tuple[str, str]]:
        """``(label, value)`` rows for printing."""
        return [
            ("park", self.park_id),
            ("simulated window", f"{self.simulated_start.isoformat()} .. {self.simulated_end.isoformat()}"),
            ("sample / batch interval", f"{self.sample_interval_s} s / {self.batch_interval_s} s"),
            ("speed, seed", f"{self.speed:g}, {self.seed}"),
            ("devices", str(self.devices)),
            ("births + status messages", f"{self.births_published} + {self.status_published}"),
            ("readings messages", str(self.messages_published)),
            ("readings", str(self.readings_published)),
            ("series (device, metric)", str(len(self.counts))),
            ("duplicates / malformed", f"{self.duplicates_published} / {self.malformed_published}"),
            ("EV sessions ended / unmet energy",
             f"{len(self.ev_sessions)} / {sum(self.ev_unmet_energy_kwh.values()):.3f} kWh"),
            ("wall time", f"{self.wall_time_s:.2f} s"),
            ("readings per second", f"{self.readings_per_second:,.0f}"),
        ]


class _InFlight:
    """Bounded concurrent publishing; the first failure is re-raised by the next ``submit`` or ``drain``."""

    def __init__(self, sink: MessageSink, limit: int) -> None:
        self._sink = sink
        self._slots = asyncio.Semaphore(limit)
        self._tasks: set[asyncio.Task[None]] = set()
        self._error: BaseException | None = None

    async def submit(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Start publishing once a slot is free; tasks start (and so send) in submission order."""
        if self._error is not None:
            raise self._error
        await self._slots.acquire()
        task = asyncio.create_task(self._send(topic, payload, retain), name=f"simulator.publish[{topic}]")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, topic: str, payload: bytes, retain: bool) -> None:
        try:
            await self._sink.publish(topic, payload, qos=QOS, retain=retain)
        except Exception as exc:  # noqa: BLE001 - kept and re-raised in the producer by submit/drain
            if self._error is None:
                self._error = exc
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait for every submitted publish to be acknowledged."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending)
        if self._error is not None:
            raise self._error

    def cancel(self) -> None:
        """Abandon the publishes still waiting for their PUBACK (the run failed or was cancelled)."""
        for task in self._tasks:
            task.cancel()


def _wall_now() -> datetime:
    return datetime.now(UTC)


async def publish_simulation(
    scenario: Scenario,
    sink: MessageSink,
    *,
    duration: timedelta | str | float,
    speed: float,
    seed: int,
    record: bool = False,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    wall_clock: Callable[[], datetime] = _wall_now,
) -> SimulationReport:
    """Simulate ``scenario`` over the window ending at ``now`` and publish it into ``sink``.

    The transport-independent core of :func:`run_simulation`; see there for the parameters.
    """
    if speed < 0:
        raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
    sim = scenario.simulation
    window = SimulationWindow.ending_at(now or wall_clock(), parse_duration(duration), sim.sample_interval_s)
    model = ParkModel(scenario, seed=seed, start=window.start, sample_interval_s=sim.sample_interval_s)
    park_id = scenario.park.id
    report = SimulationReport(park_id, window.start, window.end, sim.sample_interval_s, sim.batch_interval_s, speed,
                              seed, devices=len(model.devices), records=[] if record else None)
    run = _Run(scenario, model, report, in_flight=_InFlight(sink, max_in_flight),
               faults=FaultInjector(scenario.faults, seed), wall_clock=wall_clock)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        await run.publish_births()
        t0 = loop.time()
        rows: dict[str, list[tuple[datetime, str, dict[str, float]]]] = {d.spec.id: [] for d in model.devices}
        tz = ZoneInfo(scenario.park.timezone)
        current = batch_index(window.start + timedelta(seconds=sim.sample_interval_s), sim.batch_interval_s)
        for ts, values in model.run(window.n_samples):
            index = batch_index(ts, sim.batch_interval_s)
            if index != current:
                await run.flush(rows, min(batch_end(current, sim.batch_interval_s), window.end), t0, progress)
                current = index
            ts_text = ts.astimezone(tz).isoformat()
            for device_id, device_values in values.items():
                rows[device_id].append((ts, ts_text, device_values))
        await run.flush(rows, window.end, t0, progress)
        await run.publish_status(online=False)
        await run.in_flight.drain()
    except BaseException:
        run.in_flight.cancel()
        raise
    report.counts = dict(run.counts)
    report.ev_sessions = model.ev_sessions()
    report.wall_time_s = time.perf_counter() - started
    logger.info("published %d readings in %d messages for %d devices in %.2f s", report.readings_published,
                report.messages_published, report.devices, report.wall_time_s)
    return report


class _Run:
    """State of one publishing run: sequence numbers, counters and the pacing of batches."""

    def __init__(self, scenario: Scenario, model: ParkModel, report: SimulationReport, *, in_flight: _InFlight,
                 faults: FaultInjector, wall_clock: Callable[[], datetime]) -> None:
        self.scenario, self.model, self.report = scenario, model, report
        self.in_flight, self.faults, self.wall_clock = in_flight, faults, wall_clock
        self.park_id = scenario.park.id
        self.seq: dict[str, int] = {d.spec.id: 0 for d in model.devices}
        self.counts: Counter[tuple[str, str]] = Counter()
        self.topics = {d.spec.id: build_topic(self.park_id, d.spec.id, TopicKind.READINGS) for d in model.devices}
        self.silent_device = scenario.faults.silent_device
        self.silent_from = report.simulated_end - timedelta(seconds=scenario.faults.silent_last_s)

    async def publish_births(self) -> None:
        """Retained birth then online status for every device, all acknowledged before any data."""
        sent_at = self.wall_clock()
        for d in self.model.devices:
            payload = encode_birth(d.spec, park_id=self.park_id, metrics=d.metrics,
                                   sample_interval_s=self.scenario.simulation.sample_interval_s, sent_at=sent_at)
            await self.in_flight.submit(build_topic(self.park_id, d.spec.id, TopicKind.BIRTH), payload, retain=True)
            self.report.births_published += 1
        await self.in_flight.drain()
        await self.publish_status(online=True)
        await self.in_flight.drain()

    async def publish_status(self, *, online: bool) -> None:
        """Retained status of every device (online at the start, offline after a clean finish)."""
        sent_at = self.wall_clock()
        for d in self.model.devices:
            await self.in_flight.submit(build_topic(self.park_id, d.spec.id, TopicKind.STATUS),
                                        encode_status(d.spec.id, online=online, sent_at=sent_at), retain=True)
            self.report.status_published += 1

    async def flush(self, rows: dict[str, list[tuple[datetime, str, dict[str, float]]]], until: datetime,
                    t0: float, progress: ProgressCallback | None) -> None:
        """Wait until the batch is due at the run's speed, then publish each device's buffered samples."""
        report = self.report
        done_s = (until - report.simulated_start).total_seconds()
        if report.speed > 0:
            delay = t0 + done_s / report.speed - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
        sent_at = self.wall_clock()
        for device in self.model.devices:
            samples = rows[device.spec.id]
            if samples:
                await self._publish_device(device, samples, sent_at)
                samples.clear()
        if progress is not None:
            progress(done_s, (report.simulated_end - report.simulated_start).total_seconds())

    async def _publish_device(self, device: DeviceModel, samples: list[tuple[datetime, str, dict[str, float]]],
                              sent_at: datetime) -> None:
        device_id, metrics, report = device.spec.id, device.metrics, self.report
        if device_id == self.silent_device:  # the meter that went quiet publishes nothing after it did
            samples = [s for s in samples if s[0] < self.silent_from]
        per_message = max(1, MAX_READINGS_PER_MESSAGE // len(metrics))
        for first in range(0, len(samples), per_message):
            chunk = samples[first : first + per_message]
            payload = encode_readings(device_id, self._next_seq(device_id), sent_at,
                                      [(text, values) for _, text, values in chunk], metrics)
            topic = self.topics[device_id]
            await self.in_flight.submit(topic, payload)
            report.messages_published += 1
            report.readings_published += len(chunk) * len(metrics)
            for metric in metrics:
                self.counts[device_id, metric] += len(chunk)
            if report.records is not None:
                report.records.extend(PublishedReading(device_id, m, ts, values[m], METRICS[m].unit)
                                      for ts, _, values in chunk for m in metrics)
            faults = self.faults.decide(device_id)
            if faults.duplicate:
                await self.in_flight.submit(topic, payload)
                report.duplicates_published += 1
            if faults.malformed is not None:
                bad = encode_malformed(faults.malformed, device_id=device_id, seq=self._next_seq(device_id),
                                       sent_at=sent_at, ts=chunk[-1][1], valid_payload=payload, metric=metrics[0])
                await self.in_flight.submit(topic, bad)
                report.malformed_published += 1

    def _next_seq(self, device_id: str) -> int:
        seq = self.seq[device_id]
        self.seq[device_id] = seq + 1
        return seq


class _MqttSink:
    """:class:`MessageSink` over a connected aiomqtt client."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        await self._client.publish(topic, payload, qos=qos, retain=retain, timeout=PUBLISH_TIMEOUT_S)


async def run_simulation(
    scenario: Scenario,
    mqtt_url: str,
    *,
    duration: timedelta | str | float,
    speed: float,
    seed: int,
    record: bool = False,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> SimulationReport:
    """Simulate a park and publish it to the broker at ``mqtt_url``; the API tests and the demo use.

    Args:
        scenario: The park to simulate (see :func:`load_scenario`).
        mqtt_url: ``mqtt://[user:password@]host[:port]`` (``mqtts://`` for TLS).
        duration: Simulated span (``timedelta``, seconds, or text like ``"15m"``, ``"1d"``); the window
            ends at ``now`` floored to the sample interval, so no timestamp is ever in the future.
        speed: Simulated seconds per wall second (1 = real time, 1440 = a day per minute, 0 = as fast as
            the broker acknowledges).
        seed: Same seed, scenario and window give identical readings.
        record: Keep every valid published reading in ``report.records`` (to compare with the database).
        progress: Called with ``(simulated_seconds_done, simulated_seconds_total)`` after each batch.
        now: End of the simulated window (default: the current time).
        max_in_flight: Publishes awaiting their PUBACK at any time.

    Raises:
        PublishError: The broker could not be reached, or a publish failed or timed out.
    """
    endpoint = parse_mqtt_url(mqtt_url)
    client = aiomqtt.Client(
        endpoint.host, endpoint.port, username=endpoint.username, password=endpoint.password,
        identifier=f"parkpulse-sim-{os.getpid()}-{secrets.token_hex(4)}", protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=max_in_flight, tls_context=ssl.create_default_context() if endpoint.tls else None,
    )
    client.pending_calls_threshold = max_in_flight + 16
    safe_url = f"{'mqtts' if endpoint.tls else 'mqtt'}://{endpoint.host}:{endpoint.port}"
    try:
        async with client:
            logger.info("connected to %s, simulating park %s", safe_url, scenario.park.id)
            return await publish_simulation(scenario, _MqttSink(client), duration=duration, speed=speed, seed=seed,
                                            record=record, progress=progress, now=now, max_in_flight=max_in_flight)
    except aiomqtt.MqttError as exc:
        raise PublishError(safe_url, str(exc)) from exc

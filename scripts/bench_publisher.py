"""The ingest benchmark's publisher: one process per step, QoS 1, bounded in-flight, never a traceback.

Each step runs in a process of its own (spawned: a core's worth of GIL for building and sending payloads)
and sends its result back over a pipe: counts of attempted, acknowledged and unacknowledged publishes,
the publishing time, errors by kind, and the log of (device, seq, publish time) that latency is measured
from. A PUBACK that does not come within the timeout, or a lost connection, becomes a counted figure.
Messages are numbered across steps (``first_message``): message k is device ``k % devices``, seq
``k // devices``, and its readings are that device's register from ``seq * per_message`` on, so every
reading of a run is new.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt
import orjson

from infra.settings import parse_mqtt_url
from schemas import build_topic

PARK = "bench-park"


class Payloads:
    """Builds readings messages fast, so the publisher is not what saturates first.

    The readings of message ``seq`` are the same for every device (same times, same register values), so
    their JSON is serialised once per seq and spliced into each device's envelope (about 6 µs a message);
    ``sent_at`` is the build time.
    """

    def __init__(self, origin: datetime, per_message: int, spacing_s: float) -> None:
        self._origin, self._n, self._spacing = origin, per_message, timedelta(seconds=spacing_s)
        self._readings: dict[int, bytes] = {}

    def build(self, device: str, seq: int) -> bytes:
        """Message ``seq`` of ``device``: readings ``seq * n`` to ``seq * n + n - 1`` of its register."""
        body = self._readings.get(seq)
        if body is None:
            if len(self._readings) > 1024:
                self._readings.clear()
            first = seq * self._n
            body = self._readings[seq] = orjson.dumps(
                [{"ts": (self._origin + self._spacing * (first + i)).isoformat(), "metric": "active_energy_import",
                  "value": (first + i) * 0.25, "unit": "kWh"} for i in range(self._n)])
        return b"".join((b'{"v":1,"device":', orjson.dumps(device), b',"seq":', str(seq).encode(),
                         b',"sent_at":"', datetime.now(UTC).isoformat().encode(), b'","readings":', body, b"}"))


@dataclass(frozen=True, slots=True)
class PublishSpec:
    """One publishing step: messages ``first_message …`` at ``rate`` readings/s (0: as fast as acknowledged)."""

    mqtt_url: str
    origin_iso: str
    devices: int
    per_message: int
    spacing_s: float
    rate: float
    duration_s: float
    first_message: int = 0
    max_messages: int | None = None
    inflight: int = 1000
    timeout_s: float = 10.0


async def _publish(spec: PublishSpec) -> dict[str, Any]:
    """Publish at QoS 1 with at most ``spec.inflight`` unacknowledged messages; never raises.

    A PUBACK that does not come within ``timeout_s`` (broker overloaded) is counted as unacknowledged, and a
    lost connection ends the step early; both are reported in the result, with the publish log so far.
    """
    ep = parse_mqtt_url(spec.mqtt_url)
    payloads = Payloads(datetime.fromisoformat(spec.origin_iso), spec.per_message, spec.spacing_s)
    interval = spec.per_message / spec.rate if spec.rate > 0 else 0.0
    limit = spec.max_messages if spec.max_messages is not None else (
        int(spec.rate * spec.duration_s / spec.per_message) if spec.rate > 0 else 1 << 62)
    log: list[tuple[int, int, float]] = []
    counts = {"acked": 0, "unacked": 0}
    errors: Counter[str] = Counter()
    inflight = asyncio.Semaphore(spec.inflight)
    tasks: set[asyncio.Task[None]] = set()
    started = finished = time.perf_counter()

    async def one(client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        try:
            await client.publish(topic, payload, qos=1, timeout=spec.timeout_s)
            counts["acked"] += 1
        except aiomqtt.MqttError as exc:
            counts["unacked"] += 1
            errors[str(exc)[:120]] += 1
        finally:
            inflight.release()

    try:
        async with aiomqtt.Client(ep.host, ep.port, protocol=aiomqtt.ProtocolVersion.V5,
                                  identifier=f"bench-publisher-{os.getpid()}",
                                  max_inflight_messages=spec.inflight) as client:
            client.pending_calls_threshold = 1 << 30
            started = time.perf_counter()
            for k in range(limit):
                now = time.perf_counter()
                if now - started >= spec.duration_s:
                    break
                if interval and (delay := started + k * interval - now) > 0:
                    await asyncio.sleep(delay)
                await inflight.acquire()
                n = spec.first_message + k
                device, seq = n % spec.devices, n // spec.devices
                payload = payloads.build(f"m-{device:04d}", seq)
                log.append((device, seq, time.time()))
                task = asyncio.create_task(one(client, build_topic(PARK, f"m-{device:04d}"), payload))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            finished = time.perf_counter()
            if tasks:  # wait for the last PUBACKs; whatever is still out is unacknowledged
                _, late = await asyncio.wait(set(tasks), timeout=spec.timeout_s + 5)
                for task in late:
                    task.cancel()
                counts["unacked"] += len(late)
    except aiomqtt.MqttError as exc:
        errors[f"connection: {str(exc)[:120]}"] += 1
        finished = max(finished, time.perf_counter()) if finished > started else time.perf_counter()
    attempted = len(log)
    return {"attempted": attempted, "acked": counts["acked"], "unacked": attempted - counts["acked"],
            "publish_s": round(finished - started, 3), "errors": dict(errors), "log": log}


def _publisher_main(spec: PublishSpec, conn: Connection) -> None:
    """Child process: run one step and send its result over ``conn`` (the parent never reads a file)."""
    try:
        result = asyncio.run(_publish(spec))
    except Exception as exc:  # noqa: BLE001 -- reported to the parent as a figure, never a traceback
        result = {"attempted": 0, "acked": 0, "unacked": 0, "publish_s": 0.0,
                  "errors": {f"publisher crashed: {type(exc).__name__}: {exc}"[:200]: 1}, "log": []}
    conn.send(result)
    conn.close()


def publish_step(spec: PublishSpec) -> dict[str, Any]:
    """Run one publishing step in its own process (so it has a core's worth of GIL) and return its result."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_publisher_main, args=(spec, child), name="bench-publisher")
    proc.start()
    child.close()
    result: dict[str, Any] | None = None
    wait_s = spec.duration_s + 2 * spec.timeout_s + 60
    if parent.poll(wait_s):
        try:
            result = parent.recv()
        except EOFError:
            result = None
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result is None:
        result = {"attempted": 0, "acked": 0, "unacked": 0, "publish_s": 0.0, "log": [],
                  "errors": {f"publisher process ended without a result (exit code {proc.exitcode})": 1}}
    return result

"""Property: whatever arrives, the real ingest keeps running and every message ends stored or quarantined.

Hypothesis generates arbitrary bytes, arbitrary JSON (NUL, lone surrogates, huge and negative numbers,
deep nesting, 10⁵ keys) and mutated readings, birth and status messages. Each example publishes them at
QoS 1 to the real Mosquitto, where one ingest instance (in its own thread and event loop) stores them in
the real TimescaleDB. Every message goes to a device of its own, so its outcome can be read back.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from infra.settings import parse_mqtt_url
from ingest import IngestService
from schemas import TopicKind, build_topic
from tests.ingest.helpers import ingest_settings

pytestmark = [pytest.mark.services, pytest.mark.slow]

NOW = datetime.now(UTC).replace(microsecond=0)
_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)  # NUL, controls, lone surrogates
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
            | st.floats(allow_nan=True, allow_infinity=True) | _text)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                     max_leaves=12)


def _valid_reading(i: int) -> dict[str, Any]:
    return {"ts": (NOW - timedelta(minutes=i + 1)).isoformat(), "metric": "active_energy_import",
            "value": 1000.0 + i, "unit": "kWh"}


@st.composite
def _readings_message(draw: st.DrawFn, device: str) -> bytes:
    """A valid readings message with a few members replaced or added by arbitrary values."""
    msg: dict[str, Any] = {"v": 1, "device": device, "seq": draw(st.integers(0, 10)),
                           "readings": [_valid_reading(i) for i in range(draw(st.integers(1, 4)))]}
    for _ in range(draw(st.integers(0, 3))):
        target = draw(st.sampled_from(["top", "reading"]))
        key = draw(st.sampled_from(["v", "device", "seq", "sent_at", "ts", "metric", "value", "unit", "quality"])
                   | _text)
        value = draw(_json)
        if target == "top":
            msg[key] = value
        else:
            msg["readings"][0][key] = value
    return json.dumps(msg, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


@st.composite
def _birth_or_status(draw: st.DrawFn, device: str, kind: TopicKind) -> bytes:
    base: dict[str, Any] = ({"v": 1, "device": device, "kind": "electricity_meter"} if kind is TopicKind.BIRTH
                            else {"v": 1, "device": device, "online": True})
    base.update(draw(st.dictionaries(_text, _json, max_size=3)))
    return json.dumps(base).encode()


@st.composite
def _message(draw: st.DrawFn, park: str) -> tuple[str, bytes]:
    device = f"f-{uuid.uuid4().hex[:12]}"
    kind = draw(st.sampled_from([TopicKind.READINGS, TopicKind.BIRTH, TopicKind.STATUS]))
    shape = draw(st.sampled_from(["bytes", "json", "structured"]))
    if shape == "bytes":
        payload = draw(st.binary(max_size=300))
    elif shape == "json":
        payload = json.dumps(draw(_json)).encode()
    elif kind is TopicKind.READINGS:
        payload = draw(_readings_message(device))
    else:
        payload = draw(_birth_or_status(device, kind))
    return build_topic(park, device, kind), payload


class _IngestThread:
    """One ingest instance running in a thread of its own, so hypothesis examples stay synchronous."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.service: IngestService | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="fuzz-ingest", daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with IngestService(self.settings) as service:
            self.service = service
            await service.wait_subscribed()
            self.ready.set()
            await service.wait()

    def start(self) -> None:
        self._thread.start()
        assert self.ready.wait(20), "ingest did not subscribe"

    def stop(self) -> None:
        if self._loop is not None and self.service is not None:
            self._loop.call_soon_threadsafe(self.service.request_stop)
        self._thread.join(30)

    @property
    def alive(self) -> bool:
        runner = self.service._runner if self.service else None
        return self._thread.is_alive() and runner is not None and not runner.done()


@pytest.fixture(scope="module")
def fuzz_park(service_endpoints: Any) -> Iterator[tuple[str, _IngestThread, str]]:
    park = f"t-fuzz-{uuid.uuid4().hex[:8]}"
    url = service_endpoints.database_url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (park,))
    svc = _IngestThread(ingest_settings(url, service_endpoints.mqtt_url, park, quarantine_burst=1e9,
                                        max_future_s=300.0, metrics_port=-1))
    svc.start()
    try:
        yield park, svc, service_endpoints.mqtt_url
    finally:
        svc.stop()


def _publish(mqtt_url: str, messages: list[tuple[str, bytes]]) -> None:
    ep = parse_mqtt_url(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fuzz-pub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.connect(ep.host, ep.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.loop_stop()
        client.disconnect()


def _outcome(conn: psycopg.Connection, park: str, device: str, kind: str) -> str | None:
    """'quarantined', 'stored', or None while nothing is there yet."""
    if conn.execute("SELECT 1 FROM quarantine WHERE park_id = %s AND device_id = %s", (park, device)).fetchone():
        return "quarantined"
    query = {
        "readings": """SELECT 1 FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
                       WHERE d.park_id = %s AND d.device_id = %s LIMIT 1""",
        "birth": "SELECT 1 FROM devices WHERE park_id = %s AND device_id = %s AND birth_at IS NOT NULL",
        "status": """SELECT 1 FROM device_status s JOIN devices d USING (device_key)
                     WHERE d.park_id = %s AND d.device_id = %s AND s.status_at IS NOT NULL""",
    }[kind]
    return "stored" if conn.execute(query, (park, device)).fetchone() else None


_HUGE_OBJECT = ("{" + ",".join(f'"k{i}":{i}' for i in range(100_000)) + "}").encode()
_DEEP = b"[" * 5000 + b"]" * 5000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
@example(data=None)
def test_every_message_ends_stored_or_quarantined_and_ingest_never_exits(fuzz_park, database_url, data):
    park, svc, mqtt_url = fuzz_park
    if data is None:  # the explicit extremes: 10⁵ keys, 5,000 levels of nesting, NUL and a lone surrogate
        messages = [(build_topic(park, f"f-{uuid.uuid4().hex[:12]}", kind), payload)
                    for kind in (TopicKind.READINGS, TopicKind.BIRTH)
                    for payload in (_HUGE_OBJECT, _DEEP, b'{"v":1,"device":"x","kind":"a\\u0000"}', b'"\\ud800"')]
    else:
        messages = data.draw(st.lists(_message(park), min_size=1, max_size=6))
    _publish(mqtt_url, messages)
    # an empty birth or status only clears a retained copy: ingest ignores it by design
    pending = {(topic.split("/")[3], topic.split("/")[4]) for topic, payload in messages
               if payload or topic.endswith("/readings")}
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    with psycopg.connect(database_url, autocommit=True) as conn:
        while pending and datetime.now(UTC) < deadline:
            pending = {(d, k) for d, k in pending if _outcome(conn, park, d, k) is None}
            if pending:
                threading.Event().wait(0.05)
    assert svc.alive, "the ingest service exited"
    assert not pending, f"messages neither stored nor quarantined: {sorted(pending)}"

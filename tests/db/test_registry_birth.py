"""The operator's registry against a device's birth message, through the real ingest path (Mosquitto →
ingest → TimescaleDB): attributes the operator set survive every birth; the others are the birth's."""

from __future__ import annotations

import json

import psycopg
import pytest

from infra.db import save_device, save_park, save_site
from ingest import IngestService
from schemas import TopicKind, build_topic
from tests.fixtures.services import unique_park_id
from tests.ingest.helpers import ingest_settings, publish, wait_until

pytestmark = pytest.mark.services

ATTRIBUTES = "kind, carrier, metering_level, site_id, role, profile, register_max, multiplier, rated_power_kw, firmware"


def birth(marker: int, **fields: object) -> bytes:
    return json.dumps({"v": 1, "device": "ws-b", "marker": marker, **fields}).encode()


def attributes(conn: psycopg.Connection, park_id: str) -> dict[str, object]:
    cur = conn.execute(f"SELECT {ATTRIBUTES} FROM devices WHERE park_id = %s AND device_id = 'ws-b'", (park_id,))
    row = cur.fetchone()
    assert row is not None
    return dict(zip([c.name for c in cur.description or ()], row, strict=True))


def birth_marker(conn: psycopg.Connection, park_id: str) -> str | None:
    row = conn.execute("SELECT metadata->>'marker' FROM devices WHERE park_id = %s AND device_id = 'ws-b'",
                       (park_id,)).fetchone()
    return row[0] if row else None


async def test_a_birth_fills_what_the_operator_left_empty_and_never_overrides_the_rest(
        request: pytest.FixtureRequest, database_url: str, mqtt_url: str, db_conn: psycopg.Connection):
    park_id = unique_park_id(request)
    save_park(db_conn, park_id, {"auto_register": False})  # only registered devices are accepted
    save_site(db_conn, park_id, "ws-b", {"kind": "workshop"})
    save_device(db_conn, park_id, "ws-b", {"metering_level": 2, "site_id": "ws-b", "role": "workshop",
                                           "multiplier": 40.0})
    topic = build_topic(park_id, "ws-b", TopicKind.BIRTH)
    first = birth(1, kind="electricity_meter", carrier="electricity", metering_level=3, site="elsewhere",
                  role="dc_it", profile="dtsu666", register_max=999999.99, multiplier=1.0, rated_power_kw=400.0,
                  firmware="2.1")
    second = birth(2, kind="electricity_meter", carrier="electricity", metering_level=1, role="pv",
                   firmware="2.2")
    try:
        async with IngestService(ingest_settings(database_url, mqtt_url, park_id)) as service:
            await service.wait_subscribed()
            await publish(mqtt_url, [(topic, first)])
            assert await wait_until(lambda: birth_marker(db_conn, park_id) == "1")
            assert attributes(db_conn, park_id) == {
                # the operator's, although the birth said metering level 3, site elsewhere, dc_it, multiplier 1
                "metering_level": 2, "site_id": "ws-b", "role": "workshop", "multiplier": 40.0,
                # left empty by the operator: filled by the birth
                "kind": "electricity_meter", "carrier": "electricity", "profile": "dtsu666",
                "register_max": 999999.99, "rated_power_kw": 400.0, "firmware": "2.1"}

            # the operator hands the role back; the next birth sets it (and what it omits becomes empty)
            save_device(db_conn, park_id, "ws-b", {"role": None}, mode="update")
            await publish(mqtt_url, [(topic, second)])
            assert await wait_until(lambda: birth_marker(db_conn, park_id) == "2")
            assert attributes(db_conn, park_id) == {
                "metering_level": 2, "site_id": "ws-b", "multiplier": 40.0, "role": "pv",
                "kind": "electricity_meter", "carrier": "electricity", "profile": None, "register_max": None,
                "rated_power_kw": None, "firmware": "2.2"}
            assert not service.metrics.messages_quarantined
    finally:
        db_conn.execute("DELETE FROM parks WHERE park_id = %s", (park_id,))

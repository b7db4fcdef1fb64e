"""Ingest hardening against a real Mosquitto and TimescaleDB: poison messages, the registry, partitions,
bounded quarantine, the dead-letter file and retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from infra.db import migrate
from ingest import IngestService
from ingest._dead_letter import read_dead_letters
from ingest._retention import prune_quarantine
from parkpulse.cli import app
from schemas import TopicKind, build_topic
from tests.fixtures.services import unique_park_id
from tests.ingest.helpers import (
    count_quarantine,
    count_readings,
    ingest_settings,
    minute_floor,
    publish,
    readings_payload,
    utcnow,
    wait_until,
)

pytestmark = pytest.mark.services


def _readings_with_extra_key(device: str, seq: int, start: datetime, key_json: str) -> bytes:
    """A valid message with one more top-level member written as raw JSON text (escapes kept)."""
    body = readings_payload(device, seq, start, 3).decode()
    return (body[:-1] + f', {key_json}: 1}}').encode()


async def test_poison_messages_never_stop_ingest_and_neighbours_are_stored(database_url, mqtt_url, park_id, db_conn):
    """NUL in a key, NUL in a retained birth, a lone surrogate: quarantined with escaped reasons, ingest runs on."""
    start = minute_floor(utcnow()) - timedelta(hours=2)
    topic = build_topic(park_id, "m-1")
    poison_key = _readings_with_extra_key("m-1", 2, start, '"x\\u0000"')
    poison_birth = b'{"v": 1, "device": "m-2", "kind": "meter\\u0000"}'
    surrogate_birth = b'{"v": 1, "device": "m-3", "kind": "meter", "note": "\\ud800"}'
    await publish(mqtt_url, [(build_topic(park_id, "m-2", TopicKind.BIRTH), poison_birth)], retain=True)
    settings = ingest_settings(database_url, mqtt_url, park_id)
    async with IngestService(settings) as service:  # starts with the retained poison birth waiting for it
        await service.wait_subscribed()
        await publish(mqtt_url, [
            (topic, readings_payload("m-1", 1, start, 5)),
            (topic, poison_key),
            (build_topic(park_id, "m-3", TopicKind.BIRTH), surrogate_birth),
            (topic, readings_payload("m-1", 3, start + timedelta(minutes=30), 5)),
        ])
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 10)
        assert await wait_until(lambda: count_quarantine(db_conn, park_id) == 3)
        assert not service._runner.done()  # type: ignore[union-attr]
    rows = db_conn.execute("SELECT device_id, reason, detail FROM quarantine WHERE park_id = %s ORDER BY device_id",
                           (park_id,)).fetchall()
    assert [r[0] for r in rows] == ["m-1", "m-2", "m-3"]
    assert all("\x00" not in r[2] for r in rows)
    await publish(mqtt_url, [(build_topic(park_id, "m-2", TopicKind.BIRTH), b"")], retain=True)  # clear retained


async def test_a_message_the_database_refuses_is_isolated_and_the_rest_of_its_batch_stored(
        scratch_database_url, mqtt_url, tmp_path):
    """A trigger refuses one reading: its message becomes store_error, its batch neighbours are stored.

    A second trigger also refuses the quarantine record of another message: that one goes to the
    dead-letter file, and everything is acknowledged (nothing left pending for redelivery).
    """
    url = scratch_database_url
    migrate(url)
    park = "poison-park"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id, auto_register) VALUES (%s, true)", (park,))
        conn.execute("""
            CREATE FUNCTION refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.value = 666.25 THEN RAISE EXCEPTION 'value 666.25 refused' USING ERRCODE = '22023'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_666 BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION refuse_666();
            CREATE FUNCTION refuse_dl() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.device_id = 'm-dead' THEN RAISE EXCEPTION 'quarantine refused' USING ERRCODE = '22023'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_dl BEFORE INSERT ON quarantine FOR EACH ROW EXECUTE FUNCTION refuse_dl();""")
    start = minute_floor(utcnow()) - timedelta(hours=3)
    good = [(build_topic(park, f"m-{i}"), readings_payload(f"m-{i}", 1, start, 4, base=100.0 * i)) for i in range(8)]
    refused = (build_topic(park, "m-x"), readings_payload("m-x", 1, start, 4, base=665.5))  # 665.5 + 3 × 0.25
    dead = (build_topic(park, "m-dead"), readings_payload("m-dead", 1, start, 4, base=665.5))
    settings = ingest_settings(url, mqtt_url, park, flush_interval_s=0.5, dead_letter_dir=tmp_path / "dl")
    with psycopg.connect(url, autocommit=True) as conn:
        async with IngestService(settings) as service:
            await service.wait_subscribed()
            await publish(mqtt_url, [*good[:4], refused, *good[4:], dead])
            assert await wait_until(lambda: count_readings(conn, park) == 32, timeout=20)
            assert await wait_until(lambda: service.metrics.messages_dead_lettered == 1, timeout=20)
            assert await wait_until(lambda: service.metrics.pending_messages == 0)
            assert service.metrics.batches_isolated >= 1
            assert service.metrics.messages_store_refused == 1
        row = conn.execute("SELECT reason, detail FROM quarantine WHERE park_id = %s", (park,)).fetchone()
    assert row is not None
    assert row[0] == "store_error"
    assert "666.25 refused" in row[1]
    files = sorted((tmp_path / "dl").glob("*.jsonl"))
    letters = [letter for f in files for letter in read_dead_letters(f)]
    assert [(x.topic, x.raw) for x in letters] == [dead]

    # once the cause is gone, the operator moves the dead letters into the quarantine
    runner = CliRunner()
    args = ["quarantine", "restore-dead-letters", str(files[0]), "--database-url", url]
    refused = await asyncio.to_thread(runner.invoke, app, args)  # the command runs its own event loop
    assert refused.exit_code == 1, refused.output
    assert files[0].exists()  # still refused: kept in the file
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER refuse_dl ON quarantine")
        restored = await asyncio.to_thread(runner.invoke, app, args)
        assert restored.exit_code == 0, restored.output
        raw = conn.execute(
            "SELECT raw FROM quarantine WHERE device_id = 'm-dead' AND reason = 'store_error'").fetchone()
    assert raw is not None
    assert bytes(raw[0]) == dead[1]
    assert not files[0].exists()


async def test_unregistered_parks_and_devices_are_quarantined_until_registered(database_url, mqtt_url, db_conn,
                                                                               request):
    """A park nobody registered cannot be invented; a registered park's unknown device is refused too."""
    park = unique_park_id(request)
    start = minute_floor(utcnow()) - timedelta(hours=1)
    settings = ingest_settings(database_url, mqtt_url, park, registry_refresh_s=60.0)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, [(build_topic(park, "m-1"), readings_payload("m-1", 1, start, 3))])
        assert await wait_until(lambda: count_quarantine(db_conn, park) == 1)
        assert db_conn.execute("SELECT count(*) FROM parks WHERE park_id = %s", (park,)).fetchone() == (0,)
        db_conn.execute("INSERT INTO parks (park_id) VALUES (%s)", (park,))  # registered, no auto-register
        await asyncio.sleep(1.1)  # a miss re-reads the registry at most once a second
        later = readings_payload("m-1", 2, start + timedelta(minutes=5), 3)
        await publish(mqtt_url, [(build_topic(park, "m-1"), later)])
        assert await wait_until(lambda: count_quarantine(db_conn, park) == 2)
        # registering the device is picked up at once (a batch with unregistered senders re-reads the registry)
        db_conn.execute("INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, 'm-1', 'operator')",
                        (park,))
        await asyncio.sleep(1.1)
        latest = readings_payload("m-1", 3, start + timedelta(minutes=10), 3)
        await publish(mqtt_url, [(build_topic(park, "m-1"), latest)])
        assert await wait_until(lambda: count_readings(db_conn, park) == 3)
    reasons = db_conn.execute("SELECT reason, detail FROM quarantine WHERE park_id = %s ORDER BY quarantine_id",
                              (park,)).fetchall()
    assert [r[0] for r in reasons] == ["unregistered", "unregistered"]
    assert "parkpulse registry park add" in reasons[0][1]
    assert "parkpulse registry device add" in reasons[1][1]


async def test_two_partitioned_instances_share_the_load_without_overlap(database_url, mqtt_url, park_id, db_conn):
    """Plain persistent subscriptions, two partitions: each stores its own devices, together all of them."""
    start = minute_floor(utcnow()) - timedelta(hours=5)
    messages = [(build_topic(park_id, f"m-{d}"), readings_payload(f"m-{d}", s, start + timedelta(minutes=10 * s), 10))
                for d in range(20) for s in range(5)]
    settings = [ingest_settings(database_url, mqtt_url, park_id, client_id=f"test-ingest-{park_id}-{i}",
                                partition_count=2, partition_index=i) for i in range(2)]
    async with IngestService(settings[0]) as first, IngestService(settings[1]) as second:
        await first.wait_subscribed()
        await second.wait_subscribed()
        await publish(mqtt_url, messages)
        assert await wait_until(lambda: count_readings(db_conn, park_id) == 1000)
        assert await wait_until(lambda: first.metrics.pending_messages == second.metrics.pending_messages == 0)
        stored = (first.metrics.readings_stored, second.metrics.readings_stored)
        skipped = (first.metrics.messages_skipped_partition, second.metrics.messages_skipped_partition)
    assert sum(stored) == 1000
    assert min(stored) > 0  # both did work: the 20 devices hash into both partitions
    assert first.metrics.readings_duplicate == second.metrics.readings_duplicate == 0
    assert skipped[0] + skipped[1] == len(messages)  # each message was skipped by exactly one instance


async def test_rejects_over_a_devices_rate_limit_are_counted_not_kept(database_url, mqtt_url, park_id, db_conn):
    """A device flooding bad messages adds at most its burst of records; the rest are counted per minute."""
    topic = build_topic(park_id, "m-flood")
    settings = ingest_settings(database_url, mqtt_url, park_id, quarantine_burst=20, quarantine_rate_per_minute=1)
    async with IngestService(settings) as service:
        await service.wait_subscribed()
        await publish(mqtt_url, [(topic, b"not json %d" % i) for i in range(150)])
        assert await wait_until(lambda: service.metrics.quarantine_suppressed["invalid_json"]
                                + service.metrics.messages_quarantined["invalid_json"] == 150)
        metrics_text = service.metrics.render()
    kept = count_quarantine(db_conn, park_id)
    suppressed = db_conn.execute("SELECT sum(n_messages) FROM quarantine_suppressed WHERE park_id = %s",
                                 (park_id,)).fetchone()
    assert 20 <= kept <= 22  # the burst, plus what trickled back in while the messages arrived
    assert suppressed is not None
    assert kept + int(suppressed[0]) == 150
    assert 'parkpulse_ingest_quarantine_suppressed_total{reason="invalid_json"}' in metrics_text


async def test_retention_prunes_by_age_then_by_size(scratch_database_url):
    migrate(scratch_database_url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with psycopg.connect(scratch_database_url, autocommit=True) as conn:
        conn.execute("""INSERT INTO quarantine (received_at, reason, detail, raw, raw_length, raw_sha256)
                        SELECT %s - make_interval(days => d), 'invalid_json', 'x', repeat('a', 1000)::bytea, 1000,
                               sha256(repeat('a', 1000)::bytea)
                        FROM generate_series(0, 99) AS d""", (now,))
    async with await psycopg.AsyncConnection.connect(scratch_database_url) as aconn:
        result = await prune_quarantine(aconn, now=now, max_age=timedelta(days=60), max_bytes=20 * 1001)
    assert (result.ran, result.by_age, result.by_size) == (True, 39, 41)  # days 61…99 by age, then 41 of 0…60
    with psycopg.connect(scratch_database_url) as conn:
        left = conn.execute("SELECT max(%s - received_at) FROM quarantine", (now,)).fetchone()
    assert left == (timedelta(days=19),)  # the 20 newest stay


def test_dead_letter_lines_round_trip(tmp_path: Path) -> None:
    from ingest._dead_letter import DeadLetter, write_dead_letters

    letter = DeadLetter(datetime(2026, 12, 4, 8, tzinfo=UTC), "parkpulse/v1/p/d/readings", "store_error",
                        "refused \x00", b"\x00\xff{}")
    path = write_dead_letters(tmp_path, "ingest-a", [letter, letter])
    assert read_dead_letters(path) == [letter, letter]
    assert json.loads(path.read_text().splitlines()[0])["raw_b64"] == "AP97fQ=="

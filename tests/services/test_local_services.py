"""The real services from ``parkpulse.services.up``: MQTT v5 round trips, TimescaleDB, idempotent re-up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from parkpulse.services import (
    ServiceEndpoints,
    ServicesUnavailableError,
    default_cache_dir,
    services_app,
    status,
    up,
)
from parkpulse.services._probe import mqtt_address

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def endpoints() -> ServiceEndpoints:
    """Start (or reuse) the services in the project's default cache dir, shared with the other tests."""
    try:
        return up(default_cache_dir())
    except ServicesUnavailableError as exc:
        pytest.skip(str(exc))


@asynccontextmanager
async def mqtt_client(url: str, name: str) -> AsyncIterator[aiomqtt.Client]:
    host, port = mqtt_address(url)
    identifier = f"test-services-{name}-{uuid.uuid4().hex[:8]}"
    async with aiomqtt.Client(host, port, identifier=identifier, protocol=aiomqtt.ProtocolVersion.V5) as client:
        yield client


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(5):
        async for message in client.messages:
            return message
    raise AssertionError("no message")


async def test_retained_message_round_trip(endpoints: ServiceEndpoints) -> None:
    topic = f"parkpulse-test/services/{uuid.uuid4().hex}/retained"
    async with mqtt_client(endpoints.mqtt_url, "pub") as publisher:
        await publisher.publish(topic, b"retained-hello", qos=1, retain=True)
    try:
        async with mqtt_client(endpoints.mqtt_url, "sub") as subscriber:
            await subscriber.subscribe(topic, qos=1)
            message = await next_message(subscriber)
        assert message.payload == b"retained-hello"
        assert message.retain
    finally:
        async with mqtt_client(endpoints.mqtt_url, "clear") as publisher:
            await publisher.publish(topic, b"", qos=1, retain=True)


async def test_shared_subscription_delivers_each_message_once(endpoints: ServiceEndpoints) -> None:
    topic = f"parkpulse-test/services/{uuid.uuid4().hex}/shared"
    group = f"$share/g{uuid.uuid4().hex[:8]}/{topic}"
    async with (
        mqtt_client(endpoints.mqtt_url, "a") as first,
        mqtt_client(endpoints.mqtt_url, "b") as second,
    ):
        await first.subscribe(group, qos=1)
        await second.subscribe(group, qos=1)
        async with mqtt_client(endpoints.mqtt_url, "pub") as publisher:
            for index in range(20):
                await publisher.publish(topic, str(index).encode(), qos=1)
        received: list[bytes] = []

        async def drain(client: aiomqtt.Client) -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                received.append(message.payload)
                if len(received) == 20:
                    return

        async with asyncio.timeout(10):
            tasks = [asyncio.create_task(drain(first)), asyncio.create_task(drain(second))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
        assert sorted(received, key=int) == [str(index).encode() for index in range(20)]


async def test_broker_accepts_payloads_over_one_megabyte(endpoints: ServiceEndpoints) -> None:
    # The ingest tests send 1 MB of garbage that must reach ingest (to be quarantined), not be dropped.
    topic = f"parkpulse-test/services/{uuid.uuid4().hex}/big"
    payload = bytes(range(256)) * (6 * 1024)  # 1.5 MiB
    async with mqtt_client(endpoints.mqtt_url, "big-sub") as subscriber:
        await subscriber.subscribe(f"$share/big/{topic}", qos=1)
        async with mqtt_client(endpoints.mqtt_url, "big-pub") as publisher:
            await publisher.publish(topic, payload, qos=1)
        message = await next_message(subscriber)
    assert message.payload == payload


def test_timescaledb_answers_and_creates_a_hypertable(endpoints: ServiceEndpoints) -> None:
    schema = sql.Identifier(f"test_services_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        assert row is not None
        assert row[0]
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        try:
            table = sql.SQL("{}.readings").format(schema)
            conn.execute(sql.SQL(
                "CREATE TABLE {} (ts timestamptz NOT NULL, meter int4 NOT NULL, value float8 NOT NULL)"
            ).format(table))
            conn.execute(sql.SQL("SELECT create_hypertable({}::regclass, by_range('ts'))").format(
                sql.Literal(table.as_string(conn))
            ))
            conn.execute(sql.SQL(
                "INSERT INTO {} SELECT t, 1, 2.5 FROM generate_series("
                "'2025-01-01'::timestamptz, '2025-01-20', interval '1 hour') AS t"
            ).format(table))
            count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            chunks = conn.execute(
                "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_schema = %s",
                [schema.as_string(conn).strip('"')],
            ).fetchone()
        finally:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
    assert count == (457,)
    assert chunks is not None
    assert chunks[0] >= 2


def test_second_up_is_fast_and_changes_nothing(endpoints: ServiceEndpoints) -> None:
    cache_dir = default_cache_dir()
    watched = [cache_dir / "services.env", cache_dir / "mosquitto" / "mosquitto.conf"]
    before = {path: path.stat().st_mtime_ns for path in watched if path.exists()}
    started = time.monotonic()
    again = up(cache_dir)
    elapsed = time.monotonic() - started
    assert again == endpoints
    assert elapsed < 2.0, f"re-up took {elapsed:.2f} s"
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_status_reports_running(endpoints: ServiceEndpoints) -> None:
    report = status(default_cache_dir())
    assert set(report) == {"mosquitto", "timescaledb"}
    expected = "external" if endpoints.mode == "env" else "running"
    assert all(state.startswith(expected) for state in report.values()), report


def test_cli_status_exits_zero(endpoints: ServiceEndpoints) -> None:
    result = CliRunner().invoke(services_app, ["status"])
    assert result.exit_code == 0, result.output
    assert "mosquitto:" in result.output

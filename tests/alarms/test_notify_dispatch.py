"""The dispatcher on the real database: dedupe, retry after a failure, quiet hours, escalation, the service.

Each test serves only its own park (``parks=[park_id]``) and runs passes with an injected clock; far ends
are local HTTP stand-ins. Expected times are worked out by hand from the config (e.g. a first retry after
``initial_delay_s`` = 60 s is due 30-60 s after the failure).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from alarms._channels import open_channels
from alarms._dispatch import Dispatcher, NotifyService
from alarms._notify import enqueue_notification
from alarms._notify_config import NotifyConfig, parse_notify_config
from alarms._notify_store import AlarmState, alarm_states
from tests.alarms.test_notify_support import http_server, notification

pytestmark = pytest.mark.services

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


class Clock:
    """A settable clock for the dispatcher."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _config(ops_url: str, duty_url: str | None = None, *, quiet: dict[str, Any] | None = None,
            duty_quiet: dict[str, Any] | None = None, retry: dict[str, Any] | None = None, route_park: str = "*",
            after_minutes: int = 30) -> NotifyConfig:
    doc: dict[str, Any] = {
        "channels": {"ops-hook": {"kind": "webhook", "url": ops_url}},
        "lists": {"ops": {"channels": ["ops-hook"], **({"quiet_hours": quiet} if quiet else {})}},
        "routes": {route_park: {"warning": ["ops"], "critical": ["ops"]}},
        "retry": retry or {"max_attempts": 4, "initial_delay_s": 60, "max_delay_s": 600},
    }
    if duty_url is not None:
        doc["channels"]["duty-hook"] = {"kind": "webhook", "url": duty_url}
        doc["lists"]["duty"] = {"channels": ["duty-hook"], **({"quiet_hours": duty_quiet} if duty_quiet else {})}
        doc["routes"][route_park]["escalation"] = {"after_minutes": after_minutes, "to": ["duty"]}
    return parse_notify_config(yaml.safe_dump(doc), source="test", environ={}, base_dir=Path())


@asynccontextmanager
async def _dispatcher(database_url: str, config: NotifyConfig, park_id: str, clock: Clock,
                      states: dict[int, AlarmState] | None = None,
                      ) -> AsyncIterator[tuple[Dispatcher, psycopg.AsyncConnection]]:
    async def lookup(_conn: psycopg.AsyncConnection, ids: object) -> dict[int, AlarmState] | None:
        return dict(states) if states is not None else None

    async with open_channels(config) as channels, \
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        dispatcher = Dispatcher(config, channels, parks=[park_id], clock=clock, rng=random.Random(3))
        if states is not None:
            dispatcher.alarm_lookup = lookup
        yield dispatcher, conn


def _deliveries(db: psycopg.Connection, park_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT o.dedupe_key, d.stage, d.channel, d.status, d.attempts, d.next_attempt_at, d.held_until, d.sent_at
           FROM notification_deliveries d JOIN notification_outbox o USING (notification_id)
           WHERE o.park_id = %s ORDER BY o.dedupe_key, d.stage""", (park_id,)).fetchall()


def _attempts(db: psycopg.Connection, park_id: str) -> list[tuple[Any, ...]]:
    return db.execute(
        """SELECT a.attempt, a.outcome, a.response, a.error, a.started_at
           FROM notification_attempts a JOIN notification_deliveries d USING (delivery_id)
           JOIN notification_outbox o USING (notification_id) WHERE o.park_id = %s
           ORDER BY a.delivery_id, a.attempt""", (park_id,)).fetchall()


def test_enqueue_deduplicates_and_belongs_to_the_callers_transaction(db_conn: psycopg.Connection,
                                                                     park_id: str) -> None:
    n = notification(park_id, "alarm:1:raised")
    assert enqueue_notification(db_conn, n) is True
    assert enqueue_notification(db_conn, n) is False
    with db_conn.transaction():
        enqueue_notification(db_conn, notification(park_id, "alarm:2:raised"))
        raise psycopg.Rollback
    keys = [r[0] for r in db_conn.execute(
        "SELECT dedupe_key FROM notification_outbox WHERE park_id = %s", (park_id,)).fetchall()]
    assert keys == ["alarm:1:raised"]
    with pytest.raises(ValueError, match="timezone-aware"):
        enqueue_notification(db_conn, notification(park_id, "x", created_at=datetime(2026, 3, 2, 1, 0)))


async def test_webhook_failure_is_retried_with_backoff_and_every_attempt_recorded(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    enqueue_notification(db_conn, notification(park_id, "alarm:5:raised", created_at=T0))
    clock = Clock(T0)
    with http_server() as hook:
        hook.script.append((500, "upstream down"))
        async with _dispatcher(database_url, _config(hook.url), park_id, clock) as (dispatcher, conn):
            first = await dispatcher.run_once(conn)
            assert (first.routed, first.deliveries_created, first.retried, first.sent) == (1, 1, 1, 0)
            [(_, _, _, status, attempts, due, _, _)] = _deliveries(db_conn, park_id)
            assert (status, attempts) == ("pending", 1)
            assert T0 + timedelta(seconds=30) <= due <= T0 + timedelta(seconds=60)
            clock.now = T0 + timedelta(seconds=29)
            assert not (await dispatcher.run_once(conn)).busy   # not due yet
            clock.now = T0 + timedelta(seconds=61)
            third = await dispatcher.run_once(conn)
            assert (third.sent, third.retried, third.failed) == (1, 0, 0)
    assert [r.headers["X-ParkPulse-Attempt"] for r in hook.requests] == ["1", "2"]
    assert len({r.headers["X-ParkPulse-Delivery"] for r in hook.requests}) == 1
    assert hook.requests[1].json()["dedupe_key"] == "alarm:5:raised"
    attempts = _attempts(db_conn, park_id)
    assert [(a[0], a[1]) for a in attempts] == [(1, "retry"), (2, "sent")]
    assert "HTTP 500" in attempts[0][3]
    assert "upstream down" in attempts[0][2]
    assert attempts[1][2].startswith("HTTP 200")
    assert attempts[1][3] is None
    assert attempts[1][4] == T0 + timedelta(seconds=61)
    [(_, _, _, status, tries, _, _, sent_at)] = _deliveries(db_conn, park_id)
    assert (status, tries, sent_at) == ("sent", 2, T0 + timedelta(seconds=61))


async def test_refusals_stop_at_once_and_outages_stop_at_max_attempts(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    enqueue_notification(db_conn, notification(park_id, "a", created_at=T0))
    clock = Clock(T0)
    with http_server() as hook:
        hook.default = (503, "busy")
        hook.script.append((404, "no such hook"))
        config = _config(hook.url, retry={"max_attempts": 3, "initial_delay_s": 10, "max_delay_s": 10})
        async with _dispatcher(database_url, config, park_id, clock) as (dispatcher, conn):
            assert (await dispatcher.run_once(conn)).failed == 1          # 404: refused for good
            enqueue_notification(db_conn, notification(park_id, "b", created_at=T0))
            outcomes = []
            for minute in range(1, 6):
                clock.now = T0 + timedelta(minutes=minute)
                report = await dispatcher.run_once(conn)
                outcomes.append((report.retried, report.failed))
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    rows = {r[0]: r for r in _deliveries(db_conn, park_id)}
    assert (rows["a"][3], rows["a"][4]) == ("failed", 1)
    assert (rows["b"][3], rows["b"][4]) == ("failed", 3)
    assert len(hook.requests) == 4


async def test_quiet_hours_hold_a_warning_and_let_a_critical_through(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    night = T0.replace(hour=15, minute=30)   # 23:30 in Shanghai (the parks table's default time zone)
    enqueue_notification(db_conn, notification(park_id, "warn", severity="warning", created_at=night))
    enqueue_notification(db_conn, notification(park_id, "crit", severity="critical", created_at=night))
    clock = Clock(night)
    with http_server() as hook:
        config = _config(hook.url, quiet={"start": "22:00", "end": "07:00", "critical_overrides": True})
        async with _dispatcher(database_url, config, park_id, clock) as (dispatcher, conn):
            report = await dispatcher.run_once(conn)
            assert (report.sent, report.held) == (1, 1)
            assert [r.json()["dedupe_key"] for r in hook.requests] == ["crit"]
            rows = {r[0]: r for r in _deliveries(db_conn, park_id)}
            morning = T0.replace(hour=23, minute=0)   # 07:00 next day in Shanghai
            assert rows["warn"][3:7] == ("pending", 0, morning, morning)  # held is not an attempt
            clock.now = morning - timedelta(minutes=1)
            assert (await dispatcher.run_once(conn)).sent == 0
            clock.now = morning
            assert (await dispatcher.run_once(conn)).sent == 1
    assert [r.json()["dedupe_key"] for r in hook.requests] == ["crit", "warn"]


async def test_unacknowledged_critical_alarm_escalates_after_m_minutes(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    for key, severity, alarm in (("a101", "critical", 101), ("a102", "critical", 102), ("a103", "warning", 103),
                                 ("n-alarm", "critical", None)):
        enqueue_notification(db_conn, notification(park_id, key, severity=severity, alarm_id=alarm, created_at=T0))
    states = {101: AlarmState(acknowledged=False, cleared=False), 102: AlarmState(acknowledged=False, cleared=False)}
    clock = Clock(T0)
    with http_server("/ops") as ops, http_server("/duty") as duty:
        config = _config(ops.url, duty.url, after_minutes=30)
        async with _dispatcher(database_url, config, park_id, clock, states) as (dispatcher, conn):
            assert (await dispatcher.run_once(conn)).sent == 4
            clock.now = T0 + timedelta(minutes=29, seconds=59)
            assert (await dispatcher.run_once(conn)).escalated == 0
            states[102] = AlarmState(acknowledged=True, cleared=False)   # someone acknowledged alarm 102
            clock.now = T0 + timedelta(minutes=30)
            report = await dispatcher.run_once(conn)
            assert (report.escalated, report.escalation_skipped, report.sent) == (1, 1, 1)
            clock.now = T0 + timedelta(hours=5)
            assert not (await dispatcher.run_once(conn)).busy   # escalation happens once
    assert len(ops.requests) == 4
    [escalated] = [r.json() for r in duty.requests]
    assert (escalated["alarm_id"], escalated["escalated_after_minutes"]) == (101, 30)
    state: dict[str, str] = dict(db_conn.execute(
        "SELECT dedupe_key, escalation_state FROM notification_outbox WHERE park_id = %s", (park_id,)).fetchall())
    assert state == {"a101": "escalated", "a102": "acknowledged", "a103": "not_applicable",
                     "n-alarm": "not_applicable"}


async def test_an_escalation_held_by_quiet_hours_is_cancelled_once_acknowledged(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    night = T0.replace(hour=15, minute=0)   # 23:00 in Shanghai
    enqueue_notification(db_conn, notification(park_id, "a7", severity="critical", alarm_id=7, created_at=night))
    states = {7: AlarmState(acknowledged=False, cleared=False)}
    clock = Clock(night)
    with http_server("/ops") as ops, http_server("/duty") as duty:
        config = _config(ops.url, duty.url, after_minutes=10,
                         duty_quiet={"start": "22:00", "end": "07:00", "critical_overrides": False})
        async with _dispatcher(database_url, config, park_id, clock, states) as (dispatcher, conn):
            await dispatcher.run_once(conn)
            clock.now = night + timedelta(minutes=10)
            report = await dispatcher.run_once(conn)
            assert (report.escalated, report.held) == (1, 1)
            states[7] = AlarmState(acknowledged=True, cleared=False)
            clock.now = T0.replace(hour=23)    # 07:00 in Shanghai: the hold ends
            assert (await dispatcher.run_once(conn)).cancelled == 1
    assert len(ops.requests) == 1
    assert duty.requests == []
    stages = {r[1]: r[3] for r in _deliveries(db_conn, park_id)}
    assert stages == {"primary": "sent", "escalation": "cancelled"}


async def test_a_park_without_a_route_gets_no_deliveries(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    enqueue_notification(db_conn, notification(park_id, "lonely", created_at=T0))
    with http_server() as hook:
        async with _dispatcher(database_url, _config(hook.url, route_park="some-other-park"), park_id,
                               Clock(T0)) as (dispatcher, conn):
            report = await dispatcher.run_once(conn)
    assert (report.routed, report.deliveries_created) == (1, 0)
    assert _deliveries(db_conn, park_id) == []
    assert hook.requests == []


async def test_alarm_state_is_read_defensively(scratch_database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(scratch_database_url, autocommit=True) as conn:
        assert await alarm_states(conn, [1]) is None                      # no alarms table (yet)
        await conn.execute("CREATE TABLE alarms (id bigint PRIMARY KEY, state text)")
        assert await alarm_states(conn, [1]) is None                      # no acknowledged_at column
        await conn.execute("DROP TABLE alarms")
        await conn.execute("CREATE TABLE alarms (alarm_id bigint PRIMARY KEY, acknowledged_at timestamptz)")
        await conn.execute("INSERT INTO alarms VALUES (1, now()), (2, NULL)")
        assert await alarm_states(conn, [1, 2, 3]) == {1: AlarmState(True, False), 2: AlarmState(False, False)}
        await conn.execute("ALTER TABLE alarms ADD COLUMN cleared_at timestamptz")
        await conn.execute("UPDATE alarms SET cleared_at = now() WHERE alarm_id = 2")
        assert await alarm_states(conn, [2]) == {2: AlarmState(False, True)}


async def test_the_service_wakes_on_a_producers_notify_and_stops_cleanly(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    with http_server() as hook:
        config = _config(hook.url)
        service = NotifyService(database_url, config, parks=[park_id], poll_interval_s=60)
        async with service:
            await asyncio.wait_for(service.listening.wait(), timeout=10)
            started = asyncio.get_running_loop().time()
            enqueue_notification(db_conn, notification(park_id, "live", created_at=datetime.now(UTC)))
            while not hook.requests:
                assert asyncio.get_running_loop().time() - started < 10, "NOTIFY did not wake the dispatcher"
                await asyncio.sleep(0.05)
            woke_after_s = asyncio.get_running_loop().time() - started
        assert woke_after_s < 5   # far below the 60 s poll interval: the NOTIFY woke it
        assert service._runner is not None
        assert service._runner.done()
        assert service._runner.exception() is None
    assert hook.requests[0].json()["dedupe_key"] == "live"


def _real_alarm(db: psycopg.Connection, park_id: str, subject: str, acknowledged: bool) -> int:
    """An alarm row in the lifecycle's own table (migration 0011), acknowledged or not."""
    row = db.execute(
        """INSERT INTO alarms (park_id, rule_id, kind, subject, severity, state, title_zh, title_en, message_zh,
                               message_en, unit, raised_at, last_raised_at, last_true_at, acknowledged_at,
                               acknowledged_by)
           VALUES (%s, 'device_offline', 'device_offline', %s, 'critical', %s, '离线', 'offline', '离线', 'offline',
                   'min', %s, %s, %s, %s, %s) RETURNING alarm_id""",
        (park_id, subject, "acknowledged" if acknowledged else "open", T0, T0, T0,
         T0 + timedelta(minutes=5) if acknowledged else None, "duty" if acknowledged else None)).fetchone()
    assert row is not None
    return int(row[0])


async def test_escalation_reads_acknowledgements_from_the_alarms_table(
        database_url: str, db_conn: psycopg.Connection, park_id: str) -> None:
    if db_conn.execute("SELECT to_regclass('alarms') IS NULL").fetchone() == (True,):
        pytest.skip("the alarms table (migration 0011) is not in this database")
    silent = _real_alarm(db_conn, park_id, "M-1", acknowledged=False)
    handled = _real_alarm(db_conn, park_id, "M-2", acknowledged=True)
    for alarm in (silent, handled):
        enqueue_notification(db_conn, notification(park_id, f"alarm:{alarm}:raised", severity="critical",
                                                   alarm_id=alarm, created_at=T0))
    clock = Clock(T0)
    with http_server("/ops") as ops, http_server("/duty") as duty:
        async with _dispatcher(database_url, _config(ops.url, duty.url, after_minutes=15), park_id,
                               clock) as (dispatcher, conn):
            await dispatcher.run_once(conn)
            clock.now = T0 + timedelta(minutes=15)
            report = await dispatcher.run_once(conn)
    assert (report.escalated, report.escalation_skipped) == (1, 1)
    assert [r.json()["alarm_id"] for r in duty.requests] == [silent]

"""The alarm lifecycle on the real database: de-duplication, flap suppression, M evaluations, history,
notifications, acknowledgement and rule overrides through the CLI, and the incremental run after aggregate."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from typer.testing import CliRunner, Result

from alarms._alarms_cli import alarms_app
from alarms._evaluate import AlarmEvaluator, after_aggregate, change_log_position, due_parks
from alarms._lifecycle_store import get_alarm, save_override
from infra.db import migrate
from tests.aggregation._seed import Meter, create_series, write_readings

pytestmark = pytest.mark.services

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def cli(database_url: str) -> Callable[..., Result]:
    """``parkpulse alarms …`` against the test database."""
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        res = runner.invoke(alarms_app, [*args, "--database-url", database_url])
        assert res.exit_code == code, res.output
        return res
    return run


def _silent_meter(conn: psycopg.Connection, park_id: str, device: str = "m1") -> None:
    """A meter whose newest reading is 5 minutes before NOW; it is offline after NOW + 10 min (15 min limit)."""
    create_series(conn, park_id, Meter(device, metadata={"poll_interval_s": 60}))
    conn.execute("""INSERT INTO device_status (device_key, last_seen_at, last_reading_ts)
                    SELECT device_key, %s, %s FROM devices WHERE park_id = %s AND device_id = %s""",
                 (NOW - timedelta(minutes=5), NOW - timedelta(minutes=5), park_id, device))


def _reading_at(conn: psycopg.Connection, park_id: str, at: datetime, device: str = "m1") -> None:
    conn.execute("""UPDATE device_status SET last_reading_ts = %s FROM devices d
                    WHERE d.device_key = device_status.device_key AND d.park_id = %s AND d.device_id = %s""",
                 (at, park_id, device))


def _run(database_url: str, park_id: str, minutes: float) -> None:
    assert AlarmEvaluator(database_url).run([park_id], now=NOW + timedelta(minutes=minutes)).failed == {}


def _rows(conn: psycopg.Connection, park_id: str) -> list[tuple]:
    return conn.execute("SELECT alarm_id, state, reopen_count FROM alarms WHERE park_id = %s ORDER BY alarm_id",
                        (park_id,)).fetchall()


def _outbox(conn: psycopg.Connection, park_id: str) -> list[tuple]:
    return conn.execute("SELECT dedupe_key, severity, alarm_id FROM notification_outbox WHERE park_id = %s "
                        "ORDER BY notification_id", (park_id,)).fetchall()


def test_one_alarm_per_subject_flap_reopens_and_history_is_kept(database_url, park_id, db_conn):
    _silent_meter(db_conn, park_id)
    for minutes in (11, 12, 13):                         # the condition holds three times: one alarm
        _run(database_url, park_id, minutes)
    [(alarm_id, state, reopened)] = _rows(db_conn, park_id)
    assert (state, reopened) == ("open", 0)
    assert _outbox(db_conn, park_id) == [(f"alarm:{alarm_id}:raised", "critical", alarm_id)]

    _reading_at(db_conn, park_id, NOW + timedelta(minutes=14))
    _run(database_url, park_id, 15)                      # cleared
    assert _rows(db_conn, park_id) == [(alarm_id, "cleared", 0)]
    # silent again, 20 minutes after it cleared (< 30 min, the rule's reopen_within_min): the same alarm re-opens
    _run(database_url, park_id, 35)
    assert _rows(db_conn, park_id) == [(alarm_id, "open", 1)]
    assert len(_outbox(db_conn, park_id)) == 1           # flapping sends nothing new
    _reading_at(db_conn, park_id, NOW + timedelta(minutes=36))
    _run(database_url, park_id, 37)
    # silent again more than 30 min after clearing: a new alarm, with its own notification
    _run(database_url, park_id, 37 + 31)
    rows = _rows(db_conn, park_id)
    assert [(r[1], r[2]) for r in rows] == [("cleared", 1), ("open", 0)]
    assert [k for k, _, _ in _outbox(db_conn, park_id)] == [f"alarm:{alarm_id}:raised", f"alarm:{rows[1][0]}:raised"]

    history = get_alarm(db_conn, alarm_id).history
    assert [(t.action, t.from_state, t.to_state) for t in history] == [
        ("raised", None, "open"), ("cleared", "open", "cleared"), ("reopened", "cleared", "open"),
        ("cleared", "open", "cleared")]
    assert [t.at for t in history] == [NOW + timedelta(minutes=m) for m in (11, 15, 35, 37)]
    with pytest.raises(psycopg.errors.CheckViolation, match="history"):
        db_conn.execute("UPDATE alarm_transitions SET comment = 'rewritten' WHERE alarm_id = %s", (alarm_id,))
    with pytest.raises(psycopg.errors.UniqueViolation):  # the database itself refuses a second live alarm
        db_conn.execute("""INSERT INTO alarms (park_id, rule_id, kind, subject, severity, state, title_zh, title_en,
                                               message_zh, message_en, unit, raised_at, last_raised_at, last_true_at)
                           SELECT park_id, rule_id, kind, subject, severity, 'open', title_zh, title_en, message_zh,
                                  message_en, unit, raised_at, last_raised_at, last_true_at
                           FROM alarms WHERE alarm_id = %s""", (rows[1][0],))


def test_condition_must_hold_for_m_evaluations(database_url, park_id, db_conn, cli):
    _silent_meter(db_conn, park_id)
    cli("rules", "--park", park_id, "--set", "device_offline.raise_after=3", "--by", "tester")
    _run(database_url, park_id, 11)
    _run(database_url, park_id, 12)
    assert _rows(db_conn, park_id) == []
    assert db_conn.execute("SELECT hits FROM alarm_pending WHERE park_id = %s", (park_id,)).fetchone() == (2,)
    _run(database_url, park_id, 13)
    assert [r[1] for r in _rows(db_conn, park_id)] == ["open"]
    assert db_conn.execute("SELECT count(*) FROM alarm_pending WHERE park_id = %s", (park_id,)).fetchone() == (0,)


def test_severity_rise_to_critical_is_notified_and_disabling_clears(database_url, park_id, db_conn, cli):
    _silent_meter(db_conn, park_id)
    cli("rules", "--park", park_id, "--set", "device_offline.severity=warning")
    _run(database_url, park_id, 11)
    [(alarm_id, _, _)] = _rows(db_conn, park_id)
    cli("rules", "--park", park_id, "--reset", "device_offline")          # back to the file's critical
    _run(database_url, park_id, 12)
    assert _outbox(db_conn, park_id) == [(f"alarm:{alarm_id}:raised", "warning", alarm_id),
                                         (f"alarm:{alarm_id}:critical", "critical", alarm_id)]
    assert [t.action for t in get_alarm(db_conn, alarm_id).history] == ["raised", "severity"]
    cli("rules", "--park", park_id, "--set", "device_offline.enabled=false")
    _run(database_url, park_id, 13)
    alarm = get_alarm(db_conn, alarm_id)
    assert (alarm.state, alarm.clear_reason) == ("cleared", "rule disabled")


def test_acknowledge_through_the_cli(database_url, park_id, db_conn, cli):
    _silent_meter(db_conn, park_id)
    _run(database_url, park_id, 11)
    [(alarm_id, _, _)] = _rows(db_conn, park_id)
    listed = json.loads(cli("list", "--park", park_id, "--format", "json").stdout)
    assert [(a["alarm_id"], a["state"], a["rule_id"], a["subject"]) for a in listed["items"]] == [
        (alarm_id, "open", "device_offline", "m1")]
    assert "alarms ack" in cli("show", str(alarm_id)).stdout

    out = cli("ack", str(alarm_id), "--by", "王工", "--comment", "technician on the way").stdout
    assert f"alarm {alarm_id} acknowledged by 王工" in out
    again = cli("ack", str(alarm_id), "--by", "李工", "--comment", "me too", code=3)
    assert "acknowledged it already" in again.output
    assert "no alarm 999999999" in cli("ack", "999999999", "--comment", "x", code=1).output
    assert json.loads(cli("list", "--park", park_id, "--state", "open", "--format", "json").stdout)["total"] == 0

    # still silent: the acknowledged alarm stays acknowledged; the reading returns: it clears
    _run(database_url, park_id, 12)
    _reading_at(db_conn, park_id, NOW + timedelta(minutes=13))
    _run(database_url, park_id, 14)
    assert "cleared" in cli("ack", str(alarm_id), "--comment", "late", code=3).output
    shown = json.loads(cli("show", str(alarm_id), "--format", "json").stdout)
    assert [(h["action"], h["actor"], h["comment"]) for h in shown["history"]] == [
        ("raised", "evaluator", None), ("acknowledged", "王工", "technician on the way"),
        ("cleared", "evaluator", "condition gone")]
    assert (shown["acknowledged_by"], shown["ack_comment"]) == ("王工", "technician on the way")
    table = cli("list", "--park", park_id, "--state", "all").stdout
    assert "cleared" in table
    assert "m1" in table


def test_rules_cli_shows_and_validates_overrides(park_id, cli, db_conn):
    out = json.loads(cli("rules", "--park", park_id, "--format", "json").stdout)
    assert {r["id"] for r in out["rules"]} >= {"device_offline", "contracted_demand", "pue_limit"}
    bad = cli("rules", "--park", park_id, "--set", "device_offline.intervals=-1", code=2)
    assert "rules.device_offline.params.intervals" in bad.output
    assert "no rule 'nope'" in cli("rules", "--park", park_id, "--set", "nope.enabled=false", code=2).output
    assert "--park" in cli("rules", "--set", "device_offline.enabled=false", code=2).output
    cli("rules", "--park", park_id, "--set", "contracted_demand.contracted_demand_kw=3000",
        "--set", "pue_limit.sites.dc1=new")
    out = json.loads(cli("rules", "--park", park_id, "--format", "json").stdout)
    rules = {r["id"]: r for r in out["rules"]}
    assert rules["contracted_demand"]["params"]["contracted_demand_kw"] == 3000
    assert rules["pue_limit"]["params"]["sites"] == {"dc1": "new"}
    stored = db_conn.execute("SELECT rule_id, override FROM alarm_rule_overrides WHERE park_id = %s ORDER BY 1",
                             (park_id,)).fetchall()
    assert stored == [("contracted_demand", {"params": {"contracted_demand_kw": 3000}}),
                      ("pue_limit", {"params": {"sites": {"dc1": "new"}}})]


def test_due_parks_follow_the_change_log_status_and_recheck(database_url, park_id, db_conn):
    sid = create_series(db_conn, park_id, Meter("m1"))
    _run(database_url, park_id, 0)
    low = db_conn.execute("SELECT max(change_id) FROM reading_changes").fetchone()[0]
    recheck = timedelta(minutes=15)
    assert park_id not in due_parks(db_conn, low, low, NOW + timedelta(minutes=1), recheck)
    write_readings(db_conn, sid, [(NOW - timedelta(minutes=1), 1.0)])
    high = db_conn.execute("SELECT max(change_id) FROM reading_changes").fetchone()[0]
    assert park_id in due_parks(db_conn, low, high, NOW + timedelta(minutes=1), recheck)
    assert park_id not in due_parks(db_conn, high, high, NOW + timedelta(minutes=1), recheck)
    assert park_id in due_parks(db_conn, high, high, NOW + timedelta(minutes=16), recheck)
    # a last will arriving after the evaluation
    db_conn.execute("""INSERT INTO device_status (device_key, last_seen_at, online, status_at)
                       SELECT device_key, now(), false, now() + interval '1 second' FROM devices
                       WHERE park_id = %s""", (park_id,))
    assert park_id in due_parks(db_conn, high, high, NOW + timedelta(minutes=1), recheck)
    save_override(db_conn, park_id, "device_offline", {"enabled": False}, "test")
    assert park_id in due_parks(db_conn, high, high, NOW + timedelta(minutes=1), recheck)


def test_after_aggregate_evaluates_the_due_parks_and_advances_the_watermark(scratch_database_url: str):
    migrate(scratch_database_url)
    with psycopg.connect(scratch_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO parks (park_id) VALUES ('p1'), ('p2')")
        sid = create_series(conn, "p1", Meter("m1"))
        create_series(conn, "p2", Meter("m1"))
        conn.execute("UPDATE devices SET first_seen_at = now() - interval '2 hours'")   # silent for 2 h: offline
        write_readings(conn, sid, [(datetime.now(UTC) - timedelta(hours=3), 1.0)])
        high = conn.execute("SELECT max(change_id) FROM reading_changes").fetchone()[0]
        lines = after_aggregate(scratch_database_url)
        assert lines[-1].startswith("alarms: 2 park(s) evaluated, 2 raised")
        assert sorted(line.split(": ", 1)[1].split(" (")[0] for line in lines[:-1]) == [
            "p1 device_offline m1", "p2 device_offline m1"]
        assert change_log_position(conn) == (high, high)
        # nothing changed and both were just judged: nothing is due
        assert after_aggregate(scratch_database_url)[-1].startswith("alarms: 0 park(s) evaluated")

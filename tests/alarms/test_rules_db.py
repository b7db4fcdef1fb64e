"""Each alarm rule firing and clearing on the real database.

Device sessions, balance checks and daily PUE are written directly; interval energy, rollups and flags come
from the real aggregation job over readings seeded the way ingest writes them. Every park is the test's own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from aggregation._event_input import EventInput, complete
from aggregation._event_store import record_events
from aggregation._jobs import AggregationJob
from aggregation._settings import AggregationSettings
from alarms._evaluate import AlarmEvaluator
from alarms._lifecycle_store import get_alarm, save_override
from tests.aggregation._seed import Meter, create_series, register_rows, write_readings

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)


def _alarms(conn: psycopg.Connection, park_id: str) -> dict[tuple[str, str], tuple[str, str, float | None]]:
    """(rule, subject) → (state, severity, value) of the park's alarms that are not cleared."""
    rows = conn.execute("SELECT rule_id, subject, state, severity, value FROM alarms "
                        "WHERE park_id = %s AND state <> 'cleared'", (park_id,)).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


def _evaluate(database_url: str, park_id: str, at: datetime) -> None:
    report = AlarmEvaluator(database_url).run([park_id], now=at)
    assert report.failed == {}


def test_device_offline_by_silence_and_by_last_will(database_url: str, park_id: str, db_conn: psycopg.Connection):
    now = datetime.now(UTC).replace(microsecond=0)
    create_series(db_conn, park_id, Meter("m1", metadata={"poll_interval_s": 60}))
    create_series(db_conn, park_id, Meter("m2", metadata={"poll_interval_s": 600}))   # limit 3 × 600 s = 30 min
    db_conn.execute("""INSERT INTO device_status (device_key, last_seen_at, last_reading_ts)
                       SELECT device_key, %s, %s FROM devices WHERE park_id = %s""",
                    (now - timedelta(minutes=5), now - timedelta(minutes=5), park_id))
    _evaluate(database_url, park_id, now)
    assert _alarms(db_conn, park_id) == {}

    # 16 min after m1's last reading: past its limit max(3 × 60 s, 900 s) = 15 min; m2's is 30 min
    _evaluate(database_url, park_id, now + timedelta(minutes=11))
    assert _alarms(db_conn, park_id) == {("device_offline", "m1"): ("open", "critical", 16 * 60.0)}

    db_conn.execute("""UPDATE device_status SET last_reading_ts = %s, last_seen_at = %s FROM devices d
                       WHERE d.device_key = device_status.device_key AND d.park_id = %s AND d.device_id = 'm1'""",
                    (now + timedelta(minutes=12), now + timedelta(minutes=12), park_id))
    _evaluate(database_url, park_id, now + timedelta(minutes=13))
    assert _alarms(db_conn, park_id) == {}
    cleared = db_conn.execute("SELECT alarm_id, clear_reason FROM alarms WHERE park_id = %s AND rule_id = "
                              "'device_offline'", (park_id,)).fetchall()
    assert [c[1] for c in cleared] == ["condition gone"]

    # m2's last will (status "offline") 2 min ago, nothing since: offline at once, not after 30 min
    db_conn.execute("""UPDATE device_status SET online = false, status_at = %s FROM devices d
                       WHERE d.device_key = device_status.device_key AND d.park_id = %s AND d.device_id = 'm2'""",
                    (now + timedelta(minutes=12), park_id))
    _evaluate(database_url, park_id, now + timedelta(minutes=14))
    state = _alarms(db_conn, park_id)
    assert list(state) == [("device_offline", "m2")]
    alarm = get_alarm(db_conn, db_conn.execute("SELECT alarm_id FROM alarms WHERE park_id = %s AND subject = 'm2'",
                                               (park_id,)).fetchone()[0])
    assert alarm.context["last_will_offline"] is True


def _aggregate(database_url: str, park_id: str) -> None:
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0)).run()


START = datetime(2026, 10, 12, tzinfo=SH)
END = datetime(2026, 10, 14, 12, 0, tzinfo=SH)
RESET_AT = datetime(2026, 10, 14, 9, 7, tzinfo=SH)       # m1's register is cleared to 0 at 09:07
GAP = (datetime(2026, 10, 13, 6, 0, tzinfo=SH), datetime(2026, 10, 13, 12, 0, tzinfo=SH))  # m2 silent 6 h
M3_STOPS = datetime(2026, 10, 13, 12, 0, tzinfo=SH)      # m3 silent from noon of the 13th


def _m1_rows(meter: Meter) -> list[tuple[datetime, float]]:
    rows = register_rows(meter, START, END, Q)
    # after the reset the register restarts from 0 (+10 per interval from the 09:15 reading on)
    return [(t, v) if t < RESET_AT else (t, 10.0 * ((t - RESET_AT) // Q + 1) - 10.0 * 7 / 15) for t, v in rows]


def test_gap_estimated_share_counter_anomaly_and_demand_fire_and_clear(
        database_url: str, park_id: str, db_conn: psycopg.Connection):
    m1 = Meter("m1", per_interval=10.0, level=1, role="park_boundary", start_value=5_000.0)
    m2 = Meter("m2", per_interval=9.0, level=2)
    m3 = Meter("m3", per_interval=1.0, level=2)
    ids = {m.device_id: create_series(db_conn, park_id, m) for m in (m1, m2, m3)}
    write_readings(db_conn, ids["m1"], _m1_rows(m1))
    m2_rows = register_rows(m2, START, END, Q)
    write_readings(db_conn, ids["m2"], [(t, v) for t, v in m2_rows if not GAP[0] < t < GAP[1]])
    m3_rows = register_rows(m3, START, END, Q)
    write_readings(db_conn, ids["m3"], [(t, v) for t, v in m3_rows if t <= M3_STOPS])
    save_override(db_conn, park_id, "contracted_demand", {"params": {"contracted_demand_kw": 35}}, "test")
    _aggregate(database_url, park_id)
    now = datetime.now(UTC)
    _evaluate(database_url, park_id, now)

    state = _alarms(db_conn, park_id)
    # m3: the 13th has readings up to 12:00 only, so 48 of 96 intervals are missing (50 %)
    assert state[("data_gap", "m3/active_energy_import")] == ("open", "warning", pytest.approx(50.0, abs=1.1))
    assert {s for r, s in state if r == "data_gap"} == {"m3/active_energy_import"}
    # m2: the 6-hour hole on the 13th is estimated: 23 to 24 of 96 intervals (≈ 25 %) > 10 %
    assert {s for r, s in state if r == "estimated_share"} == {"m2/active_energy_import"}
    assert 22 / 96 * 100 <= state[("estimated_share", "m2/active_energy_import")][2] <= 26 / 96 * 100
    # m1: an unexplained register drop at 09:07 on the 14th, inside the last 24 h
    assert state[("counter_anomaly", "m1/active_energy_import")][:2] == ("open", "warning")
    # 10 kWh per 15 min on the level-1 meter = 40 kW > 35 kW contracted
    assert state[("contracted_demand", "park")] == ("open", "critical", 40.0)
    # the 14th so far: level 1 has 10 kWh per interval, level 2 only m2's 9 (m3 silent): 10 % > the policy's 5 %
    assert state[("meter_balance", "electricity")] == ("open", "warning", pytest.approx(10.0, abs=0.5))
    assert not any(r == "counter_event" for r, _ in state)

    # the operator fills the holes, confirms the reset and corrects the contracted demand
    write_readings(db_conn, ids["m2"], [(t, v) for t, v in m2_rows if GAP[0] < t < GAP[1]])
    write_readings(db_conn, ids["m3"], [(t, v) for t, v in m3_rows if t > M3_STOPS])
    last_before = max(v for t, v in _m1_rows(m1) if t < RESET_AT)
    record_events(db_conn, [complete(EventInput(park_id, "m1", "reset", RESET_AT, old_final=last_before + 7 / 15 * 10,
                                                new_initial=0.0))], recorded_by="test", source="cli")
    save_override(db_conn, park_id, "contracted_demand", {"params": {"contracted_demand_kw": 50}}, "test")
    _aggregate(database_url, park_id)
    _evaluate(database_url, park_id, now + timedelta(minutes=1))

    state = _alarms(db_conn, park_id)
    assert not any(r in ("data_gap", "estimated_share", "counter_anomaly", "contracted_demand", "meter_balance")
                   for r, _ in state)
    # the confirmed reset is exact now, and shown as an info-level counter event
    assert state[("counter_event", "m1/active_energy_import")][:2] == ("open", "info")
    reasons = db_conn.execute("SELECT rule_id, clear_reason FROM alarms WHERE park_id = %s AND state = 'cleared'",
                              (park_id,)).fetchall()
    assert sorted(reasons) == [("contracted_demand", "condition gone"), ("counter_anomaly", "condition gone"),
                               ("data_gap", "condition gone"), ("estimated_share", "condition gone"),
                               ("meter_balance", "condition gone")]


def _balance(conn: psycopg.Connection, park_id: str, day: datetime, pct: float, alarm: bool) -> None:
    conn.execute("""INSERT INTO balance_checks (park_id, grain, period_start, carrier, metric, level1_energy,
                                                level2_energy, difference, difference_pct, alarm, unit, supply_energy)
                    VALUES (%s, 'day', %s, 'electricity', 'active_energy_import', 1000, %s, %s, %s, %s, 'kWh', 1000)""",
                 (park_id, day, 1000 - 10 * pct, 10 * pct, pct, alarm))


def test_meter_balance_and_pue_fire_and_clear(database_url: str, park_id: str, db_conn: psycopg.Connection):
    now = datetime.now(UTC)
    day = datetime(2026, 10, 1, tzinfo=SH)
    _balance(db_conn, park_id, day, 1.0, False)
    _balance(db_conn, park_id, day + timedelta(days=1), 8.0, True)     # newest: outside the policy's limit
    # data centre dc1: 7 days of 140 kWh facility per 100 kWh IT = PUE 1.40 (not above the 1.4 of existing DCs)
    for k in range(7):
        db_conn.execute("""INSERT INTO pue_results (park_id, site_id, grain, period_start, facility_kwh, it_kwh, pue,
                                                    category, plausible)
                           VALUES (%s, 'dc1', 'day', %s, 140, 100, 1.4, '1', true)""",
                        (park_id, day + timedelta(days=k)))
    _evaluate(database_url, park_id, now)
    assert _alarms(db_conn, park_id) == {("meter_balance", "electricity"): ("open", "warning", 8.0)}

    # dc1 is a new data centre: Shenzhen's 1.25 applies
    save_override(db_conn, park_id, "pue_limit", {"params": {"sites": {"dc1": "new"}}}, "test")
    # two newer balanced days push the bad one out of the 2-period window
    _balance(db_conn, park_id, day + timedelta(days=2), 0.5, False)
    _balance(db_conn, park_id, day + timedelta(days=3), -0.5, False)
    _evaluate(database_url, park_id, now + timedelta(minutes=1))
    state = _alarms(db_conn, park_id)
    assert state == {("pue_limit", "dc1"): ("open", "warning", pytest.approx(1.4))}
    alarm_id = db_conn.execute("SELECT alarm_id FROM alarms WHERE park_id = %s AND rule_id = 'pue_limit'",
                               (park_id,)).fetchone()[0]
    assert get_alarm(db_conn, alarm_id).limit_value == 1.25

    save_override(db_conn, park_id, "pue_limit", {}, "test")
    _evaluate(database_url, park_id, now + timedelta(minutes=2))
    assert _alarms(db_conn, park_id) == {}


def test_skipped_rules_leave_a_note(database_url: str, park_id: str, db_conn: psycopg.Connection):
    _evaluate(database_url, park_id, datetime.now(UTC))
    notes = db_conn.execute("SELECT notes FROM alarm_evaluations WHERE park_id = %s", (park_id,)).fetchone()[0]
    assert "no uplink" in notes["uplink_backlog"]
    assert "contracted_demand_kw is not set" in notes["contracted_demand"]
    assert "device_offline" not in notes

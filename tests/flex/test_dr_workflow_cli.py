"""``parkpulse dr`` against the real database: park calendars, capacity per event and method, ``--policy``,
direction aliases. Expected figures come from the load's construction, not from the baseline engine."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flex import CalendarDay, CalendarDayKind, DrService, DrStore, EventWindow
from flex._cli import dr_app
from tests.flex.dbseed import add_series, seed_park, write_interval_energy
from tests.flex.loadgen import build_load, local, window_overrides

pytestmark = pytest.mark.services

FIRST = date(2026, 5, 25)
EVENT_DAY = date(2026, 7, 15)  # Wednesday
SHUTDOWN = date(2026, 7, 13)   # Monday, declared a park holiday
SATURDAY = date(2026, 7, 11)   # declared a working day


def level(day: date) -> float:
    return 600.0 if day.weekday() >= 5 else 1000.0 + 10.0 * (day - FIRST).days


def five_working_days(holidays=frozenset(), workdays=frozenset()) -> list[date]:
    found, d = [], EVENT_DAY - timedelta(days=1)
    while len(found) < 5:
        if d in workdays or (d.weekday() < 5 and d not in holidays):
            found.append(d)
        d -= timedelta(days=1)
    return found


@pytest.fixture
def seeded(db_conn, database_url: str, park_id: str) -> dict[str, str]:
    seed_park(db_conn, park_id)
    meter = add_series(db_conn, park_id, "boundary", "active_energy_import", "kWh", level=1)
    write_interval_energy(db_conn, meter, build_load(FIRST, EVENT_DAY, level,
                                                     overrides=window_overrides(EVENT_DAY, 14, 16, 700.0)))
    return {"PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "250", "PARKPULSE_DR_POLICY_FILE": ""}


def _run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(dr_app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def test_store_round_trip_and_a_holiday_changes_the_stored_parks_baseline(database_url: str, seeded, park_id: str):
    with DrStore(database_url) as store:
        service = DrService(store, clock=lambda: local(EVENT_DAY, 18))
        method = service.method_for(park_id, "JIANGSU_5WD", None)
        window = EventWindow(local(EVENT_DAY, 14), local(EVENT_DAY, 16))
        before = service.baseline(park_id, window, method=method).profile["baseline_kw"][0]
        assert before == pytest.approx(sum(level(d) for d in five_working_days()) / 5)

        days = [CalendarDay(SHUTDOWN, CalendarDayKind.HOLIDAY, "年度检修"),
                CalendarDay(date(2027, 2, 1), CalendarDayKind.WORKDAY, "")]
        service.set_calendar(park_id, days)
        assert store.calendar_days(park_id) == days
        after = service.baseline(park_id, window, method=method).profile["baseline_kw"][0]
        assert after == pytest.approx(sum(level(d) for d in five_working_days(holidays={SHUTDOWN})) / 5)
        assert after != pytest.approx(before)

        service.set_calendar(park_id, [CalendarDay(SATURDAY, CalendarDayKind.WORKDAY, "调休上班")], merge=True)
        assert [d.day for d in store.calendar_days(park_id)] == [SATURDAY, SHUTDOWN, date(2027, 2, 1)]
        merged = service.baseline(park_id, window, method=method).profile["baseline_kw"][0]
        assert merged == pytest.approx(
            sum(level(d) for d in five_working_days(holidays={SHUTDOWN}, workdays={SATURDAY})) / 5)
        assert service.clear_calendar(park_id, year=2026) == 2
        assert store.calendar_days(park_id) == [days[1]]


def test_calendar_commands(seeded: dict[str, str], park_id: str, tmp_path: Path):
    env = seeded
    baseline_args = ("baseline", park_id, "--start", "2026-07-15T14:00+08:00", "--end", "2026-07-15T14:15+08:00",
                     "--method", "JIANGSU_5WD")
    plain = sum(level(d) for d in five_working_days()) / 5
    assert f"{plain:,.1f}" in _run(env, *baseline_args)

    csv_file = tmp_path / "park-days.csv"
    csv_file.write_text(f"date,kind,name\n{SHUTDOWN},holiday,年度检修\n{SATURDAY},workday,调休上班\n",
                        encoding="utf-8")
    out = _run(env, "calendar", "set", park_id, str(csv_file))
    assert "2 day(s) saved" in out
    layered = sum(level(d) for d in five_working_days(holidays={SHUTDOWN}, workdays={SATURDAY})) / 5
    out = _run(env, *baseline_args)
    assert f"{layered:,.1f}" in out
    assert SATURDAY.isoformat() in out

    shown = _run(env, "calendar", "show", park_id, "--year", "2026")
    assert "年度检修" in shown
    assert "park (was workday)" in shown           # a Monday turned into a holiday
    assert "国庆节" in shown                       # the national holidays are listed too
    assert _run(env, "calendar", "show", park_id, "--csv") == (
        f"date,kind,name\n{SATURDAY},workday,调休上班\n{SHUTDOWN},holiday,年度检修\n")
    assert "only the park's own days" in _run(env, "calendar", "show", park_id, "--year", "2035")

    bad = tmp_path / "bad.yaml"
    bad.write_text("- {date: 2026-07-20, kind: holiday}\n- {date: 2026-07-32, kind: holiday}\n", encoding="utf-8")
    out = _run(env, "calendar", "set", park_id, str(bad), code=1)
    assert "row 2, field 'date'" in out
    assert "fix the file" in out
    assert "calendar clear" in _run(env, "calendar", "set", park_id, str(_empty(tmp_path)), code=1)
    assert "not found" in _run(env, "calendar", "set", "no-such-park-q", str(csv_file), code=1)

    assert "2 own day(s) removed" in _run(env, "calendar", "clear", park_id)
    assert f"{plain:,.1f}" in _run(env, *baseline_args)


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("date,kind,name\n", encoding="utf-8")
    return path


def test_directions_policy_and_capacity_per_event(seeded: dict[str, str], park_id: str, tmp_path: Path):
    env = seeded
    event = f"{park_id}-e1"
    out = _run(env, "register-event", park_id, "--start", "2026-07-15T14:00+08:00", "--hours", "2",
               "--requested-kw", "500", "--declared-kw", "500", "--direction", "削峰", "--event-id", event)
    assert "up (load reduction, 削峰)" in out
    assert "unknown direction" in _run(env, "register-event", park_id, "--start", "2026-07-16T14:00+08:00",
                                       "--hours", "1", "--requested-kw", "10", "--direction", "sideways", code=2)
    _run(env, "register-event", park_id, "--start", "2026-07-16T02:00+08:00", "--hours", "1", "--requested-kw", "100",
         "--direction", "valley-filling", "--declared-kw", "0", "--event-id", f"{park_id}-fill")
    listed = _run(env, "events", park_id, "--direction", "填谷")
    assert f"{park_id}-fill" in listed
    assert "down (load increase, 填谷)" in listed
    assert event not in listed

    # JIANGSU_5WD (the park default) without a notice day: the 5 workdays before the event day.
    baseline_kw = sum(level(d) for d in five_working_days()) / 5
    reduction_kw = baseline_kw - 700.0
    ratio = reduction_kw / 500.0
    out = _run(env, "evaluate", event)
    assert f"{reduction_kw:,.1f} kW" in out
    assert f"{ratio:.2f}" in out
    assert "capped" in out                         # built-in bands: >= 1.2 is capped

    policy = tmp_path / "programme.yaml"
    policy.write_text("performance_bands:\n  bands:\n    - {name: settled, min_ratio: 0.5}\n"
                      "    - {name: unpaid, max_ratio: 0.5}\n"
                      "verified_capacity:\n  min_event_duration_h: 3\n", encoding="utf-8")
    out = _run(env, "evaluate", event, "--policy", str(policy))
    assert "settled" in out
    assert "capped" not in out
    # Verified capacity: with the built-in policy the 2 h event counts; the file asks for >= 3 h events.
    peak_kw = max(level(FIRST + timedelta(days=i)) for i in range((EVENT_DAY - FIRST).days + 1))
    pct = reduction_kw / peak_kw * 100
    default = _run(env, "capacity", park_id, "--no-save", "--method", "JIANGSU_5WD", "--method", "JIANGSU_RT_15MIN")
    assert f"{pct:,.1f} %" in default.split("capacity per event")[0]
    strict = _run(env, "capacity", park_id, "--no-save", "--no-by-event", "--policy", str(policy))
    assert f"{pct:,.1f} %" not in strict
    assert "capacity per event" not in strict
    via_env = _run(env | {"PARKPULSE_DR_POLICY_FILE": str(policy)}, "capacity", park_id, "--no-save",
                   "--no-by-event")
    assert f"{pct:,.1f} %" not in via_env
    broken = tmp_path / "broken.yaml"
    broken.write_text("verified_capacity:\n  statistik: max\n", encoding="utf-8")
    assert "unknown key 'verified_capacity.statistik'" in _run(env, "capacity", park_id, "--policy", str(broken),
                                                               code=1)

    # Per event and method: JIANGSU_5WD as stored (marked *), JIANGSU_RT_15MIN from the 15 min before 14:00.
    per_event = default.split("capacity per event")[1]
    assert f"{event}: up (load reduction, 削峰)" in per_event
    assert "sets the verified capacity" in per_event
    assert "JIANGSU_5WD *" in per_event
    rt_kw = level(EVENT_DAY) - 700.0
    assert f"{rt_kw:,.1f}" in per_event
    assert f"{rt_kw / peak_kw * 100:,.1f} %" in per_event
    assert f"{park_id}-fill" not in per_event      # registered, never evaluated

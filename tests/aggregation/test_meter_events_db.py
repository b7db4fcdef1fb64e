"""Meter events on the real database through the CLI only: a CSV history with a meter swap is estimated
across the break, the recorded replacement makes it exact (intervals, rollups, indicators restated),
voiding it brings the estimate back; validation, the audit trail and an all-or-nothing import."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from typer.testing import CliRunner, Result

from aggregation._quality import IntervalFlag as F
from parkpulse.cli import app

pytestmark = pytest.mark.services

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)
START = datetime(2026, 10, 13, tzinfo=SH)
SWAP = datetime(2026, 10, 14, 9, 37, tzinfo=SH)
OLD_RUN_ON_KWH = 3.0        # the old meter counted 3 kWh between its 09:30 reading and the swap at 09:37
NEW_INITIAL = 0.4
NEW_FIRST_KWH = 5.0         # the new meter counted 5 kWh between the swap and its 09:45 reading


def history_csv(path: Path, device: str = "m1", per_interval: float = 10.0, swap: bool = True) -> tuple[Path, float]:
    """Three local days of 15-min readings; with ``swap`` the meter is replaced at 09:37 on day 2.

    Returns the file and the old meter's register at the swap (the 09:30 reading + 3 kWh).
    """
    rows = ["device_id,ts,metric,value,unit"]
    old, new, old_final = 12_000.0, None, 0.0
    for k in range(3 * 96):
        t = START + k * Q
        if not swap or t < SWAP:
            old += per_interval if k else 0.0
            rows.append(f"{device},{t.isoformat()},active_energy_import,{old!r},kWh")
            old_final = old + OLD_RUN_ON_KWH
        else:
            new = NEW_INITIAL + NEW_FIRST_KWH if new is None else new + per_interval
            rows.append(f"{device},{t.isoformat()},active_energy_import,{new!r},kWh")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path, old_final


@pytest.fixture
def cli(database_url: str, park_id: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``parkpulse …`` against the test database; ``aggregate`` runs this park's own job."""
    monkeypatch.setenv("PARKPULSE_DATABASE_URL", database_url)
    monkeypatch.setenv("PARKPULSE_AGGREGATION_PARK", park_id)
    monkeypatch.setenv("PARKPULSE_AGGREGATION_GAP_TIMEOUT_S", "0")   # other suites share the change log
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Result:
        res = runner.invoke(app, list(args))
        if ok:
            assert res.exit_code == 0, res.output
        return res
    return run


def _register(cli: Callable[..., Result], park_id: str, *devices: tuple[str, int, str | None]) -> None:
    cli("registry", "park", "add", park_id, "--timezone", "Asia/Shanghai", "--province", "广东",
        "--grid-region", "南方")
    for device, level, role in devices:
        cli("registry", "device", "add", park_id, device, "--carrier", "electricity", "--metering-level", str(level),
            *(["--role", role] if role else []))


def _interval(conn: psycopg.Connection, park_id: str, device: str, at: datetime) -> tuple[float, int, int, float]:
    row = conn.execute("""SELECT ie.energy, ie.quality, ie.flags, ie.estimated_share FROM interval_energy ie
                          JOIN series s USING (series_id) JOIN devices d USING (device_key)
                          WHERE d.park_id = %s AND d.device_id = %s AND ie.ts = %s""", (park_id, device, at)).fetchone()
    assert row is not None
    return row


def _rollup(conn: psycopg.Connection, park_id: str, device: str, grain: str, start: datetime) -> tuple[float, float]:
    row = conn.execute("""SELECT m.energy, m.estimated_energy FROM meter_rollups m JOIN series s USING (series_id)
                          JOIN devices d USING (device_key)
                          WHERE d.park_id = %s AND d.device_id = %s AND m.grain = %s AND m.period_start = %s""",
                       (park_id, device, grain, start)).fetchone()
    assert row is not None
    return row


def _indicator(conn: psycopg.Connection, park_id: str) -> tuple[float, int]:
    row = conn.execute("""SELECT value, revision FROM indicator_results WHERE park_id = %s AND period = '2026-10'
                          AND subject = '' AND indicator = 'total_energy' AND variant = '当量值'""",
                       (park_id,)).fetchone()
    assert row is not None
    return row


def test_a_recorded_replacement_makes_the_swap_exact_and_restates_the_month(
        cli: Callable[..., Result], db_conn: psycopg.Connection, park_id: str, tmp_path: Path) -> None:
    _register(cli, park_id, ("m1", 1, "park_boundary"))
    csv_path, old_final = history_csv(tmp_path / "history.csv")
    cli("import", "readings", str(csv_path), "--park", park_id)
    cli("aggregate")
    swap_interval = datetime(2026, 10, 14, 9, 30, tzinfo=SH)
    day2, month = datetime(2026, 10, 14, tzinfo=SH), datetime(2026, 10, 1, tzinfo=SH)
    # without the event the drop is a break: estimated from the neighbours (10 per interval either side)
    energy, quality, flags, share = _interval(db_conn, park_id, "m1", swap_interval)
    assert (energy, quality, share) == (pytest.approx(10.0), 1, 1.0)
    assert flags & F.EPOCH_BREAK
    assert _rollup(db_conn, park_id, "m1", "day", day2) == (pytest.approx(960.0), pytest.approx(10.0))
    estimated_value, revision = _indicator(db_conn, park_id)
    assert revision == 1

    res = cli("meter-event", "add", park_id, "m1", "--kind", "replacement", "--at", "2026-10-14T09:37+08:00",
              "--old-final", repr(old_final), "--new-initial", str(NEW_INITIAL), "--note", "WO-2291")
    assert "recorded event" in res.output
    assert "parkpulse aggregate" in res.output
    cli("aggregate")
    # (old_final - 09:30 reading) + (09:45 reading - new_initial) = 3 + 5, nothing estimated
    energy, quality, flags, share = _interval(db_conn, park_id, "m1", swap_interval)
    assert (energy, quality, share) == (pytest.approx(OLD_RUN_ON_KWH + NEW_FIRST_KWH), 0, 0.0)
    assert flags & F.METER_REPLACED
    assert not flags & F.EPOCH_BREAK
    assert _rollup(db_conn, park_id, "m1", "day", day2) == (pytest.approx(958.0), 0.0)
    # 3 days x 96 readings = 287 intervals of 10 kWh, one of them now 8 instead of 10
    assert _rollup(db_conn, park_id, "m1", "month", month) == (pytest.approx(2868.0), 0.0)
    value, revision = _indicator(db_conn, park_id)
    assert revision == 2
    assert value == pytest.approx(estimated_value * 2868.0 / 2870.0)      # energy only: proportional to kWh
    assert db_conn.execute("""SELECT count(*) FROM indicator_results_history WHERE park_id = %s
                              AND indicator = 'total_energy' AND variant = '当量值'""", (park_id,)).fetchone() == (1,)

    # the audit trail: events cannot be edited in place; voiding keeps the row and recomputes without it
    event_id = db_conn.execute("SELECT event_id FROM meter_events WHERE park_id = %s", (park_id,)).fetchone()[0]
    with pytest.raises(psycopg.errors.CheckViolation, match="cannot be edited"):
        db_conn.execute("UPDATE meter_events SET old_final = 1 WHERE event_id = %s", (event_id,))
    res = cli("meter-event", "void", str(event_id), "--reason", "recorded on the wrong meter", "--by", "auditor")
    assert "voided event" in res.output
    again = cli("meter-event", "void", str(event_id), "--reason", "twice", ok=False)
    assert again.exit_code == 1
    assert "already voided" in again.output
    cli("aggregate")
    assert _interval(db_conn, park_id, "m1", swap_interval)[1] == 1
    assert _indicator(db_conn, park_id) == (pytest.approx(estimated_value), 3)
    listed = cli("meter-event", "list", park_id, "--format", "json").output
    assert '"void_reason": "recorded on the wrong meter"' in listed
    assert '"voided_by": "auditor"' in listed


def test_validation_says_what_is_wrong_and_what_to_do(cli: Callable[..., Result], db_conn: psycopg.Connection,
                                                      park_id: str, tmp_path: Path) -> None:
    _register(cli, park_id, ("m1", 1, "park_boundary"))
    csv_path, old_final = history_csv(tmp_path / "history.csv")
    cli("import", "readings", str(csv_path), "--park", park_id)
    at = ["--kind", "replacement", "--at", "2026-10-14T09:37+08:00"]

    low = cli("meter-event", "add", park_id, "m1", *at, "--old-final", "100", "--new-initial", "0.4", ok=False)
    assert low.exit_code == 1
    assert "below the last reading before the event" in low.output
    assert "check the value" in low.output
    high = cli("meter-event", "add", park_id, "m1", *at, "--old-final", repr(old_final), "--new-initial", "50",
               ok=False)
    assert "above the first reading after the event" in high.output
    unknown = cli("meter-event", "add", park_id, "nope", *at, "--old-final", "1", "--new-initial", "0", ok=False)
    assert f"parkpulse registry device add {park_id} nope" in unknown.output
    future = cli("meter-event", "add", park_id, "m1", "--kind", "reset", "--at", "2099-01-01T00:00+08:00", ok=False)
    assert "in the future" in future.output
    missing = cli("meter-event", "add", park_id, "m1", "--kind", "replacement", "--at", "2026-10-14T09:37+08:00",
                  "--old-final", "1", ok=False)
    assert "initial register" in missing.output
    assert db_conn.execute("SELECT count(*) FROM meter_events WHERE park_id = %s", (park_id,)).fetchone() == (0,)

    # a time without an offset is read in the park's zone, and the output says so
    naive = cli("meter-event", "add", park_id, "m1", "--kind", "replacement", "--at", "2026-10-14 09:37",
                "--old-final", repr(old_final), "--new-initial", str(NEW_INITIAL))
    assert "read as park time (Asia/Shanghai)" in naive.output
    stored = db_conn.execute("SELECT occurred_at FROM meter_events WHERE park_id = %s", (park_id,)).fetchone()
    assert stored == (SWAP,)
    dup = cli("meter-event", "add", park_id, "m1", *at, "--old-final", repr(old_final), "--new-initial", "0.4",
              ok=False)
    assert "already recorded" in dup.output
    assert "--corrects" in dup.output


def test_a_ratio_change_and_an_import_all_or_nothing(cli: Callable[..., Result], db_conn: psycopg.Connection,
                                                     park_id: str, tmp_path: Path) -> None:
    _register(cli, park_id, ("m1", 1, "park_boundary"), ("m2", 2, None))
    csv_path, old_final = history_csv(tmp_path / "m1.csv")
    m2_path, _ = history_csv(tmp_path / "m2.csv", device="m2", per_interval=2.0, swap=False)
    cli("import", "readings", str(csv_path), "--park", park_id)
    cli("import", "readings", str(m2_path), "--park", park_id)
    cli("aggregate")

    events = tmp_path / "events.csv"
    events.write_text("device_id,kind,at,old_final,new_initial,old_ratio,new_ratio,note\n"
                      f"m1,replacement,2026-10-14T09:37+08:00,{old_final!r},{NEW_INITIAL},,,WO-1\n"
                      "m2,ratio-change,2026-10-15T00:00+08:00,,,200/5,400/5,CT upgrade\n"
                      "m2,reset,2026-10-15T06:00+08:00,5,0,,,\n", encoding="utf-8")
    bad = cli("meter-event", "import", str(events), "--park", park_id, ok=False)
    # m2 read about 12 400 before 06:00, not 5: line 4 is refused, and with it the whole file
    assert bad.exit_code == 1
    assert "line 4: old_final 5 is below the last reading" in bad.output
    assert db_conn.execute("SELECT count(*) FROM meter_events WHERE park_id = %s", (park_id,)).fetchone() == (0,)

    events.write_text("\n".join(events.read_text(encoding="utf-8").splitlines()[:3]) + "\n", encoding="utf-8")
    res = cli("meter-event", "import", str(events), "--park", park_id)
    assert res.output.count("recorded event") == 2
    assert "primary-side registers" in res.output            # the CSV history is primary-side: new/old = 2
    cli("aggregate")
    day2, day3 = datetime(2026, 10, 14, tzinfo=SH), datetime(2026, 10, 15, tzinfo=SH)
    assert _rollup(db_conn, park_id, "m2", "day", day2) == (pytest.approx(192.0), 0.0)          # 96 x 2
    assert _rollup(db_conn, park_id, "m2", "day", day3)[0] == pytest.approx(95 * 2.0 * 2)       # x 400/5 / 200/5
    first_after = _interval(db_conn, park_id, "m2", day3)
    assert first_after[0] == pytest.approx(4.0)
    assert first_after[2] & F.RATIO_CHANGE
    assert _interval(db_conn, park_id, "m1", datetime(2026, 10, 14, 9, 30, tzinfo=SH))[2] & F.METER_REPLACED
    sources = db_conn.execute("SELECT DISTINCT source FROM meter_events WHERE park_id = %s", (park_id,)).fetchall()
    assert sources == [("import",)]

"""``parkpulse dr`` and ``parkpulse api-keys`` commands against the real database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api._cli import keys_app
from api._keystore import PgKeyStore
from flex._cli import dr_app
from parkpulse.cli import app
from tests.flex.dbseed import add_series, seed_park, write_interval_energy
from tests.flex.loadgen import build_load, window_overrides

pytestmark = pytest.mark.services

EVENT_DAY = date(2026, 7, 15)


def test_dr_commands_end_to_end(db_conn, database_url: str, park_id: str, tmp_path: Path):
    seed_park(db_conn, park_id)
    meter = add_series(db_conn, park_id, "boundary", "active_energy_import", "kWh", level=1)
    write_interval_energy(db_conn, meter, build_load(
        date(2026, 5, 25), EVENT_DAY, lambda d: 600.0 if d.weekday() >= 5 else 1000.0,
        overrides=window_overrides(EVENT_DAY, 14, 16, 700.0)))
    env = {"PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "200"}
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(dr_app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "BEIJING_TOP5OF10" in run("presets")
    run("settings", park_id, "--import-max-kw", "3000", "--export-max-kw", "0", "--method", "JIANGSU_5WD",
        "--duration-h", "2")
    asset = tmp_path / "bess.yaml"
    asset.write_text("kind: battery\nasset_id: bess\ncapacity_kwh: 800\ncharge_power_max_kw: 300\n"
                     "discharge_power_max_kw: 300\nstate: {soc_pct: 50, power_kw: 0}\n", encoding="utf-8")
    run("add-asset", park_id, str(asset))
    out = run("register-event", park_id, "--start", "2026-07-15T14:00+08:00", "--hours", "2",
              "--requested-kw", "300", "--declared-kw", "300", "--event-id", f"{park_id}-e1")
    assert f"{park_id}-e1" in out
    out = run("evaluate", f"{park_id}-e1")
    assert "300.0 kW" in out  # 1000 kW baseline - 700 kW actual
    assert "ok" in out
    out = run("capacity", park_id)
    assert "300.0" in out
    assert "30.0 %" in out  # 300 kW of a 1000 kW annual peak
    assert f"{park_id}-e1" in run("events", park_id)
    assert "2026-07-14" in run("baseline", park_id, "--start", "2026-07-16T14:00+08:00",
                               "--end", "2026-07-16T15:00+08:00")
    assert "bess" in run("flex", park_id)

    bad = runner.invoke(dr_app, ["register-event", park_id, "--start", "2026-07-15T14:00", "--hours", "1",
                                 "--requested-kw", "10"], env=env)
    assert bad.exit_code != 0
    assert "offset" in bad.output
    missing = runner.invoke(dr_app, ["evaluate", "no-such-event"], env=env)
    assert missing.exit_code == 1
    assert "not found" in missing.output


def test_api_key_commands(db_conn, database_url: str, park_id: str):
    seed_park(db_conn, park_id)
    env = {"PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "200"}
    runner = CliRunner()
    created = runner.invoke(keys_app, ["create", "Grid Co", "--park", park_id], env=env)
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("pp_")
    client_id = key.split("_")[1]
    stored = PgKeyStore(database_url).get(client_id)
    assert stored is not None
    assert stored.client.park_ids == {park_id}
    assert key.split("_", 2)[2].encode() not in stored.key_hash  # only the hash is stored
    assert client_id in runner.invoke(keys_app, ["list"], env=env).output
    assert runner.invoke(keys_app, ["revoke", client_id], env=env).exit_code == 0
    assert runner.invoke(keys_app, ["revoke", client_id], env=env).exit_code == 1
    unknown = runner.invoke(keys_app, ["create", "X", "--park", "no-such-park-xyz"], env=env)
    assert unknown.exit_code == 1
    via_dr = runner.invoke(app, ["dr", "create-key", "Grid Co 2", "--park", park_id, "--expires-days", "30"], env=env)
    assert via_dr.exit_code == 0, via_dr.output
    assert via_dr.output.strip().splitlines()[-1].startswith("pp_")

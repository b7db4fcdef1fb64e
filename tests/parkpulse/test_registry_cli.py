"""``parkpulse registry`` on the real database: parks, sites and devices; import and export of a whole park."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from parkpulse.cli import app
from tests.fixtures.services import unique_park_id

pytestmark = pytest.mark.services
runner = CliRunner()


def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["registry", *args, "--database-url", database_url], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def park(request: pytest.FixtureRequest, db_conn: psycopg.Connection) -> Iterator[str]:
    park_id = unique_park_id(request)
    yield park_id
    db_conn.execute("DELETE FROM parks WHERE park_id = %s", (park_id,))


def test_park_site_and_device_commands(database_url, db_conn, park):
    assert cli(database_url, "park", "add", park, "--province", "广东", "--timezone", "Asia/Shanghai")[0] == 0
    code, out, _ = cli(database_url, "park", "update", park, "--grid-region", "南方")
    assert (code, out.strip()) == (0, f"park {park} updated")
    code, out, _ = cli(database_url, "park", "show", park, "--format", "json")
    shown = json.loads(out)
    assert (shown["province"], shown["grid_region"], shown["sites"], shown["devices"]) == ("广东", "南方", 0, 0)

    assert cli(database_url, "site", "add", park, "dc", "--kind", "data_centre", "--floor-area-m2", "2500",
               "--roof-area-m2", "1800", "--public-building")[0] == 0
    code, out, _ = cli(database_url, "site", "list", park, "--format", "json")
    assert json.loads(out) == [{"site_id": "dc", "name": None, "kind": "data_centre", "floor_area_m2": 2500.0,
                                "roof_area_m2": 1800.0, "is_public_building": True, "devices": 0}]

    assert cli(database_url, "device", "add", park, "it-1", "--site", "dc", "--role", "dc_it", "--metering-level",
               "3", "--multiplier", "40")[0] == 0
    assert cli(database_url, "device", "update", park, "it-1", "--unset", "multiplier", "--carrier",
               "electricity")[0] == 0
    code, out, _ = cli(database_url, "device", "show", park, "it-1")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "(operator)" in lines["role"]
    assert "(operator)" not in lines["multiplier"]
    assert db_conn.execute("SELECT multiplier, operator_fields FROM devices WHERE park_id = %s", (park,)).fetchone() \
        == (1.0, ["carrier", "metering_level", "role", "site_id"])
    code, out, _ = cli(database_url, "device", "list", park, "--format", "json")
    assert [d["device_id"] for d in json.loads(out)] == ["it-1"]


def test_bad_values_and_missing_entities_say_what_to_do(database_url, park):
    code, _, err = cli(database_url, "park", "add", park, "--timezone", "Beijing")
    assert code == 2
    assert "IANA" in err
    assert cli(database_url, "park", "add", park)[0] == 0
    code, _, err = cli(database_url, "device", "add", park, "m", "--role", "boss")
    assert code == 2
    assert "park_boundary" in err
    code, _, err = cli(database_url, "device", "add", park, "m", "--site", "nowhere")
    assert code == 1
    assert f"parkpulse registry site add {park} nowhere" in err
    code, _, err = cli(database_url, "site", "update", park, "nowhere", "--name", "x")
    assert code == 1
    assert f"parkpulse registry site add {park} nowhere" in err
    code, _, err = cli(database_url, "device", "update", park, "m", "--multiplier", "0")
    assert code == 2
    assert "greater than 0" in err


def test_import_dry_run_then_apply_then_export_round_trip(database_url, db_conn, park, tmp_path: Path):
    source = tmp_path / "park.csv"
    source.write_text(
        "record,park_id,site_id,device_id,name,kind,metering_level,role,carrier,floor_area_m2\n"
        f"park,{park},,,示范园,,,,,\n"
        f"site,{park},ws-a,,一号厂房,workshop,,,,12000\n"
        f"device,{park},ws-a,ws-a,,electricity_meter,2,,electricity,\n"
        f"device,{park},,grid-in,,electricity_meter,1,park_boundary,electricity,\n", encoding="utf-8-sig")
    code, out, _ = cli(database_url, "import", str(source), "--dry-run")
    assert code == 0, out
    assert "parks: 1 created" in out
    assert "devices: 2 created, 0 updated, 0 unchanged" in out
    assert "nothing was written" in out
    assert db_conn.execute("SELECT count(*) FROM parks WHERE park_id = %s", (park,)).fetchone() == (0,)

    code, out, _ = cli(database_url, "import", str(source), "--json")
    assert code == 0
    assert json.loads(out)["counts"]["device"] == {"created": 2, "updated": 0, "unchanged": 0}

    exported = tmp_path / "export.csv"
    assert cli(database_url, "export", "--park", park, "-o", str(exported))[0] == 0
    assert exported.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel opens it as UTF-8
    rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8-sig"))))
    assert [(r["record"], r["device_id"], r["metering_level"]) for r in rows] == [
        ("park", "", ""), ("site", "", ""), ("device", "ws-a", "2"), ("device", "grid-in", "1")]
    code, out, _ = cli(database_url, "import", str(exported))
    assert (code, "nothing to change" in out) == (0, True)

    yaml_file = tmp_path / "export.yaml"
    assert cli(database_url, "export", "--park", park, "-o", str(yaml_file))[0] == 0
    edited = yaml_file.read_text(encoding="utf-8").replace("metering_level: 2", "metering_level: 3")
    yaml_file.write_text(edited, encoding="utf-8")
    code, out, _ = cli(database_url, "import", str(yaml_file))
    assert code == 0
    assert "device ws-a: updated (metering_level 2 → 3)" in out


def test_a_bad_file_lists_every_problem_with_its_line_and_writes_nothing(database_url, db_conn, park,
                                                                         tmp_path: Path):
    source = tmp_path / "park.yaml"
    source.write_text(f"park:\n  park_id: {park}\n  timezone: Asia/Nowhere\n  devices:\n"
                      "    - {device_id: m1, metering_level: 4}\n    - {device_id: m2, carrier: coal}\n",
                      encoding="utf-8")
    code, _, err = cli(database_url, "import", str(source))
    assert code == 1
    assert "3 problems" in err
    for line, name in ((3, "timezone"), (5, "metering_level"), (6, "carrier")):
        assert f"line {line}, {name}:" in err
    assert db_conn.execute("SELECT count(*) FROM parks WHERE park_id = %s", (park,)).fetchone() == (0,)


def test_a_gb18030_spreadsheet_is_read_with_a_note(database_url, db_conn, park, tmp_path: Path):
    source = tmp_path / "park.csv"
    source.write_bytes(f"park_id,name\n{park},示范园\n".encode("gb18030"))
    code, _, err = cli(database_url, "import", str(source))
    assert code == 0, err
    assert "GB18030" in err
    assert db_conn.execute("SELECT name FROM parks WHERE park_id = %s", (park,)).fetchone() == ("示范园",)

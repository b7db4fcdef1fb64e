"""``parkpulse vpp events …`` and ``vpp ven2 run`` settings errors, against the real database."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from parkpulse.cli import app
from tests.flex.dbseed import seed_park
from tests.vpp.test_intake import Harness, add_battery, make_event
from vpp._event_model import OptDecision

pytestmark = pytest.mark.services


@pytest.fixture
def cli(database_url: str) -> Callable[..., str]:
    runner = CliRunner()
    env = {"PARKPULSE_DATABASE_URL": database_url, "COLUMNS": "250"}

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["vpp", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_events_list_show_and_policy(cli: Callable[..., str], database_url: str, db_conn: psycopg.Connection,
                                     park_id: str) -> None:
    seed_park(db_conn, park_id)
    harness = Harness(database_url)
    try:
        add_battery(harness.dr, park_id, at=datetime.now(UTC))
        accepted = harness.intake.accept(make_event(park_id, kw=50.0))
        harness.intake.accept(make_event(park_id, kw=50.0))  # a duplicate delivery
        refused = harness.intake.accept(make_event(park_id, vtn_event_id="big", kw=1e6))
    finally:
        harness.close()
    assert refused.opt is OptDecision.OPT_OUT
    listed = json.loads(cli("events", "list", "--park", park_id, "--json"))
    assert listed["total"] == 2
    by_id = {e["dr_event_id"]: e for e in listed["events"]}
    assert by_id[accepted.dr_event_id]["opt"] == "optIn"
    assert by_id[refused.dr_event_id]["opt_reason"] == refused.opt_reason
    table = cli("events", "list", "--park", park_id)
    assert accepted.dr_event_id in table
    shown = json.loads(cli("events", "show", accepted.dr_event_id, "--json"))
    assert [v["action"] for v in shown["versions"]] == ["new", "duplicate"]
    assert shown["intervals"][1]["value"] == 50.0
    assert "optIn" in cli("events", "show", accepted.dr_event_id)
    assert "no received event" in cli("events", "show", "nope", code=1)

    doc = json.loads(cli("events", "policy", "--park", park_id, "--flex-margin", "0.8", "--hours", "8-22",
                         "--min-notice-min", "15", "--json"))
    assert doc["policy"]["flex_margin"] == 0.8
    assert doc["policy"]["local_hours"] == [8, 22]
    again = json.loads(cli("events", "policy", "--park", park_id, "--day-types", "workday", "--json"))
    assert again["policy"]["flex_margin"] == 0.8  # earlier keys kept
    assert again["policy"]["allowed_day_types"] == ["workday"]
    assert "must look like" in cli("events", "policy", "--park", park_id, "--hours", "late", code=1)
    assert "does not exist" in cli("events", "policy", "--park", f"{park_id}-x", "--flex-margin", "1", code=1)


def test_ven2_run_without_settings_says_what_to_set(cli, monkeypatch):
    monkeypatch.delenv("PARKPULSE_VEN2_VTN_URL", raising=False)
    monkeypatch.delenv("PARKPULSE_VEN2_PARK_ID", raising=False)
    out = cli("ven2", "run", code=1)
    assert "PARKPULSE_VEN2_VTN_URL" in out


def test_ven2_run_with_missing_certificate_files_says_which(cli: Callable[..., str],
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARKPULSE_VEN2_VTN_URL", "http://127.0.0.1:9/OpenADR2/Simple/2.0b")
    monkeypatch.setenv("PARKPULSE_VEN2_PARK_ID", "p")
    monkeypatch.setenv("PARKPULSE_VEN2_CERT", str(tmp_path / "missing.pem"))
    monkeypatch.setenv("PARKPULSE_VEN2_KEY", str(tmp_path / "missing.key"))
    out = cli("ven2", "run", code=1)
    assert "cannot read the VEN certificate" in out

"""``parkpulse alarms notify`` and ``parkpulse alarms deliveries`` through the CLI (mounted here on a test app)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from alarms._notify import enqueue_notification
from alarms._notify_cli import deliveries, notify
from tests.alarms.test_notify_support import http_server, notification

app = typer.Typer()
app.command("notify")(notify)
app.command("deliveries")(deliveries)
runner = CliRunner()

CONFIG = """
channels:
  hook: {kind: webhook, url: {env: TEST_NOTIFY_HOOK_URL}}
lists:
  ops: {channels: [hook], quiet_hours: {start: "22:00", end: "07:00"}}
routes:
  "*": {warning: [ops], critical: [ops]}
"""


def test_check_prints_the_routes_without_secrets(tmp_path: Path) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    secret_url = "https://hooks.example/abc?token=very-secret-token"
    result = runner.invoke(app, ["notify", "--check", "--config", str(config)],
                           env={"TEST_NOTIFY_HOOK_URL": secret_url, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "very-secret-token" not in result.output
    assert "22:00–07:00" in result.output
    assert "ops" in result.output
    missing = runner.invoke(app, ["notify", "--check", "--config", str(config)], env={"TEST_NOTIFY_HOOK_URL": ""})
    assert missing.exit_code == 1
    assert "TEST_NOTIFY_HOOK_URL is not set" in missing.output


def test_without_a_config_the_error_says_where_to_start() -> None:
    result = runner.invoke(app, ["notify", "--once", "--database-url", "postgresql://unused"],
                           env={"PARKPULSE_NOTIFY_CONFIG_FILE": None})
    assert result.exit_code == 1
    assert "notify.example.yaml" in result.output
    assert "--config" in result.output


@pytest.mark.services
def test_once_delivers_and_deliveries_shows_the_record(tmp_path: Path, database_url: str,
                                                        db_conn: psycopg.Connection, park_id: str) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG.replace('{start: "22:00", end: "07:00"}', '{start: "22:00", end: "22:01"}'),
                      encoding="utf-8")
    enqueue_notification(db_conn, notification(park_id, "alarm:9:raised", severity="critical",
                                               created_at=datetime.now(UTC)))
    with http_server() as hook:
        result = runner.invoke(app, ["notify", "--once", "--config", str(config), "--park", park_id,
                                     "--database-url", database_url], env={"TEST_NOTIFY_HOOK_URL": hook.url})
    assert result.exit_code == 0, result.output
    assert "routed 1" in result.output
    assert "sent 1" in result.output
    assert [r.json()["dedupe_key"] for r in hook.requests] == ["alarm:9:raised"]
    shown = runner.invoke(app, ["deliveries", "--park", park_id, "--database-url", database_url],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "alarm:9:raised" in shown.output
    assert "sent" in shown.output
    assert "hook (webhook)" in shown.output
    unknown = runner.invoke(app, ["deliveries", "--park", f"{park_id}-nope", "--database-url", database_url])
    assert unknown.exit_code == 1
    assert "unknown park" in unknown.output


@pytest.mark.services
def test_an_unmigrated_database_is_named_with_the_fix(tmp_path: Path, scratch_database_url: str) -> None:
    config = tmp_path / "notify.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    result = runner.invoke(app, ["notify", "--once", "--config", str(config), "--database-url", scratch_database_url],
                           env={"TEST_NOTIFY_HOOK_URL": "http://127.0.0.1:9/hook"})
    assert result.exit_code == 1
    assert "parkpulse db migrate" in result.output

"""The ``simulate`` command as the lead registers it on the ``parkpulse`` typer app."""

import asyncio

import pytest
import typer
from typer.testing import CliRunner

from simulators import load_scenario, simulate
from tests.simulators.helpers import clear_retained


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command("simulate")(simulate)
    app.command("other")(lambda: None)  # two commands, so "simulate" is a subcommand as in parkpulse.cli
    return app


def test_help_lists_the_options(app):
    result = CliRunner().invoke(app, ["simulate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--scenario", "--duration", "--speed", "--meters", "--seed", "--mqtt-url"):
        assert option in result.output


def test_bad_scenario_exits_with_the_reason(app, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("park: {id: Not Valid}\n", "utf-8")
    result = CliRunner().invoke(app, ["simulate", "--scenario", str(bad), "--mqtt-url", "mqtt://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "park.id" in result.output


def test_bad_duration_is_a_usage_error(app):
    result = CliRunner().invoke(app, ["simulate", "--duration", "soon", "--mqtt-url", "mqtt://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "duration" in result.output


def test_unreachable_broker_exits_1(app):
    result = CliRunner().invoke(app, ["simulate", "--duration", "15m", "--speed", "0", "--mqtt-url",
                                      "mqtt://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "MQTT publishing to mqtt://127.0.0.1:1 failed" in result.output


@pytest.mark.services
def test_simulate_publishes_and_prints_the_report(app, mqtt_url, park_id):
    result = CliRunner().invoke(app, ["simulate", "--duration", "1h", "--speed", "0", "--meters", "2", "--seed", "3",
                                      "--park-id", park_id, "--mqtt-url", mqtt_url], terminal_width=200)
    try:
        assert result.exit_code == 0, result.output
        assert "readings per second" in result.output
        assert park_id in result.output
    finally:
        devices = [d.id for d in load_scenario().with_overrides(extra_meters=2).all_devices()]
        asyncio.run(clear_retained(mqtt_url, park_id, devices))


def test_settings_need_only_the_broker(monkeypatch):
    from simulators import SimulatorSettings

    monkeypatch.delenv("PARKPULSE_DATABASE_URL", raising=False)
    monkeypatch.setenv("PARKPULSE_MQTT_URL", "mqtt://broker.example:1884")
    settings = SimulatorSettings(_env_file=None)
    assert settings.database_url is None
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker.example", 1884)

"""``edge.yaml`` parsing: defaults, validation errors, relative paths, broker URL fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.config import EdgeSettings, broker_url, load_config, parse_config
from edge.errors import ConfigError
from edge.outbox import FullPolicy

MINIMAL = {
    "agent_id": "gw-01",
    "park_id": "demo-park",
    "devices": [
        {"id": "m-001", "profile": "eastron_sdm630",
         "transport": {"kind": "modbus_tcp", "host": "10.0.0.21", "unit_id": 3}},
        {"id": "m-002", "profile": "dlt645_2007_3p", "ct_ratio": 200,
         "transport": {"kind": "dlt645_tcp", "host": "10.0.0.30", "port": 8899, "address": "000000000161"},
         "mqtt": {"username": "m-002", "password_file": "secrets/m-002"}},
    ],
}


def test_minimal_config_gets_safe_defaults() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.outbox.full_policy is FullPolicy.DROP_OLDEST
    assert cfg.outbox.durability.value == "full"
    assert cfg.devices[0].transport.port == 502
    assert cfg.devices[1].multiplier == 200.0
    assert cfg.drain.backlog_rate_msgs_per_s > 0


@pytest.mark.parametrize(("change", "message"), [
    ({"park_id": "Demo Park"}, "park_id"),
    ({"devices": []}, "devices"),
    ({"devices": [MINIMAL["devices"][0], MINIMAL["devices"][0]]}, "listed twice"),  # type: ignore[index, unused-ignore]
    ({"devices": [{"id": "m", "profile": "x", "transport": {"kind": "dlt645_tcp", "host": "h", "port": 1,
                                                            "address": "123"}}]}, "address"),
    ({"outbox": {"full_policy": "panic"}}, "full_policy"),
    ({"unknown_key": 1}, "unknown_key"),
])
def test_invalid_configs(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({**MINIMAL, **change})


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "m-002").write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "outbox": {"path": "data/outbox.sqlite"}}), encoding="utf-8")
    cfg = load_config(path)
    assert cfg.outbox.path == tmp_path / "data" / "outbox.sqlite"
    assert cfg.devices[1].mqtt.resolve_password(tmp_path) == "s3cret"


def test_password_and_password_file_are_exclusive() -> None:
    device = {**MINIMAL["devices"][0], "mqtt": {"username": "u", "password": "p",  # type: ignore[dict-item]
                                                 "password_file": "f"}}
    with pytest.raises(ConfigError, match="not both"):
        parse_config({**MINIMAL, "devices": [device]})


def test_broker_url_from_yaml_or_settings() -> None:
    cfg = parse_config(MINIMAL)
    with pytest.raises(ConfigError, match="no MQTT broker"):
        broker_url(cfg, EdgeSettings(mqtt_url=""))
    assert broker_url(cfg, EdgeSettings(mqtt_url="mqtt://b:1884")) == "mqtt://b:1884"
    cfg2 = parse_config({**MINIMAL, "mqtt": {"url": "mqtts://broker.example"}})
    assert broker_url(cfg2, EdgeSettings(mqtt_url="mqtt://b:1884")) == "mqtts://broker.example"
    with pytest.raises(ConfigError, match="mqtt://"):
        broker_url(parse_config({**MINIMAL, "mqtt": {"url": "http://x"}}), None)


def test_the_shipped_example_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "edge" / "edge.example.yaml"
    cfg = load_config(path)
    assert [d.profile for d in cfg.devices] == ["eastron_sdm630", "chint_dtsu666", "dlt645_2007_3p"]
    assert cfg.devices[2].multiplier == 200 * 100  # CT 1000/5 x PT 10 kV/100 V

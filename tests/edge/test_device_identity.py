"""Which MQTT user name and password a device session uses (edge.config.device_credentials).

The broker's ACL (deploy/mosquitto/parkpulse.acl) binds user ``{park}/{device}`` to that park's and
device's topics, so that is the default; explicit settings (device, agent-wide, broker URL) still win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from edge.config import EdgeConfig, default_username, device_credentials, device_username, parse_config
from infra.settings import parse_mqtt_url

DEVICE = {"id": "m1-boundary", "profile": "eastron_sdm630", "transport": {"kind": "modbus_tcp", "host": "10.0.0.1"}}


def _config(mqtt: dict[str, Any] | None = None, device_mqtt: dict[str, Any] | None = None) -> EdgeConfig:
    device = {**DEVICE, **({"mqtt": device_mqtt} if device_mqtt is not None else {})}
    return parse_config({"agent_id": "gw", "park_id": "park-a", "mqtt": mqtt or {}, "devices": [device]})


def _credentials(config: EdgeConfig, url: str = "mqtts://broker:8883",
                 base: Path = Path("/nonexistent")) -> tuple[str, str | None]:
    return device_credentials(config, config.devices[0], parse_mqtt_url(url), base)


def test_default_user_name_is_park_slash_device() -> None:
    assert default_username("park-a", "m1-boundary") == "park-a/m1-boundary"
    assert _credentials(_config()) == ("park-a/m1-boundary", None)


def test_explicit_user_names_win_device_then_agent_then_url() -> None:
    assert _credentials(_config({"username": "gw"}, {"username": "dev", "password": "d"})) == ("dev", "d")
    assert _credentials(_config({"username": "gw", "password": "g"})) == ("gw", "g")
    assert _credentials(_config(), "mqtt://urluser:urlpw@broker") == ("urluser", "urlpw")


def test_password_comes_from_the_device_else_the_agent_else_the_url(tmp_path: Path) -> None:
    (tmp_path / "m1.secret").write_text("from-file\n", encoding="utf-8")
    own = _config({"password": "gateway"}, {"password_file": "m1.secret"})
    assert _credentials(own, base=tmp_path) == ("park-a/m1-boundary", "from-file")
    shared = _config({"password": "gateway"})  # one secret per gateway, one user per device
    assert _credentials(shared, "mqtt://:urlpw@broker") == ("park-a/m1-boundary", "gateway")
    assert _credentials(_config(), "mqtt://:urlpw@broker") == ("park-a/m1-boundary", "urlpw")


def test_shipped_configs_rely_on_the_default_identity() -> None:
    root = Path(__file__).resolve().parents[2]
    for path in (root / "deploy" / "edge" / "edge.yaml", root / "edge" / "edge.example.yaml"):
        config = parse_config(yaml.safe_load(path.read_text(encoding="utf-8")), origin=str(path))
        assert config.mqtt.username is None, path
        for device in config.devices:
            username = device_username(config, device, parse_mqtt_url(config.mqtt.url or "mqtt://broker"))
            assert username == f"{config.park_id}/{device.id}", path

"""Pure parts of ``parkpulse.services``: configs we write, mirror discovery, settings and errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import parkpulse.services
from parkpulse.services import ServicesSettings, ServicesUnavailableError, _manager, up
from parkpulse.services._mosquitto import MosquittoPaths, render_config
from parkpulse.services._postgres import render_conf
from parkpulse.services._probe import _connect_packet, mqtt_address
from parkpulse.services._system import debian_mirror


def test_public_names_are_exported() -> None:
    for name in parkpulse.services.__all__:
        assert hasattr(parkpulse.services, name), name


def test_mosquitto_config_is_local_persistent_and_takes_big_packets(tmp_path: Path) -> None:
    conf = render_config(MosquittoPaths.for_cache(tmp_path), 18830, "mosquitto")
    assert "listener 18830 127.0.0.1\n" in conf
    assert "persistence true\n" in conf
    assert f"persistence_location {tmp_path}/mosquitto/data/\n" in conf
    assert "max_queued_messages 0\n" in conf
    assert "set_tcp_nodelay true\n" in conf
    match = re.search(r"^max_packet_size (\d+)$", conf, flags=re.MULTILINE)
    assert match is not None
    assert int(match.group(1)) >= 4 * 1024 * 1024


def test_postgres_config_keeps_durability_and_loads_timescaledb() -> None:
    conf = render_conf(54329)
    for line in ("port = 54329", "listen_addresses = '127.0.0.1'", "shared_preload_libraries = 'timescaledb'",
                 "fsync = on", "synchronous_commit = on", "timescaledb.telemetry_level = off"):
        assert line in conf.splitlines()


def test_debian_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    one_line = tmp_path / "sources.list"
    one_line.write_text("# x\ndeb [arch=amd64] http://other.example/debian bookworm main\n")
    assert debian_mirror([tmp_path / "missing", deb822]) == "http://mirror.example/debian"
    assert debian_mirror([one_line]) == "http://other.example/debian"
    with pytest.raises(ServicesUnavailableError):
        debian_mirror([tmp_path / "missing"])


def test_mqtt_connect_packet_and_address() -> None:
    packet = _connect_packet("c", "user", "pw")
    assert packet[0] == 0x10
    assert packet[1] == len(packet) - 2
    assert packet[2:8] == b"\x00\x04MQTT"
    assert packet[8] == 4
    assert packet[9] == 0xC2
    assert mqtt_address("mqtt://127.0.0.1:18830") == ("127.0.0.1", 18830)
    assert mqtt_address("mqtt://broker") == ("broker", 1883)


def test_settings_read_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARKPULSE_PG_PORT", "55555")
    monkeypatch.setenv("PARKPULSE_ROOTFS_DIR", "/srv/shared-root")
    settings = ServicesSettings()
    assert settings.pg_port == 55555
    assert settings.rootfs_dir == Path("/srv/shared-root")


def test_urls_we_recorded_are_not_external(tmp_path: Path) -> None:
    ours = ServicesSettings(database_url="postgresql://a@127.0.0.1:1/a", mqtt_url="mqtt://127.0.0.1:2")
    assert _manager._external(ours, tmp_path) is not None
    (tmp_path / "services.state.json").write_text(
        '{"mode": "local", "PARKPULSE_DATABASE_URL": "postgresql://a@127.0.0.1:1/a",'
        ' "PARKPULSE_MQTT_URL": "mqtt://127.0.0.1:2"}'
    )
    assert _manager._external(ours, tmp_path) is None


def test_no_way_to_run_services_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_manager, "docker_engine_available", lambda: False)
    monkeypatch.setattr(_manager, "local_supported", lambda: False)
    settings = ServicesSettings(database_url=None, mqtt_url=None)
    with pytest.raises(ServicesUnavailableError) as caught:
        up(tmp_path, settings=settings)
    message = str(caught.value)
    for hint in ("PARKPULSE_DATABASE_URL", "PARKPULSE_MQTT_URL", "Docker", "root on Debian"):
        assert hint in message

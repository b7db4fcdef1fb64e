"""docker-compose.yml, the production stack: structure, secrets, referenced files, the preflight guard, the
demo edge configuration, ``docker compose config`` where Compose v2 is installed, and the broker's per-device
authentication and ACL enforced by a real Mosquitto running the stack's configuration files."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import yaml

from edge.config import device_username, parse_config
from infra.settings import parse_mqtt_url
from tests.fixtures.deploy_broker import DeployBroker, Session, make_pki

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
STACK = {"preflight", "migrate", "db-grants", "ingest-1", "ingest-2", "aggregator", "api", "dashboards", "grafana"}
DEMO = {"demo-registry", "simulator", "protocol-sim", "edge"}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|APIKEY")
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_dev_services_keep_their_contract(compose):
    services = compose["services"]
    mosquitto, timescaledb = services["mosquitto"], services["timescaledb"]
    assert "profiles" not in mosquitto
    assert "profiles" not in timescaledb
    assert mosquitto["ports"][0] == "127.0.0.1:${PARKPULSE_MQTT_PORT:-18830}:1883"
    # the device-facing TLS listener (production only) stays on loopback unless .env opens it
    assert mosquitto["ports"][1:] == ["${PARKPULSE_MQTTS_BIND:-127.0.0.1}:${PARKPULSE_MQTTS_PORT:-18883}:8883"]
    assert timescaledb["ports"] == ["127.0.0.1:${PARKPULSE_PG_PORT:-54329}:5432"]
    assert mosquitto["healthcheck"]["test"]
    assert timescaledb["healthcheck"]["test"]
    assert timescaledb["image"].startswith("timescale/timescaledb:")  # the community image
    # without an .env the broker runs in development mode (anonymous, loopback port only)
    assert _environment(mosquitto)["PARKPULSE_DEPLOYMENT"] == "${PARKPULSE_DEPLOYMENT:-dev}"


def test_the_full_stack_is_there(compose):
    services = compose["services"]
    assert {n for n, s in services.items() if "stack" in s.get("profiles", [])} == STACK
    assert {n for n, s in services.items() if "demo" in s.get("profiles", [])} == DEMO
    for name, service in services.items():
        if service.get("restart") != "no":
            assert service.get("healthcheck", {}).get("test"), f"{name} runs for good but has no health check"
    ingest = [services["ingest-1"], services["ingest-2"]]
    # plain persistent subscriptions (Mosquitto restores them after a restart), the devices split in two
    assert all("PARKPULSE_SHARE_GROUP" not in _environment(s) for s in ingest)
    assert [(s["command"][s["command"].index("--partition-index") + 1],
             s["command"][s["command"].index("--partition-count") + 1]) for s in ingest] == [("0", "2"), ("1", "2")]
    assert [s["command"][s["command"].index("--client-id") + 1] for s in ingest] == ["ingest-1", "ingest-2"]
    grafana = services["grafana"]
    assert set(grafana["depends_on"]) == {"db-grants", "dashboards", "api"}
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert services["dashboards"]["command"][:2] == ["dashboards", "build"]
    for name in STACK - {"preflight"}:
        if "profiles" in services[name] and name != "dashboards":
            assert "preflight" in services[name].get("depends_on", {}) or name == "grafana", name


def test_volumes_are_declared_and_state_survives(compose):
    declared = set(compose["volumes"])
    used = {v.split(":", 1)[0] for s in compose["services"].values() for v in s.get("volumes", [])
            if not v.startswith((".", "/"))}
    assert used == declared
    for name in ("mosquitto", "timescaledb", "grafana", "edge"):
        assert any(not v.startswith((".", "/")) for v in compose["services"][name]["volumes"]), name


def test_every_variable_is_documented_in_the_env_example(env_example):
    used = set(COMPOSE_VAR.findall(COMPOSE.read_text(encoding="utf-8")))
    assert used - set(env_example) == set()


def test_no_literal_secrets(compose, env_example):
    for name, service in compose["services"].items():
        for key, value in _environment(service).items():
            if SECRET_KEY.search(key):
                assert value.startswith("${"), f"{name}: {key} must come from the environment"
            if "@" in value and "://" in value:  # credentials inside a URL
                assert "${" in value.split("@", 1)[0], f"{name}: {key} embeds a literal credential"
    secrets_in_example = {k: v for k, v in env_example.items() if SECRET_KEY.search(k) and not k.endswith("_FILE")}
    assert secrets_in_example
    assert all(v == "" for v in secrets_in_example.values())


def test_grafana_gets_every_variable_its_provisioning_reads(compose):
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "parkpulse.yaml"
    values = json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")))  # values only, not comments
    needed = set(re.findall(r"\$__env\{(\w+)\}", values))
    assert needed
    assert needed <= set(_environment(compose["services"]["grafana"]))


def test_referenced_files_exist(compose):
    for item in (*compose["configs"].values(), *compose["secrets"].values()):
        if "file" in item:
            path = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", item["file"])
            assert (ROOT / path).is_file(), path
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile, re.M))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    include = re.search(r"include = \[([^\]]*)\]", pyproject)
    assert include is not None
    packages = {p.rstrip("*") for p in include.group(1).replace('"', "").replace(" ", "").split(",")}
    assert packages <= copied, f"the image misses {packages - copied}"


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(DEPLOY / "preflight.sh")], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, check=False)


def test_preflight_fails_closed():
    good = {"PARKPULSE_DEPLOYMENT": "production", "POSTGRES_PASSWORD": "x" * 16,
            "PARKPULSE_MQTT_INGEST_PASSWORD": "i" * 16, "PARKPULSE_MQTT_HEALTHCHECK_PASSWORD": "h" * 16,
            "PARKPULSE_GRAFANA_DB_PASSWORD": "g" * 16, "GF_SECURITY_ADMIN_PASSWORD": "a" * 16,
            "PARKPULSE_MQTT_TLS_CERT_FILE": "/etc/parkpulse/broker.crt",
            "PARKPULSE_MQTT_TLS_KEY_FILE": "/etc/parkpulse/broker.key"}
    assert _preflight(good).returncode == 0, _preflight(good).stderr
    placeholder = _preflight({**good, "PARKPULSE_MQTT_TLS_KEY_FILE": "./deploy/mosquitto/tls.placeholder"})
    assert placeholder.returncode == 1
    assert "PARKPULSE_MQTT_TLS_KEY_FILE must name the broker's TLS key" in placeholder.stderr
    assert "PARKPULSE_MQTT_TLS_CERT_FILE" in _preflight({**good, "PARKPULSE_MQTT_TLS_CERT_FILE": ""}).stderr
    assert _preflight({}).returncode == 1
    assert "PARKPULSE_DEPLOYMENT" in _preflight({**good, "PARKPULSE_DEPLOYMENT": "dev"}).stderr
    assert "development default" in _preflight({**good, "POSTGRES_PASSWORD": "parkpulse"}).stderr
    assert "shorter than 12" in _preflight({**good, "GF_SECURITY_ADMIN_PASSWORD": "admin"}).stderr


def test_demo_edge_agent_uses_one_identity_per_device(env_example):
    config = parse_config(yaml.safe_load((DEPLOY / "edge" / "edge.yaml").read_text(encoding="utf-8")))
    endpoint = parse_mqtt_url(config.mqtt.url or "")
    users = [device_username(config, d, endpoint) for d in config.devices]
    assert users == [f"demo-park/{d.id}" for d in config.devices]  # the park/device default, bound by the ACL
    assert users == env_example["PARKPULSE_MQTT_DEMO_DEVICES"].split()
    assert {d.transport.host for d in config.devices} == {"protocol-sim"}


def test_docker_compose_config_accepts_the_file(compose_command):
    command = compose_command
    base = [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE)]
    dev = subprocess.run([*base, "--env-file", "/dev/null", "config", "-q"], capture_output=True, text=True,
                         check=False)
    assert dev.returncode == 0, dev.stderr
    stack = subprocess.run([*base, "--env-file", str(ENV_EXAMPLE), "--profile", "stack", "--profile", "demo",
                            "config", "-q"], capture_output=True, text=True, check=False)
    assert stack.returncode == 0, stack.stderr


# ------------------------------------------------------------------------- the broker's rules, for real
NOT_AUTHORIZED = 0x87


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def broker() -> Iterator[int]:
    """Mosquitto with deploy/mosquitto/parkpulse.conf and parkpulse.acl; only the paths and ports differ.

    The plain (internal) listener; tests/deploy/test_broker_acl_tls.py covers the TLS one.
    """
    if shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto is not installed")
    base = Path(tempfile.mkdtemp(prefix="parkpulse-acl-"))
    users = {user: f"pw-{user}" for user in ("ingest", "healthcheck", "p-1/m-001", "p-1/m-002", "simulator")}
    try:
        deployed = DeployBroker(base, users=users, pki=make_pki(base / "pki"))
        deployed.start()
        try:
            yield deployed.plain_port
        finally:
            deployed.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_broker_refuses_anonymous_and_wrong_passwords(broker):
    for user, password in ((None, None), ("p-1/m-001", "wrong"), ("nobody", "pw-nobody")):
        session = Session(broker, user, password)
        assert session.connack.is_failure, (user, session.connack)
        session.close()


def _once(port: int, user: str, action: str, topic: str) -> int:
    """Publish or subscribe in a session of its own (paho drops the connection after a refused publish)."""
    session = Session(port, user, f"pw-{user}")
    try:
        return session.publish(topic) if action == "publish" else session.subscribe(topic)
    finally:
        session.close()


def test_devices_publish_only_their_own_topics_and_ingest_reads_them_shared(broker):
    ingest = Session(broker, "ingest", "pw-ingest")
    # Mosquitto accepts any SUBSCRIBE and applies read rights per delivered message: this device gets nothing.
    eavesdropper = Session(broker, "p-1/m-002", "pw-p-1/m-002")
    try:
        assert ingest.subscribe("$share/ingest/parkpulse/v1/#") < 0x80  # granted
        assert eavesdropper.subscribe("parkpulse/v1/#") < 0x80
        refused = [
            _once(broker, "p-1/m-001", "publish", "parkpulse/v1/p-1/m-002/readings"),  # another device's topic
            _once(broker, "p-1/m-001", "publish", "parkpulse/v1/p-2/m-001/readings"),  # another park's topic
            _once(broker, "p-1/m-001", "publish", "parkpulse/v1/p-1/m-001/other"),     # not a contract topic
            _once(broker, "simulator", "publish", "parkpulse/v1/p-1/m-001/readings"),  # not the demo park
            _once(broker, "ingest", "publish", "parkpulse/v1/p-1/m-001/readings"),     # ingest only reads
        ]
        assert refused == [NOT_AUTHORIZED] * 5
        assert _once(broker, "p-1/m-001", "publish", "parkpulse/v1/p-1/m-001/readings") == 0
        assert _once(broker, "simulator", "publish", "parkpulse/v1/demo-park/m-001/birth") == 0
        # the broker answers in order on a connection: earlier deliveries would precede this PUBACK
        assert eavesdropper.publish("parkpulse/v1/p-1/m-002/status") == 0
        received = [ingest.messages.get(timeout=10).topic for _ in range(3)]
        assert received == ["parkpulse/v1/p-1/m-001/readings", "parkpulse/v1/demo-park/m-001/birth",
                            "parkpulse/v1/p-1/m-002/status"]
        assert ingest.messages.empty()  # the refused publishes never reached a subscriber
        assert eavesdropper.messages.empty()
    finally:
        ingest.close()
        eavesdropper.close()


# ------------------------------------------------------------------------- Grafana's read-only database role
PSQL = Path("/usr/lib/postgresql/15/bin/psql")


@pytest.mark.services
def test_grafana_role_reads_metering_data_but_not_api_keys(database_url):
    psql = shutil.which("psql") or (str(PSQL) if PSQL.exists() else None)
    if psql is None:
        pytest.skip("psql is not installed")
    url = urlsplit(database_url)
    role, password = f"t_grafana_{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    admin_env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": url.password or ""}
    base = [psql, "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-d", url.path.lstrip("/"),
            "-v", "ON_ERROR_STOP=1", "-X", "-q"]
    try:
        for _ in range(2):  # idempotent: the compose one-shot runs it on every start
            subprocess.run([*base, "-U", url.username or "", "-v", f"ro_user={role}", "-v", f"ro_password={password}",
                            "-f", str(DEPLOY / "timescaledb" / "grafana-readonly.sql")],
                           env=admin_env, check=True, capture_output=True, text=True)
        with psycopg.connect(database_url.replace(f"{url.username}:{url.password}@", f"{role}:{password}@"),
                             autocommit=True) as conn:
            assert conn.execute("SELECT count(*) >= 0 FROM readings JOIN series USING (series_id)").fetchone()
            assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM api_clients")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("DELETE FROM quarantine")
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')

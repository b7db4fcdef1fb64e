"""``edge.yaml`` for OPC UA devices: what validates, what is refused with which message, relative paths.

Runs without asyncua (the edge install's own tests include it): configuration never imports the client.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import OpcUaTransport, load_config, parse_config
from edge.errors import ConfigError

NODES = [
    {"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"},
    {"metric": "heat_energy", "browse_path": "Objects/2:Boiler1/2:HeatEnergy", "unit": "MWh", "scale": 0.001},
    {"metric": "supply_temperature", "node_id": "nsu=urn:plant:dcs;i=1042", "unit": "degC"},
]
DEVICE = {"id": "boiler-1", "poll_interval_s": 10,
          "transport": {"kind": "opcua", "url": "opc.tcp://10.0.0.50:4840/plant", "nodes": NODES}}
CONFIG = {"agent_id": "gw-01", "park_id": "demo-park", "devices": [DEVICE]}


def with_transport(**changes: Any) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["devices"][0]["transport"].update(changes)
    return config


def test_a_minimal_opcua_device_needs_no_profile_and_gets_safe_defaults() -> None:
    device = parse_config(CONFIG).devices[0]
    t = device.transport
    assert isinstance(t, OpcUaTransport)
    assert device.profile == ""
    assert (t.security.policy, t.security.mode, t.acquisition, t.timestamps) == ("None", "None", "poll", "agent")
    assert t.kind_and_carrier == ("heat_meter", "heat")  # the only carrier among the metrics
    assert (t.host, t.port, t.address) == ("10.0.0.50", 4840, "plant")


def test_other_devices_still_need_a_profile() -> None:
    device = {"id": "m-1", "transport": {"kind": "modbus_tcp", "host": "10.0.0.21"}}
    with pytest.raises(ConfigError, match="name its profile"):
        parse_config({**CONFIG, "devices": [device]})


@pytest.mark.parametrize(("changes", "message"), [
    ({"url": "http://10.0.0.50:4840"}, "url"),
    ({"nodes": [{"metric": "heat_power", "unit": "MW"}]}, "node_id or browse_path"),
    ({"nodes": [{"metric": "heat_power", "unit": "MW", "node_id": "ns=2;s=A", "browse_path": "Objects/2:A"}]},
     "exactly one"),
    ({"nodes": [{"metric": "steam_pressure", "unit": "MW", "node_id": "ns=2;s=A"}]}, "not in the registry"),
    ({"nodes": [{"metric": "gas_flow", "unit": "MW", "node_id": "ns=2;s=A"}]}, "gas_flow"),
    ({"nodes": [{"metric": "heat_power", "unit": "MW", "node_id": "Boiler1.HeatPower"}]}, "node_id"),
    ({"nodes": [{"metric": "heat_power", "unit": "MW", "browse_path": "Objects//2:A"}]}, "browse_path"),
    ({"nodes": [NODES[0], NODES[0]]}, "listed twice"),
    ({"nodes": []}, "nodes"),
    ({"security": {"policy": "Basic256Sha256", "mode": "None"}}, "policy None goes with mode None"),
    ({"security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt"}}, "needs cert_file and key_file"),
    ({"security": {"policy": "Basic128Rsa15", "mode": "Sign"}}, "policy"),
    ({"auth": {"password_env": "PW"}}, "needs a username"),
    ({"auth": {"username": "u", "password_env": "PW", "password_file": "pw"}}, "not both"),
    ({"auth": {"username": "u", "password": "inline"}}, "password"),  # no inline passwords
    ({"auth": {"cert_file": "user.pem"}}, "together"),
    ({"acquisition": "push"}, "acquisition"),
    ({"sampling_interval_ms": 0}, "sampling_interval_ms"),
    ({"device_kind": "boiler"}, "device_kind"),
    ({"nodes": [{"metric": "supply_temperature", "unit": "degC", "node_id": "i=1"}]}, "set carrier and device_kind"),
])
def test_invalid_opcua_settings_are_refused_with_a_clear_message(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_config(with_transport(**changes))
    assert "devices.0.transport" in str(refused.value)  # names where in edge.yaml


def test_a_mixed_plant_device_states_its_kind_and_carrier() -> None:
    config = with_transport(nodes=[*NODES, {"metric": "gas_flow", "node_id": "ns=2;s=G", "unit": "m3/h"}],
                            device_kind="heat_meter", carrier="heat")
    t = parse_config(config).devices[0].transport
    assert isinstance(t, OpcUaTransport)
    assert t.kind_and_carrier == ("heat_meter", "heat")


def test_certificate_key_and_password_paths_follow_the_config_file(tmp_path: Path) -> None:
    config = with_transport(
        security={"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "cert_file": "pki/agent.der",
                  "key_file": "pki/agent.pem", "server_cert_file": "/etc/pki/dcs.der"},
        auth={"username": "meter-reader", "password_file": "secrets/opcua"})
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    t = load_config(path).devices[0].transport
    assert isinstance(t, OpcUaTransport)
    assert t.security.cert_file == tmp_path / "pki/agent.der"
    assert t.security.key_file == tmp_path / "pki/agent.pem"
    assert t.security.server_cert_file == Path("/etc/pki/dcs.der")
    assert t.auth.password_file == tmp_path / "secrets/opcua"


# Every key of the transport and of a node, replaced by arbitrary YAML-like values.
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
_TRANSPORT_KEYS = ["url", "security", "auth", "acquisition", "sampling_interval_ms", "publishing_interval_ms",
                   "timestamps", "timeout_s", "backoff", "max_buffered", "device_kind", "carrier", "nodes", "bogus"]
_NODE_KEYS = ["metric", "unit", "scale", "node_id", "browse_path", "bogus"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(["transport", "node"]), key=st.sampled_from(_TRANSPORT_KEYS + _NODE_KEYS),
       value=_VALUES, index=st.integers(0, len(NODES) - 1))
def test_any_bad_value_gives_a_config_error_naming_its_place(where: str, key: str, value: object,
                                                             index: int) -> None:
    config = copy.deepcopy(CONFIG)
    transport = config["devices"][0]["transport"]
    target = transport if where == "transport" else transport["nodes"][index]
    if key not in (_TRANSPORT_KEYS if where == "transport" else _NODE_KEYS):
        return
    target[key] = value
    try:
        parse_config(config)
    except ConfigError as exc:
        message = str(exc)
    else:
        return
    assert "devices.0.transport" in message

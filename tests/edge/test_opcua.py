"""The OPC UA reader against a real asyncua server (the simulator's, in this event loop).

Values are written into the server by the test (``OpcUaSimServer.set``, model frozen), so every
expectation is computed here from the written value and the documented unit factors, not taken from the
reader. Covered: polling, browse paths and ``nsu=`` NodeIds, unit conversion and scale, StatusCode
quality (Uncertain -> suspect, Bad -> skipped and counted), subscriptions, a server restart in the middle
of polling and of a subscription (reconnect, nothing the server had is lost), and a Basic256Sha256
endpoint with user name and password (certificates made here with ``cryptography``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("asyncua", reason="the OPC UA extra is not installed (pip install 'parkpulse[edge,opcua]')")
pytest.importorskip("cryptography", reason="cryptography makes the test certificates")

from asyncua.ua import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.config import OpcUaTransport
from edge.errors import DeviceConnectionError, DeviceError
from edge.readers.opcua import OpcUaEndpoint, OpcUaReader, quality_of
from simulators.protocol.opcua import OpcUaSimServer, PlantModel
from tests.edge.helpers import free_port, wait_until

UTC = dt.UTC
BAD_SENSOR_FAILURE = int(StatusCodes.BadSensorFailure)
UNCERTAIN_LAST_USABLE = int(StatusCodes.UncertainLastUsableValue)
PASSWORD = "Pw-9f3k-never-logged"


def transport(url: str, nodes: list[dict[str, Any]], **extra: Any) -> OpcUaTransport:
    """An OPC UA transport with fast timeouts and backoff for tests."""
    return OpcUaTransport.model_validate({
        "kind": "opcua", "url": url, "timeout_s": 1.0, "backoff": {"initial_s": 0.1, "max_s": 0.5},
        "device_kind": "heat_meter", "carrier": "heat", "nodes": nodes, **extra})


@dataclass
class Rig:
    """A frozen simulator (values only change when the test sets them) and its URL."""

    sim: OpcUaSimServer
    port: int

    @property
    def url(self) -> str:
        return self.sim.url


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    port = free_port()
    sim = OpcUaSimServer(port=port, update_interval_s=None, model=PlantModel())
    await sim.start()
    running = Rig(sim, port)
    try:
        yield running
    finally:
        await running.sim.stop()  # the restart tests replace the server


async def read_once(reader: OpcUaReader, **kwargs: Any) -> Any:
    return await reader.read(dt.datetime.now(UTC), **kwargs)


def by_metric(result: Any) -> dict[str, Any]:
    return {r.metric: r for r in result.readings}


# -- pure ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "quality"), [
    (0x00000000, "good"), (0x00000400, "good"),  # Good with an info bit set
    (UNCERTAIN_LAST_USABLE, "suspect"), (0x40000000, "suspect"),
    (BAD_SENSOR_FAILURE, None), (0x80000000, None), (0xC0000000, None),  # 11 is reserved: treated as Bad
])
def test_status_code_severity_decides_quality(status: int, quality: str | None) -> None:
    assert quality_of(status) == quality


# -- polling ------------------------------------------------------------------------------------------------


async def test_polling_reads_every_node_converted_to_canonical_units(rig: Rig) -> None:
    await rig.sim.set("Boiler1.HeatPower", 2.5)          # MW
    await rig.sim.set("Boiler1.HeatEnergy", 1234.5)      # MWh
    await rig.sim.set("Boiler1.GasFlow", 250.0)          # m3/h
    await rig.sim.set("Chiller1.ElectricPower", 3100.0)  # reported in W by this (mis)configured tag, scale 1
    t = transport(rig.url, [
        {"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"},
        {"metric": "heat_energy", "node_id": "ns=2;s=Boiler1.HeatEnergy", "unit": "MWh"},
        {"metric": "gas_flow", "node_id": "ns=2;s=Boiler1.GasFlow", "unit": "m3/h", "scale": 0.5},
        {"metric": "active_power", "node_id": "ns=2;s=Chiller1.ElectricPower", "unit": "W"},
    ])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        started = dt.datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
        result = await reader.read(started)
    finally:
        await endpoint.aclose()
    got = by_metric(result)
    assert result.skipped == []
    assert got["heat_power"].value == pytest.approx(2500.0)
    assert got["heat_power"].unit == "kW"
    assert got["heat_energy"].value == pytest.approx(1234.5 * 3.6)
    assert got["heat_energy"].unit == "GJ"
    assert got["gas_flow"].value == pytest.approx(125.0)
    assert got["gas_flow"].unit == "m3/h"
    assert got["active_power"].value == pytest.approx(3.1)
    assert got["active_power"].unit == "kW"
    assert {r.ts for r in result.readings} == {started}  # agent timestamps: the poll's start
    assert {r.quality for r in result.readings} == {"good"}


async def test_browse_paths_and_namespace_uris_resolve_and_a_wrong_node_skips_only_itself(rig: Rig) -> None:
    await rig.sim.set("Boiler1.SupplyTemperature", 84.25)
    await rig.sim.set("Chiller1.CoolingEnergy", 12.0)
    await rig.sim.set("Boiler1.GasVolume", 5000.0)
    t = transport(rig.url, [
        {"metric": "supply_temperature", "browse_path": "Objects/2:Boiler1/2:SupplyTemperature", "unit": "degC"},
        {"metric": "cooling_energy", "node_id": "nsu=urn:parkpulse:sim:opcua;s=Chiller1.CoolingEnergy",
         "unit": "MWh"},
        {"metric": "gas_volume", "browse_path": "/0:Objects/2:Boiler1/2:GasVolume", "unit": "m3"},
        {"metric": "return_temperature", "browse_path": "Objects/2:Boiler1/2:NoSuchTag", "unit": "degC"},
        {"metric": "heat_power", "node_id": "nsu=urn:not-on-this-server;s=X", "unit": "kW"},
    ])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        result = await read_once(reader)
    finally:
        await endpoint.aclose()
    got = by_metric(result)
    assert got["supply_temperature"].value == 84.25
    assert got["cooling_energy"].value == pytest.approx(12_000.0)  # MWh -> kWh
    assert got["gas_volume"].value == 5000.0
    skipped = dict(result.skipped)
    assert set(skipped) == {"return_temperature", "heat_power"}
    assert "NoSuchTag" in skipped["return_temperature"]
    assert "urn:not-on-this-server" in skipped["heat_power"]


async def test_uncertain_is_suspect_and_bad_is_skipped_and_counted(rig: Rig) -> None:
    await rig.sim.set("Boiler1.HeatPower", 1.0, status=UNCERTAIN_LAST_USABLE)
    await rig.sim.set("Boiler1.GasFlow", None, status=BAD_SENSOR_FAILURE)
    await rig.sim.set("Boiler1.SupplyTemperature", 80.0)
    t = transport(rig.url, [
        {"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"},
        {"metric": "gas_flow", "node_id": "ns=2;s=Boiler1.GasFlow", "unit": "m3/h"},
        {"metric": "supply_temperature", "node_id": "ns=2;s=Boiler1.SupplyTemperature", "unit": "degC"},
    ])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        first = await read_once(reader)
        second = await read_once(reader)
    finally:
        await endpoint.aclose()
    got = by_metric(first)
    assert got["heat_power"].quality == "suspect"
    assert got["heat_power"].value == pytest.approx(1000.0)
    assert got["supply_temperature"].quality == "good"
    assert "gas_flow" not in got
    assert [m for m, _ in first.skipped] == ["gas_flow"]
    assert "BadSensorFailure" in first.skipped[0][1]
    assert reader.bad_samples == 2  # counted on every poll that saw it
    assert [m for m, _ in second.skipped] == ["gas_flow"]


async def test_the_server_clock_is_read_when_asked(rig: Rig) -> None:
    t = transport(rig.url, [{"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"}])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        plain = await read_once(reader)
        asked_at = dt.datetime.now(UTC)
        with_clock = await reader.read(asked_at, read_clock=True)
    finally:
        await endpoint.aclose()
    assert plain.meter_clock is None
    assert with_clock.meter_clock_read_at == asked_at
    assert with_clock.meter_clock is not None
    assert abs((with_clock.meter_clock - asked_at).total_seconds()) < 5  # same host: the server clock is ours


async def test_source_timestamps_come_from_the_server(rig: Rig) -> None:
    t = transport(rig.url, [{"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"}],
                  timestamps="source")
    before = dt.datetime.now(UTC)
    await rig.sim.set("Boiler1.HeatPower", 1.5)
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        result = await reader.read(dt.datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        await endpoint.aclose()
    (reading,) = result.readings
    assert before - dt.timedelta(seconds=1) <= reading.ts <= dt.datetime.now(UTC)
    assert reading.ts.tzinfo is not None


async def test_a_dead_server_costs_one_timeout_then_waits_for_the_backoff() -> None:
    port = free_port()  # nobody listens
    t = transport(f"opc.tcp://127.0.0.1:{port}/", [{"metric": "heat_power", "node_id": "i=2258", "unit": "kW"}])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    with pytest.raises(DeviceConnectionError, match="cannot connect") as first:
        await read_once(reader)
    assert first.value.device_id == "boiler"
    if endpoint.retry_in() > 0:  # inside the jittered window the next poll does not even try
        with pytest.raises(DeviceConnectionError, match="next attempt in"):
            await read_once(reader)
    assert endpoint.connects == 0
    await endpoint.aclose()


# -- subscriptions ------------------------------------------------------------------------------------------


async def test_subscription_delivers_every_change_between_two_polls(rig: Rig) -> None:
    t = transport(rig.url, [{"metric": "heat_energy", "node_id": "ns=2;s=Boiler1.HeatEnergy", "unit": "MWh"}],
                  acquisition="subscription", sampling_interval_ms=50, publishing_interval_ms=200)
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    try:
        assert (await read_once(reader)).readings == []  # starts the subscription
        await wait_until(lambda: endpoint.connects == 1 and reader.link_error is None, timeout=10)
        await asyncio.sleep(0.5)
        await read_once(reader)  # drop the initial value
        written = [100.0, 100.5, 101.0, 101.75]
        for value in written:
            await rig.sim.set("Boiler1.HeatEnergy", value)
            await asyncio.sleep(0.12)  # > sampling interval, < publishing interval: queued server-side
        await asyncio.sleep(0.5)
        result = await read_once(reader)
    finally:
        await endpoint.aclose()
    assert [r.value for r in result.readings] == pytest.approx([v * 3.6 for v in written])
    assert [r.ts for r in result.readings] == sorted(r.ts for r in result.readings)


async def test_subscription_survives_a_server_restart_and_loses_nothing(rig: Rig) -> None:
    t = transport(rig.url, [{"metric": "gas_volume", "node_id": "ns=2;s=Boiler1.GasVolume", "unit": "m3"}],
                  acquisition="subscription", sampling_interval_ms=50, publishing_interval_ms=100)
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    seen: list[float] = []
    try:
        await read_once(reader)
        await wait_until(lambda: endpoint.connects == 1 and reader.link_error is None, timeout=10)
        for value in (10.0, 11.0, 12.0):
            await rig.sim.set("Boiler1.GasVolume", value)
            await asyncio.sleep(0.25)
        await rig.sim.stop()  # DCS restart: notifications for 10..12 are buffered, not yet polled
        await wait_until(lambda: endpoint.losses >= 1, timeout=10)
        seen += [r.value for r in (await read_once(reader)).readings]  # buffered data still delivered
        restarted = OpcUaSimServer(port=rig.port, update_interval_s=None, model=rig.sim.model)
        await restarted.start()
        rig.sim = restarted
        await restarted.set("Boiler1.GasVolume", 13.0)  # what the server has after its restart
        await wait_until(lambda: endpoint.connects == 2 and reader.link_error is None, timeout=15)
        await asyncio.sleep(0.4)
        seen += [r.value for r in (await read_once(reader)).readings]
    finally:
        await endpoint.aclose()
    distinct = [v for i, v in enumerate(seen) if i == 0 or v != seen[i - 1]]
    assert distinct[-4:] == [10.0, 11.0, 12.0, 13.0]


# -- restart while polling ----------------------------------------------------------------------------------


async def test_polling_through_a_server_restart_reconnects_and_reads_what_the_server_has(rig: Rig) -> None:
    t = transport(rig.url, [{"metric": "gas_volume", "node_id": "ns=2;s=Boiler1.GasVolume", "unit": "m3"}])
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    values: list[float] = []
    errors: list[DeviceError] = []

    async def poll_forever() -> None:
        while True:
            try:
                values.extend(r.value for r in (await read_once(reader)).readings)
            except DeviceError as exc:
                errors.append(exc)
            await asyncio.sleep(0.1)

    poller = asyncio.create_task(poll_forever())
    try:
        await rig.sim.set("Boiler1.GasVolume", 1000.0)
        await wait_until(lambda: 1000.0 in values, timeout=10)
        await rig.sim.set("Boiler1.GasVolume", 1001.0)
        await wait_until(lambda: 1001.0 in values, timeout=10)
        await rig.sim.stop()
        await wait_until(lambda: len(errors) >= 2, timeout=15)
        restarted = OpcUaSimServer(port=rig.port, update_interval_s=None, model=rig.sim.model)
        await restarted.start()
        rig.sim = restarted
        await restarted.set("Boiler1.GasVolume", 1002.0)
        await wait_until(lambda: 1002.0 in values, timeout=15)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await endpoint.aclose()
    distinct = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    assert distinct[-3:] == [1000.0, 1001.0, 1002.0]
    assert endpoint.connects == 2
    assert endpoint.losses >= 1
    assert all(e.device_id == "boiler" for e in errors)


# -- security -----------------------------------------------------------------------------------------------


def make_certificate(directory: Path, name: str, uri: str, *, server: bool) -> tuple[Path, Path]:
    """A self-signed OPC UA application instance certificate (PEM) and its RSA key, made with cryptography."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([
            x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                                     data_encipherment=True, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
async def secure_rig(tmp_path: Path) -> AsyncIterator[tuple[OpcUaSimServer, Path, Path]]:
    server_cert, server_key = make_certificate(tmp_path, "server", "urn:freeopcua:python:server", server=True)
    client_cert, client_key = make_certificate(tmp_path, "agent", "urn:parkpulse:edge:test", server=False)
    sim = OpcUaSimServer(port=free_port(), update_interval_s=None, cert_file=server_cert, key_file=server_key,
                         allow_insecure=False, users={"meter-reader": PASSWORD})
    await sim.start()
    try:
        yield sim, client_cert, client_key
    finally:
        await sim.stop()


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
async def test_basic256sha256_with_user_and_password(secure_rig: tuple[OpcUaSimServer, Path, Path], mode: str,
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim, cert, key = secure_rig
    await sim.set("Boiler1.HeatPower", 3.0)
    secret = tmp_path / "opcua.secret"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    t = transport(sim.url, [{"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"}],
                  security={"policy": "Basic256Sha256", "mode": mode, "cert_file": str(cert), "key_file": str(key)},
                  auth={"username": "meter-reader", "password_file": str(secret)})
    endpoint = OpcUaEndpoint(t)
    reader = OpcUaReader("boiler", t, endpoint)
    caplog.set_level(logging.DEBUG)
    try:
        result = await read_once(reader)
    finally:
        await endpoint.aclose()
    assert by_metric(result)["heat_power"].value == pytest.approx(3000.0)
    assert PASSWORD not in caplog.text


async def test_password_from_the_environment_and_refusals_say_what_to_fix(
        secure_rig: tuple[OpcUaSimServer, Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    sim, cert, key = secure_rig
    nodes = [{"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"}]
    secure = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "cert_file": str(cert), "key_file": str(key)}
    auth = {"username": "meter-reader", "password_env": "PARKPULSE_TEST_OPCUA_PW"}
    caplog.set_level(logging.DEBUG)

    good = OpcUaEndpoint(transport(sim.url, nodes, security=secure, auth=auth),
                         environ={"PARKPULSE_TEST_OPCUA_PW": PASSWORD})
    try:
        await good.session("boiler")
    finally:
        await good.aclose()

    wrong = OpcUaEndpoint(transport(sim.url, nodes, security=secure, auth=auth),
                          environ={"PARKPULSE_TEST_OPCUA_PW": "wrong-" + PASSWORD})
    with pytest.raises(DeviceConnectionError, match=r"refused the user: check auth\.username") as refused:
        await wrong.session("boiler")
    assert "PARKPULSE_TEST_OPCUA_PW" in str(refused.value)

    unset = OpcUaEndpoint(transport(sim.url, nodes, security=secure, auth=auth), environ={})
    with pytest.raises(DeviceConnectionError, match=r"PARKPULSE_TEST_OPCUA_PW.*is not set"):
        await unset.session("boiler")

    insecure = OpcUaEndpoint(transport(sim.url, nodes, auth=auth), environ={"PARKPULSE_TEST_OPCUA_PW": PASSWORD})
    with pytest.raises(DeviceConnectionError, match="offers no endpoint for security None/None"):
        await insecure.session("boiler")  # the server offers no unsecured endpoint
    for endpoint in (wrong, unset, insecure):
        await endpoint.aclose()
    assert PASSWORD not in caplog.text


async def test_a_user_certificate_authenticates_instead_of_a_password(tmp_path: Path) -> None:
    server_cert, server_key = make_certificate(tmp_path, "server", "urn:freeopcua:python:server", server=True)
    client_cert, client_key = make_certificate(tmp_path, "agent", "urn:parkpulse:edge:test", server=False)
    user_cert, user_key = make_certificate(tmp_path, "operator", "urn:parkpulse:user:meter-reader", server=False)
    stranger_cert, stranger_key = make_certificate(tmp_path, "stranger", "urn:someone:else", server=False)
    sim = OpcUaSimServer(port=free_port(), update_interval_s=None, cert_file=server_cert, key_file=server_key,
                         allow_insecure=False, user_cert_files=[user_cert])
    await sim.start()
    nodes = [{"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"}]
    secure = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "cert_file": str(client_cert),
              "key_file": str(client_key)}
    try:
        await sim.set("Boiler1.HeatPower", 0.75)
        t = transport(sim.url, nodes, security=secure, auth={"cert_file": str(user_cert), "key_file": str(user_key)})
        endpoint = OpcUaEndpoint(t)
        reader = OpcUaReader("boiler", t, endpoint)
        try:
            result = await read_once(reader)
        finally:
            await endpoint.aclose()
        assert by_metric(result)["heat_power"].value == pytest.approx(750.0)

        stranger = OpcUaEndpoint(transport(sim.url, nodes, security=secure,
                                           auth={"cert_file": str(stranger_cert), "key_file": str(stranger_key)}))
        with pytest.raises(DeviceConnectionError, match=r"refused the user certificate .*stranger\.pem"):
            await stranger.session("boiler")
        await stranger.aclose()
    finally:
        await sim.stop()

"""A simulated boiler and chiller served over OPC UA (an asyncua server), for the edge agent's OPC UA reader.

The address space looks like a small DCS (namespace ``urn:parkpulse:sim:opcua``, index 2 on this server)::

    Objects/
      Boiler1/   GasFlow m3/h, GasVolume m3, HeatPower MW, HeatEnergy MWh,
                 SupplyTemperature degC, ReturnTemperature degC
      Chiller1/  ElectricPower kW, ElectricEnergy kWh, CoolingEnergy MWh,
                 SupplyTemperature degC, ReturnTemperature degC

Every variable's NodeId is ``ns=2;s=<Object>.<Variable>`` (``ns=2;s=Boiler1.HeatPower``); browse paths work
too (``Objects/2:Boiler1/2:HeatPower``). Units are those a plant's DCS typically shows (MW, MWh), not
ParkPulse's canonical ones, so the agent's unit conversion has work to do.

:class:`PlantModel` is the pure physics (a daily load curve, boiler efficiency, chiller COP, registers
integrated between samples); :class:`OpcUaSimServer` serves it, optionally with Basic256Sha256 and user
names. Tests share one model between two server instances to simulate a restart that keeps the counters.
Natural gas heating value: 35 544 kJ/m3 (GB/T 2589 气田天然气).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from simulators.errors import SimulatorError

MISSING_EXTRA = ("the OPC UA simulator needs the asyncua package, which is not installed here: "
                 "pip install 'parkpulse[edge,opcua]'")

try:
    from asyncua import ua
    from asyncua.crypto.permission_rules import User, UserRole
    from asyncua.server.server import Server
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError as exc:  # the optional extra is missing: say which one
    raise ImportError(MISSING_EXTRA) from exc

logger = logging.getLogger(__name__)

NAMESPACE_URI = "urn:parkpulse:sim:opcua"
GAS_MJ_PER_M3 = 35.544
Clock = Callable[[], datetime]

#: (object, variable, unit) of every served variable, in address-space order.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("Boiler1", "GasFlow", "m3/h"),
    ("Boiler1", "GasVolume", "m3"),
    ("Boiler1", "HeatPower", "MW"),
    ("Boiler1", "HeatEnergy", "MWh"),
    ("Boiler1", "SupplyTemperature", "degC"),
    ("Boiler1", "ReturnTemperature", "degC"),
    ("Chiller1", "ElectricPower", "kW"),
    ("Chiller1", "ElectricEnergy", "kWh"),
    ("Chiller1", "CoolingEnergy", "MWh"),
    ("Chiller1", "SupplyTemperature", "degC"),
    ("Chiller1", "ReturnTemperature", "degC"),
)


@dataclass
class PlantModel:
    """A gas boiler and an electric chiller following a daily load curve (pure; clock passed in)."""

    boiler_mw: float = 2.0
    boiler_efficiency: float = 0.92
    chiller_cooling_mw: float = 1.5
    chiller_cop: float = 5.0
    gas_volume_m3: float = 125_000.0
    heat_energy_mwh: float = 4_000.0
    electric_energy_kwh: float = 310_000.0
    cooling_energy_mwh: float = 1_800.0
    seed: int = 7
    _rng: random.Random = field(init=False, repr=False)
    _last: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def sample(self, at: datetime) -> dict[str, float]:
        """Every variable (``Object.Variable`` -> value in its DCS unit), registers integrated up to ``at``."""
        hour = at.hour + at.minute / 60 + at.second / 3600
        load = 0.75 + 0.25 * math.sin(2 * math.pi * (hour - 9.0) / 24.0) + 0.02 * self._rng.gauss(0.0, 1.0)
        heat_mw = max(0.0, self.boiler_mw * load)
        gas_m3_h = heat_mw * 3600.0 / (self.boiler_efficiency * GAS_MJ_PER_M3)
        cooling_mw = max(0.0, self.chiller_cooling_mw * load)
        electric_kw = cooling_mw * 1000.0 / self.chiller_cop
        if self._last is not None:
            hours = max(0.0, (at - self._last).total_seconds() / 3600.0)
            self.gas_volume_m3 += gas_m3_h * hours
            self.heat_energy_mwh += heat_mw * hours
            self.electric_energy_kwh += electric_kw * hours
            self.cooling_energy_mwh += cooling_mw * hours
        self._last = at
        supply = 80.0 + 5.0 * load
        return {
            "Boiler1.GasFlow": round(gas_m3_h, 3),
            "Boiler1.GasVolume": round(self.gas_volume_m3, 3),
            "Boiler1.HeatPower": round(heat_mw, 4),
            "Boiler1.HeatEnergy": round(self.heat_energy_mwh, 4),
            "Boiler1.SupplyTemperature": round(supply, 2),
            "Boiler1.ReturnTemperature": round(supply - 20.0 * load, 2),
            "Chiller1.ElectricPower": round(electric_kw, 2),
            "Chiller1.ElectricEnergy": round(self.electric_energy_kwh, 3),
            "Chiller1.CoolingEnergy": round(self.cooling_energy_mwh, 4),
            "Chiller1.SupplyTemperature": round(7.0 + 0.3 * self._rng.gauss(0.0, 1.0), 2),
            "Chiller1.ReturnTemperature": round(7.0 + 5.0 * load, 2),
        }


def _node_id(name: str, namespace_index: int) -> ua.NodeId:
    """A string NodeId (``ns=2;s=Boiler1.HeatPower``)."""
    return ua.NodeId(ua.String(name), ua.Int16(namespace_index))


def _der(cert_file: Path) -> bytes:
    """A certificate file (PEM or DER) as DER bytes, the form asyncua hands user managers."""
    data = cert_file.read_bytes()
    return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER) if data.startswith(b"-----") else data


class _KnownUsers:
    """asyncua user manager: the configured user names and passwords and user certificates (DER), nobody else."""

    def __init__(self, passwords: dict[str, str], certificates: list[bytes]) -> None:
        self.passwords, self.certificates = passwords, certificates

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        del iserver
        if username is not None and self.passwords.get(username) == password:
            return User(role=UserRole.User)
        if certificate is not None and certificate in self.certificates:
            return User(role=UserRole.User)
        return None


class OpcUaSimServer:
    """Serves a :class:`PlantModel` (or values set by a test) over OPC UA until :meth:`stop`.

    ``update_interval_s=None`` freezes the model: values change only through :meth:`set` (tests).
    With ``cert_file``/``key_file`` the server offers Basic256Sha256 Sign and SignAndEncrypt endpoints
    (and no unsecured one unless ``allow_insecure``); with ``users`` (name -> password) and/or
    ``user_cert_files`` it accepts only those users, no anonymous ones.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 4840, model: PlantModel | None = None,
                 update_interval_s: float | None = 1.0, cert_file: Path | None = None, key_file: Path | None = None,
                 allow_insecure: bool = True, users: dict[str, str] | None = None,
                 user_cert_files: list[Path] | None = None, clock: Clock = lambda: datetime.now(UTC)) -> None:
        """Configure; :meth:`start` builds the address space and listens."""
        self.host, self.port = host, port
        self.model = model or PlantModel()
        self.update_interval_s = update_interval_s
        self.cert_file, self.key_file = cert_file, key_file
        self.allow_insecure, self.users, self.clock = allow_insecure, users, clock
        self.user_cert_files = user_cert_files or []
        self.server: Server | None = None
        self.nodes: dict[str, ua.NodeId] = {}
        self.namespace_index = 0
        self._updater: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The endpoint URL clients connect to."""
        return f"opc.tcp://{self.host}:{self.port}/parkpulse/"

    async def start(self) -> None:
        """Build the address space, start listening, and start updating values (unless frozen)."""
        restricted = bool(self.users or self.user_cert_files)
        certificates = [_der(path) for path in self.user_cert_files]
        server = Server(user_manager=_KnownUsers(self.users or {}, certificates)  # type: ignore[arg-type]
                        if restricted else None)
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("ParkPulse simulated plant")
        policies = [ua.SecurityPolicyType.NoSecurity] if self.allow_insecure or self.cert_file is None else []
        if self.cert_file is not None and self.key_file is not None:
            await server.load_certificate(str(self.cert_file))
            await server.load_private_key(str(self.key_file))
            policies += [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt, ua.SecurityPolicyType.Basic256Sha256_Sign]
        server.set_security_policy(policies)
        if restricted:
            server.set_identity_tokens([ua.UserNameIdentityToken] * bool(self.users)
                                       + [ua.X509IdentityToken] * bool(self.user_cert_files))
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        idx = self.namespace_index
        objects: dict[str, Any] = {}
        initial = self.model.sample(self.clock())
        for obj, var, unit in VARIABLES:
            if obj not in objects:
                objects[obj] = await server.nodes.objects.add_object(_node_id(obj, idx), ua.QualifiedName(obj, idx))
            name = f"{obj}.{var}"
            node = await objects[obj].add_variable(_node_id(name, idx), ua.QualifiedName(var, idx),
                                                   ua.Variant(initial[name], ua.VariantType.Double))
            await node.add_property(idx, "EngineeringUnits", unit)
            self.nodes[name] = node.nodeid
        try:
            await server.start()
        except OSError as exc:
            raise SimulatorError(f"cannot listen on {self.host}:{self.port}: {exc}; choose another --port") from None
        self.server = server
        if self.update_interval_s is not None:
            self._updater = asyncio.get_running_loop().create_task(self._update_loop(), name="opcua-sim.update")
        logger.info("OPC UA simulator on %s (%d variables)", self.url, len(self.nodes))

    async def set(self, name: str, value: float | None, *, status: int = 0) -> None:
        """Write ``Object.Variable`` now, with a StatusCode (``ua.StatusCodes.BadSensorFailure`` ...)."""
        if self.server is None:
            raise SimulatorError("the OPC UA simulator is not running")
        variant = ua.Variant(value, ua.VariantType.Double) if value is not None else ua.Variant()
        now = cast("ua.DateTime", self.clock())
        await self.server.write_attribute_value(self.nodes[name], ua.DataValue(
            variant, StatusCode=ua.StatusCode(ua.UInt32(status)), SourceTimestamp=now, ServerTimestamp=now))

    async def _update_loop(self) -> None:
        assert self.update_interval_s is not None
        while True:
            for name, value in self.model.sample(self.clock()).items():
                await self.set(name, value)
            await asyncio.sleep(self.update_interval_s)

    async def freeze(self) -> None:
        """Stop changing values (the server keeps serving the last ones)."""
        if self._updater is not None:
            self._updater.cancel()
            await asyncio.gather(self._updater, return_exceptions=True)
            self._updater = None

    async def stop(self) -> None:
        """Stop updating and listening (clients see the connection drop, as at a DCS restart)."""
        await self.freeze()
        if self.server is not None:
            await self.server.stop()
            self.server = None


def opcua_device_entries(url: str, *, poll_interval_s: float = 15.0) -> list[dict[str, Any]]:
    """``edge.yaml`` device entries that read this simulator: a boiler (polled) and a chiller (subscribed)."""
    boiler = [
        {"metric": "gas_flow", "node_id": "ns=2;s=Boiler1.GasFlow", "unit": "m3/h"},
        {"metric": "gas_volume", "node_id": "ns=2;s=Boiler1.GasVolume", "unit": "m3"},
        {"metric": "heat_power", "node_id": "ns=2;s=Boiler1.HeatPower", "unit": "MW"},
        {"metric": "heat_energy", "node_id": "ns=2;s=Boiler1.HeatEnergy", "unit": "MWh"},
        {"metric": "supply_temperature", "browse_path": "Objects/2:Boiler1/2:SupplyTemperature", "unit": "degC"},
        {"metric": "return_temperature", "browse_path": "Objects/2:Boiler1/2:ReturnTemperature", "unit": "degC"},
    ]
    chiller = [
        {"metric": "active_power", "node_id": "ns=2;s=Chiller1.ElectricPower", "unit": "kW"},
        {"metric": "active_energy_import", "node_id": "ns=2;s=Chiller1.ElectricEnergy", "unit": "kWh"},
        {"metric": "cooling_energy", "node_id": "ns=2;s=Chiller1.CoolingEnergy", "unit": "MWh"},
        {"metric": "supply_temperature", "node_id": "ns=2;s=Chiller1.SupplyTemperature", "unit": "degC"},
        {"metric": "return_temperature", "node_id": "ns=2;s=Chiller1.ReturnTemperature", "unit": "degC"},
    ]
    return [
        {"id": "opcua-boiler-1", "poll_interval_s": poll_interval_s, "metering_level": 3, "role": "energy_station",
         "transport": {"kind": "opcua", "url": url, "acquisition": "poll", "device_kind": "heat_meter",
                       "carrier": "heat", "nodes": boiler}},
        {"id": "opcua-chiller-1", "poll_interval_s": poll_interval_s, "metering_level": 3, "role": "hvac",
         "transport": {"kind": "opcua", "url": url, "acquisition": "subscription", "sampling_interval_ms": 1000,
                       "publishing_interval_ms": 1000, "device_kind": "hvac", "carrier": "electricity",
                       "nodes": chiller}},
    ]


__all__ = ["MISSING_EXTRA", "NAMESPACE_URI", "VARIABLES", "OpcUaSimServer", "PlantModel", "opcua_device_entries"]

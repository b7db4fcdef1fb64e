"""Transports of ``edge.yaml`` devices: how the agent reaches each meter (one model per ``kind``).

Modbus TCP (or RTU over a TCP gateway), Modbus RTU and DL/T 645 on a serial line or behind a TCP
gateway, CJ/T 188 on M-Bus or a gateway, and OPC UA with its nodes, security and authentication.
:data:`Transport` is the discriminated union :class:`edge.config.DeviceConfig` holds. Relative file
paths are resolved by the models that carry them (``resolved``), against the configuration's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from edge.errors import ConfigError
from edge.serial_bus import SerialBusSettings
from schemas import METRICS, UnitError, conversion_factor
from schemas.registry import DEVICE_KINDS

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class ConfigModel(BaseModel):
    """Base of every ``edge.yaml`` model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(ConfigModel):
    """Capped, jittered exponential backoff: sleep ``uniform(0, min(max_s, initial_s * 2**attempt))``."""

    initial_s: Annotated[float, Field(gt=0)] = 0.5
    max_s: Annotated[float, Field(gt=0)] = 30.0


class ModbusTcpTransport(ConfigModel):
    """A Modbus TCP device or RS-485 gateway (``framer: rtu`` for RTU frames tunnelled over TCP)."""

    kind: Literal["modbus_tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    framer: Literal["socket", "rtu"] = "socket"
    timeout_s: Annotated[float, Field(gt=0)] = 3.0


class Dlt645TcpTransport(ConfigModel):
    """A DL/T 645 meter behind a transparent RS-485/TCP gateway (several meters may share one)."""

    kind: Literal["dlt645_tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    address: Annotated[str, Field(pattern=r"^(?:[0-9]{2}|AA){6}$")]
    timeout_s: Annotated[float, Field(gt=0)] = 3.0
    read_clock: bool = True


class SerialTransport(ConfigModel):
    """Base of every transport on an RS-485 bus of ``serial_buses`` (named by ``bus``).

    :class:`EdgeConfig` resolves ``bus`` into :attr:`bus_settings`; ``timeout_s`` overrides the bus's
    per-request timeout for this one device (a slow meter), ``None`` keeps the bus's.
    """

    bus: Id
    timeout_s: Annotated[float, Field(gt=0, le=60)] | None = None
    _bus_settings: SerialBusSettings | None = PrivateAttr(default=None)

    @property
    def bus_settings(self) -> SerialBusSettings:
        """The bus this device hangs on (set while :class:`EdgeConfig` validates)."""
        if self._bus_settings is None:
            raise ConfigError(f"serial bus {self.bus!r} is not resolved: validate the whole EdgeConfig")
        return self._bus_settings


class ModbusRtuTransport(SerialTransport):
    """A Modbus RTU device on a local RS-485 bus (``unit_id`` is its slave address, 1-247)."""

    kind: Literal["modbus_rtu"]
    unit_id: Annotated[int, Field(ge=1, le=247)]

    @property
    def endpoint_uri(self) -> str:
        """``modbus-rtu://{bus}/{unit}`` for birth metadata and logs."""
        return f"modbus-rtu://{self.bus}/{self.unit_id}"

    # host/port/address let code written for TCP transports label this one (agent.birth_metadata)
    @property
    def host(self) -> str:
        """The bus id."""
        return self.bus

    @property
    def port(self) -> str:
        """``rtu``."""
        return "rtu"

    @property
    def address(self) -> str:
        """The unit id as text."""
        return str(self.unit_id)


class Dlt645SerialTransport(SerialTransport):
    """A DL/T 645-2007 meter on a local RS-485 bus (12-digit address as printed on the nameplate)."""

    kind: Literal["dlt645_serial"]
    address: Annotated[str, Field(pattern=r"^(?:[0-9]{2}|AA){6}$")]
    read_clock: bool = True

    @property
    def endpoint_uri(self) -> str:
        """``dlt645-serial://{bus}/{address}`` for birth metadata and logs."""
        return f"dlt645-serial://{self.bus}/{self.address}"

    # host/port let code written for TCP transports label this one (agent.birth_metadata)
    @property
    def host(self) -> str:
        """The bus id."""
        return self.bus

    @property
    def port(self) -> str:
        """``serial``."""
        return "serial"


_CJT188_ADDRESS = r"^[0-9A-Fa-f]{14}$"  # A6..A0 as printed on the meter (manufacturer code digits may be hex)


class Cjt188TcpTransport(ConfigModel):
    """A CJ/T 188 water, gas or heat meter behind a transparent RS-485/M-Bus-to-TCP converter."""

    kind: Literal["cjt188_tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    address: Annotated[str, Field(pattern=_CJT188_ADDRESS)]
    timeout_s: Annotated[float, Field(gt=0)] = 3.0

    @property
    def endpoint_uri(self) -> str:
        """``cjt188://{host}:{port}/{address}`` for birth metadata and logs."""
        return f"cjt188://{self.host}:{self.port}/{self.address.upper()}"


class Cjt188SerialTransport(SerialTransport):
    """A CJ/T 188 water, gas or heat meter on a local RS-485 bus (usually 2400 baud 8E1)."""

    kind: Literal["cjt188_serial"]
    address: Annotated[str, Field(pattern=_CJT188_ADDRESS)]

    @property
    def endpoint_uri(self) -> str:
        """``cjt188-serial://{bus}/{address}`` for birth metadata and logs."""
        return f"cjt188-serial://{self.bus}/{self.address.upper()}"

    @property
    def host(self) -> str:
        """The bus id (code written for TCP transports labels endpoints by host and port)."""
        return self.bus

    @property
    def port(self) -> str:
        """``serial``."""
        return "serial"


_OPCUA_NODE_ID = r"^(?:ns=\d+;|nsu=[^;]+;)?(?:i=\d+|s=.+|g=[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|b=.+)$"
_OPCUA_BROWSE_PATH = r"^/?(?:\d+:)?[^/]+(?:/(?:\d+:)?[^/]+)*$"


class OpcUaNode(ConfigModel):
    """An OPC UA variable as a metric (``value x scale`` in ``unit``): by ``node_id`` (``ns=2;s=B1.Heat``,
    ``nsu=<uri>;...`` if the server renumbers namespaces) or ``browse_path`` (``Objects/2:B1/2:Heat``)."""

    metric: str
    unit: str
    scale: Annotated[float, Field(allow_inf_nan=False)] = 1.0
    node_id: Annotated[str, Field(pattern=_OPCUA_NODE_ID)] | None = None
    browse_path: Annotated[str, Field(pattern=_OPCUA_BROWSE_PATH)] | None = None

    @model_validator(mode="after")
    def _valid(self) -> OpcUaNode:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError(f"{self.metric}: give node_id or browse_path (exactly one)")
        if self.metric not in METRICS:
            raise ValueError(f"metric {self.metric!r} is not in the registry (schemas.metrics)")
        try:
            conversion_factor(self.unit, METRICS[self.metric].unit)
        except UnitError as exc:
            raise ValueError(f"{self.metric}: {exc}") from None
        return self


class OpcUaSecurity(ConfigModel):
    """Secure channel: policy, mode, the agent's certificate and key; ``server_cert_file`` pins the server's
    (without it the agent trusts the one the server lists with its endpoints, as most clients do)."""

    policy: Literal["None", "Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    cert_file: Path | None = None
    key_file: Path | None = None
    server_cert_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("security: policy None goes with mode None; Basic256Sha256 needs Sign or SignAndEncrypt")
        if self.policy != "None" and (self.cert_file is None or self.key_file is None):
            raise ValueError(f"security: policy {self.policy} needs cert_file and key_file (the agent's certificate)")
        return self


class OpcUaAuth(ConfigModel):
    """User identity: anonymous, user name + password (from ``password_env`` or ``password_file``), or a
    user certificate (``cert_file`` + ``key_file``). The password never sits in ``edge.yaml``."""

    username: str | None = None
    password_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    password_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> OpcUaAuth:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("auth: give password_env or password_file, not both")
        if self.username is None and (self.password_env or self.password_file):
            raise ValueError("auth: a password needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("auth: give cert_file and key_file together (the user certificate and its key)")
        if self.username is not None and self.cert_file is not None:
            raise ValueError("auth: give username or cert_file, not both")
        return self


class OpcUaTransport(ConfigModel):
    """An OPC UA server (DCS, SCADA, PLC) and the nodes to read: polled every ``poll_interval_s``, or
    (``acquisition: subscription``) sampled by the server every ``sampling_interval_ms``, changes collected at
    each poll. ``timestamps: source`` uses the server's source timestamps instead of the agent's clock."""

    kind: Literal["opcua"]
    url: Annotated[str, Field(pattern=r"^opc\.tcp://[^/\s:]+(?::\d{1,5})?(?:/\S*)?$")]
    security: OpcUaSecurity = OpcUaSecurity()
    auth: OpcUaAuth = OpcUaAuth()
    acquisition: Literal["poll", "subscription"] = "poll"
    sampling_interval_ms: Annotated[float, Field(gt=0)] = 1000.0
    publishing_interval_ms: Annotated[float, Field(gt=0)] = 1000.0
    timestamps: Literal["agent", "source"] = "agent"
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    backoff: Backoff = Backoff()
    max_buffered: Annotated[int, Field(ge=1)] = 100_000
    device_kind: str | None = None
    carrier: Literal["electricity", "gas", "heat", "cooling", "water", "steam", "none"] | None = None
    nodes: Annotated[list[OpcUaNode], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_and_described(self) -> OpcUaTransport:
        metrics = [n.metric for n in self.nodes]
        dupes = sorted({m for m in metrics if metrics.count(m) > 1})
        if dupes:
            raise ValueError(f"nodes: metrics listed twice: {', '.join(dupes)}")
        if self.device_kind is not None and self.device_kind not in DEVICE_KINDS:
            raise ValueError(f"device_kind {self.device_kind!r} is not one of {', '.join(DEVICE_KINDS)}")
        if self.kind_and_carrier is None:
            raise ValueError("the nodes measure several carriers or none: set carrier and device_kind "
                             f"(one of {', '.join(DEVICE_KINDS)})")
        return self

    @property
    def kind_and_carrier(self) -> tuple[str, str] | None:
        """(device kind, carrier) for the birth message: as configured, else from the nodes' metrics."""
        carriers = {METRICS[n.metric].carrier.value for n in self.nodes} - {"none"}
        carrier = self.carrier or (carriers.pop() if len(carriers) == 1 else None)
        kind = self.device_kind or (f"{carrier}_meter" if f"{carrier}_meter" in DEVICE_KINDS else None)
        return None if carrier is None or kind is None else (kind, carrier)

    @property
    def endpoint_uri(self) -> str:
        """The server's URL, for birth metadata and logs."""
        return self.url

    # host/port/address let code written for TCP transports label this one (agent.birth_metadata)
    @property
    def host(self) -> str:
        """The server's host name."""
        return self.url.removeprefix("opc.tcp://").split("/", 1)[0].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        """The server's TCP port (4840 when the URL names none)."""
        authority = self.url.removeprefix("opc.tcp://").split("/", 1)[0]
        return int(authority.rsplit(":", 1)[1]) if ":" in authority else 4840

    @property
    def address(self) -> str:
        """The endpoint path of the URL."""
        return self.url.removeprefix("opc.tcp://").partition("/")[2]

    def resolved(self, base_dir: Path) -> OpcUaTransport:
        """A copy whose certificate, key and password files are absolute (relative to ``edge.yaml``)."""
        def fix(model: ConfigModel, *names: str) -> ConfigModel:
            paths = {n: getattr(model, n) for n in names if getattr(model, n) is not None}
            return model.model_copy(update={n: p if p.is_absolute() else base_dir / p for n, p in paths.items()})
        return self.model_copy(update={"security": fix(self.security, "cert_file", "key_file", "server_cert_file"),
                                       "auth": fix(self.auth, "password_file", "cert_file", "key_file")})


Transport = Annotated[ModbusTcpTransport | Dlt645TcpTransport | ModbusRtuTransport | Dlt645SerialTransport
                      | OpcUaTransport | Cjt188TcpTransport | Cjt188SerialTransport, Field(discriminator="kind")]

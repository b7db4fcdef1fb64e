"""``edge.yaml``: what one edge agent polls, where it stores, and where it publishes.

Example (the README has the complete annotated version)::

    agent_id: gw-01
    park_id: demo-park
    mqtt: {url: "mqtt://broker.example:1883"}
    outbox: {path: /var/lib/parkpulse/outbox.sqlite, max_bytes: 536870912, full_policy: drop_oldest}
    devices:
      - id: m-001
        profile: eastron_sdm630
        transport: {kind: modbus_tcp, host: 10.0.0.21, port: 502, unit_id: 1}
        poll_interval_s: 15
        metering_level: 2
        mqtt: {password_file: /etc/parkpulse/m-001.secret}   # user name demo-park/m-001
      - id: m-002
        profile: dlt645_2007_3p
        transport: {kind: dlt645_tcp, host: 10.0.0.30, port: 8899, address: "000000000161"}
        ct_ratio: 200
        pt_ratio: 1

Only :class:`EdgeSettings` (the pydantic-settings class of this service) reads the environment: it
supplies the broker URL when ``edge.yaml`` does not name one.

Each device connects as MQTT user ``{park_id}/{device_id}`` unless a user name is configured
(:func:`device_credentials`): the broker's ACL (deploy/mosquitto/parkpulse.acl) binds that identity to the
park's and device's own topics, so one device's password cannot write another device's or park's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from edge.commands_config import CommandsConfig
from edge.config_transports import (
    Backoff,
    Cjt188SerialTransport,
    Cjt188TcpTransport,
    ConfigModel,
    Dlt645SerialTransport,
    Dlt645TcpTransport,
    Id,
    ModbusRtuTransport,
    ModbusTcpTransport,
    OpcUaAuth,
    OpcUaNode,
    OpcUaSecurity,
    OpcUaTransport,
    SerialTransport,
    Transport,
)
from edge.errors import ConfigError
from edge.outbox import Durability, FullPolicy
from edge.serial_bus import SerialBusSettings
from infra.settings import MqttEndpoint, ServiceSettings, parse_mqtt_url


class EdgeSettings(ServiceSettings):
    """Environment settings of the edge agent (``PARKPULSE_MQTT_URL``, ``PARKPULSE_LOG_LEVEL``)."""

    database_url: str = ""  # the edge agent never talks to the database
    mqtt_url: str = ""


class Credentials(ConfigModel):
    """MQTT user name and password; the password may come from a file so it stays out of ``edge.yaml``.

    Leave ``username`` out for ParkPulse's broker: devices then connect as ``{park_id}/{device_id}``, the
    identity its ACL expects (see :func:`device_credentials`).
    """

    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    #: A client certificate and its key (PEM) for ``mqtts://``: with the broker's certificate variant its CN
    #: (``{park}/{device}``) is the identity the ACL binds, and no password is needed.
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> Credentials:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together (the client certificate and its key)")
        return self

    def client_certificate(self, base_dir: Path) -> tuple[Path, Path] | None:
        """(certificate, key) resolved against ``edge.yaml``'s folder, or None when not configured."""
        if self.cert_file is None or self.key_file is None:
            return None
        cert = self.cert_file if self.cert_file.is_absolute() else base_dir / self.cert_file
        key = self.key_file if self.key_file.is_absolute() else base_dir / self.key_file
        return cert, key

    @property
    def has_password(self) -> bool:
        """Whether a password or a password file is configured here."""
        return self.password is not None or self.password_file is not None

    def resolve_password(self, base_dir: Path) -> str | None:
        """The password, reading ``password_file`` (relative to ``edge.yaml``) when set."""
        if self.password_file is None:
            return self.password
        path = self.password_file if self.password_file.is_absolute() else base_dir / self.password_file
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read MQTT password file {path}: {exc}") from None


class MqttConfig(Credentials):
    """Broker connection; the credentials here are the default for devices without their own.

    A ``username`` here makes every device of the agent connect as that one user, which ParkPulse's ACL
    refuses (it expects ``{park}/{device}``); it is meant for other brokers. A ``password``/``password_file``
    here is the default password of every device (one secret per gateway, one user per device).
    """

    url: str | None = None
    ca_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    publish_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    #: Keep readings whose PUBACK says "no matching subscribers" (0x10) and retry: the broker dropped them.
    #: Turn off only for a broker that no ParkPulse ingest subscribes to (e.g. a relay bridge).
    require_subscriber: bool = True
    max_inflight: Annotated[int, Field(ge=1, le=65535)] = 100
    backoff: Backoff = Backoff()


class OutboxConfig(ConfigModel):
    """The local SQLite store-and-forward buffer and its bounds."""

    path: Path = Path("edge-outbox.sqlite")
    max_messages: Annotated[int, Field(ge=1)] = 2_000_000
    max_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024 * 1024
    full_policy: FullPolicy = FullPolicy.DROP_OLDEST
    durability: Durability = Durability.FULL


class DrainConfig(ConfigModel):
    """How fast a backlog is replayed after a broker outage; live data is always sent first."""

    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 100
    backlog_rate_msgs_per_s: Annotated[float, Field(gt=0)] = 500.0


class DeviceConfig(ConfigModel):
    """One meter: how to reach it, its profile, schedule, metadata and MQTT identity."""

    id: Id
    profile: str = ""  # required, except for OPC UA devices: their nodes are listed in the transport
    transport: Transport
    poll_interval_s: Annotated[float, Field(gt=0)] = 15.0
    poll_offset_s: Annotated[float, Field(ge=0)] = 0.0
    ct_ratio: Annotated[float, Field(gt=0)] = 1.0
    pt_ratio: Annotated[float, Field(gt=0)] = 1.0
    metering_level: Literal[1, 2, 3] | None = None
    site: Id | None = None
    role: str | None = None
    firmware: str | None = None
    rated_power_kw: Annotated[float, Field(gt=0)] | None = None
    mqtt: Credentials = Credentials()

    @model_validator(mode="after")
    def _profile_named(self) -> DeviceConfig:
        if not self.profile and not isinstance(self.transport, OpcUaTransport):
            raise ValueError(f"device {self.id}: name its profile (e.g. profile: eastron_sdm630)")
        return self

    @property
    def multiplier(self) -> float:
        """CT x PT, reported in the birth message."""
        return self.ct_ratio * self.pt_ratio


class EdgeConfig(ConfigModel):
    """The whole ``edge.yaml``."""

    agent_id: Id
    park_id: Id
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    drain: DrainConfig = DrainConfig()
    status_interval_s: Annotated[float, Field(gt=0)] = 60.0
    offline_after_failures: Annotated[int, Field(ge=1)] = 3
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 5.0
    meter_utc_offset_h: float = 8.0
    profile_paths: list[Path] = Field(default_factory=list)
    serial_buses: list[SerialBusSettings] = Field(default_factory=list)
    devices: Annotated[list[DeviceConfig], Field(min_length=1)]
    commands: CommandsConfig = CommandsConfig()  # setpoint handling (edge/commands_config.py)

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"device ids listed twice: {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _resolve_serial_buses(self) -> EdgeConfig:
        """Every serial transport names a bus of ``serial_buses``; one port belongs to one bus."""
        buses = {b.id: b for b in self.serial_buses}
        if len(buses) != len(self.serial_buses):
            raise ValueError("serial_buses: bus ids listed twice")
        ports = [b.port for b in self.serial_buses]
        if len(set(ports)) != len(ports):
            raise ValueError("serial_buses: two buses on one port; list the port once and put every device on it")
        for device in self.devices:
            if isinstance(device.transport, SerialTransport):
                bus = device.transport.bus
                if bus not in buses:
                    known = ", ".join(sorted(buses)) or "none: add a serial_buses: list"
                    raise ValueError(f"device {device.id}: unknown serial bus {bus!r} (known: {known})")
                device.transport._bus_settings = buses[bus]
        return self


def parse_config(data: object, *, origin: str = "<data>") -> EdgeConfig:
    """Validate parsed YAML into an :class:`EdgeConfig`; raises :class:`ConfigError` naming ``origin``."""
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid edge configuration {origin}: {exc}") from None


def load_config(path: Path) -> EdgeConfig:
    """Read ``edge.yaml``; relative paths inside it are resolved against its directory."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read edge configuration {path}: {exc}") from None
    config = parse_config(data, origin=str(path))
    base = path.resolve().parent
    outbox_path = config.outbox.path if config.outbox.path.is_absolute() else base / config.outbox.path
    profile_paths = [p if p.is_absolute() else base / p for p in config.profile_paths]
    return config.model_copy(update={
        "outbox": config.outbox.model_copy(update={"path": outbox_path}),
        "profile_paths": profile_paths,
        "devices": [d.model_copy(update={"transport": d.transport.resolved(base)})
                    if isinstance(d.transport, OpcUaTransport) else d for d in config.devices],
    })


def default_username(park_id: str, device_id: str) -> str:
    """``{park}/{device}``: the MQTT identity the ParkPulse broker's ACL binds to that park and device."""
    return f"{park_id}/{device_id}"


def device_username(config: EdgeConfig, device: DeviceConfig, endpoint: MqttEndpoint) -> str:
    """The device's ``mqtt.username``, the agent-wide one, the broker URL's user, else ``{park}/{device}``."""
    return (device.mqtt.username or config.mqtt.username or endpoint.username
            or default_username(config.park_id, device.id))


def device_credentials(config: EdgeConfig, device: DeviceConfig, endpoint: MqttEndpoint,
                       base_dir: Path) -> tuple[str, str | None]:
    """The MQTT user name and password one device's session connects with.

    User name, first configured of: the device's ``mqtt.username``, the agent-wide ``mqtt.username``, the
    broker URL's user, else :func:`default_username` (``{park_id}/{device_id}``). Password, first
    configured of: the device's ``mqtt.password``/``password_file``, the agent-wide one, the URL's.
    Explicit settings always win, so brokers with other ACL conventions keep working.
    """
    username = device_username(config, device, endpoint)
    if device.mqtt.has_password:
        return username, device.mqtt.resolve_password(base_dir)
    if config.mqtt.has_password:
        return username, config.mqtt.resolve_password(base_dir)
    return username, endpoint.password


def broker_url(config: EdgeConfig, settings: EdgeSettings | None) -> str:
    """The broker URL: ``mqtt.url`` from ``edge.yaml``, else ``PARKPULSE_MQTT_URL``; validated."""
    url = config.mqtt.url or (settings.mqtt_url if settings else "")
    if not url:
        raise ConfigError("no MQTT broker: set mqtt.url in edge.yaml or PARKPULSE_MQTT_URL")
    try:
        parse_mqtt_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return url


__all__ = [
    "Backoff",
    "Cjt188SerialTransport",
    "Cjt188TcpTransport",
    "Credentials",
    "DeviceConfig",
    "Dlt645SerialTransport",
    "Dlt645TcpTransport",
    "DrainConfig",
    "EdgeConfig",
    "EdgeSettings",
    "ModbusRtuTransport",
    "ModbusTcpTransport",
    "MqttConfig",
    "OpcUaAuth",
    "OpcUaNode",
    "OpcUaSecurity",
    "OpcUaTransport",
    "OutboxConfig",
    "SerialBusSettings",
    "SerialTransport",
    "broker_url",
    "default_username",
    "device_credentials",
    "device_username",
    "load_config",
    "parse_config",
]

"""Settings shared by every service: where the database and the MQTT broker are.

Each service defines one pydantic-settings class deriving from :class:`ServiceSettings`; nothing else in
ParkPulse reads the environment. Values come from ``PARKPULSE_*`` environment variables, then from
``.cache/services.env`` (written by ``parkpulse services up``), so commands run from a checkout just work.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.paths import services_env_file


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Broker address parsed from an ``mqtt://[user:password@]host[:port]`` URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_mqtt_url(url: str) -> MqttEndpoint:
    """Parse ``mqtt://`` or ``mqtts://`` URLs; raises ValueError on anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp"):
        raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"MQTT URL has no host: {url!r}")
    tls = parts.scheme == "mqtts"
    return MqttEndpoint(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


class ServiceSettings(BaseSettings):
    """Base for every service's settings: the two connection URLs every service needs."""

    model_config = SettingsConfigDict(
        env_prefix="PARKPULSE_", env_file=services_env_file(), env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str
    mqtt_url: str
    log_level: str = "INFO"

    @property
    def mqtt(self) -> MqttEndpoint:
        """The broker endpoint parsed from :attr:`mqtt_url`."""
        return parse_mqtt_url(self.mqtt_url)

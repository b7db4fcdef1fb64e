"""Configuration and result types of the services package."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.paths import cache_dir

__all__ = [
    "DB_NAME",
    "DB_PASSWORD",
    "DB_USER",
    "Mode",
    "ServiceEndpoints",
    "ServicesSettings",
    "default_cache_dir",
    "local_database_url",
    "local_mqtt_url",
]

logger = logging.getLogger(__name__)

Mode = Literal["env", "docker", "local"]

#: Credentials of the development database; the same in docker-compose.yml and the local path.
DB_USER = "parkpulse"
DB_PASSWORD = "parkpulse"  # noqa: S105 - local development credential, documented
DB_NAME = "parkpulse"


class ServicesSettings(BaseSettings):
    """Where the services are, or on which ports to start them.

    Read from ``PARKPULSE_*`` environment variables; this is the only place the package reads the
    environment. When both URLs are set the services are external and only checked. Deliberately no
    ``env_file``: ``services.env`` is our own output, and reading it back would turn managed services
    into "external" ones.
    """

    model_config = SettingsConfigDict(env_prefix="PARKPULSE_", extra="ignore")

    database_url: str | None = None
    mqtt_url: str | None = None
    pg_port: int = Field(default=54329, ge=1, le=65535)
    mqtt_port: int = Field(default=18830, ge=1, le=65535)
    #: Shared location of the Debian trixie root that holds TimescaleDB (default: ``<cache>/trixie-root``).
    rootfs_dir: Path | None = None


@dataclass(frozen=True)
class ServiceEndpoints:
    """How to reach the running services, and which way they were provided."""

    database_url: str
    mqtt_url: str
    mode: Mode

    def as_env(self) -> dict[str, str]:
        """Return the endpoints as the ``PARKPULSE_*`` variables that other components read."""
        return {"PARKPULSE_DATABASE_URL": self.database_url, "PARKPULSE_MQTT_URL": self.mqtt_url}


def local_database_url(port: int) -> str:
    """Return the URL of the development database served on 127.0.0.1:``port``."""
    return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{port}/{DB_NAME}"


def local_mqtt_url(port: int) -> str:
    """Return the URL of the development broker served on 127.0.0.1:``port``."""
    return f"mqtt://127.0.0.1:{port}"


def default_cache_dir() -> Path:
    """Return ``<project root>/.cache``, where service state, logs and data live by default."""
    return cache_dir()

"""Settings of the utility API and its OpenADR 3 VEN (``PARKPULSE_API_*`` / ``PARKPULSE_VEN_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from infra.paths import services_env_file
from infra.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    """``parkpulse api``: where to listen and how long verified keys stay cached."""

    host: str = Field(default="127.0.0.1", validation_alias="PARKPULSE_API_HOST")
    port: int = Field(default=8080, ge=1, le=65535, validation_alias="PARKPULSE_API_PORT")
    key_cache_ttl_s: float = Field(default=60.0, ge=0, validation_alias="PARKPULSE_API_KEY_CACHE_TTL_S")
    openadr_program_id: str | None = Field(default=None, validation_alias="PARKPULSE_VEN_PROGRAM_ID")
    openadr_event_id: str | None = Field(default=None, validation_alias="PARKPULSE_VEN_EVENT_ID")
    ven_name: str = Field(default="parkpulse-ven", validation_alias="PARKPULSE_VEN_NAME")
    dr_policy_file: Path | None = Field(default=None, validation_alias="PARKPULSE_DR_POLICY_FILE",
                                        description="YAML overriding keys of the built-in DR policy")


class VenSettings(ServiceSettings):
    """The VEN side: the VTN's base URL and the OAuth2 client credentials it issued to this park."""

    model_config = SettingsConfigDict(
        env_prefix="PARKPULSE_VEN_", env_file=services_env_file(), env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(validation_alias="PARKPULSE_DATABASE_URL")
    mqtt_url: str = Field(default="mqtt://127.0.0.1", validation_alias="PARKPULSE_MQTT_URL")
    vtn_url: str
    token_url: str | None = None
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    auth_method: str = Field(default="basic", pattern="^(basic|post)$")
    program_id: str
    event_id: str
    name: str = "parkpulse-ven"
    timeout_s: float = Field(default=10.0, gt=0)

"""Settings of the OpenADR 3 VEN (``PARKPULSE_VEN3_*``): the VTN, the credentials it issued, the park, timing."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from infra.paths import services_env_file
from infra.settings import ServiceSettings


class Ven3Settings(ServiceSettings):
    """``parkpulse vpp ven3 run``: one park's VEN at one OpenADR 3 VTN.

    ``poll_interval_s`` applies when the VTN offers no subscriptions (or subscribing failed); with a live
    webhook subscription the VEN still polls every ``poll_with_webhook_s`` to catch missed notifications.
    ``webhook_public_url`` is the callback URL the VTN should use when it cannot reach
    ``http://{webhook_host}:{port}`` directly (NAT, reverse proxy).
    """

    model_config = SettingsConfigDict(
        env_prefix="PARKPULSE_VEN3_", env_file=services_env_file(), env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(validation_alias="PARKPULSE_DATABASE_URL")
    mqtt_url: str = Field(default="mqtt://127.0.0.1", validation_alias="PARKPULSE_MQTT_URL")
    vtn_url: str
    client_id: str
    client_secret: SecretStr
    token_url: str | None = None
    scope: str | None = None
    park_id: str
    ven_name: str = "parkpulse-ven"
    program_names: tuple[str, ...] = Field(default=(), description="programs to follow (empty: every program)")
    poll_interval_s: float = Field(default=30.0, gt=0)
    poll_with_webhook_s: float = Field(default=300.0, gt=0)
    subscribe: bool = True
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port")
    webhook_public_url: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)

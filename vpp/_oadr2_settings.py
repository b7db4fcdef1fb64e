"""Settings of the OpenADR 2.0b VEN (``PARKPULSE_VEN2_*``): the VTN, this VEN's identity, the park it serves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from infra.paths import services_env_file
from infra.settings import ServiceSettings


class Oadr2Settings(ServiceSettings):
    """What ``parkpulse vpp ven2 run`` reads from the environment or ``.cache/services.env``.

    ``vtn_url`` is the VTN's 2.0b base (``…/OpenADR2/Simple/2.0b``). ``cert``/``key`` sign messages and
    authenticate over TLS (both or neither), ``ca_file`` checks the VTN's certificate and
    ``vtn_fingerprint`` its signatures. ``poll_interval`` overrides the polling frequency the VTN asks
    for at registration (None: use the VTN's). ``report_min_interval`` is the fastest telemetry sampling
    offered to the VTN (the VTN picks the rate within [min, 1 h]).
    """

    model_config = SettingsConfigDict(
        env_prefix="PARKPULSE_VEN2_", env_file=services_env_file(), env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(validation_alias="PARKPULSE_DATABASE_URL")
    mqtt_url: str = Field(default="mqtt://127.0.0.1", validation_alias="PARKPULSE_MQTT_URL")
    vtn_url: str
    ven_name: str = "parkpulse-ven2"
    ven_id: str | None = None
    park_id: str
    resource_id: str | None = None  # the resource id reported in telemetry (default: the park id)
    cert: Path | None = None
    key: Path | None = None
    passphrase: str | None = None
    ca_file: Path | None = None
    vtn_fingerprint: str | None = None
    check_hostname: bool = True
    poll_interval: timedelta | None = None
    report_min_interval: timedelta = timedelta(seconds=10)
    register_backoff_initial_s: float = Field(default=1.0, gt=0)
    register_backoff_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _pairs(self) -> Oadr2Settings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("set both PARKPULSE_VEN2_CERT and PARKPULSE_VEN2_KEY, or neither")
        if self.report_min_interval <= timedelta(0):
            raise ValueError("PARKPULSE_VEN2_REPORT_MIN_INTERVAL must be positive")
        return self

    @property
    def report_resource_id(self) -> str:
        """Resource id used in the telemetry reports."""
        return self.resource_id or self.park_id

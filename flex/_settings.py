"""Settings of the DR commands and services (``PARKPULSE_*``): the database and the DR policy file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from infra.settings import ServiceSettings


class DrServiceSettings(ServiceSettings):
    """What a DR process reads from the environment or ``.cache/services.env``.

    ``PARKPULSE_DR_POLICY_FILE`` names a YAML file overriding keys of the built-in DR policy
    (``flex/data/dr_policy.yaml``); empty or unset means the built-in policy. A command's ``--policy FILE``
    takes precedence over it.
    """

    mqtt_url: str = "mqtt://127.0.0.1"  # DR computations never talk to the broker
    dr_policy_file: Path | None = Field(default=None, validation_alias="PARKPULSE_DR_POLICY_FILE")

    @field_validator("dr_policy_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

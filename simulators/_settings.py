"""Settings of the simulator: only the broker is needed, the database URL is optional."""

from __future__ import annotations

from infra.settings import ServiceSettings


class SimulatorSettings(ServiceSettings):
    """``PARKPULSE_MQTT_URL`` (required) from the environment or ``.cache/services.env``."""

    database_url: str | None = None  # type: ignore[assignment]  # the simulator never touches the database

"""Settings of ``parkpulse dashboards deploy`` (``PARKPULSE_GRAFANA_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from infra.settings import ServiceSettings


class DashboardSettings(ServiceSettings):
    """Where Grafana is and the service-account token that may write dashboards.

    ``PARKPULSE_GRAFANA_URL`` (default ``http://127.0.0.1:3000``), ``PARKPULSE_GRAFANA_TOKEN`` (a Grafana
    service-account token with the Editor role), ``PARKPULSE_GRAFANA_FOLDER_UID`` / ``_TITLE``.
    """

    database_url: str = ""  # deploying never touches the database; the base class requires the field
    mqtt_url: str = ""
    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr | None = None
    grafana_folder_uid: str = Field(default="parkpulse", pattern=r"^[A-Za-z0-9_-]{1,40}$")
    grafana_folder_title: str = "ParkPulse"
    grafana_timeout_s: float = Field(default=10.0, gt=0)

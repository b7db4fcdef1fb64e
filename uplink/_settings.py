"""Settings of the uplink service (``PARKPULSE_UPLINK_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from infra.settings import ServiceSettings


class UplinkSettings(ServiceSettings):
    """Everything ``parkpulse uplink …`` can be tuned with; the endpoints themselves are a YAML file."""

    mqtt_url: str = ""  # the uplink never talks to the broker; the base class requires the field
    uplink_endpoints_file: Path | None = None
    uplink_lookback_days: int = Field(default=7, ge=1, le=400)   # after each aggregation run: recompute this far back
    # ... or further, from the earliest reading the run recomputed, but never more than this many days
    uplink_revision_horizon_days: int = Field(default=93, ge=1, le=800)
    uplink_poll_s: float = Field(default=30.0, gt=0)              # idle queue: look again after this long
    uplink_backoff_base_s: float = Field(default=2.0, gt=0)
    uplink_backoff_cap_s: float = Field(default=300.0, gt=0)
    uplink_metrics_host: str = "127.0.0.1"
    uplink_metrics_port: int | None = Field(default=None, ge=0, le=65535)  # Prometheus /metrics (off when None)

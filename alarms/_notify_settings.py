"""Settings of the notification dispatcher (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from infra.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    """Where the notify config is, how often to poll, and how much to send per pass.

    Channel secrets are not settings: the config refers to them by environment variable or file
    (:mod:`alarms._notify_config`).
    """

    mqtt_url: str = ""  # the dispatcher never talks to the broker; the base class requires the field
    notify_config_file: Path | None = None
    notify_poll_interval_s: float = Field(default=5.0, gt=0, le=3600)   # passes also run on each NOTIFY
    notify_batch_size: int = Field(default=50, ge=1, le=1000)           # notifications/deliveries per pass step
    notify_lease_s: float = Field(default=120.0, ge=10, le=3600)        # a claimed delivery's lease
    notify_max_concurrent: int = Field(default=8, ge=1, le=100)         # sends in flight at once
    notify_park: str | None = None                                      # serve only this park

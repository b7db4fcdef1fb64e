"""Settings of the ingest service (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

import socket
from datetime import timedelta

from pydantic import Field

from parkpulse.settings import ServiceSettings
from schemas import ValidationPolicy


class IngestSettings(ServiceSettings):
    """Everything ``parkpulse ingest`` can be tuned with.

    ``client_id`` must be stable for an instance across restarts: the broker keeps the instance's
    persistent session (queued and unacknowledged messages) under it. Instances sharing ``share_group``
    split the load of one MQTT v5 shared subscription.

    An empty ``share_group`` makes the subscription exclusive (plain). Mosquitto (2.0.11 and 2.0.21 both,
    measured) does not restore *shared* subscriptions from its persistence after a broker restart, so
    messages published after the restart and before the instance re-subscribes reach nobody. A plain
    subscription of a persistent session survives the restart. Use exclusive mode for a single instance,
    or one instance per park (``park_filter``), where broker restarts must not open that window.
    """

    client_id: str = Field(default_factory=lambda: f"parkpulse-ingest-{socket.gethostname()}")
    share_group: str = "ingest"
    park_filter: str | None = None  # only this park's topics (tests, or per-tenant instances)
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000  # unacknowledged QoS 1 messages the broker may have in flight to us
    batch_max_readings: int = 20_000
    batch_max_messages: int = 1000
    flush_interval_s: float = 0.2
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108  # 0 = pick a free port, -1 = no metrics endpoint
    max_message_bytes: int = 1_048_576
    max_readings_per_message: int = 10_000
    max_future_s: float = 300.0
    max_age_days: float = 400.0

    def validation_policy(self) -> ValidationPolicy:
        """The payload limits as the pure decoder expects them."""
        return ValidationPolicy(
            max_message_bytes=self.max_message_bytes,
            max_readings=self.max_readings_per_message,
            max_future=timedelta(seconds=self.max_future_s),
            max_age=timedelta(days=self.max_age_days),
        )

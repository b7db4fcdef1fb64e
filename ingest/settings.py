"""Settings of the ingest service (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from infra.paths import cache_dir
from infra.settings import ServiceSettings
from schemas import ValidationPolicy


class IngestSettings(ServiceSettings):
    """Everything ``parkpulse ingest`` can be tuned with.

    ``client_id`` must be stable for an instance across restarts: the broker keeps the instance's
    persistent session (queued and unacknowledged messages) under it.

    **Subscriptions and scale-out.** By default (``share_group`` empty) every instance holds a plain,
    persistent QoS 1 subscription. Mosquitto saves plain subscriptions with the session and restores them
    after a restart, so a publisher never meets an empty topic (PUBACK 0x10 "no matching subscribers")
    and nothing it sends is dropped. N instances split the load by ``partition_count`` /
    ``partition_index``: each receives every message and stores only its own partition of devices
    (CRC-32 of ``park/device``), acknowledging the rest unread. The cost: the broker sends each message N
    times, and a stopped instance's partition waits in its session until it is back (there is no
    take-over). A non-empty ``share_group`` uses an MQTT v5 shared subscription instead, which balances
    and fails over, but Mosquitto (2.0.11 and 2.0.21 measured) does not restore shared subscriptions
    after a restart and drops what publishers send until the instances re-subscribe: use it only with a
    broker that persists shared subscriptions.
    """

    client_id: str = Field(default_factory=lambda: f"parkpulse-ingest-{socket.gethostname()}")
    share_group: str = ""
    partition_count: int = Field(default=1, ge=1, le=1024)
    partition_index: int = Field(default=0, ge=0)
    park_filter: str | None = None  # only this park's topics (tests, or per-tenant instances)
    session_expiry_s: int = 7 * 24 * 3600
    receive_maximum: int = 1000  # unacknowledged QoS 1 messages the broker may have in flight to us
    batch_max_readings: int = 20_000
    batch_max_messages: int = 1000
    flush_interval_s: float = 0.2
    backoff_initial_s: float = 0.5   # database retries
    backoff_max_s: float = 30.0
    broker_backoff_initial_s: float = 0.2  # broker reconnects: short, the broker restores our session
    broker_backoff_max_s: float = 3.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108  # 0 = pick a free port, -1 = no metrics endpoint
    max_message_bytes: int = 1_048_576
    max_readings_per_message: int = 10_000
    max_future_s: float = 300.0
    max_age_days: float = 400.0
    registry_refresh_s: float = 5.0  # how stale the registry snapshot may get (also re-read on a miss)
    quarantine_raw_cap_bytes: int = Field(default=65_536, ge=0)
    quarantine_rate_per_minute: float = Field(default=120.0, gt=0)  # per sender, after the burst
    quarantine_burst: float = Field(default=240.0, ge=1)
    quarantine_max_age_days: float = Field(default=90.0, gt=0)
    quarantine_max_bytes: int = Field(default=1 << 30, gt=0)  # raw bytes kept in total, oldest pruned first
    retention_interval_s: float = 600.0
    dead_letter_dir: Path = Field(default_factory=lambda: cache_dir() / "ingest-dead-letter")
    mqtt_ca_file: Path | None = None  # CA that signed the broker's certificate, for mqtts:// URLs
    # Quarantine reasons sent back on parkpulse/v1/{park}/{device}/errors (ingest._feedback); the broker ACL
    # must let ingest write there. Per device: a burst, then one message per interval; never blocks ingest.
    feedback_enabled: bool = True
    feedback_interval_s: float = Field(default=10.0, gt=0)
    feedback_burst: int = Field(default=3, ge=1)
    feedback_queue_max: int = Field(default=1000, ge=1)  # waiting to be published; beyond it they are dropped
    feedback_timeout_s: float = Field(default=5.0, gt=0)  # per publish, PUBACK included

    @model_validator(mode="after")
    def _partition_in_range(self) -> Self:
        if self.partition_index >= self.partition_count:
            raise ValueError(f"partition_index {self.partition_index} must be below partition_count "
                             f"{self.partition_count} (instances are numbered 0 … count-1)")
        if self.share_group and self.partition_count > 1:
            raise ValueError("use either a shared subscription (share_group) or partitions, not both")
        return self

    def validation_policy(self) -> ValidationPolicy:
        """The payload limits as the pure decoder expects them."""
        return ValidationPolicy(
            max_message_bytes=self.max_message_bytes,
            max_readings=self.max_readings_per_message,
            max_future=timedelta(seconds=self.max_future_s),
            max_age=timedelta(days=self.max_age_days),
        )

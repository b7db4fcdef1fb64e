"""Settings of the aggregation jobs (``PARKPULSE_*`` environment variables or ``.cache/services.env``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from aggregation._intervals import IntervalParams
from aggregation._policy import Policy, default_policy, load_policy
from infra.settings import ServiceSettings


class AggregationSettings(ServiceSettings):
    """Everything ``parkpulse aggregate`` and ``parkpulse report`` can be tuned with.

    Thresholds and coefficients are *data* (``aggregation/data/policy.yaml`` and ``factors.yaml``); a
    programme can point ``aggregation_policy_file`` / ``aggregation_factors_file`` at its own copies.
    """

    mqtt_url: str = ""  # aggregation never talks to the broker; the base class requires the field
    aggregation_interval_minutes: int = Field(default=15, ge=1, le=60)
    aggregation_policy_file: Path | None = None
    aggregation_factors_file: Path | None = None
    aggregation_series_per_batch: int = Field(default=100, ge=1)    # meters per batch (smaller batches pipeline better)
    aggregation_read_connections: int = Field(default=2, ge=1, le=16)   # parallel readers in a backfill
    aggregation_write_connections: int = Field(default=2, ge=1, le=16)  # parallel writers in a backfill
    aggregation_max_changes: int = Field(default=200_000, ge=1)      # change-log rows per run
    aggregation_gap_timeout_s: float = Field(default=300.0, ge=0)    # how long a change-id gap may stay open
    aggregation_context_readings: int = Field(default=4, ge=1)       # readings of context around a dirty range
    aggregation_park: str | None = None  # run a per-park job instance (own watermark) instead of all parks

    @property
    def job_name(self) -> str:
        """Watermark key: one per job instance (all parks, or one park)."""
        return "aggregation" if self.aggregation_park is None else f"aggregation:{self.aggregation_park}"

    def policy(self) -> Policy:
        """The policy in force (the programme's file if configured)."""
        if self.aggregation_policy_file is not None:
            return load_policy(self.aggregation_policy_file)
        return default_policy()

    def interval_params(self) -> IntervalParams:
        """Interval length and VEE limits for the interval-energy computation."""
        return IntervalParams(interval_s=self.aggregation_interval_minutes * 60, vee=self.policy().vee)

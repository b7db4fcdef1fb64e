"""Response documents of the utility API: every quantity names its unit (``_kw``, ``_kwh``, ``_pct``, ``_h``).

Times are ISO 8601 in UTC; calendar dates (baseline days) are the park's local dates. ``up`` always means
load reduction (削峰, grid up-regulation) and ``down`` load increase (填谷, down-regulation); documents that
carry a direction also carry its meaning (``direction_meaning``), and query parameters accept the aliases
of :mod:`flex._direction` (reduce, 削峰, peak-shaving / increase, 填谷, valley-filling).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from flex._direction import MEANINGS, Direction

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Problem(_Out):
    """RFC 9457 problem document returned with every 4xx/5xx status."""

    type: str = Field(description="URI reference identifying the problem type")
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="field-level validation errors")


class Page(_Out, Generic[T]):
    """One page of a list; ``next_offset`` is null on the last page."""

    items: list[T]
    total: int = Field(ge=0)
    limit: int
    offset: int
    next_offset: int | None


class ParkOut(_Out):
    """A park the key may read."""

    park_id: str
    name: str | None
    timezone: str = Field(description="IANA zone; local days and baseline dates use it")
    province: str | None
    grid_region: str | None


class DurationFlexOut(_Out):
    """Park flexibility sustained for ``duration_h``: after connection limits and derating."""

    duration_h: float
    up_kw: float = Field(description="load reduction the park can hold for the whole duration")
    down_kw: float = Field(description="load increase the park can hold for the whole duration")
    up_sum_kw: float = Field(description="Σ asset up-flexibility before limits and derating")
    down_sum_kw: float = Field(description="Σ asset down-flexibility before limits and derating")
    derating_up: float = Field(description="factor from past events (delivered / declared)")
    derating_down: float
    limited_by: list[str] = Field(description="connection limits that bound the sum, e.g. 'park:export'")


class AssetDurationOut(_Out):
    """One asset's envelope for one duration."""

    duration_h: float
    up_kw: float
    down_kw: float
    rebound_kwh: float = Field(description="energy expected back after an up event (HVAC)")


class AssetFlexOut(_Out):
    """One asset's flexibility and where its live state came from."""

    asset_id: str
    kind: str
    site_id: str | None
    state_source: Literal["readings", "snapshot", "none"]
    state_at: datetime | None
    durations: list[AssetDurationOut]


class FlexibilityOut(_Out):
    """Current flexibility of a park."""

    park_id: str
    as_of: datetime
    unit: Literal["kW"] = "kW"
    park_load_kw: float | None = Field(description="latest boundary demand used for connection limits")
    durations: list[DurationFlexOut]
    assets: list[AssetFlexOut]


class ForecastSlotOut(_Out):
    """Flexibility for one 15-min slot and one duration."""

    slot_start: datetime
    duration_h: float
    up_kw: float
    down_kw: float
    rebound_kwh: float


class ForecastOut(_Out):
    """Flexibility forecast in 15-min slots."""

    park_id: str
    generated_at: datetime
    interval: Literal["PT15M"] = "PT15M"
    unit: Literal["kW"] = "kW"
    slots: list[ForecastSlotOut]


class CapacityDirectionOut(_Out):
    """Declared versus verified capacity in one direction."""

    declared_kw: float | None = Field(description="Σ flexibility for the programme duration, derated")
    verified_kw: float | None = Field(description="best average reduction of qualifying events (M&V)")
    declared_pct: float | None = Field(description="declared / annual max 15-min demand × 100")
    verified_pct: float | None = Field(description="verified / annual max 15-min demand × 100")
    verified_event_id: str | None
    n_events: int = Field(description="qualifying events in the look-back")
    derating_factor: float


class MethodCapacityOut(_Out):
    """One evaluated event under one baseline method."""

    method: str = Field(description="baseline preset (or the event's own frozen method)")
    avg_reduction_kw: float | None = Field(description="R_avg = delivered / duration; null when not computable")
    pct_of_annual_max: float | None = Field(description="avg_reduction_kw / annual max 15-min demand × 100")
    delivered_kwh: float | None
    ratio_requested: float | None = Field(description="avg_reduction_kw / requested_kw")
    quality_ok: bool | None = Field(description="would pass the data-quality gate; null when not computable")
    problem: str | None = Field(description="why there is no figure, or why it would not count as verified")
    evaluated_with: bool = Field(description="the method of the event's stored evaluation (counted by the summary)")


class EventCapacityOut(_Out):
    """An evaluated event with its capacity under every baseline method."""

    event_id: str
    start: datetime
    end: datetime
    duration_h: float
    direction: Literal["up", "down"]
    requested_kw: float
    declared_kw: float | None
    sets_verified: bool = Field(description="this event's stored result is the summary's verified capacity")
    methods: list[MethodCapacityOut]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def direction_meaning(self) -> str:
        """``load reduction, 削峰`` or ``load increase, 填谷``."""
        return MEANINGS[Direction(self.direction)]


class CapacityByEventOut(_Out):
    """Every evaluated event under every baseline method, computed for this request (nothing stored)."""

    as_of: datetime
    annual_max_demand_kw: float | None = Field(description="the denominator of every pct_of_annual_max")
    annual_max_demand_at: datetime | None
    methods: list[str]
    events: list[EventCapacityOut] = Field(description="newest first")


class CapacityOut(_Out):
    """DR capacity (需求侧响应能力) of a park at ``as_of``."""

    park_id: str
    as_of: datetime
    source: Literal["stored", "live"] = Field(description="read from the history or computed for this request")
    duration_h: float = Field(description="duration the declared capacity must be sustained")
    annual_max_demand_kw: float | None
    annual_max_demand_at: datetime | None
    target_pct_min: float = Field(description="national target band, 3-5 % of maximum load (2025)")
    target_pct_max: float
    up: CapacityDirectionOut = Field(description="load reduction (削峰)")
    down: CapacityDirectionOut = Field(description="load increase (填谷)")
    by_event: CapacityByEventOut | None = Field(
        default=None, description="with ?by_event=true: every evaluated event under every baseline method")


class DayAuditOut(_Out):
    """Why a candidate day was used, not selected, or excluded."""

    day: date
    day_type: str | None
    status: Literal["used", "not_selected", "excluded"]
    reason: str | None
    rank_value: float | None
    estimated_share: float | None


class BaselineIntervalOut(_Out):
    """Baseline for one interval."""

    ts: datetime
    baseline_kw: float
    baseline_unadjusted_kw: float


class BaselineOut(_Out):
    """A baseline with its full audit trail."""

    park_id: str
    method: dict[str, Any] = Field(description="the complete resolved method parameters")
    start: datetime
    end: datetime
    event_day: date
    event_day_type: str
    days_used: list[date]
    audit: list[DayAuditOut]
    adjustment: dict[str, Any]
    estimated_share: float
    warnings: list[str]
    unit: Literal["kW"] = "kW"
    intervals: list[BaselineIntervalOut]


class PerformanceOut(_Out):
    """Event measurement and verification summary."""

    evaluated_at: datetime
    baseline_method: str
    delivered_kwh: float
    duration_h: float
    avg_reduction_kw: float
    min_reduction_kw: float | None
    max_reduction_kw: float | None
    ratio_requested: float
    ratio_declared: float | None
    band: str | None
    estimated_share_event: float
    estimated_share_baseline: float
    missing_intervals: int
    quality_ok: bool = Field(description="true when the result may count as verified capacity")
    quality_reasons: list[str]
    baseline_days: list[date]
    warnings: list[str]


class EventOut(_Out):
    """A DR event and, once evaluated, its performance."""

    event_id: str
    park_id: str
    start: datetime
    end: datetime
    direction: Literal["up", "down"]
    requested_kw: float
    declared_kw: float | None
    baseline_method: str
    status: str
    source: str
    program_id: str | None
    notified_at: datetime | None
    performance: PerformanceOut | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def direction_meaning(self) -> str:
        """``load reduction, 削峰`` or ``load increase, 填谷``."""
        return MEANINGS[Direction(self.direction)]


class EventIntervalOut(_Out):
    """Per-interval M&V row."""

    ts: datetime
    baseline_kw: float
    baseline_unadjusted_kw: float | None
    actual_kw: float | None
    reduction_kw: float | None
    estimated_share: float | None


class EventDetailOut(EventOut):
    """An event with its per-interval table."""

    intervals: list[EventIntervalOut]


class HealthOut(_Out):
    """Liveness."""

    status: Literal["ok"] = "ok"
    version: str

"""The one parameterised baseline method, its presets (a data file) and per-call overrides.

Every customer-baseline (CBL) rule used by US ISOs and Chinese provinces is a choice of the same few
parameters: which days may serve (similar day type, not an event day, not a holiday, good data), how many
are collected and how many of those are averaged (most recent, highest or middle by some ranking), and
which day-of adjustment corrects the level. :class:`BaselineMethod` holds those choices explicitly; the
presets in ``flex/data/baseline_presets.yaml`` name well-known combinations with their source and
confidence, and :func:`resolve_method` applies overrides so a programme's variant is one call away.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flex.errors import DataFileError, UnknownBaselineMethodError

_PRESETS_FILE = "baseline_presets.yaml"

RankBy = Literal["recency", "event_window_mean_kw", "daily_max_kw", "daily_energy_kwh"]


class DaySelection(BaseModel):
    """How baseline days of one pool (workdays or non-workdays) are collected and chosen.

    Days are walked back from the reference day (skipping ``skip_days`` calendar days right before it)
    up to ``lookback_days`` back; the first ``n_days`` eligible ones are collected, ranked by ``rank_by``
    and ``n_used`` of them averaged (``keep`` = highest, or the middle ones dropping both tails).
    Fewer than ``min_days`` eligible days is an error; between ``min_days`` and ``n_days`` the method uses
    what it found and says so in the result.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_days: int = Field(ge=1, le=60, description="eligible days collected, most recent first")
    n_used: int = Field(ge=1, le=60, description="days averaged after ranking")
    lookback_days: int = Field(ge=1, le=400, description="calendar days searched back from the reference day")
    skip_days: int = Field(
        default=0, ge=0, le=30, description="calendar days right before the reference day never used"
    )
    rank_by: RankBy = "recency"
    keep: Literal["highest", "middle"] = "highest"
    min_days: int = Field(ge=1, le=60, description="fewer eligible days than this is an error")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.n_used > self.n_days:
            raise ValueError(f"n_used ({self.n_used}) must not exceed n_days ({self.n_days})")
        if self.min_days > self.n_days:
            raise ValueError(f"min_days ({self.min_days}) must not exceed n_days ({self.n_days})")
        if self.skip_days >= self.lookback_days:
            raise ValueError("skip_days must be smaller than lookback_days")
        return self


class Adjustment(BaseModel):
    """Day-of adjustment computed over a window that ends ``gap_hours`` before the event starts.

    ``multiplicative``: ratio = Σ actual / Σ baseline over the window, clamped to [min_ratio, max_ratio]
    (CAISO ±20%). ``additive``: offset = mean(actual − baseline) over the window, added to every interval
    (PJM symmetric additive adjustment), optionally clamped to ±max_offset_kw.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["none", "multiplicative", "additive"] = "none"
    window_hours: float = Field(default=3.0, gt=0, le=24)
    gap_hours: float = Field(default=1.0, ge=0, le=24)
    min_ratio: float | None = Field(default=None, gt=0)
    max_ratio: float | None = Field(default=None, gt=0)
    max_offset_kw: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.min_ratio is not None and self.max_ratio is not None and self.min_ratio > self.max_ratio:
            raise ValueError("min_ratio must not exceed max_ratio")
        return self


class BaselineMethod(BaseModel):
    """All parameters of one baseline computation; presets are instances of this model.

    ``kind='similar_days'`` averages the load of selected past days interval by interval;
    ``kind='pre_event'`` holds the mean load of the ``pre_event_minutes`` before the event (after a
    ``pre_event_gap_minutes`` gap) flat over the event (Jiangsu real-time DR). ``day_match='same_type'``
    takes workdays for a workday event and weekend/holiday days otherwise; ``'workdays'`` always takes
    workdays. ``reference='notice_day'`` walks back from the day the event was notified instead of the
    event day (Jiangsu: "before the invitation day").
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    title: str = ""
    source: str = ""
    confidence: Literal["V", "K", "U"] = "U"
    kind: Literal["similar_days", "pre_event"]
    day_match: Literal["same_type", "workdays"] = "same_type"
    reference: Literal["event_day", "notice_day"] = "event_day"
    workday: DaySelection | None = None
    non_workday: DaySelection | None = None
    adjusted_workday_is_workday: bool = Field(default=True, description="调休上班 days count as workdays")
    exclude_event_days: bool = True
    low_usage_fraction: float | None = Field(
        default=None, gt=0, lt=1,
        description="drop days whose event-window mean is below this share of the candidates' mean",
    )
    max_day_estimated_share: float = Field(default=0.25, ge=0, le=1)
    max_day_missing_share: float = Field(default=0.1, ge=0, le=1)
    pre_event_minutes: int = Field(default=15, ge=1, le=24 * 60)
    pre_event_gap_minutes: int = Field(default=0, ge=0, le=24 * 60)
    interval_minutes: int = Field(default=15, ge=1, le=60)
    adjustment: Adjustment = Adjustment()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if 60 % self.interval_minutes:
            raise ValueError("interval_minutes must divide 60")
        if self.kind == "similar_days" and self.workday is None:
            raise ValueError("a similar_days method needs a 'workday' day selection")
        if self.kind == "pre_event":
            if self.pre_event_minutes % self.interval_minutes or self.pre_event_gap_minutes % self.interval_minutes:
                raise ValueError("pre_event_minutes and pre_event_gap_minutes must be multiples of interval_minutes")
            if self.adjustment.kind != "none":
                raise ValueError("a pre_event baseline takes no day-of adjustment")
        return self

    def selection_for(self, event_day_is_working: bool) -> DaySelection | None:
        """The day selection used for an event on a working (or non-working) day."""
        if event_day_is_working or self.day_match == "workdays":
            return self.workday
        return self.non_workday


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_presets(document: Mapping[str, Any], path: str = "<memory>") -> dict[str, BaselineMethod]:
    """Validate a presets document (``{presets: {NAME: {...}}}``); raises :class:`DataFileError`."""
    presets = document.get("presets")
    if not isinstance(presets, Mapping) or not presets:
        raise DataFileError(path, "missing 'presets' mapping")
    out: dict[str, BaselineMethod] = {}
    for name, body in presets.items():
        try:
            out[str(name)] = BaselineMethod.model_validate({"name": name, **body})
        except (ValidationError, TypeError) as exc:
            raise DataFileError(path, f"preset {name}: {exc}") from exc
    return out


@cache
def baseline_presets() -> dict[str, BaselineMethod]:
    """The shipped presets by name (CAISO_10IN10, PJM_HIGH4OF5_SAA, JIANGSU_5WD, ...)."""
    text = resources.files("flex").joinpath("data", _PRESETS_FILE).read_text(encoding="utf-8")
    return parse_presets(yaml.safe_load(text), f"flex/data/{_PRESETS_FILE}")


def resolve_method(method: str | BaselineMethod, overrides: Mapping[str, Any] | None = None) -> BaselineMethod:
    """A preset (by name) or a given method with ``overrides`` deep-merged and re-validated.

    Raises :class:`UnknownBaselineMethodError` for an unknown name and pydantic's ``ValidationError``
    when the overrides produce an inconsistent method (the message names the offending field).
    """
    if isinstance(method, str):
        presets = baseline_presets()
        try:
            base = presets[method]
        except KeyError:
            raise UnknownBaselineMethodError(method, tuple(sorted(presets))) from None
    else:
        base = method
    if not overrides:
        return base
    merged = _deep_merge(base.model_dump(), overrides)
    if "name" not in overrides:
        merged["name"] = f"{base.name}.custom"
    return BaselineMethod.model_validate(merged)

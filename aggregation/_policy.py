"""Thresholds and defaults as data: VEE limits, balance alarm, indicator bases, PUE grades and policies.

Loaded from ``aggregation/data/policy.yaml`` (or a programme's own file with the same schema). Every
parameter in the file carries its unit, source and confidence; code reads only the values through the
typed :class:`Policy` below, so a threshold is never a literal in an algorithm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from aggregation._factors import Basis
from aggregation.errors import RegistryError


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    value: Any
    unit: str
    source: str
    confidence: Literal["V", "K", "U"]


class _Vee(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spike_margin: _Param
    wrap_high_fraction: _Param
    wrap_low_fraction: _Param
    linear_gap_max_minutes: _Param
    like_day_count: _Param
    like_day_lookback_days: _Param
    resume_lookahead_readings: _Param
    default_register_resolution: _Param


class _Balance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alarm_pct: _Param


class _Indicators(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intensity_basis: _Param
    share_basis: _Param
    market_residual_factor: _Param
    deduct_exported_electricity: _Param
    include_energy_media: _Param
    carbon_per_energy_thresholds: _Param


class _Grades(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheme: str
    source: str
    confidence: Literal["V", "K", "U"]
    limits: list[float]


class PuePolicyRule(BaseModel):
    """One city or national PUE rule, e.g. Shenzhen's new-build ``PUE < 1.25``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    label: str
    applies_to: Literal["new", "existing", "all"]
    comparison: Literal["lt", "le", "gt", "ge"]
    threshold: float
    consequence: str
    source: str
    confidence: Literal["V", "K", "U"]

    def triggered(self, pue: float) -> bool:
        """True when ``pue`` satisfies the rule's comparison (met for lt/le, breached for gt/ge)."""
        match self.comparison:
            case "lt":
                return pue < self.threshold
            case "le":
                return pue <= self.threshold
            case "gt":
                return pue > self.threshold
            case _:
                return pue >= self.threshold


class _Pue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plausible_min: _Param
    plausible_max: _Param
    grades: _Grades
    policies: list[PuePolicyRule]


class _PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vee: _Vee
    balance: _Balance
    indicators: _Indicators
    pue: _Pue


@dataclass(frozen=True, slots=True)
class VeePolicy:
    """Validation/estimation limits for interval energy (see ``policy.yaml`` for sources)."""

    spike_margin: float = 1.2
    wrap_high_fraction: float = 0.9
    wrap_low_fraction: float = 0.1
    linear_gap_max_s: float = 7200.0
    like_day_count: int = 4
    like_day_lookback_days: int = 28
    resume_lookahead: int = 4
    default_resolution: float = 0.01


@dataclass(frozen=True, slots=True)
class IndicatorPolicy:
    """Default bases and accounting choices of the park indicators."""

    intensity_basis: Basis = Basis.CALORIFIC
    share_basis: Basis = Basis.COAL_EQUIVALENT
    market_residual_factor: str = "excl_market_nonfossil"
    deduct_exported_electricity: bool = True
    include_energy_media: bool = True
    carbon_per_energy_thresholds: tuple[float, ...] = (0.20, 0.30)


@dataclass(frozen=True, slots=True)
class PuePolicy:
    """Plausibility range, grade limits (grade 1 first) and city rules for PUE."""

    plausible_min: float
    plausible_max: float
    grade_scheme: str
    grade_limits: tuple[float, ...]
    rules: tuple[PuePolicyRule, ...]


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything configurable about aggregation, with the raw file kept for provenance."""

    vee: VeePolicy
    balance_alarm_pct: float
    indicators: IndicatorPolicy
    pue: PuePolicy
    source: str


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file (default: the shipped one); raises :class:`RegistryError`."""
    text = (path.read_text(encoding="utf-8") if path is not None
            else resources.files("aggregation").joinpath("data/policy.yaml").read_text(encoding="utf-8"))
    try:
        raw = _PolicyFile.model_validate(yaml.safe_load(text))
        vee = VeePolicy(
            spike_margin=float(raw.vee.spike_margin.value),
            wrap_high_fraction=float(raw.vee.wrap_high_fraction.value),
            wrap_low_fraction=float(raw.vee.wrap_low_fraction.value),
            linear_gap_max_s=float(raw.vee.linear_gap_max_minutes.value) * 60.0,
            like_day_count=int(raw.vee.like_day_count.value),
            like_day_lookback_days=int(raw.vee.like_day_lookback_days.value),
            resume_lookahead=int(raw.vee.resume_lookahead_readings.value),
            default_resolution=float(raw.vee.default_register_resolution.value),
        )
        ind = raw.indicators
        indicators = IndicatorPolicy(
            intensity_basis=Basis(ind.intensity_basis.value),
            share_basis=Basis(ind.share_basis.value),
            market_residual_factor=str(ind.market_residual_factor.value),
            deduct_exported_electricity=bool(ind.deduct_exported_electricity.value),
            include_energy_media=bool(ind.include_energy_media.value),
            carbon_per_energy_thresholds=tuple(float(v) for v in ind.carbon_per_energy_thresholds.value),
        )
        pue = PuePolicy(
            plausible_min=float(raw.pue.plausible_min.value),
            plausible_max=float(raw.pue.plausible_max.value),
            grade_scheme=raw.pue.grades.scheme,
            grade_limits=tuple(sorted(raw.pue.grades.limits)),
            rules=tuple(raw.pue.policies),
        )
    except (yaml.YAMLError, ValidationError, ValueError, TypeError) as exc:
        raise RegistryError(f"policy file {path or 'policy.yaml'} is invalid: {exc}") from exc
    return Policy(vee, float(raw.balance.alarm_pct.value), indicators, pue, str(path or "policy.yaml"))


@cache
def default_policy() -> Policy:
    """The shipped policy, loaded once per process."""
    return load_policy()

"""DR programme policy (thresholds, performance bands, targets) loaded from a data file with provenance.

The shipped ``flex/data/dr_policy.yaml`` holds defaults tagged with source and confidence; most are
programme-specific ([U]) and meant to be replaced by a deployment's own file, never edited in code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flex.errors import DataFileError

_POLICY_FILE = "dr_policy.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Band(_Frozen):
    """A settlement band on the delivered/requested ratio: ``min_ratio <= ratio < max_ratio``."""

    name: str
    min_ratio: float | None = None
    max_ratio: float | None = None

    def contains(self, ratio: float) -> bool:
        """True when ``ratio`` falls in this band."""
        low_ok = self.min_ratio is None or ratio >= self.min_ratio
        high_ok = self.max_ratio is None or ratio < self.max_ratio
        return low_ok and high_ok


class DataQualityPolicy(_Frozen):
    """Gate an event evaluation must pass before its result counts as verified capacity."""

    max_event_estimated_share: float = Field(ge=0, le=1)
    max_baseline_estimated_share: float = Field(ge=0, le=1)
    max_event_missing_intervals: int = Field(ge=0)


class VerifiedPolicy(_Frozen):
    """How verified capacity is derived from evaluated events."""

    statistic: Literal["max", "median"] = "max"
    lookback_days: int = Field(ge=1)
    min_event_duration_h: float = Field(ge=0)


class DeratingPolicy(_Frozen):
    """Derating of declared flexibility by past performance (delivered / declared)."""

    default_factor: float = Field(ge=0, le=1)
    lookback_events: int = Field(ge=1)
    min_factor: float = Field(ge=0, le=1)
    max_factor: float = Field(ge=0, le=1)


class DrPolicy(_Frozen):
    """All DR programme parameters used by evaluation, capacity and aggregation."""

    reporting_durations_h: tuple[float, ...]
    declared_duration_h: float = Field(gt=0, le=24)
    data_quality: DataQualityPolicy
    bands: tuple[Band, ...]
    min_interval_fraction: float | None = Field(default=None, ge=0, le=2)
    verified: VerifiedPolicy
    derating: DeratingPolicy
    annual_max_basis: Literal["trailing_365d", "calendar_year"] = "trailing_365d"
    national_target_pct_min: float
    national_target_pct_max: float
    shenzhen_vpp_target_mw: dict[str, float]
    source: str = ""

    def band_for(self, ratio: float | None) -> str | None:
        """Name of the settlement band ``ratio`` falls in (None when the ratio is unknown)."""
        if ratio is None:
            return None
        for band in self.bands:
            if band.contains(ratio):
                return band.name
        return None


def _value(doc: dict[str, Any], key: str, path: str) -> Any:
    try:
        entry = doc[key]
    except KeyError:
        raise DataFileError(path, f"missing {key!r}") from None
    return entry["value"] if isinstance(entry, dict) and "value" in entry else entry


def parse_policy(doc: dict[str, Any], path: str = "<memory>") -> DrPolicy:
    """Validate a policy document; raises :class:`DataFileError` naming the bad entry."""
    try:
        quality = doc["data_quality"]
        targets = doc["targets"]
        return DrPolicy(
            reporting_durations_h=tuple(float(v) for v in _value(doc, "reporting_durations_h", path)),
            declared_duration_h=float(_value(doc, "declared_duration_h", path)),
            data_quality=DataQualityPolicy(**{k: _value(quality, k, path) for k in quality}),
            bands=tuple(Band(**b) for b in doc["performance_bands"]["bands"]),
            min_interval_fraction=_value(doc, "min_interval_fraction", path),
            verified=VerifiedPolicy(**doc["verified_capacity"]),
            derating=DeratingPolicy(**doc["derating"]),
            annual_max_basis=doc["annual_max_demand"]["basis"],
            national_target_pct_min=float(targets["national_dr_share_pct"]["min"]),
            national_target_pct_max=float(targets["national_dr_share_pct"]["max"]),
            shenzhen_vpp_target_mw={
                str(k): float(v) for k, v in targets["shenzhen_vpp_regulation_mw"].items() if str(k).isdigit()
            },
            source=path,
        )
    except (KeyError, TypeError, ValidationError) as exc:
        raise DataFileError(path, f"{type(exc).__name__}: {exc}") from exc


def load_policy(path: Path | None = None) -> DrPolicy:
    """Load a policy file; without ``path`` the shipped defaults (cached)."""
    if path is None:
        return _default_policy()
    with path.open(encoding="utf-8") as fh:
        return parse_policy(yaml.safe_load(fh), str(path))


@cache
def _default_policy() -> DrPolicy:
    text = resources.files("flex").joinpath("data", _POLICY_FILE).read_text(encoding="utf-8")
    return parse_policy(yaml.safe_load(text), f"flex/data/{_POLICY_FILE}")

"""DR programme policy (thresholds, performance bands, targets) loaded from a data file with provenance.

The shipped ``flex/data/dr_policy.yaml`` holds defaults tagged with source and confidence; most are
programme-specific ([U]) and meant to be replaced by a deployment's own file, never edited in code. A
deployment's file overrides only the keys it sets (:func:`override_policy`); the ``dr`` commands take it as
``--policy FILE`` or from ``PARKPULSE_DR_POLICY_FILE``. Unknown keys and bad values are errors that name
the key, so a typo never silently leaves the built-in value in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, Self, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from flex.errors import DataFileError

_POLICY_FILE = "dr_policy.yaml"
_M = TypeVar("_M", bound=BaseModel)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Band(_Frozen):
    """A settlement band on the delivered/requested ratio: ``min_ratio <= ratio < max_ratio``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    min_ratio: float | None = None
    max_ratio: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_ratio is not None and self.max_ratio is not None and self.min_ratio >= self.max_ratio:
            raise ValueError(f"band {self.name!r}: min_ratio must be below max_ratio")
        return self

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

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_factor > self.max_factor:
            raise ValueError("min_factor must not exceed max_factor")
        return self


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


def _fail(path: str, key: str, reason: str) -> DataFileError:
    return DataFileError(path, f"key {key!r}: {reason}; fix it, or delete it to keep the built-in value")


def _value(doc: Mapping[str, Any], key: str, path: str, prefix: str = "") -> Any:
    """An entry's value: ``key: 2`` and ``key: {value: 2, source: ...}`` both give 2."""
    try:
        entry = doc[key]
    except KeyError:
        raise _fail(path, prefix + key, "missing") from None
    return entry["value"] if isinstance(entry, Mapping) and "value" in entry else entry


def _section(doc: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    entry = doc.get(key)
    if not isinstance(entry, Mapping):
        raise _fail(path, key, f"expected a mapping, got {type(entry).__name__}")
    return entry


def _number(value: Any, key: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(path, key, f"expected a number, got {value!r}")
    return float(value)


def _build(model: type[_M], data: Mapping[str, Any], key: str, path: str) -> _M:
    """Validate one section, naming the file key of the first bad field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join([key, *(str(p) for p in first["loc"])]) if first["loc"] else key
        got = f" (got {first['input']!r})" if "input" in first and not isinstance(first["input"], Mapping) else ""
        raise _fail(path, loc, f"{first['msg']}{got}") from None


def parse_policy(doc: Mapping[str, Any], path: str = "<memory>") -> DrPolicy:
    """Validate a complete policy document; raises :class:`DataFileError` naming the bad key."""
    if not isinstance(doc, Mapping):
        raise DataFileError(path, "expected a mapping of policy keys (see flex/data/dr_policy.yaml)")
    quality = _section(doc, "data_quality", path)
    bands_doc = _section(doc, "performance_bands", path).get("bands")
    if not isinstance(bands_doc, list) or not bands_doc:
        raise _fail(path, "performance_bands.bands", "expected a non-empty list of {name, min_ratio, max_ratio}")
    bands = tuple(_build(Band, b if isinstance(b, Mapping) else {}, f"performance_bands.bands.{i}", path)
                  for i, b in enumerate(bands_doc))
    targets = _section(doc, "targets", path)
    share = _section(targets, "national_dr_share_pct", path) if "national_dr_share_pct" in targets else None
    if share is None:
        raise _fail(path, "targets.national_dr_share_pct", "missing")
    vpp = targets.get("shenzhen_vpp_regulation_mw") or {}
    if not isinstance(vpp, Mapping):
        raise _fail(path, "targets.shenzhen_vpp_regulation_mw", "expected a mapping of year: MW")
    durations = _value(doc, "reporting_durations_h", path)
    if not isinstance(durations, list) or not durations:
        raise _fail(path, "reporting_durations_h", "expected a non-empty list of hours")
    fields: dict[str, Any] = {
        "reporting_durations_h": tuple(_number(v, f"reporting_durations_h.{i}", path)
                                       for i, v in enumerate(durations)),
        "declared_duration_h": _number(_value(doc, "declared_duration_h", path), "declared_duration_h", path),
        "data_quality": _build(DataQualityPolicy, {k: _value(quality, k, path, "data_quality.") for k in quality},
                               "data_quality", path),
        "bands": bands,
        "min_interval_fraction": _value(doc, "min_interval_fraction", path),
        "verified": _build(VerifiedPolicy, _section(doc, "verified_capacity", path), "verified_capacity", path),
        "derating": _build(DeratingPolicy, _section(doc, "derating", path), "derating", path),
        "annual_max_basis": _section(doc, "annual_max_demand", path).get("basis"),
        "national_target_pct_min": _number(share.get("min"), "targets.national_dr_share_pct.min", path),
        "national_target_pct_max": _number(share.get("max"), "targets.national_dr_share_pct.max", path),
        "shenzhen_vpp_target_mw": {
            str(k): _number(v, f"targets.shenzhen_vpp_regulation_mw.{k}", path)
            for k, v in vpp.items() if str(k).isdigit()
        },
        "source": path,
    }
    try:
        return DrPolicy(**fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        raise _fail(path, _FILE_KEYS.get(field, field), first["msg"]) from None


#: DrPolicy field → the key that sets it in the policy file (for error messages).
_FILE_KEYS: Final[dict[str, str]] = {
    "bands": "performance_bands.bands",
    "verified": "verified_capacity",
    "annual_max_basis": "annual_max_demand.basis",
    "national_target_pct_min": "targets.national_dr_share_pct.min",
    "national_target_pct_max": "targets.national_dr_share_pct.max",
}
#: Mappings whose keys are data (years), not policy keys.
_OPEN_KEYS: Final = frozenset({"targets.shenzhen_vpp_regulation_mw"})


def _check_keys(override: Mapping[str, Any], base: Mapping[str, Any], path: str, prefix: str = "") -> None:
    """Every key of an override file must exist in the built-in policy (a typo must not pass silently)."""
    for raw_key, value in override.items():
        key = str(raw_key)
        where = prefix + key
        if key not in base:
            known = ", ".join(sorted(str(k) for k in base))
            raise DataFileError(path, f"unknown key {where!r}; the keys here are: {known}")
        sub = base[key]
        if isinstance(value, Mapping) and isinstance(sub, Mapping) and where not in _OPEN_KEYS:
            _check_keys(value, sub, path, where + ".")


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def override_policy(override: Any, path: str = "<memory>") -> DrPolicy:
    """The built-in policy with ``override`` (a partial policy document) deep-merged over it.

    Mappings merge key by key, everything else (lists such as the bands, scalars) replaces the built-in
    value. Unknown keys and invalid values raise :class:`DataFileError` naming the key.
    """
    if override is None:
        override = {}
    if not isinstance(override, Mapping):
        raise DataFileError(path, "expected a mapping of policy keys, e.g. 'verified_capacity: {statistic: "
                                  "median}' (see flex/data/dr_policy.yaml)")
    base = _default_document()
    _check_keys(override, base, path)
    return parse_policy(_merge(base, override), path)


def load_policy(path: Path | None = None) -> DrPolicy:
    """The built-in policy, or the built-in policy overridden by the YAML file at ``path``.

    The file may set only the keys it changes (``parkpulse dr capacity --policy FILE`` or
    ``PARKPULSE_DR_POLICY_FILE``); a complete copy of ``flex/data/dr_policy.yaml`` works as well.
    """
    if path is None:
        return _default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(str(path), f"cannot read the policy file ({exc.__class__.__name__}: {exc})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise DataFileError(str(path), f"not valid YAML{line}: {getattr(exc, 'problem', None) or exc}") from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. PyYAML's ValueError on a date like 2026-02-30
        raise DataFileError(str(path), f"not valid YAML: {exc.__class__.__name__}: {exc}") from None
    return override_policy(document, str(path))


def _default_document() -> dict[str, Any]:
    text = resources.files("flex").joinpath("data", _POLICY_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@cache
def _default_policy() -> DrPolicy:
    return parse_policy(_default_document(), f"flex/data/{_POLICY_FILE}")

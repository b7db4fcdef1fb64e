"""Everything a board needs besides its own SQL: language, colour thresholds and the data they come from.

Thresholds are data, read once per build: ``dashboards/data/display.yaml`` (freshness, clock offset, lag,
estimated share), ``dashboards/data/indicators.yaml`` (seed 001 表2 rows and per-park targets), and — so a
dashboard never disagrees with the numbers it shows — the aggregation policy (PUE grades and city rules,
balance alarm), the factor registry (CO₂ factors of the daily estimate) and the DR policy (targets, durations).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregation import default_policy, default_registry
from dashboards._model import Step
from dashboards._text import Lang
from dashboards.errors import DataFileError
from flex import load_policy as load_dr_policy
from schemas.units import conversion_factor

SqlValue = str | float | int | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Param(_Model):
    value: float
    unit: str
    source: str
    confidence: Literal["V", "K", "U"]


class _Display(_Model):
    freshness_warn_s: _Param
    freshness_alarm_s: _Param
    clock_offset_warn_s: _Param
    clock_offset_alarm_s: _Param
    estimated_share_warn_pct: _Param
    estimated_share_alarm_pct: _Param
    lag_warn_s: _Param
    lag_alarm_s: _Param


class _Reference(_Model):
    value: float
    note: str


class Table2Row(_Model):
    """One row of seed 001 表2 and the ParkPulse indicator that computes it (if any)."""

    row: int
    name_zh: str
    name_en: str
    unit: str
    indicator: str | None
    better: Literal["higher", "lower"]
    reference: _Reference | None = None


class _ParkTargets(_Model):
    source: str
    confidence: Literal["V", "K", "U"]
    values: dict[str, dict[str, float]]


class _IndicatorsFile(_Model):
    source: str
    table2: list[Table2Row] = Field(min_length=1)
    targets: dict[str, _ParkTargets] = Field(default_factory=dict)


def _read(name: str) -> object:
    text = resources.files("dashboards").joinpath("data", name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_indicator_table() -> _IndicatorsFile:
    """The shipped ``indicators.yaml``; raises :class:`DataFileError` when it is malformed."""
    try:
        parsed = _IndicatorsFile.model_validate(_read("indicators.yaml"))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DataFileError(f"dashboards/data/indicators.yaml is invalid: {exc}") from exc
    for park, targets in parsed.targets.items():
        for indicator, by_year in targets.values.items():
            if set(by_year) - {"2025", "2030"}:
                raise DataFileError(f"{park}.{indicator}: only 2025 and 2030 targets exist, got {sorted(by_year)}")
    return parsed


def sql_literal(value: SqlValue) -> str:
    """A SQL literal for generated ``VALUES`` lists (strings quoted, ``None`` → ``NULL``)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(float(value)) if isinstance(value, float) else str(value)


def values_sql(alias: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[SqlValue]]) -> str:
    """``(VALUES …) AS alias(cols)`` with every value cast to its column's type (an empty list stays typed)."""
    names = ", ".join(name for name, _ in columns)
    body = [
        "(" + ", ".join(f"{sql_literal(v)}::{pgtype}" for v, (_, pgtype) in zip(row, columns, strict=True)) + ")"
        for row in rows
    ]
    if not body:
        nulls = ", ".join(f"NULL::{pgtype} AS {name}" for name, pgtype in columns)
        return f"(SELECT {nulls} WHERE false) AS {alias}"
    return f"(VALUES {', '.join(body)}) AS {alias}({names})"


@dataclass(frozen=True, slots=True)
class BuildContext:
    """Per-build inputs of every board."""

    lang: Lang
    display: _Display
    indicators: _IndicatorsFile
    pue_steps: tuple[Step, ...]
    pue_rules: tuple[tuple[str, float], ...]
    pue_grade_scheme: str
    balance_alarm_pct: float
    carbon_per_energy_limits: tuple[float, ...]
    dr_target_pct: tuple[float, float]
    dr_durations_h: tuple[float, ...]
    dr_declared_duration_h: float
    dr_band_steps: tuple[Step, ...]
    grid_factor_rows: tuple[tuple[str, int, float], ...]
    grid_factor_years: tuple[int, int]
    gas_ef_t_per_m3: float
    heat_ef_t_per_gj: float
    mwh_per_kwh: float


PUE_COLORS: Final = ("dark-green", "green", "#8AB8FF", "yellow", "orange", "red")
BAND_COLORS: Final = {"none": "red", "partial": "orange", "full": "green", "capped": "blue"}


def _band_steps(bands: Sequence[tuple[str, float | None]]) -> tuple[Step, ...]:
    """Settlement bands of the delivered/requested ratio as % thresholds (lowest band is the base)."""
    ordered = sorted(bands, key=lambda b: -1.0 if b[1] is None else b[1])
    return tuple(Step(None if low is None else low * 100, BAND_COLORS.get(name, "purple")) for name, low in ordered)


def _pue_steps(limits: Sequence[float], rules: Sequence[float]) -> tuple[Step, ...]:
    """Grade bands: every grade limit and city threshold starts a band; worst above the last."""
    edges = sorted(set(limits) | set(rules))
    colors = [*PUE_COLORS, *(["red"] * max(0, len(edges) + 1 - len(PUE_COLORS)))]
    return (Step(None, colors[0]), *(Step(edge, colors[i + 1]) for i, edge in enumerate(edges)))


def build_context(lang: Lang) -> BuildContext:
    """Load every data file the boards read."""
    try:
        display = _Display.model_validate(_read("display.yaml"))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DataFileError(f"dashboards/data/display.yaml is invalid: {exc}") from exc
    policy = default_policy()
    dr = load_dr_policy()
    registry = default_registry()
    grid = [f for f in registry.all_factors() if f.kind == "grid_emission_factor" and f.subject == "average"]
    years = sorted({f.year for f in grid if f.year is not None})
    regions = sorted({f.region for f in grid})
    first, last = (years[0], years[-1]) if years else (2000, 2000)
    rows = tuple((region, year, registry.grid_factor("average", year, province=region).value)
                 for region in regions for year in range(first, last + 1))
    rules = tuple((r.label, r.threshold) for r in policy.pue.rules)
    gas, heat = registry.fuel_emission_factor("natural_gas"), registry.heat_emission_factor()
    for factor, unit in ((gas, "tCO2/m3"), (heat, "tCO2/GJ"), *((f, "tCO2/MWh") for f in grid)):
        if factor.unit != unit:
            raise DataFileError(f"factor {factor.label} is in {factor.unit}; the daily CO2 panel expects {unit}")
    return BuildContext(
        lang=lang, display=display, indicators=load_indicator_table(),
        pue_steps=_pue_steps(policy.pue.grade_limits, [t for _, t in rules]), pue_rules=rules,
        pue_grade_scheme=policy.pue.grade_scheme, balance_alarm_pct=policy.balance_alarm_pct,
        carbon_per_energy_limits=tuple(sorted(policy.indicators.carbon_per_energy_thresholds)),
        dr_target_pct=(dr.national_target_pct_min, dr.national_target_pct_max),
        dr_durations_h=dr.reporting_durations_h, dr_declared_duration_h=dr.declared_duration_h,
        dr_band_steps=_band_steps([(b.name, b.min_ratio) for b in dr.bands]),
        grid_factor_rows=rows, grid_factor_years=(first, last),
        gas_ef_t_per_m3=gas.value, heat_ef_t_per_gj=heat.value,
        mwh_per_kwh=conversion_factor("kWh", "MWh"),
    )

"""Aggregation: interval energy, rollups, park indicators, carbon and PUE, computed with Polars.

Cumulative meter registers become interval energy (15 min by default) with rollover, register epochs,
jitter, spike and glitch handling and VEE estimation (linear ≤ 2 h, like-day beyond, scaled to the register
delta), each interval carrying a quality code, reason flags and its estimated share. Rollups follow the
park's calendar (hour, day, month per meter, site, metering level and park) with a level-1 vs Σ level-2
balance. The jobs are incremental and idempotent (change-log watermark, range replacement, upserts).
Indicators of the pilot-park table (seed 001 表 2) and PUE (ISO/IEC 30134-2) use the factor registry in
``aggregation/data/factors.yaml``; every published value records its factor vintages and estimated share.

Pure core: ``_registers`` / ``_intervals`` (interval energy), ``_rollups``, ``_indicators``, ``_pue``,
``_periods``, ``_declared``; I/O adapters: ``_bulk`` / ``_store`` / ``_changes`` / ``_inputs``; orchestration:
``_jobs`` and ``_report``; commands: ``_cli``.
"""

from aggregation._amounts import Amount, DeclaredTotals, IndicatorInputs, PublicBuilding
from aggregation._declared import KINDS, DeclaredRow, declared_totals, parse_declared_csv
from aggregation._factors import Basis, Factor, FactorRegistry, default_registry
from aggregation._indicators import CATALOGUE, IndicatorResult, compute_indicators
from aggregation._intervals import INTERVALS_SCHEMA, IntervalParams, interval_energy, spans_to_intervals
from aggregation._jobs import AggregationJob, RunReport
from aggregation._periods import Period, parse_period
from aggregation._policy import Policy, default_policy, load_policy
from aggregation._pue import PueAssessment, assess_pue, pue_table, pue_value, rolling_12m
from aggregation._quality import IntervalFlag, describe_flags
from aggregation._registers import METERS_SCHEMA, READINGS_SCHEMA, register_spans
from aggregation._report import Report, compute_report, publish
from aggregation._rollups import balance_check, group_rollup, meter_rollup, month_rollup
from aggregation._settings import AggregationSettings
from aggregation.errors import (
    AggregationError,
    ConfigurationChangedError,
    DeclaredDataError,
    FactorNotFoundError,
    PeriodError,
    RegistryError,
    StoreUnavailableError,
)

__all__ = [
    "CATALOGUE",
    "INTERVALS_SCHEMA",
    "KINDS",
    "METERS_SCHEMA",
    "READINGS_SCHEMA",
    "AggregationError",
    "AggregationJob",
    "AggregationSettings",
    "Amount",
    "Basis",
    "ConfigurationChangedError",
    "DeclaredDataError",
    "DeclaredRow",
    "DeclaredTotals",
    "Factor",
    "FactorNotFoundError",
    "FactorRegistry",
    "IndicatorInputs",
    "IndicatorResult",
    "IntervalFlag",
    "IntervalParams",
    "Period",
    "PeriodError",
    "Policy",
    "PublicBuilding",
    "PueAssessment",
    "RegistryError",
    "Report",
    "RunReport",
    "StoreUnavailableError",
    "assess_pue",
    "balance_check",
    "compute_indicators",
    "compute_report",
    "declared_totals",
    "default_policy",
    "default_registry",
    "describe_flags",
    "group_rollup",
    "interval_energy",
    "load_policy",
    "meter_rollup",
    "month_rollup",
    "parse_declared_csv",
    "parse_period",
    "publish",
    "pue_table",
    "pue_value",
    "register_spans",
    "rolling_12m",
    "spans_to_intervals",
]

"""Aggregation: interval energy, rollups, park indicators, carbon and PUE, computed with Polars.

Cumulative meter registers become interval energy (15 min by default) with rollover, register epochs,
jitter, spike and glitch handling and VEE estimation (linear ≤ 2 h, like-day beyond, scaled to the register
delta), each interval carrying a quality code, reason flags and its estimated share. Rollups follow the
park's calendar (hour, day, month per meter, site, metering level and park) with a level-1 vs Σ level-2
balance. The jobs are incremental and idempotent (change-log watermark, range replacement, upserts).
Indicators of the pilot-park table (seed 001 表 2) and PUE (ISO/IEC 30134-2) use the factor registry in
``aggregation/data/factors.yaml``; every published value records its factor vintages and estimated share.

Pure core: ``_registers`` / ``_intervals`` (interval energy), ``_rollups``, ``_indicators``, ``_pue``,
``_periods``, ``_declared``, ``_meter_events`` / ``_event_input`` (meter replacements, ratio changes, confirmed
resets); I/O adapters: ``_bulk`` / ``_store`` / ``_changes`` / ``_inputs`` / ``_event_store``; orchestration:
``_jobs`` and ``_report``; commands: ``_cli``. The balance is per carrier (import + on-site generation − export
vs Σ level 2); CO₂ and 综合能耗 are published by source (``_by_source``) with the factors in effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from infra.lazy import lazy_exports

if _TYPE_CHECKING:
    from aggregation._amounts import Amount, DeclaredTotals, IndicatorInputs, PublicBuilding
    from aggregation._by_source import SourceLine
    from aggregation._declared import KINDS, DeclaredRow, declared_totals, parse_declared_csv
    from aggregation._event_input import (
        EventInput,
        InvalidMeterEventError,
        MeterEventConflictError,
        MeterEventError,
        MeterEventNotFoundError,
        parse_events_csv,
    )
    from aggregation._event_store import RecordedEvent, list_events, record_events, void_event
    from aggregation._factors import (
        Basis,
        EffectiveFactor,
        Factor,
        FactorRegistry,
        default_registry,
        effective_factors,
        load_registry,
    )
    from aggregation._indicators import CATALOGUE, IndicatorResult, compute_indicators
    from aggregation._intervals import INTERVALS_SCHEMA, IntervalParams, interval_energy, spans_to_intervals
    from aggregation._jobs import AggregationJob, RunReport
    from aggregation._meter_energy import EnergyWindow, MeterEnergyRow, energy_window, load_meter_energy
    from aggregation._periods import Period, parse_period
    from aggregation._policy import Policy, default_policy, load_policy
    from aggregation._pue import PueAssessment, assess_pue, pue_table, pue_value, rolling_12m
    from aggregation._quality import IntervalFlag, describe_flags
    from aggregation._registers import METERS_SCHEMA, READINGS_SCHEMA, register_spans
    from aggregation._report import Report, compute_report, publish
    from aggregation._rollups import balance_check, generation_rollup, group_rollup, meter_rollup, month_rollup
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
    "EffectiveFactor",
    "EnergyWindow",
    "EventInput",
    "Factor",
    "FactorNotFoundError",
    "FactorRegistry",
    "IndicatorInputs",
    "IndicatorResult",
    "IntervalFlag",
    "IntervalParams",
    "InvalidMeterEventError",
    "MeterEnergyRow",
    "MeterEventConflictError",
    "MeterEventError",
    "MeterEventNotFoundError",
    "Period",
    "PeriodError",
    "Policy",
    "PublicBuilding",
    "PueAssessment",
    "RecordedEvent",
    "RegistryError",
    "Report",
    "RunReport",
    "SourceLine",
    "StoreUnavailableError",
    "assess_pue",
    "balance_check",
    "compute_indicators",
    "compute_report",
    "declared_totals",
    "default_policy",
    "default_registry",
    "describe_flags",
    "effective_factors",
    "energy_window",
    "generation_rollup",
    "group_rollup",
    "interval_energy",
    "list_events",
    "load_meter_energy",
    "load_policy",
    "load_registry",
    "meter_rollup",
    "month_rollup",
    "parse_declared_csv",
    "parse_events_csv",
    "parse_period",
    "publish",
    "pue_table",
    "pue_value",
    "record_events",
    "register_spans",
    "rolling_12m",
    "spans_to_intervals",
    "void_event",
]

#: Polars and the database drivers load on first use of a name, so `import aggregation` (the CLI) stays light.
__getattr__ = lazy_exports(__name__, {
    "EventInput": "aggregation._event_input",
    "InvalidMeterEventError": "aggregation._event_input",
    "MeterEventConflictError": "aggregation._event_input",
    "MeterEventError": "aggregation._event_input",
    "MeterEventNotFoundError": "aggregation._event_input",
    "RecordedEvent": "aggregation._event_store",
    "list_events": "aggregation._event_store",
    "parse_events_csv": "aggregation._event_input",
    "record_events": "aggregation._event_store",
    "void_event": "aggregation._event_store",
    "AggregationError": "aggregation.errors",
    "AggregationJob": "aggregation._jobs",
    "AggregationSettings": "aggregation._settings",
    "Amount": "aggregation._amounts",
    "Basis": "aggregation._factors",
    "CATALOGUE": "aggregation._indicators",
    "ConfigurationChangedError": "aggregation.errors",
    "DeclaredDataError": "aggregation.errors",
    "DeclaredRow": "aggregation._declared",
    "DeclaredTotals": "aggregation._amounts",
    "EffectiveFactor": "aggregation._factors",
    "EnergyWindow": "aggregation._meter_energy",
    "Factor": "aggregation._factors",
    "FactorNotFoundError": "aggregation.errors",
    "FactorRegistry": "aggregation._factors",
    "INTERVALS_SCHEMA": "aggregation._intervals",
    "IndicatorInputs": "aggregation._amounts",
    "IndicatorResult": "aggregation._indicators",
    "IntervalFlag": "aggregation._quality",
    "IntervalParams": "aggregation._intervals",
    "MeterEnergyRow": "aggregation._meter_energy",
    "KINDS": "aggregation._declared",
    "METERS_SCHEMA": "aggregation._registers",
    "Period": "aggregation._periods",
    "PeriodError": "aggregation.errors",
    "Policy": "aggregation._policy",
    "PublicBuilding": "aggregation._amounts",
    "PueAssessment": "aggregation._pue",
    "READINGS_SCHEMA": "aggregation._registers",
    "RegistryError": "aggregation.errors",
    "Report": "aggregation._report",
    "RunReport": "aggregation._jobs",
    "SourceLine": "aggregation._by_source",
    "StoreUnavailableError": "aggregation.errors",
    "assess_pue": "aggregation._pue",
    "balance_check": "aggregation._rollups",
    "compute_indicators": "aggregation._indicators",
    "compute_report": "aggregation._report",
    "declared_totals": "aggregation._declared",
    "default_policy": "aggregation._policy",
    "default_registry": "aggregation._factors",
    "describe_flags": "aggregation._quality",
    "effective_factors": "aggregation._factors",
    "energy_window": "aggregation._meter_energy",
    "generation_rollup": "aggregation._rollups",
    "group_rollup": "aggregation._rollups",
    "interval_energy": "aggregation._intervals",
    "load_meter_energy": "aggregation._meter_energy",
    "load_policy": "aggregation._policy",
    "load_registry": "aggregation._factors",
    "meter_rollup": "aggregation._rollups",
    "month_rollup": "aggregation._rollups",
    "parse_declared_csv": "aggregation._declared",
    "parse_period": "aggregation._periods",
    "publish": "aggregation._report",
    "pue_table": "aggregation._pue",
    "pue_value": "aggregation._pue",
    "register_spans": "aggregation._registers",
    "rolling_12m": "aggregation._pue",
    "spans_to_intervals": "aggregation._intervals",
})

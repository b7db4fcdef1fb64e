"""Grafana dashboards as code: five boards written in Python, rendered with grafana-foundation-sdk.

* Boards (``dashboards/boards``): park live overview, energy & carbon (seed 001 表2 against 2025/2030 targets),
  data-centre PUE with grade bands, VPP & DR, data quality & ingest health — bilingual (中文 · English) or one
  set per language (:class:`Lang`), with ``park`` / ``building`` / ``device`` template variables.
* :func:`build_dashboards` renders and validates them (:func:`validate_dashboards`: unique ids and uids,
  datasource references, variables, macros); :func:`write_dashboards` writes the JSON that Grafana's file
  provisioning (``deploy/grafana/provisioning``) loads; :func:`deploy_dashboards` pushes them over the HTTP API.
* :func:`render_sql` is Grafana's exact server-side macro expansion (``$__timeFilter``, ``$__timeGroupAlias``,
  ``$__interval`` …) and :func:`interpolate` its browser-side variable interpolation, so tests run every panel
  query against a real TimescaleDB exactly as Grafana would.

Rendering needs the optional ``grafana-foundation-sdk`` (``pip install 'parkpulse[dashboards]'``); the macro,
variable and validation modules do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.lazy import lazy_exports

if TYPE_CHECKING:
    from dashboards._build import BuiltBoard, build_dashboards, write_dashboards
    from dashboards._deploy import DeployResult, GrafanaClient, deploy_dashboards
    from dashboards._macros import (
        TimeRange,
        calculate_interval_ms,
        expand_macros,
        format_interval,
        interpolate_globals,
        parse_interval_s,
        render_sql,
        rfc3339_nano,
        round_interval_ms,
    )
    from dashboards._model import (
        DATASOURCES,
        DEFAULT_TIMEZONE,
        PARKPULSE_API,
        TIMESCALE,
        ApiQuery,
        Board,
        Datasource,
        Format,
        Panel,
        PanelKind,
        Row,
        SqlQuery,
        Variable,
    )
    from dashboards._settings import DashboardSettings
    from dashboards._text import Lang, T
    from dashboards._timerange import dashboard_range, panel_range
    from dashboards._validate import check_dashboards, load_provisioned_datasources, validate_dashboards
    from dashboards._variables import ALL, VariableState, interpolate, referenced_variables, state_from_rows
    from dashboards.errors import (
        DashboardError,
        DashboardValidationError,
        DataFileError,
        DeployError,
        GrafanaAuthError,
        GrafanaUnavailableError,
        InterpolationError,
        MacroError,
    )

# Public name -> defining module, imported on first use so the pure modules work without the Grafana SDK.
_EXPORTS: dict[str, str] = {
    "ALL": "dashboards._variables",
    "DATASOURCES": "dashboards._model",
    "DEFAULT_TIMEZONE": "dashboards._model",
    "PARKPULSE_API": "dashboards._model",
    "TIMESCALE": "dashboards._model",
    "ApiQuery": "dashboards._model",
    "Board": "dashboards._model",
    "BuiltBoard": "dashboards._build",
    "DashboardError": "dashboards.errors",
    "DashboardSettings": "dashboards._settings",
    "DashboardValidationError": "dashboards.errors",
    "DataFileError": "dashboards.errors",
    "Datasource": "dashboards._model",
    "DeployError": "dashboards.errors",
    "DeployResult": "dashboards._deploy",
    "Format": "dashboards._model",
    "GrafanaAuthError": "dashboards.errors",
    "GrafanaClient": "dashboards._deploy",
    "GrafanaUnavailableError": "dashboards.errors",
    "InterpolationError": "dashboards.errors",
    "Lang": "dashboards._text",
    "MacroError": "dashboards.errors",
    "Panel": "dashboards._model",
    "PanelKind": "dashboards._model",
    "Row": "dashboards._model",
    "SqlQuery": "dashboards._model",
    "T": "dashboards._text",
    "TimeRange": "dashboards._macros",
    "Variable": "dashboards._model",
    "VariableState": "dashboards._variables",
    "build_dashboards": "dashboards._build",
    "calculate_interval_ms": "dashboards._macros",
    "check_dashboards": "dashboards._validate",
    "dashboard_range": "dashboards._timerange",
    "deploy_dashboards": "dashboards._deploy",
    "expand_macros": "dashboards._macros",
    "format_interval": "dashboards._macros",
    "interpolate": "dashboards._variables",
    "interpolate_globals": "dashboards._macros",
    "load_provisioned_datasources": "dashboards._validate",
    "panel_range": "dashboards._timerange",
    "parse_interval_s": "dashboards._macros",
    "referenced_variables": "dashboards._variables",
    "render_sql": "dashboards._macros",
    "rfc3339_nano": "dashboards._macros",
    "round_interval_ms": "dashboards._macros",
    "state_from_rows": "dashboards._variables",
    "validate_dashboards": "dashboards._validate",
    "write_dashboards": "dashboards._build",
}

__all__ = [
    "ALL",
    "DATASOURCES",
    "DEFAULT_TIMEZONE",
    "PARKPULSE_API",
    "TIMESCALE",
    "ApiQuery",
    "Board",
    "BuiltBoard",
    "DashboardError",
    "DashboardSettings",
    "DashboardValidationError",
    "DataFileError",
    "Datasource",
    "DeployError",
    "DeployResult",
    "Format",
    "GrafanaAuthError",
    "GrafanaClient",
    "GrafanaUnavailableError",
    "InterpolationError",
    "Lang",
    "MacroError",
    "Panel",
    "PanelKind",
    "Row",
    "SqlQuery",
    "T",
    "TimeRange",
    "Variable",
    "VariableState",
    "build_dashboards",
    "calculate_interval_ms",
    "check_dashboards",
    "dashboard_range",
    "deploy_dashboards",
    "expand_macros",
    "format_interval",
    "interpolate",
    "interpolate_globals",
    "load_provisioned_datasources",
    "panel_range",
    "parse_interval_s",
    "referenced_variables",
    "render_sql",
    "rfc3339_nano",
    "round_interval_ms",
    "state_from_rows",
    "validate_dashboards",
    "write_dashboards",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)

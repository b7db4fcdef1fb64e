"""The dashboard specification: plain, typed values that the boards are written in and the tests read.

A :class:`Board` holds rows of :class:`Panel` s; a panel holds queries. :class:`SqlQuery` names the columns
its panel expects, so the panel-query tests can run every query against a real database and check them
(``dashboards._render`` turns a board into Grafana JSON with grafana-foundation-sdk builders).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from dashboards._text import T


@dataclass(frozen=True, slots=True)
class Datasource:
    """A provisioned Grafana datasource (``deploy/grafana/provisioning/datasources``)."""

    uid: str
    type: str
    name: str


#: parks.timezone's default (schemas/sql/0001_core.sql): dashboards show the park's local time.
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"

TIMESCALE: Final = Datasource("parkpulse-timescale", "grafana-postgresql-datasource", "ParkPulse TimescaleDB")
PARKPULSE_API: Final = Datasource("parkpulse-api", "yesoreyeram-infinity-datasource", "ParkPulse API")
DATASOURCES: Final = (TIMESCALE, PARKPULSE_API)


class Format(StrEnum):
    """Result format of a SQL query (Grafana ``format``)."""

    TIME_SERIES = "time_series"
    TABLE = "table"


@dataclass(frozen=True, slots=True)
class SqlQuery:
    """A raw SQL query against TimescaleDB and the result columns its panel reads.

    For :attr:`Format.TIME_SERIES` the columns are ``time``, optionally ``metric`` (long format: one series
    per metric value) and the value columns; the rows must come back sorted by ``time``.
    """

    sql: str
    columns: tuple[str, ...]
    format: Format = Format.TABLE
    nullable: tuple[str, ...] = ()  # columns that may legitimately be all NULL (missing declared data …)
    ref_id: str = "A"
    hide: bool = False

    @property
    def datasource(self) -> Datasource:
        """Always TimescaleDB."""
        return TIMESCALE


@dataclass(frozen=True, slots=True)
class ApiColumn:
    """One column an Infinity query picks from the JSON rows."""

    selector: str
    text: str
    type: str  # string | number | timestamp | boolean


@dataclass(frozen=True, slots=True)
class ApiQuery:
    """A JSON query against the ParkPulse utility API through the Infinity datasource.

    Used for values the API computes on request and never stores (the 24 h flexibility forecast).
    ``path`` is appended to the datasource's base URL; the API key is the datasource's secret.
    """

    path: str
    root_selector: str
    columns: tuple[ApiColumn, ...]
    params: tuple[tuple[str, str], ...] = ()
    format: str = "timeseries"
    ref_id: str = "A"

    @property
    def datasource(self) -> Datasource:
        """Always the ParkPulse API."""
        return PARKPULSE_API


Query = SqlQuery | ApiQuery


class PanelKind(StrEnum):
    """Grafana panel plugins the boards use."""

    TIMESERIES = "timeseries"
    STAT = "stat"
    GAUGE = "gauge"
    TABLE = "table"
    BARCHART = "barchart"
    BARGAUGE = "bargauge"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Step:
    """A threshold step: from ``value`` upwards (``None`` = the base step) the colour is ``color``."""

    value: float | None
    color: str


@dataclass(frozen=True, slots=True)
class Override:
    """Field settings for the column (or series) called ``field``."""

    field: str
    display: T | None = None
    unit: str | None = None
    color: str | None = None
    decimals: int | None = None
    steps: tuple[Step, ...] = ()
    cell: str | None = None  # table cell display: color-background, color-text, gauge …
    hidden: bool = False
    negative_y: bool = False  # timeseries: draw the series below the axis


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel; ``width`` is out of Grafana's 24 columns."""

    kind: PanelKind
    title: T
    queries: tuple[Query, ...] = ()
    description: T | None = None
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    steps: tuple[Step, ...] = ()
    threshold_style: str | None = None  # timeseries: line | area | line+area | dashed
    overrides: tuple[Override, ...] = ()
    width: int = 12
    height: int = 8
    interval: str | None = None  # minimum $__interval of this panel
    max_data_points: int | None = None
    stacked: bool = False
    bars: bool = False
    fill_opacity: int | None = None
    reducer: str = "lastNotNull"
    text: T | None = None  # markdown of a text panel
    x_field: str | None = None  # barchart category column
    sort_by: str | None = None  # table: column to sort by, descending
    all_values: bool = False  # stat/gauge: one value per row instead of reducing each column
    time_from: str | None = None  # relative time override: "1y" = the last year, "+24h" = the next 24 hours

    @property
    def datasource(self) -> Datasource | None:
        """The datasource of the panel's queries (one per panel)."""
        return self.queries[0].datasource if self.queries else None


@dataclass(frozen=True, slots=True)
class Row:
    """A titled row of panels."""

    title: T
    panels: tuple[Panel, ...]
    collapsed: bool = False


class VariableKind(StrEnum):
    """Template variable types the boards use."""

    QUERY = "query"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable: a SQL query (``__value``/``__text`` columns) or a fixed list of values."""

    name: str
    label: T
    kind: VariableKind = VariableKind.QUERY
    query: str = ""
    values: tuple[str, ...] = ()  # custom variables
    default: str | None = None  # custom variables: the initial value (else the first)
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    refresh_on_time_range: bool = False
    description: T | None = None

    @property
    def datasource(self) -> Datasource | None:
        """TimescaleDB for query variables."""
        return TIMESCALE if self.kind is VariableKind.QUERY else None


@dataclass(frozen=True, slots=True)
class Annotation:
    """Events drawn on every time-series panel: a SQL query returning ``time``, ``timeend``, ``text``, ``tags``."""

    name: T
    query: SqlQuery
    color: str = "orange"


@dataclass(frozen=True, slots=True)
class Board:
    """One dashboard."""

    uid: str
    title: T
    description: T
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-6h"
    refresh: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    annotations: tuple[Annotation, ...] = ()

    def panels(self) -> list[Panel]:
        """Every panel, in layout order."""
        return [p for row in self.rows for p in row.panels]

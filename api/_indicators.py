"""Indicator, balance and factor endpoints, plus the two operator actions an API-only operator needs.

Reading (``read`` scope):

* ``GET /v1/parks/{park_id}/indicators?period=2026-10`` — every indicator row of the period, including the
  ``co2_by_source`` / ``energy_by_source`` rows, each with its factors' value, unit, vintage and source
  (computed from the stored rollups exactly as ``parkpulse report indicators --format json``);
* ``GET /v1/parks/{park_id}/balance?period=2026-10`` — the per-carrier balance with every term;
* ``GET /v1/parks/{park_id}/factors?year=2026`` — the factors in effect for the park, with FALLBACK warnings.

Changing (``write`` scope):

* ``POST /v1/parks/{park_id}/aggregate`` — runs the park's aggregation job now and says what it did;
* ``POST /v1/parks/{park_id}/declared/{kind}`` — the CSV body of ``parkpulse import <kind>`` (value-added,
  fuels, areas …), validated all-or-nothing, stored with its source, then the affected months republished.

Energies of the balance are in each row's ``unit`` (kWh, m3, GJ: the carrier's metric unit), at full float
precision.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from aggregation._bulk import Bulk
from aggregation._declared import COMMANDS, affected_months, parse_declared_csv
from aggregation._factors import Basis, effective_factors, factors_document, load_registry
from aggregation._inputs import ParkInfo, load_park, store_declared
from aggregation._jobs import AggregationJob
from aggregation._periods import Period, parse_period
from aggregation._render import report_rows
from aggregation._report import compute_report, load_balance
from aggregation._settings import AggregationSettings
from aggregation._store import load_meta
from aggregation.errors import (
    AggregationError,
    ConfigurationChangedError,
    DeclaredDataError,
    PeriodError,
    RegistryError,
    StoreUnavailableError,
)
from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, DatabaseUrl, ParkId, ParkReader, ParkWriter

router = APIRouter(prefix="/v1", tags=["indicators"])

#: Declared-data files are small (a year of monthly figures is a few hundred lines).
MAX_DECLARED_BYTES: Final = 4 * 1024 * 1024

PeriodQ = Annotated[str, Query(pattern=r"^\d{4}(-\d{2}|-[Qq][1-4])?(-[Yy][Tt][Dd])?$", max_length=16,
                               description="2026-10, 2026-Q4, 2026, 2026-YTD or 2026-10-YTD (local calendar)")]
DeclaredKindP = Annotated[str, Path(pattern="^(" + "|".join(re.escape(c) for c in COMMANDS) + ")$",
                                     description="what the CSV declares, as in `parkpulse import <kind>`: "
                                                 + ", ".join(COMMANDS))]


# ------------------------------------------------------------------------------------------------ models
class FactorOut(_Out):
    """One factor applied to a result: value and unit, the publication (vintage) and where it comes from."""

    value: float
    unit: str
    vintage: str
    source: str
    confidence: str = Field(description="V verified, K domain knowledge, U unverified (see factors.yaml)")


class IndicatorRowOut(_Out):
    """One indicator value; ``co2_by_source`` / ``energy_by_source`` rows have variant ``method:source`` /
    ``basis:source`` and their numerator is the source's activity data."""

    subject: str = Field(description="site of a per-site indicator (PUE), else empty")
    indicator: str
    name_zh: str
    variant: str
    headline: bool
    value: float | None
    unit: str
    numerator: float | None
    denominator: float | None
    estimated_share: float | None = Field(description="estimated part of the metered energy behind it, 0..1")
    status: str = Field(description="ok, missing_input, no_data or data_error")
    notes: list[str]
    factors: dict[str, FactorOut] = Field(description="factor label -> the factor applied")


class IndicatorsOut(_Out):
    """Every indicator of a park and period with the factors used and the FALLBACK warnings."""

    park_id: str
    period: str
    kind: str
    local_start: date
    local_end_exclusive: date
    timezone: str
    generated_at: datetime
    metered_completeness: float | None
    declared_sources: list[str]
    results: list[IndicatorRowOut]
    warnings: list[str] = Field(description="a factor of an earlier (or later) year stands in for the period's")


class BalanceRowOut(_Out):
    """Supply (import + generation − export) against demand (Σ level 2) of one carrier and period, in ``unit``."""

    period: str = Field(description="local start date of the period")
    period_start: datetime = Field(description="UTC instant the local period starts")
    grain: str
    carrier: str
    metric: str
    unit: str | None = Field(description="unit of every energy of the row (null: computed before migration 0008)")
    import_energy: float = Field(description="level-1 (boundary) import")
    generation_energy: float | None = Field(description="on-site generation behind the boundary, outside level 2")
    export_energy: float | None = Field(description="level-1 export")
    supply_energy: float | None = Field(description="import + generation − export")
    level2_import_energy: float | None
    level2_export_energy: float | None
    level2_energy: float = Field(description="Σ level-2 import − Σ level-2 export (the demand side)")
    difference: float = Field(description="supply − demand: losses and unmetered load")
    difference_pct: float | None = Field(description="difference relative to the supply side, %")
    alarm: bool


class BalanceOut(_Out):
    """The stored balance rows of a park, newest first."""

    park_id: str
    grain: str
    rows: list[BalanceRowOut]


class EffectiveFactorOut(_Out):
    """A factor the park's indicators select for the year asked, and the one actually used."""

    use: str
    kind: str
    subject: str
    basis: str | None
    year_requested: int
    label: str | None
    value: float | None
    unit: str | None
    region: str | None
    year_used: int | None
    vintage: str | None
    source: str | None
    confidence: str | None
    warning: str | None


class FactorsOut(_Out):
    """The factors in effect: the file, the park's region chain, the year asked and every factor used."""

    factors_file: str
    park_id: str | None
    province: str | None
    grid_region: str | None
    region_chain: list[str]
    year: int
    factors: list[EffectiveFactorOut]
    warnings: list[str]


class AggregateOut(_Out):
    """What one run of the park's aggregation job did."""

    park_id: str
    rebuild: bool
    n_changes: int = Field(description="change-log entries read")
    n_series: int = Field(description="meters recomputed")
    n_intervals: int = Field(description="interval energies written")
    n_rollups: int = Field(description="rollup rows written")
    n_indicators: int = Field(description="indicator values published")
    estimated_share: float | None = Field(description="estimated share of the interval energy written")
    watermark: int
    elapsed_s: float


class DeclaredImportOut(_Out):
    """What a declared-data import stored and republished."""

    park_id: str
    kind: str
    rows: int
    inserted: int
    replaced: int = Field(description="changed values (the old ones are kept in the history)")
    unchanged: int
    republished_indicator_values: int
    months: list[str] = Field(description="park months whose indicators were republished")


# ------------------------------------------------------------------------------------------------ helpers
def _settings(url: str) -> AggregationSettings:
    """The aggregation settings in force (policy and factors files from the environment) on ``url``."""
    return AggregationSettings(database_url=url)


def _park(conn: psycopg.Connection[Any], park_id: str) -> ParkInfo:
    info = load_park(conn, park_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            detail=f"no park {park_id!r}; register it first (parkpulse registry park add)")
    return info


def _period(text: str) -> Period:
    try:
        return parse_period(text, today=datetime.now(UTC).date())
    except PeriodError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None


def _server_error(exc: AggregationError) -> HTTPException:
    if isinstance(exc, StoreUnavailableError):
        return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"{exc}; retry later")
    if isinstance(exc, RegistryError):
        return HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                             detail=f"{exc}; an operator must fix the server's factors or policy file")
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


# ------------------------------------------------------------------------------------------------ reading
@router.get("/parks/{park_id}/indicators", response_model=IndicatorsOut, responses=OPERATOR_RESPONSES)
def indicators(*, client: ParkReader, park_id: ParkId, conn: Connection, url: DatabaseUrl, period: PeriodQ,
               basis: Annotated[Literal["calorific", "coal_equivalent"] | None, Query(
                   description="headline basis of energy intensity: calorific (当量值) or coal_equivalent (等价值)")
               ] = None) -> dict[str, Any]:
    """Every park indicator of the period with units, factor provenance, estimated share and by-source rows."""
    wanted = _period(period)
    info = _park(conn, park_id)
    settings = _settings(url)
    try:
        registry = load_registry(settings.aggregation_factors_file)
        with Bulk(url) as bulk:
            rep = compute_report(bulk, conn, info, wanted, meta=load_meta(bulk, park_id), registry=registry,
                                 policy=settings.policy(), basis=Basis(basis) if basis else None)
            bulk.commit()
    except AggregationError as exc:
        raise _server_error(exc) from None
    return {"park_id": rep.park_id, "period": rep.period.label, "kind": rep.period.kind,
            "local_start": rep.period.start, "local_end_exclusive": rep.period.end, "timezone": rep.timezone,
            "generated_at": rep.generated_at, "metered_completeness": rep.completeness,
            "declared_sources": list(rep.declared_sources), "results": report_rows(rep), "warnings": rep.warnings}


@router.get("/parks/{park_id}/balance", response_model=BalanceOut, responses=OPERATOR_RESPONSES)
def balance(*, client: ParkReader, park_id: ParkId, conn: Connection,
            period: Annotated[str | None, Query(
                pattern=r"^\d{4}(-\d{2}|-[Qq][1-4])?(-[Yy][Tt][Dd])?$", max_length=16,
                description="only periods starting inside this one (2026-10, 2026-Q4, 2026 …)")] = None,
            grain: Annotated[Literal["hour", "day", "month"], Query(description="local hour, day or month")
                             ] = "month",
            limit: Annotated[int, Query(ge=1, le=1000, description="most recent periods")] = 12) -> dict[str, Any]:
    """GB 17167 balance per carrier: import + on-site generation − export vs Σ level 2, every term."""
    wanted = _period(period) if period else None
    _park(conn, park_id)
    rows = load_balance(conn, park_id, grain, period=wanted, limit=limit)
    return {"park_id": park_id, "grain": grain,
            "rows": [{**r, "period_start": datetime.fromisoformat(r["period_start"])} for r in rows]}


@router.get("/parks/{park_id}/factors", response_model=FactorsOut, responses=OPERATOR_RESPONSES)
def factors(*, client: ParkReader, park_id: ParkId, conn: Connection, url: DatabaseUrl,
            year: Annotated[int | None, Query(ge=1990, le=2100, description="reporting year (default: this year)")
                            ] = None) -> dict[str, Any]:
    """The factors in effect for the park: file, region chain, year asked, vintage used, FALLBACK warnings."""
    info = _park(conn, park_id)
    settings = _settings(url)
    try:
        registry = load_registry(settings.aggregation_factors_file)
        residual = settings.policy().indicators.market_residual_factor
    except AggregationError as exc:
        raise _server_error(exc) from None
    asked = year or datetime.now(UTC).year
    rows = effective_factors(registry, asked, info.province, info.grid_region, residual)
    return factors_document(registry, rows, park=park_id, province=info.province, grid_region=info.grid_region,
                            year=asked)


# ------------------------------------------------------------------------------------------------ changing
@router.post("/parks/{park_id}/aggregate", response_model=AggregateOut, responses={
    **OPERATOR_RESPONSES,
    409: {"description": "the interval length changed since the last run: call again with rebuild=true",
          "content": OPERATOR_RESPONSES[503]["content"]}})
def aggregate(*, client: ParkWriter, park_id: ParkId, conn: Connection, url: DatabaseUrl,
              rebuild: Annotated[bool, Query(description="recompute the park's whole history")] = False
              ) -> dict[str, Any]:
    """Run the park's aggregation job now (interval energy, rollups, balance, PUE, indicators) and wait for it.

    The park has its own job instance and watermark: the first call computes its whole history, later
    calls what changed since (new readings, meter events, imports).
    """
    _park(conn, park_id)
    settings = _settings(url).model_copy(update={"aggregation_park": park_id})
    try:
        run = AggregationJob(settings).run(rebuild=rebuild)
    except ConfigurationChangedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"{exc}; call POST /v1/parks/{park_id}/aggregate?rebuild=true") from None
    except AggregationError as exc:
        raise _server_error(exc) from None
    return {"park_id": park_id, "rebuild": rebuild, "n_changes": run.n_changes, "n_series": run.n_series,
            "n_intervals": run.n_intervals, "n_rollups": run.n_rollups, "n_indicators": run.n_indicators,
            "estimated_share": run.estimated_share, "watermark": run.watermark, "elapsed_s": run.elapsed_s}


def _with_park_column(text: str, park_id: str) -> str:
    """The CSV with every row's ``park_id`` checked against the path (added when the column is absent)."""
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"the body is not valid CSV ({exc}); send UTF-8 CSV and quote values that "
                                   "contain commas, quotes or line breaks") from None
    if not rows:
        return text
    header = [h.strip() for h in rows[0]]
    if "park_id" not in header:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["park_id", *rows[0]])
        writer.writerows([park_id, *r] if any(c.strip() for c in r) else r for r in rows[1:])
        return out.getvalue()
    column = header.index("park_id")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) > column and row[column].strip() not in ("", park_id):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=f"CSV line {line}: park_id {row[column][:64]!r} is not the park of this "
                                       f"request ({park_id!r}); import each park's rows through its own URL")
    return text


@router.post("/parks/{park_id}/declared/{kind}", response_model=DeclaredImportOut, responses=OPERATOR_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                 "type": "string", "description": "park_id,period,subject,quantity,unit,source,note (+ kind); "
                                                  "park_id may be omitted"}}}}})
async def import_declared(request: Request, client: ParkWriter, park_id: ParkId, kind: DeclaredKindP, *,
                          url: DatabaseUrl,
                          recompute: Annotated[bool, Query(description="republish the affected monthly indicators")
                                               ] = True) -> dict[str, Any]:
    """Import declared data (value added, fuels, certificates, areas …) from CSV, as `parkpulse import <kind>`."""
    body = await request.body()
    if len(body) > MAX_DECLARED_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                            detail=f"the body has {len(body):,} bytes; send at most {MAX_DECLARED_BYTES:,} per request")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="the CSV body must be UTF-8 text") from None
    return await run_in_threadpool(_import_declared, url, park_id, kind, _with_park_column(text, park_id),
                                   recompute)


def _import_declared(url: str, park_id: str, kind: str, text: str, recompute: bool) -> dict[str, Any]:
    settings = _settings(url)
    source = f"api:{kind}"
    try:
        rows = parse_declared_csv(text, "request body", kind, load_registry(settings.aggregation_factors_file))
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            _park(conn, park_id)
            result = store_declared(conn, rows, source)
        months: set[tuple[str, date]] = set()
        republished = 0
        if recompute and (result.inserted or result.replaced):
            this_month = datetime.now(UTC).date().replace(day=1)
            months = {(p, m) for p, m in affected_months(rows) if m <= this_month}
            republished = AggregationJob(settings).republish(months)
    except DeclaredDataError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            detail=f"nothing stored: {exc.reason} (fix the CSV and send it again)") from None
    except psycopg.OperationalError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail=f"the database is unavailable ({exc.__class__.__name__}); retry later") from None
    except AggregationError as exc:
        raise _server_error(exc) from None
    return {"park_id": park_id, "kind": kind, "rows": len(rows), "inserted": result.inserted,
            "replaced": result.replaced, "unchanged": result.unchanged,
            "republished_indicator_values": republished,
            "months": sorted(f"{m:%Y-%m}" for _, m in months)}

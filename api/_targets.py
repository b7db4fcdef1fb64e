"""Targets and their projection over HTTP: the same data as ``parkpulse targets`` and ``report projection``.

* ``GET /v1/parks/{park_id}/targets?year=2026`` (``read``) — the targets in effect as of ``as_of`` (default:
  today in the park's time zone), or every version with ``history=true``;
* ``PUT /v1/parks/{park_id}/targets`` (``write``) — record targets (JSON ``{"targets": [...]}``), all or
  nothing: a target whose content changed becomes a new version from ``valid_from`` (default: the period
  start for a new target, today for a change); an unchanged one is reported ``unchanged``. Targets not in
  the body stay as they are;
* ``GET /v1/parks/{park_id}/projection?year=2026`` (``read``) — each target's year-end or month-end
  projection with its band, ratio to the target, 预警 level, method and back-test error. Reading never
  stores a level; ``parkpulse targets evaluate`` does (its hysteresis counts daily evaluations).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from alarms._projection_render import report_dict
from alarms._projection_store import build_report
from alarms._targets import TARGET_INDICATORS, TargetInput, TargetVersion, validate_target
from alarms._targets_errors import InvalidTargetError, TargetError, ThresholdsError, UnknownParkError
from alarms._targets_store import by_key, effective_targets, load_versions, local_today, park_timezone, record_targets
from alarms._warning import load_warning_policy
from api._models import _Out
from api._operator import OPERATOR_RESPONSES, Connection, ParkId, ParkReader, ParkWriter

router = APIRouter(prefix="/v1", tags=["targets"])

IndicatorName = Literal["total_energy", "total_co2", "energy_intensity_va", "co2_intensity_va", "nonfossil_share",
                        "renewable_share", "pue"]
YearQ = Annotated[int | None, Query(ge=1970, le=2200, description="only this year's targets")]
AsOfQ = Annotated[date | None, Query(description="park-local day to judge on, YYYY-MM-DD (default: today)")]


class TargetIn(BaseModel):
    """One target as the operator states it; ``month`` null (or absent) is the annual target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    indicator: IndicatorName
    variant: str | None = Field(None, max_length=32, description=(
        "total_energy / energy_intensity_va / nonfossil_share: calorific or coal_equivalent; total_co2 / "
        "co2_intensity_va: location or market; renewable_share: electricity or energy; pue: annual. "
        "Default: the first of each list (nonfossil_share: coal_equivalent)"))
    year: int = Field(ge=1970, le=2200)
    month: int | None = Field(None, ge=1, le=12, description="1..12 for a monthly target; null for the annual one")
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str = Field(max_length=32, description="tce, tCO2, tce/10^4 CNY, tCO2/10^4 CNY, % or 1 (PUE)")
    source: str = Field(min_length=1, max_length=500, description="the plan, allocation or goal it comes from")
    source_kind: Literal["seed_plan", "provincial_allocation", "company_goal", "other"] = "other"
    site: str | None = Field(None, min_length=1, max_length=64, description="a site's target (PUE: the data centre)")
    enterprise: str | None = Field(None, min_length=1, max_length=200, description="an enterprise's target")
    valid_from: date | None = Field(None, description="first park-local day of this version")
    note: str | None = Field(None, max_length=2000)


class TargetsIn(BaseModel):
    """Targets to record in one transaction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: list[TargetIn] = Field(min_length=1, max_length=1000)


class TargetOut(_Out):
    """One stored version of a target."""

    target_id: int
    indicator: str
    name_zh: str
    variant: str
    subject_kind: Literal["park", "site", "enterprise"]
    subject: str
    year: int
    month: int | None = Field(description="null for the annual target")
    period: str = Field(description="2026 or 2026-03")
    value: float
    unit: str
    direction: Literal["cap", "floor"] = Field(description="cap: stay under; floor: reach")
    source: str
    source_kind: str
    note: str | None
    valid_from: date
    valid_to: date | None = Field(description="local day the next version took over (exclusive)")
    superseded_at: datetime | None = Field(description="set when a later version replaced this one entirely")
    replaced_by: int | None
    recorded_at: datetime
    recorded_by: str | None


class TargetsOut(_Out):
    """A park's targets: the versions in effect as of ``as_of``, or every version (``history``)."""

    park_id: str
    as_of: date | None
    history: bool
    targets: list[TargetOut]


class RecordOut(_Out):
    """What recording one target did."""

    status: Literal["created", "unchanged"]
    target_id: int | None
    indicator: str
    variant: str
    period: str
    subject_kind: str
    subject: str
    valid_from: date
    ended: list[int] = Field(description="versions that now end where this one starts")
    superseded: list[int] = Field(description="versions this one replaced entirely")
    note: str | None


class RecordedOut(_Out):
    """The result of a PUT."""

    park_id: str
    created: int
    unchanged: int
    results: list[RecordOut]


class ProjectionRowOut(_Out):
    """One target against its projection. Values in ``unit``; ``ratio`` = projected ÷ target; shares of the
    back-test (``backtest_mape``, ``backtest_bias``) are fractions (0.043 = 4.3 %)."""

    indicator: str
    name_zh: str
    subject_kind: str
    subject: str
    variant: str
    period: str
    unit: str
    direction: Literal["cap", "floor"]
    target: float
    target_id: int
    source: str
    source_kind: str
    valid_from: str
    kind: str = Field(description="year-end, month-end, forecast, actual (closed period) or none (not projected)")
    to_date: float | None = Field(description="annual targets: actuals of the year so far")
    projected: float | None
    band_low: float | None
    band_high: float | None
    ratio: float | None
    level: Literal["green", "yellow", "red"] | None
    level_source: Literal["stored", "current ratio", "final"]
    level_now: Literal["green", "yellow", "red"] | None = Field(description="the level of the current ratio")
    level_since: str | None
    pending_level: Literal["green", "yellow", "red"] | None
    pending_count: int
    method: str | None
    method_zh: str | None
    backtest_months: int
    backtest_mape: float | None
    backtest_bias: float | None
    band_method: str | None
    note: str | None


class ProjectionOut(_Out):
    """The projection of every target of a park and year."""

    park_id: str
    timezone: str
    year: int
    as_of: str
    data_through: str = Field(description="the last closed month (YYYY-MM) the actuals run to")
    generated_at: str
    rows: list[ProjectionRowOut]


def _not_found(exc: UnknownParkError) -> HTTPException:
    park = exc.park_id
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no park {park!r}; register it first (PUT /v1/parks/"
                                                           f"{park} or parkpulse registry park add {park})")


def _target_out(v: TargetVersion) -> dict[str, Any]:
    t, k = v.target, v.key
    return {"target_id": v.target_id, "indicator": t.indicator, "name_zh": TARGET_INDICATORS[t.indicator].name_zh,
            "variant": t.variant, "subject_kind": t.subject_kind, "subject": t.subject, "year": t.year,
            "month": t.month or None, "period": k.period_label, "value": t.value, "unit": t.unit,
            "direction": TARGET_INDICATORS[t.indicator].direction, "source": t.source, "source_kind": t.source_kind,
            "note": t.note, "valid_from": v.valid_from, "valid_to": v.valid_to, "superseded_at": v.superseded_at,
            "replaced_by": v.replaced_by, "recorded_at": v.recorded_at, "recorded_by": v.recorded_by}


@router.get("/parks/{park_id}/targets", response_model=TargetsOut, responses=OPERATOR_RESPONSES)
def get_targets(*, client: ParkReader, park_id: ParkId, conn: Connection, year: YearQ = None, as_of: AsOfQ = None,
                history: Annotated[bool, Query(description="every version, superseded ones included")] = False,
                ) -> dict[str, Any]:
    """The park's targets in effect (or their whole version history)."""
    try:
        tz = park_timezone(conn, park_id)
    except UnknownParkError as exc:
        raise _not_found(exc) from None
    if history:
        versions = load_versions(conn, park_id, year=year)
        return {"park_id": park_id, "as_of": None, "history": True, "targets": [_target_out(v) for v in versions]}
    day = as_of or local_today(tz)
    years = [year] if year is not None else sorted({v.target.year for v in load_versions(conn, park_id)})
    effective = [v for y in years for v in effective_targets(conn, park_id, y, day)]
    return {"park_id": park_id, "as_of": day, "history": False,
            "targets": [_target_out(v) for vs in by_key(effective).values() for v in vs]}


def _validated(park_id: str, body: TargetsIn) -> list[TargetInput]:
    out: list[TargetInput] = []
    problems: list[str] = []
    for i, t in enumerate(body.targets):
        kind, subject = ("site", t.site) if t.site else ("enterprise", t.enterprise) if t.enterprise else ("park", "")
        if t.site and t.enterprise:
            problems.append(f"targets[{i}]: a target is for a site or an enterprise, not both")
            continue
        try:
            out.append(validate_target(park_id=park_id, indicator=t.indicator, variant=t.variant, year=t.year,
                                       month=t.month or 0, value=t.value, unit=t.unit, source=t.source,
                                       source_kind=t.source_kind, subject_kind=kind, subject=subject or "",
                                       valid_from=t.valid_from, note=t.note))
        except InvalidTargetError as exc:
            problems.extend(f"targets[{i}]: {p}" for p in exc.problems)
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="; ".join(problems) + "; nothing was stored")
    return out


@router.put("/parks/{park_id}/targets", response_model=RecordedOut, responses=OPERATOR_RESPONSES)
def put_targets(*, client: ParkWriter, park_id: ParkId, conn: Connection, body: TargetsIn) -> dict[str, Any]:
    """Record targets, all or nothing; a changed target becomes a new version (the old one stays for the past)."""
    targets = _validated(park_id, body)
    try:
        results = record_targets(conn, targets, recorded_by=f"api:{client.name}")
    except UnknownParkError as exc:
        raise _not_found(exc) from None
    except TargetError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    rows = [{"status": r.status, "target_id": r.target_id, "indicator": r.target.indicator,
             "variant": r.target.variant, "period": r.target.key.period_label, "subject_kind": r.target.subject_kind,
             "subject": r.target.subject, "valid_from": r.valid_from, "ended": list(r.ended),
             "superseded": list(r.superseded), "note": r.note} for r in results]
    created = sum(1 for r in results if r.status == "created")
    return {"park_id": park_id, "created": created, "unchanged": len(results) - created, "results": rows}


@router.get("/parks/{park_id}/projection", response_model=ProjectionOut, responses=OPERATOR_RESPONSES)
def get_projection(*, client: ParkReader, park_id: ParkId, conn: Connection,
                   year: Annotated[int | None, Query(ge=1970, le=2200, description="default: the current year")] = None,
                   as_of: AsOfQ = None) -> dict[str, Any]:
    """Year-end / month-end projection of each target with band, ratio, 预警 level, method and back-test error."""
    try:
        policy = load_warning_policy()
        day = as_of or local_today(park_timezone(conn, park_id))
        report = build_report(conn, park_id, year or day.year, policy, as_of=day)
    except UnknownParkError as exc:
        raise _not_found(exc) from None
    except ThresholdsError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the 预警 thresholds cannot be read: {exc}"
                            ) from None
    return report_dict(report)

"""The projection report of a park and year: its targets, each target quantity projected, ratio and 预警 level.

Thin adapter around the pure :mod:`alarms._projection` and :mod:`alarms._warning`: reads the monthly
actuals the aggregation job published (``indicator_results``, periods ``YYYY-MM``; revised there when late
data arrives, so every report starts from the current data), the targets in effect (:mod:`alarms._targets_store`)
and the stored levels (``target_warning_states``), and puts them together. It writes nothing; storing levels
is :func:`alarms._warning_store.evaluate_warnings`.

Where the actuals come from, per target indicator:

* ``total_energy`` / ``total_co2``: the park's monthly value of the variant (当量值/等价值, location/market);
* intensities: the same totals over ``industrial_value_added``, each projected on its own;
* shares: the indicator row's numerator and denominator (x 100);
* ``pue``: the data-centre site's monthly facility kWh over IT kWh.

Only these park-level and data-centre actuals exist; a target of another subject (a site's energy, an
enterprise's CO₂) is listed with the note that nothing meters it yet.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Final

import psycopg

from aggregation._factors import Basis
from alarms._projection import Partial, Projection, Quantity, add_months, days_in, project
from alarms._targets import ANNUAL, TARGET_INDICATORS, TargetKey, TargetVersion
from alarms._targets_store import effective_targets, local_today, park_timezone
from alarms._warning import Level, WarningPolicy, level_at, target_ratio

#: Months of history read before the cutoff: the back-test and the trend need at least 13.
HISTORY_MONTHS: Final = 36


@dataclass(frozen=True, slots=True)
class ActualRow:
    """One published monthly indicator value with its parts and the share of the month's intervals present."""

    value: float | None
    numerator: float | None
    denominator: float | None
    completeness: float | None


Actuals = dict[tuple[str, str, str], dict[date, ActualRow]]


def load_actuals(conn: psycopg.Connection[Any], park_id: str, first: date, end: date) -> Actuals:
    """Published monthly indicator rows of ``[first, end)`` by (indicator, variant, subject) and month."""
    rows = conn.execute("""
        SELECT indicator, variant, subject, period_start, value, numerator, denominator, completeness
        FROM indicator_results
        WHERE park_id = %s AND period ~ '^[0-9]{4}-[0-9]{2}$' AND period_start >= %s AND period_start < %s
          AND indicator IN ('total_energy', 'total_co2', 'industrial_value_added', 'nonfossil_share',
                            'renewable_share', 'pue')""", (park_id, first, end)).fetchall()
    out: Actuals = defaultdict(dict)
    for indicator, variant, subject, start, value, num, den, completeness in rows:
        out[(indicator, variant, subject)][start] = ActualRow(value, num, den, completeness)
    return dict(out)


def _series(actuals: Actuals, indicator: str, subject: str, variant_match: str | None, part: str
            ) -> dict[date, tuple[float, float | None]]:
    """Month → (the ``part`` of the matching rows, completeness); ``variant_match`` None = any variant."""
    out: dict[date, tuple[float, float | None]] = {}
    for (ind, variant, subj), months in actuals.items():
        if ind != indicator or subj != subject:
            continue
        if variant_match is not None and variant != variant_match and not variant.startswith(variant_match + ","):
            continue
        for month, row in months.items():
            value = getattr(row, part)
            if value is not None:
                out[month] = (float(value), row.completeness)
    return out


def _basis_label(variant: str) -> str:
    return Basis(variant).label_zh


def quantity_for(key: TargetKey, actuals: Actuals) -> tuple[Quantity, dict[date, float | None]] | str:
    """The key's :class:`Quantity` and each month's completeness, or why there are no actuals for it."""
    ind, variant = key.indicator, key.variant
    if key.subject_kind != "park" and ind != "pue":
        return (f"nothing meters {ind} of {key.subject_label} yet: only park-level indicators and data-centre PUE "
                "are computed")
    if ind in ("total_energy", "energy_intensity_va", "nonfossil_share"):
        label = _basis_label(variant)
    elif ind == "renewable_share":
        label = "electricity (含绿证)" if variant == "electricity" else "energy"
    else:
        label = variant
    if ind in ("total_energy", "total_co2"):
        num = _series(actuals, ind, "", label, "value")
        den = None
    elif ind in ("energy_intensity_va", "co2_intensity_va"):
        num = _series(actuals, "total_energy" if ind == "energy_intensity_va" else "total_co2", "", label, "value")
        den = _series(actuals, "industrial_value_added", "", None, "value")
        if num and not den:
            return "no industrial value added declared (parkpulse import value-added), so no intensity"
    elif ind == "pue":
        num = _series(actuals, "pue", key.subject, None, "numerator")
        den = _series(actuals, "pue", key.subject, None, "denominator")
    else:
        num = _series(actuals, ind, "", label, "numerator")
        den = _series(actuals, ind, "", label, "denominator")
    if not num:
        return f"no published monthly {ind} ({variant}) for {key.subject_label} yet; run parkpulse aggregate"
    share = TARGET_INDICATORS[ind].unit == "%"
    completeness = {m: c for m, (_, c) in num.items()}
    return (Quantity({m: v for m, (v, _) in num.items()},
                     {m: v for m, (v, _) in den.items()} if den is not None else None,
                     100.0 if share else 1.0, 100.0 if share else None), completeness)


@dataclass(frozen=True, slots=True)
class StoredLevel:
    """The stored 预警 state of a key (``target_warning_states``)."""

    level: Level
    level_since: datetime
    pending_level: Level | None
    pending_count: int
    evaluated_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectionRow:
    """One target against its projection: the period's value (year-end, month-end or final), band and level."""

    version: TargetVersion
    projection: Projection | None
    value: float | None
    low: float | None
    high: float | None
    kind: str
    ratio: float | None
    level: Level | None
    running: bool
    note: str | None = None
    stored: StoredLevel | None = None

    @property
    def key(self) -> TargetKey:
        """The target's key."""
        return self.version.key


@dataclass(frozen=True, slots=True)
class ProjectionReport:
    """The projection of every target of a park and year, as of a park-local day."""

    park_id: str
    timezone: str
    year: int
    as_of: date
    cutoff: date
    generated_at: datetime
    rows: tuple[ProjectionRow, ...]


def _partial(q: Quantity, completeness: dict[date, float | None], cutoff: date, as_of: date) -> Partial | None:
    num = q.numerator.get(cutoff)
    if num is None:
        return None
    den = q.denominator.get(cutoff) if q.denominator is not None else None
    if q.denominator is not None and den is None:
        return None
    covered = completeness.get(cutoff)
    if covered is None:  # no interval count: the share of the month's days elapsed
        covered = (as_of - cutoff).days / days_in(cutoff)
    return Partial(num, den, min(max(covered, 0.0), 1.0))


def _row(version: TargetVersion, actuals: Actuals, cutoff: date, as_of: date, policy: WarningPolicy) -> ProjectionRow:
    key = version.key
    running = key.period_start <= as_of < key.period_end
    found = quantity_for(key, actuals)
    if isinstance(found, str):
        return ProjectionRow(version, None, None, None, None, "none", None, None, running, found)
    q, completeness = found
    proj = project(q, key.year, cutoff, _partial(q, completeness, cutoff, as_of), policy.band)
    if proj.value is None:
        return ProjectionRow(version, proj, None, None, None, "none", None, None, running, proj.missing)
    value: float | None
    if key.month == ANNUAL:
        value, low, high = proj.value, proj.low, proj.high
        kind = "actual" if not proj.methods else "year-end"
    else:
        point = proj.month(date(key.year, key.month, 1))
        assert point is not None
        value, low, high = point.value, point.low, point.high
        kind = {"partial": "month-end", "filled": "forecast"}.get(point.kind, point.kind)
    if value is None:
        return ProjectionRow(version, proj, None, None, None, "none", None, None, running,
                             "the denominator is zero over the period")
    ratio = target_ratio(value, version.target.value)
    spec = TARGET_INDICATORS[key.indicator]
    level = level_at(ratio, policy.thresholds(key.indicator), spec.direction)
    return ProjectionRow(version, proj, value, low, high, kind, ratio, level, running)


def load_levels(conn: psycopg.Connection[Any], park_id: str, year: int) -> dict[TargetKey, StoredLevel]:
    """The stored 预警 states of a park's ``year`` targets."""
    rows = conn.execute("""SELECT park_id, subject_kind, subject, indicator, variant, year, month, level, level_since,
                                  pending_level, pending_count, evaluated_at
                           FROM target_warning_states WHERE park_id = %s AND year = %s""", (park_id, year)).fetchall()
    return {TargetKey(*r[:7]): StoredLevel(*r[7:]) for r in rows}


def build_report(conn: psycopg.Connection[Any], park_id: str, year: int, policy: WarningPolicy, *,
                 as_of: date | None = None, now: datetime | None = None) -> ProjectionReport:
    """Every target of ``park_id``'s ``year`` projected from the published actuals, as of ``as_of``."""
    tz = park_timezone(conn, park_id)
    day = as_of or local_today(tz, now)
    cutoff = date(day.year, day.month, 1)
    first = min(date(year, 1, 1), add_months(cutoff, -HISTORY_MONTHS))
    end = max(date(year + 1, 1, 1), add_months(cutoff, 1))
    actuals = load_actuals(conn, park_id, first, end)
    stored = load_levels(conn, park_id, year)
    order = list(TARGET_INDICATORS)
    versions = sorted(effective_targets(conn, park_id, year, day), key=lambda v: (
        v.key.subject_kind != "park", order.index(v.key.indicator), v.key.subject, v.key.variant, v.key.month))
    rows = []
    for version in versions:
        row = _row(version, actuals, cutoff, day, policy)
        rows.append(replace(row, stored=stored.get(version.key)))
    return ProjectionReport(park_id, tz, year, day, cutoff, now or datetime.now(UTC), tuple(rows))

"""Targets as data: what a park (or one of its sites or enterprises) must stay under or reach, per year or month.

Pure core: the catalogue of target quantities (:data:`TARGET_INDICATORS`), validation of one target
(:func:`validate_target`) and the versioning rules (:func:`plan_version`, :func:`effective_version`). The
database adapter is :mod:`alarms._targets_store`, the import file parser :mod:`alarms._targets_file`.

A target is identified by its **key**: park, subject (``park`` / ``site`` id / ``enterprise`` name),
indicator, variant (basis 当量值/等价值, CO₂ method location/market …), year and month (0 = the annual target).
Each key has **versions**. A version applies from ``valid_from`` (a park-local day) until the next
version's ``valid_from``; recording a version never rewrites an older one:

* the versions that started before the new one end where it starts (``valid_to``), so they stay the
  target of every evaluation before that day ("changing a target keeps the old one for past periods");
* the versions that started on or after it are ``superseded`` (kept in the history, applied nowhere).

Which version judges a period: the one in effect on ``as_of`` clamped to the period's days. So a closed
month keeps the target it had when it closed, the running year uses today's target, and a period not yet
begun the one planned for its first day.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Final, Literal

from alarms._targets_errors import InvalidTargetError

Direction = Literal["cap", "floor"]
SubjectKind = Literal["park", "site", "enterprise"]
SourceKind = Literal["seed_plan", "provincial_allocation", "company_goal", "other"]

SUBJECT_KINDS: Final[tuple[SubjectKind, ...]] = ("park", "site", "enterprise")
SOURCE_KINDS: Final[tuple[SourceKind, ...]] = ("seed_plan", "provincial_allocation", "company_goal", "other")
#: Years a target may name (the bounds of :mod:`aggregation._periods`).
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 2200
#: The month of an annual target.
ANNUAL: Final = 0


@dataclass(frozen=True, slots=True)
class TargetIndicator:
    """One quantity a target can be set for: unit, direction and the variants it is computed in.

    ``variants`` lists the accepted variants, the first being the default; ``actual_variant`` maps each to
    the ``indicator_results.variant`` that holds its actuals (:mod:`aggregation._indicators`).
    """

    id: str
    name_zh: str
    name_en: str
    unit: str
    direction: Direction
    variants: tuple[str, ...]
    variant_kind: str
    subjects: tuple[SubjectKind, ...] = SUBJECT_KINDS
    unit_aliases: tuple[str, ...] = ()
    upper_bound: float | None = None
    lower_bound: float = 0.0

    @property
    def default_variant(self) -> str:
        """The variant a target gets when it names none."""
        return self.variants[0]


_BASES: Final = ("calorific", "coal_equivalent")
_METHODS: Final = ("location", "market")

TARGET_INDICATORS: Final[dict[str, TargetIndicator]] = {t.id: t for t in (
    TargetIndicator("total_energy", "综合能耗", "total energy consumption", "tce", "cap", _BASES, "basis"),
    TargetIndicator("total_co2", "二氧化碳排放总量", "CO2 emissions", "tCO2", "cap", _METHODS, "method",
                    unit_aliases=("t", "tco2", "t co2")),
    TargetIndicator("energy_intensity_va", "单位工业增加值综合能耗", "energy per 10^4 CNY of value added",
                    "tce/10^4 CNY", "cap", _BASES, "basis", unit_aliases=("tce/万元",)),
    TargetIndicator("co2_intensity_va", "单位工业增加值二氧化碳排放量", "CO2 per 10^4 CNY of value added",
                    "tCO2/10^4 CNY", "cap", _METHODS, "method", unit_aliases=("t/10^4 CNY", "t/万元", "tco2/万元")),
    TargetIndicator("nonfossil_share", "非化石能源消费占比", "non-fossil share of energy", "%", "floor",
                    ("coal_equivalent", "calorific"), "basis", upper_bound=100.0),
    TargetIndicator("renewable_share", "可再生能源使用比例", "renewable share", "%", "floor",
                    ("electricity", "energy"), "variant", upper_bound=100.0),
    TargetIndicator("pue", "数据中心电能使用效率 PUE", "data-centre PUE", "1", "cap", ("annual",), "variant",
                    subjects=("site",), unit_aliases=("", "-", "ratio"), lower_bound=1.0),
)}


@dataclass(frozen=True, slots=True)
class TargetInput:
    """A validated target as the operator states it (not yet a stored version)."""

    park_id: str
    indicator: str
    variant: str
    year: int
    month: int
    value: float
    unit: str
    source: str
    source_kind: SourceKind = "other"
    subject_kind: SubjectKind = "park"
    subject: str = ""
    valid_from: date | None = None
    note: str | None = None

    @property
    def key(self) -> TargetKey:
        """The key the versions of this target share."""
        return TargetKey(self.park_id, self.subject_kind, self.subject, self.indicator, self.variant, self.year,
                         self.month)


@dataclass(frozen=True, slots=True, order=True)
class TargetKey:
    """What a target is about: one quantity of one subject for one year (month 0) or month."""

    park_id: str
    subject_kind: SubjectKind
    subject: str
    indicator: str
    variant: str
    year: int
    month: int

    @property
    def period_start(self) -> date:
        """First local day of the target's period."""
        return date(self.year, self.month or 1, 1)

    @property
    def period_end(self) -> date:
        """Local day after the target's period (exclusive end)."""
        if self.month == ANNUAL:
            return date(self.year + 1, 1, 1)
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    @property
    def period_label(self) -> str:
        """``2026`` or ``2026-03``."""
        return f"{self.year:04d}" if self.month == ANNUAL else f"{self.year:04d}-{self.month:02d}"

    @property
    def subject_label(self) -> str:
        """``park``, ``site dc-1`` or ``enterprise ACME``."""
        return "park" if self.subject_kind == "park" else f"{self.subject_kind} {self.subject}"


@dataclass(frozen=True, slots=True)
class TargetVersion:
    """One stored version of a target: the value, its source and the local days it applies to."""

    target_id: int
    target: TargetInput
    valid_from: date
    valid_to: date | None
    recorded_at: datetime
    superseded_at: datetime | None = None
    replaced_by: int | None = None
    recorded_by: str | None = None

    @property
    def key(self) -> TargetKey:
        """The key of the target."""
        return self.target.key

    def applies_on(self, day: date) -> bool:
        """True when this version is the target on local ``day``."""
        return (self.superseded_at is None and self.valid_from <= day
                and (self.valid_to is None or day < self.valid_to))


def canonical_unit(indicator: TargetIndicator, unit: str) -> str | None:
    """The indicator's unit if ``unit`` names it (case and spacing ignored), else None."""
    norm = unit.strip().lower().replace("₂", "2").replace("⁴", "4")
    accepted = {indicator.unit.lower(), *(a.lower() for a in indicator.unit_aliases)}
    return indicator.unit if norm in accepted else None


def validate_target(*, park_id: str, indicator: str, year: int, value: float, unit: str, source: str,
                    variant: str | None = None, month: int = ANNUAL, source_kind: str = "other",
                    subject_kind: str = "park", subject: str = "", valid_from: date | None = None,
                    note: str | None = None) -> TargetInput:
    """A :class:`TargetInput` from loose values, or :class:`InvalidTargetError` naming every problem."""
    problems: list[str] = []
    spec = TARGET_INDICATORS.get(indicator)
    if spec is None:
        raise InvalidTargetError([f"indicator {indicator!r} has no targets; use one of "
                                  f"{', '.join(TARGET_INDICATORS)}"])
    chosen = spec.default_variant if variant in (None, "") else str(variant)
    if chosen not in spec.variants:
        problems.append(f"{spec.variant_kind} {chosen!r} does not apply to {indicator}; use one of "
                        f"{', '.join(spec.variants)}")
    if not MIN_YEAR <= year <= MAX_YEAR:
        problems.append(f"year {year} is out of range; use a year between {MIN_YEAR} and {MAX_YEAR}")
    if not 0 <= month <= 12:
        problems.append(f"month {month} is out of range; use 1..12 for a monthly target, none for the annual one")
    problems.extend(_value_problems(spec, value))
    canon = canonical_unit(spec, unit)
    if canon is None:
        problems.append(f"unit {unit!r} does not match {indicator}; write it in {spec.unit!r}")
    if not source.strip():
        problems.append("source is empty; say where the target comes from (the plan, the allocation, the goal)")
    if source_kind not in SOURCE_KINDS:
        problems.append(f"source kind {source_kind!r} is unknown; use one of {', '.join(SOURCE_KINDS)}")
    if subject_kind not in SUBJECT_KINDS:
        problems.append(f"subject kind {subject_kind!r} is unknown; use one of {', '.join(SUBJECT_KINDS)}")
    elif subject_kind not in spec.subjects:
        problems.append(f"{indicator} targets are set per {' or '.join(spec.subjects)}"
                        + ("; name the data-centre site with --site" if "site" in spec.subjects else ""))
    elif subject_kind == "park" and subject:
        problems.append("a park-level target has no subject; name a site or an enterprise instead")
    elif subject_kind != "park" and not subject.strip():
        problems.append(f"a {subject_kind} target needs the {subject_kind}'s id")
    if problems:
        raise InvalidTargetError(problems)
    return TargetInput(park_id, indicator, chosen, year, month, float(value), canon or spec.unit, source.strip(),
                       source_kind, subject_kind, subject.strip(), valid_from,  # type: ignore[arg-type]
                       note.strip() if note and note.strip() else None)


def _value_problems(spec: TargetIndicator, value: float) -> list[str]:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return [f"value {value!r} is not a finite number; write the target as a plain number"]
    if value < spec.lower_bound:
        return [f"value {value:g} is below {spec.lower_bound:g}, which {spec.id} cannot be"]
    if spec.upper_bound is not None and value > spec.upper_bound:
        return [f"value {value:g} is above {spec.upper_bound:g} {spec.unit}; write shares in percent (0..100)"]
    return []


def effective_version(versions: list[TargetVersion], day: date) -> TargetVersion | None:
    """The version in effect on local ``day`` (versions of one key), or None before the first."""
    hits = [v for v in versions if v.applies_on(day)]
    return max(hits, key=lambda v: v.valid_from) if hits else None


def judged_on(key: TargetKey, as_of: date) -> date:
    """The local day whose target version judges ``key``'s period as of ``as_of``.

    Today's for a running period, the period's last day's once it has ended, its first day's before it starts.
    """
    last = date.fromordinal(key.period_end.toordinal() - 1)
    return max(key.period_start, min(as_of, last))


@dataclass(frozen=True, slots=True)
class VersionPlan:
    """What recording a new version changes: nothing (same content), or the new version and its effects."""

    unchanged: bool
    valid_from: date
    end_at: dict[int, date]
    supersede: tuple[int, ...]
    note: str | None = None


def default_valid_from(key: TargetKey, live: list[TargetVersion], today: date) -> date:
    """The first version of a key applies from its period start; a change applies from today (not before the
    period starts)."""
    if not live:
        return key.period_start
    return max(today, key.period_start)


def same_content(a: TargetInput, b: TargetInput) -> bool:
    """True when two inputs of one key would store the same version (``valid_from`` aside)."""
    return replace(a, valid_from=None) == replace(b, valid_from=None)


def plan_version(new: TargetInput, versions: list[TargetVersion], today: date) -> VersionPlan:
    """How a new version of ``new.key`` fits the key's stored ``versions`` (pure; the store applies it)."""
    live = [v for v in versions if v.superseded_at is None]
    start = new.valid_from or default_valid_from(new.key, live, today)
    current = effective_version(live, start)
    if current is not None and current.valid_to is None and same_content(current.target, new):
        return VersionPlan(True, start, {}, ())
    end_at = {v.target_id: start for v in live
              if v.valid_from < start and (v.valid_to is None or v.valid_to > start)}
    supersede = tuple(v.target_id for v in live if v.valid_from >= start)
    note = None
    if start >= new.key.period_end:
        note = (f"the new value applies from {start}, after the period {new.key.period_label} ended, so "
                f"evaluations of that period keep the old value; pass --valid-from {new.key.period_start} to "
                "restate the whole period")
    return VersionPlan(False, start, end_at, supersede, note)

"""Rollups, indicators, declared data and the registry → :class:`UplinkRecord` values (pure).

One record per data item and closed local period (a period is closed when its end is at or before
``now``: a day is reported once it is over, a month once it has ended). For a metered item the value is
the sum over the meters its source binds, and

* ``completeness`` = intervals present ÷ intervals due (bound meters × the period's 15-minute intervals);
  a bound meter with no data at all counts as fully missing;
* ``quality`` = ``estimated`` when the VEE-estimated share of the energy is above the profile's threshold,
  else ``measured``; declared items are ``manual``.

A period with no data at all gives no record: absence is reported by the quality checks, never as a zero.
Revisions are assigned by the store (``revision`` here is always 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from schemas.uplink_record import InstrumentEntry, Period, Quality, UplinkRecord
from uplink._items import (
    DataItem,
    DeclaredSource,
    ItemTable,
    MeteredSource,
    RatioSource,
    TotalEnergySource,
)
from uplink._keys import format_record_key
from uplink._periods import LocalPeriod, iter_periods

ALL_PERIODS: tuple[Period, ...] = ("15min", "hour", "day", "month")


@dataclass(frozen=True, slots=True)
class Meter:
    """One registered series of the park: the device, its metric and GB 17167 level."""

    series_id: int
    device_id: str
    metric: str
    carrier: str | None = None
    kind: str | None = None
    level: int | None = None
    role: str | None = None
    site_id: str | None = None
    accuracy_class: str | None = None       # from the device's metadata when the operator recorded it
    calibration_date: date | None = None


@dataclass(frozen=True, slots=True)
class MeterPeriod:
    """Energy of one series over one period (UTC start), with what was estimated and what was present."""

    series_id: int
    period: Period
    start_utc: datetime
    energy: float
    estimated_energy: float
    n_intervals: float


@dataclass(frozen=True, slots=True)
class DeclaredRow:
    """One declared (manually entered) flow over ``[start, end)``."""

    kind: str
    subject: str
    start: date
    end: date
    quantity: float


@dataclass(frozen=True, slots=True)
class MappingInputs:
    """Everything the mapping reads for one park."""

    park_id: str
    timezone: str
    enterprise_code: str
    meters: tuple[Meter, ...] = ()
    periods: tuple[MeterPeriod, ...] = ()
    monthly_tce: dict[tuple[str, date], float] = field(default_factory=dict)  # (basis, month start) → tce
    declared: tuple[DeclaredRow, ...] = ()
    interval_s: int = 900


@dataclass(slots=True)
class _Sum:
    value: float = 0.0
    estimated: float = 0.0
    present: float = 0.0
    due: float = 0.0

    def quality(self, threshold: float) -> Quality:
        if self.estimated <= 0:
            return "measured"
        share = self.estimated / self.value if self.value > 0 else 1.0
        return "estimated" if share > threshold else "measured"

    @property
    def completeness(self) -> float:
        return 0.0 if self.due <= 0 else min(1.0, self.present / self.due)


def bound_meters(source: MeteredSource | TotalEnergySource, meters: Iterable[Meter],
                 metric: str | None = None) -> list[Meter]:
    """The meters a source rule binds (metric, level, roles), sorted by device id."""
    if isinstance(source, MeteredSource):
        wanted, level = source.metric, source.level
        roles, excluded = source.roles, source.exclude_roles
    else:
        wanted, level, roles, excluded = metric or "", source.level, (), ()
    out = [m for m in meters if m.metric == wanted and (level is None or m.level == level)
           and (not roles or (m.role in roles)) and m.role not in excluded]
    return sorted(out, key=lambda m: m.device_id)


class _Index:
    """Meter periods by (series, period, UTC start)."""

    def __init__(self, rows: Iterable[MeterPeriod]) -> None:
        self._rows = {(r.series_id, r.period, r.start_utc): r for r in rows}

    def add(self, acc: _Sum, meters: Sequence[Meter], p: LocalPeriod, interval_s: int, factor: float) -> None:
        per_meter = p.intervals(interval_s) if p.period != "15min" else 1
        for meter in meters:
            acc.due += per_meter
            row = self._rows.get((meter.series_id, p.period, p.start_utc))
            if row is not None:
                acc.value += row.energy * factor
                acc.estimated += row.estimated_energy * factor
                acc.present += min(row.n_intervals, per_meter)


def _record(inputs: MappingInputs, item: DataItem, p: LocalPeriod, *, value: float, quality: Quality,
            completeness: float, meter_codes: Sequence[str], now: datetime) -> UplinkRecord:
    return UplinkRecord(
        enterprise_code=inputs.enterprise_code,
        record_key=format_record_key(inputs.park_id, item.code, p.period, p.start_local),
        revision=1, data_item_code=item.code, period=p.period, period_start=p.start_local, value=value,
        unit=item.unit, quality=quality, completeness=round(completeness, 6), meter_codes=tuple(meter_codes),
        computed_at=now.astimezone(UTC))


def _declared_value(rows: Sequence[DeclaredRow], src: DeclaredSource, p: LocalPeriod) -> tuple[float, float] | None:
    """Sum of the overlapping declared flows pro rata by days, and the share of the period's days covered."""
    first, last = p.start_local.date(), (p.end_utc.astimezone(p.start_local.tzinfo)).date()
    days = (last - first).days or 1
    total, covered, hit = 0.0, 0, False
    for row in rows:
        if row.kind != src.declared_kind or (src.subject is not None and row.subject != src.subject):
            continue
        lo, hi = max(row.start, first), min(row.end, last)
        if lo >= hi:
            continue
        hit = True
        total += row.quantity * (hi - lo).days / max(1, (row.end - row.start).days)
        covered += (hi - lo).days
    return (total * src.scale, min(1.0, covered / days)) if hit else None


def compute_records(table: ItemTable, inputs: MappingInputs, start: date, end: date, *, now: datetime,
                    periods: Sequence[Period] = ALL_PERIODS) -> list[UplinkRecord]:
    """Every record of the profile's items for the closed periods in local ``[start, end)``."""
    index = _Index(inputs.periods)
    threshold = table.estimated_share_threshold
    out: list[UplinkRecord] = []
    by_key: dict[tuple[str, datetime], UplinkRecord] = {}
    ratios: list[DataItem] = []
    for item in table.items:
        src = item.source
        if isinstance(src, RatioSource):
            ratios.append(item)
            continue
        for period in item.periods:
            if period not in periods:
                continue
            for p in iter_periods(period, start, end, inputs.timezone):
                if p.end_utc > now:
                    break
                rec = _one(item, src, p, inputs, index, threshold=threshold, now=now)
                if rec is not None:
                    out.append(rec)
                    by_key[(item.code, p.start_utc)] = rec
    for item in ratios:
        out.extend(_ratios(item, by_key, inputs, start=start, end=end, now=now, periods=periods))
    return out


def _one(item: DataItem, src: MeteredSource | TotalEnergySource | DeclaredSource, p: LocalPeriod,
         inputs: MappingInputs, index: _Index, *, threshold: float, now: datetime) -> UplinkRecord | None:
    if isinstance(src, DeclaredSource):
        got = _declared_value(inputs.declared, src, p)
        return None if got is None else _record(inputs, item, p, value=got[0], quality="manual",
                                                completeness=got[1], meter_codes=(), now=now)
    acc = _Sum()
    codes: list[str] = []
    if isinstance(src, MeteredSource):
        meters = bound_meters(src, inputs.meters)
        index.add(acc, meters, p, inputs.interval_s, src.scale)
        codes = [m.device_id for m in meters]
    else:
        for metric, tce in sorted(src.tce_per_unit.items()):
            meters = bound_meters(src, inputs.meters, metric)
            index.add(acc, meters, p, inputs.interval_s, tce)
            codes.extend(m.device_id for m in meters)
    if acc.present <= 0:
        return None
    value = acc.value
    if isinstance(src, TotalEnergySource) and p.period == "month":
        published = inputs.monthly_tce.get((src.basis, p.start_local.date()))
        value = value if published is None else published
    return _record(inputs, item, p, value=value, quality=acc.quality(threshold), completeness=acc.completeness,
                   meter_codes=sorted(set(codes)), now=now)


def _ratios(item: DataItem, by_key: dict[tuple[str, datetime], UplinkRecord], inputs: MappingInputs, *,
            start: date, end: date, now: datetime, periods: Sequence[Period]) -> list[UplinkRecord]:
    src = item.source
    assert isinstance(src, RatioSource)
    out: list[UplinkRecord] = []
    for period in item.periods:
        if period not in periods:
            continue
        for p in iter_periods(period, start, end, inputs.timezone):
            num, den = by_key.get((src.numerator, p.start_utc)), by_key.get((src.denominator, p.start_utc))
            if num is None or den is None or den.value <= 0:
                continue
            qualities = {num.quality, den.quality}
            quality: Quality = "estimated" if "estimated" in qualities else (
                "measured" if "measured" in qualities else "manual")
            out.append(_record(inputs, item, p, value=num.value / den.value * src.scale, quality=quality,
                               completeness=min(num.completeness, den.completeness),
                               meter_codes=sorted(set(num.meter_codes) | set(den.meter_codes)), now=now))
    return out


def instrument_register(table: ItemTable, meters: Sequence[Meter]) -> list[InstrumentEntry]:
    """The instrument register (计量器具台账): one entry per metering device, with the items it feeds.

    Accuracy class and calibration date come from the device's registry metadata (``accuracy_class``,
    ``calibration_date``) when recorded; the registry has no columns for them, so they are None otherwise.
    """
    feeds: dict[str, set[str]] = {}
    for item in table.items:
        src = item.source
        if isinstance(src, MeteredSource):
            bound = bound_meters(src, meters)
        elif isinstance(src, TotalEnergySource):
            bound = [m for metric in src.tce_per_unit for m in bound_meters(src, meters, metric)]
        else:
            continue
        for meter in bound:
            feeds.setdefault(meter.device_id, set()).add(item.code)
    entries: dict[str, InstrumentEntry] = {}
    for meter in sorted(meters, key=lambda m: m.device_id):
        if meter.device_id in entries or meter.carrier in (None, "none"):
            continue
        entries[meter.device_id] = InstrumentEntry(
            meter_code=meter.device_id, name=meter.device_id, carrier=meter.carrier or "",
            instrument_type=meter.kind or f"{meter.carrier}_meter", accuracy_class=meter.accuracy_class,
            calibration_date=meter.calibration_date, metering_level=meter.level,
            data_item_codes=tuple(sorted(feeds.get(meter.device_id, ()))))
    return list(entries.values())


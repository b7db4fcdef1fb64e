"""What a monthly report holds, as plain values, and the pure steps that shape it.

:mod:`reports._gather` fills a :class:`MonthlyData` from the database; the writers (:mod:`reports._xlsx`,
:mod:`reports._pdf`) only lay it out. Quantities keep the unit in their name (``_kwh``, ``_t``, ``_tce``)
or, where one table mixes carriers, carry a ``unit`` next to the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from aggregation._meter_energy import MeterEnergyRow

#: Indicators shown in their own "by source" section, not in the indicator table.
BY_SOURCE: Final = ("co2_by_source", "energy_by_source")


@dataclass(frozen=True, slots=True)
class IndicatorRow:
    """One published indicator value of the month (a row of ``indicator_results``)."""

    indicator: str
    name_zh: str | None
    variant: str
    subject: str
    value: float | None
    unit: str
    estimated_share: float | None
    completeness: float | None
    status: str
    headline: bool
    revision: int
    vintages: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SourceRow:
    """CO₂ (t) and 综合能耗 (tce) of one source; ``None`` where that variant was not published."""

    source: str
    co2_location_t: float | None = None
    co2_market_t: float | None = None
    energy_calorific_tce: float | None = None
    energy_coal_equivalent_tce: float | None = None


@dataclass(frozen=True, slots=True)
class BalanceTable:
    """The month's ``balance_checks`` rows with whatever columns the table has (order of the table)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class CarrierQuality:
    """Estimated share and completeness of all meters of one carrier and metric over the month."""

    carrier: str
    metric: str
    unit: str
    energy: float
    estimated_energy: float
    n_intervals: int
    n_expected: int
    n_meters: int

    @property
    def estimated_share(self) -> float | None:
        """Estimated energy ÷ energy (``None`` with no energy)."""
        return self.estimated_energy / self.energy if self.energy > 0 else None

    @property
    def completeness(self) -> float | None:
        """Intervals present ÷ intervals expected."""
        return self.n_intervals / self.n_expected if self.n_expected > 0 else None


@dataclass(frozen=True, slots=True)
class QuarantineCount:
    """Quarantined messages (or CSV chunks) of the month by reason and source."""

    reason: str
    source: str
    messages: int
    readings_rejected: int


@dataclass(frozen=True, slots=True)
class DailyEnergy:
    """The park's (top-level meters') energy of one carrier and metric on one local day."""

    day: date
    carrier: str
    metric: str
    unit: str
    energy: float


@dataclass(frozen=True, slots=True)
class LoadDuration:
    """Park electricity demand of every interval, highest first (kW), from the level-1 import meters."""

    interval_h: float
    load_kw: tuple[float, ...]
    n_meters: int


@dataclass(frozen=True, slots=True)
class PueDay:
    """One data-centre site's daily PUE (``pue_results`` grain day)."""

    site_id: str
    day: date
    pue: float | None
    facility_kwh: float
    it_kwh: float


@dataclass(frozen=True, slots=True)
class MonthlyData:
    """Everything one park-month report shows."""

    park_id: str
    park_name: str | None
    timezone: str
    period: str
    local_start: date
    local_end: date
    generated_at: datetime
    closed: bool
    indicators: tuple[IndicatorRow, ...]
    by_source: tuple[SourceRow, ...]
    meters: tuple[MeterEnergyRow, ...]
    balance: BalanceTable
    quality: tuple[CarrierQuality, ...]
    quarantine: tuple[QuarantineCount, ...]
    daily: tuple[DailyEnergy, ...]
    load: LoadDuration | None
    pue: tuple[PueDay, ...]
    metered_completeness: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def has_data_centre(self) -> bool:
        """Whether the park reported any PUE this month."""
        return bool(self.pue)

    def texts(self) -> list[str]:
        """Every data string the report prints (for the font coverage check)."""
        out = [self.park_id, self.park_name or "", self.timezone, self.period, *self.notes]
        for r in self.indicators:
            out.extend((r.variant, r.subject, r.unit, r.status, r.name_zh or "", *r.vintages, *r.notes))
        out.extend(s.source for s in self.by_source)
        for m in self.meters:
            out.extend((m.device_id, m.site_id or "", m.role or "", m.unit, *m.flag_names))
        out.extend(str(v) for row in self.balance.rows for v in row if isinstance(v, str))
        out.extend(f"{q.reason} {q.source}" for q in self.quarantine)
        out.extend(p.site_id for p in self.pue)
        return out


def split_variant(variant: str) -> tuple[str, str]:
    """``"location:natural_gas"`` → ``("location", "natural_gas")``; no colon → ``("", variant)``."""
    basis, sep, source = variant.partition(":")
    return (basis, source) if sep else ("", variant)


_CO2: Final = {"location": "co2_location_t", "market": "co2_market_t"}
_TCE: Final = {"calorific": "energy_calorific_tce", "当量值": "energy_calorific_tce",
               "coal_equivalent": "energy_coal_equivalent_tce", "等价值": "energy_coal_equivalent_tce"}


def source_rows(indicators: Sequence[IndicatorRow]) -> tuple[SourceRow, ...]:
    """Pivot ``co2_by_source`` / ``energy_by_source`` rows into one row per source (first seen order)."""
    values: dict[str, dict[str, float | None]] = {}
    for r in indicators:
        if r.indicator not in BY_SOURCE or r.subject:
            continue
        basis, source = split_variant(r.variant)
        target = (_CO2 if r.indicator == "co2_by_source" else _TCE).get(basis)
        if target is None:
            continue
        values.setdefault(source, {})[target] = r.value
    return tuple(SourceRow(source, co2_location_t=v.get("co2_location_t"), co2_market_t=v.get("co2_market_t"),
                           energy_calorific_tce=v.get("energy_calorific_tce"),
                           energy_coal_equivalent_tce=v.get("energy_coal_equivalent_tce"))
                 for source, v in values.items())


def carrier_quality(meters: Sequence[MeterEnergyRow]) -> tuple[CarrierQuality, ...]:
    """Sum the month's per-meter rows into estimated share and completeness per carrier and metric."""
    acc: dict[tuple[str, str, str], list[float]] = {}
    for m in meters:
        a = acc.setdefault((m.carrier, m.metric, m.unit), [0.0, 0.0, 0, 0, 0])
        a[0] += m.energy
        a[1] += m.estimated_energy
        a[2] += m.n_intervals
        a[3] += m.n_expected
        a[4] += 1
    return tuple(CarrierQuality(c, metric, unit, a[0], a[1], int(a[2]), int(a[3]), int(a[4]))
                 for (c, metric, unit), a in sorted(acc.items()))


def load_duration(energy_by_interval_kwh: Sequence[float], interval_h: float, n_meters: int) -> LoadDuration:
    """Average power of every interval (kW = kWh ÷ interval hours), sorted from highest to lowest."""
    return LoadDuration(interval_h, tuple(sorted((e / interval_h for e in energy_by_interval_kwh), reverse=True)),
                        n_meters)

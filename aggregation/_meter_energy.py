"""Per-meter energy per local day or month, with its quality: what a park energy manager checks first.

The numbers come from the stored meter rollups (so they always agree with the balance and the
indicators), and the reasons from the interval flags of the same period: ``bit_or`` of every interval's
:class:`~aggregation._quality.IntervalFlag` bits. Each row says

* the energy and the part of it that was estimated (VEE), in the meter's unit (kWh, m3, GJ: the
  ``unit`` column, because one table holds several carriers);
* the estimated share (estimated energy ÷ energy, ``None`` when the energy is zero) and the completeness
  (intervals present ÷ intervals the local period has);
* a quality label: ``replacement`` when any interval of the period carries a recorded meter event (meter
  replaced, reset confirmed, CT/PT ratio change), else ``estimated`` when any of it was estimated, else
  ``measured``; and the names of every flag set.

:func:`load_meter_energy` is the one query; :func:`shape_rows` and the window check are pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

import psycopg

from aggregation._quality import IntervalFlag
from aggregation._store import CUMULATIVE_METRICS
from aggregation.errors import PeriodError
from schemas import METRICS

Grain = Literal["day", "month"]
Quality = Literal["measured", "estimated", "replacement"]

#: Meter-event bits (aggregation/_quality.py), by value until every checkout has them in IntervalFlag.
_EVENT_BITS: Final = {"meter_replaced": 8192, "reset_confirmed": 16384, "ratio_change": 32768}
REPLACEMENT_MASK: Final = sum(int(getattr(IntervalFlag, name.upper(), bit)) for name, bit in _EVENT_BITS.items())
#: Longest window one request may ask for, per grain (a year of days, ten years of months).
MAX_DAYS: Final = {"day": 400, "month": 3700}

_CARRIER: Final = {m.name: m.carrier.value for m in METRICS.values()}


def flag_names(flags: int) -> tuple[str, ...]:
    """Names of the bits set in ``flags`` in bit order, including the meter-event bits by value."""
    names = {int(f): f.name.lower() for f in IntervalFlag if f.name is not None}
    for name, bit in _EVENT_BITS.items():
        names.setdefault(bit, name)
    return tuple(name for bit, name in sorted(names.items()) if flags & bit)


def quality_label(flags: int, estimated_energy: float, n_estimated: float) -> Quality:
    """``replacement`` if a meter event touched the period, else ``estimated`` if VEE did, else ``measured``."""
    if flags & REPLACEMENT_MASK:
        return "replacement"
    if estimated_energy > 0 or n_estimated > 0:
        return "estimated"
    return "measured"


@dataclass(frozen=True, slots=True)
class EnergyWindow:
    """Periods whose local start lies in ``[start, end)``, at ``grain``, in the park's calendar."""

    start: date
    end: date
    grain: Grain

    def utc_bounds(self, tz: str) -> tuple[datetime, datetime]:
        """UTC instants of the local midnights that open and close the window."""
        zone = ZoneInfo(tz)
        lo = datetime(self.start.year, self.start.month, self.start.day, tzinfo=zone).astimezone(UTC)
        hi = datetime(self.end.year, self.end.month, self.end.day, tzinfo=zone).astimezone(UTC)
        return lo, hi


def energy_window(start: date, end: date, grain: str) -> EnergyWindow:
    """Check a requested window: ``end`` after ``start``, whole months for ``month``, not too long.

    Raises:
        PeriodError: with what to pass instead.
    """
    label = f"{start.isoformat()}..{end.isoformat()}"
    if grain not in ("day", "month"):
        raise PeriodError(grain, "grain must be day or month")
    if end <= start:
        raise PeriodError(label, "--to (exclusive) must be after --from, e.g. --from 2026-10-01 --to 2026-11-01")
    if grain == "month" and (start.day != 1 or end.day != 1):
        raise PeriodError(label, "with grain month, --from and --to must be first days of months "
                                 "(e.g. 2026-10-01 and 2026-11-01)")
    if (end - start).days > MAX_DAYS[grain]:
        raise PeriodError(label, f"at most {MAX_DAYS[grain]} days at grain {grain}; ask for a shorter window "
                                 "or use grain month")
    return EnergyWindow(start, end, "day" if grain == "day" else "month")


class RawRollup(NamedTuple):
    """One stored meter rollup with its meter's identity and the OR of its intervals' flags (SQL row)."""

    device_id: str
    metric: str
    carrier: str | None
    metering_level: int | None
    site_id: str | None
    role: str | None
    unit: str
    period_start: datetime
    energy: float
    estimated_energy: float
    n_intervals: int
    n_estimated: float
    n_expected: int
    flags: int


@dataclass(frozen=True, slots=True)
class MeterEnergyRow:
    """One meter's energy in one local period (energy in ``unit``; shares are fractions 0..1)."""

    device_id: str
    metric: str
    carrier: str
    metering_level: int | None
    site_id: str | None
    role: str | None
    unit: str
    period: str                  # local label: 2026-10-01 (day) or 2026-10 (month)
    period_start: datetime       # UTC instant of the local period start
    energy: float
    estimated_energy: float
    estimated_share: float | None
    n_intervals: int
    n_expected: int
    completeness: float | None
    quality: Quality
    flags: int
    flag_names: tuple[str, ...]


def shape_rows(raw: Sequence[RawRollup], tz: str, grain: Grain) -> list[MeterEnergyRow]:
    """Turn stored rollups into report rows: local labels, shares, completeness, quality and flag names."""
    zone = ZoneInfo(tz)
    out: list[MeterEnergyRow] = []
    for r in raw:
        local = r.period_start.astimezone(zone)
        label = local.date().isoformat() if grain == "day" else f"{local.year:04d}-{local.month:02d}"
        out.append(MeterEnergyRow(
            device_id=r.device_id, metric=r.metric, carrier=_CARRIER.get(r.metric, r.carrier or ""),
            metering_level=r.metering_level, site_id=r.site_id, role=r.role, unit=r.unit, period=label,
            period_start=r.period_start.astimezone(UTC), energy=r.energy, estimated_energy=r.estimated_energy,
            estimated_share=r.estimated_energy / r.energy if r.energy > 0 else None,
            n_intervals=r.n_intervals, n_expected=r.n_expected,
            completeness=r.n_intervals / r.n_expected if r.n_expected > 0 else None,
            quality=quality_label(r.flags, r.estimated_energy, r.n_estimated), flags=r.flags,
            flag_names=flag_names(r.flags)))
    out.sort(key=lambda row: (row.metering_level is None, row.metering_level or 0, row.device_id, row.metric,
                              row.period_start))
    return out


_STEP: Final = {"day": "1 day", "month": "1 month"}

_SQL: Final = """
    SELECT d.device_id, s.metric, d.carrier, d.metering_level, d.site_id, d.role, s.unit,
           r.period_start, r.energy, r.estimated_energy, r.n_intervals, r.n_estimated, r.n_expected,
           COALESCE(f.flags, 0)
    FROM devices d
    JOIN series s USING (device_key)
    JOIN meter_rollups r ON r.series_id = s.series_id AND r.grain = %(grain)s
                        AND r.period_start >= %(lo)s AND r.period_start < %(hi)s
    CROSS JOIN LATERAL (
        SELECT bit_or(ie.flags) AS flags FROM interval_energy ie
        WHERE ie.series_id = r.series_id AND ie.ts >= r.period_start
          AND ie.ts < ((r.period_start AT TIME ZONE %(tz)s) + %(step)s::interval) AT TIME ZONE %(tz)s
    ) f
    WHERE d.park_id = %(park)s AND s.metric = ANY(%(metrics)s)
      AND (%(device)s::text IS NULL OR d.device_id = %(device)s)"""


def load_meter_energy(conn: psycopg.Connection[Any], park_id: str, tz: str, window: EnergyWindow,
                      device_id: str | None = None) -> list[MeterEnergyRow]:
    """Every cumulative meter's energy per local period of ``window`` (only periods with a stored rollup).

    Rollups exist once ``parkpulse aggregate`` has run over the readings; a meter with no data in a period
    has no row for it (its completeness elsewhere tells).
    """
    lo, hi = window.utc_bounds(tz)
    rows = conn.execute(_SQL, {"grain": window.grain, "lo": lo, "hi": hi, "tz": tz, "step": _STEP[window.grain],
                               "park": park_id, "metrics": list(CUMULATIVE_METRICS), "device": device_id}).fetchall()
    raw = [RawRollup(str(r[0]), str(r[1]), r[2], None if r[3] is None else int(r[3]), r[4], r[5], str(r[6]), r[7],
                     float(r[8]), float(r[9]), int(r[10]), float(r[11]), int(r[12]), int(r[13])) for r in rows]
    return shape_rows(raw, tz, window.grain)

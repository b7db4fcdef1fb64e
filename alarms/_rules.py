"""The conditions of the operational alarm rules, as pure functions of what aggregation and ingest stored.

Each condition takes its rule's parameters and plain rows (:mod:`alarms._evaluate` reads them) and returns
the subjects where it holds, as :class:`Finding` values: one per device, meter, carrier or site, with the
measured value, the limit and a message in Chinese and English. A subject absent from the result is one
where the condition does not hold (its open alarm clears). A rule that cannot be evaluated (no parameter
set, nothing to look at) returns :class:`Skipped` with a note saying what to set.

Windows over data (gaps, flags, balance, PUE, demand) end at the park's newest data rather than the wall
clock, so late and historical data are judged on their own time; only the offline rule uses the clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from aggregation._quality import describe_flags
from alarms._rules_model import (
    ContractedDemandParams,
    CounterAnomalyParams,
    DataGapParams,
    DeviceOfflineParams,
    EstimatedShareParams,
    MeterBalanceParams,
    PueLimitParams,
    UplinkBacklogParams,
)

#: Birth-message metadata keys naming a device's reporting interval in seconds, most specific first.
INTERVAL_KEYS: Final = ("report_interval_s", "batch_interval_s", "poll_interval_s", "sample_interval_s")


@dataclass(frozen=True, slots=True)
class Finding:
    """One subject where a rule's condition holds, with what was measured against which limit."""

    subject: str
    value: float | None
    limit: float | None
    unit: str
    message_en: str
    message_zh: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Skipped:
    """The rule could not be evaluated for this park; its open alarms are left as they are."""

    note: str


Outcome = list[Finding] | Skipped


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A registered device and its session state (``device_status``; all None when it never sent)."""

    device_id: str
    metadata: dict[str, Any]
    last_reading_ts: datetime | None
    last_seen_at: datetime | None
    online: bool | None
    status_at: datetime | None
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class MeterDay:
    """One meter's daily rollup (``meter_rollups``, grain day); ``day`` is the park-local date."""

    device_id: str
    metric: str
    day: date
    n_intervals: int
    n_expected: int
    n_estimated: float


@dataclass(frozen=True, slots=True)
class FlaggedInterval:
    """An interval of ``interval_energy`` with flag bits set."""

    device_id: str
    metric: str
    ts: datetime
    flags: int


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One period of ``balance_checks`` for one carrier."""

    carrier: str
    metric: str
    period_start: datetime
    difference_pct: float | None
    alarm: bool
    supply: float | None
    demand: float
    unit: str | None


@dataclass(frozen=True, slots=True)
class PueDay:
    """A data centre's daily facility and IT energy (``pue_results``, grain day)."""

    site_id: str
    day_start: datetime
    facility_kwh: float
    it_kwh: float
    plausible: bool


def _iso(ts: datetime, tz: ZoneInfo) -> str:
    return ts.astimezone(tz).isoformat(sep=" ", timespec="minutes")


def reporting_interval_s(metadata: dict[str, Any], default_s: float) -> tuple[float, str]:
    """(interval, where it came from): the first positive number of :data:`INTERVAL_KEYS`, else the default."""
    for key in INTERVAL_KEYS:
        value = metadata.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e7:
            return float(value), key
    return default_s, "default_interval_s"


def device_offline(p: DeviceOfflineParams, devices: Iterable[DeviceState], now: datetime,
                   tz: ZoneInfo) -> Outcome:
    """Devices silent for longer than max(intervals × interval, min_silence_s), or whose last will said offline.

    Silence is measured from the newest reading's measurement time; a device that never sent a reading is
    measured from when it was registered, so a new device gets the same allowance.
    """
    found: list[Finding] = []
    for d in devices:
        interval_s, source = reporting_interval_s(d.metadata, p.default_interval_s)
        limit_s = max(p.intervals * interval_s, p.min_silence_s)
        since = d.last_reading_ts or d.first_seen_at
        silent_s = (now - since).total_seconds()
        will = (p.last_will and d.online is False and d.status_at is not None
                and (now - d.status_at).total_seconds() > p.grace_s
                and (d.last_reading_ts is None or d.last_reading_ts <= d.status_at))
        if silent_s <= limit_s and not will:
            continue
        last = _iso(d.last_reading_ts, tz) if d.last_reading_ts else "never"
        last_zh = _iso(d.last_reading_ts, tz) if d.last_reading_ts else "从未"
        why_en = "its last will / status said offline" if will else f"no reading for {silent_s / 60:.0f} min"
        why_zh = "遗嘱/状态消息报告离线" if will else f"{silent_s / 60:.0f} 分钟无读数"
        found.append(Finding(
            d.device_id, round(silent_s, 1), limit_s, "s",
            f"{d.device_id}: {why_en} (limit {limit_s / 60:.0f} min = max({p.intervals:g} × {interval_s:g} s "
            f"from {source}, {p.min_silence_s:g} s)); last reading {last}",
            f"{d.device_id}：{why_zh}（限值 {limit_s / 60:.0f} 分钟）；最后读数 {last_zh}",
            {"last_reading_ts": d.last_reading_ts.isoformat() if d.last_reading_ts else None,
             "interval_s": interval_s, "interval_source": source, "last_will_offline": will}))
    return found


def complete_days(anchor: datetime, tz: ZoneInfo, lookback_days: int) -> list[date]:
    """The ``lookback_days`` newest park-local days that end at or before ``anchor`` (oldest first).

    ``anchor`` is the end of the park's newest interval; the local day it falls in (or starts) is the first
    one not complete yet.
    """
    last = anchor.astimezone(tz).date() - timedelta(days=1)
    return [last - timedelta(days=k) for k in reversed(range(lookback_days))]


def _day_share(rows: Iterable[MeterDay], days: Sequence[date], limit_pct: float, share: str) -> list[Finding]:
    """Meters whose gap or estimated share (``share``) exceeds ``limit_pct`` on one of ``days``.

    A day without a rollup counts as a 100 % gap for a meter that has a rollup on an earlier day of ``rows``
    (a silent meter leaves no rollup at all); days before a meter's first rollup are not judged.
    """
    by_meter: dict[tuple[str, str], dict[date, MeterDay]] = defaultdict(dict)
    for row in rows:
        by_meter[(row.device_id, row.metric)][row.day] = row
    found: list[Finding] = []
    for (device_id, metric), by_day in sorted(by_meter.items()):
        first = min(by_day)
        bad: list[tuple[date, float]] = []
        for day in days:
            if day < first:
                continue
            r = by_day.get(day)
            if share == "gap":
                pct = 100.0 if r is None else 100.0 * max(r.n_expected - r.n_intervals, 0) / max(r.n_expected, 1)
            else:
                pct = 0.0 if r is None else 100.0 * r.n_estimated / max(r.n_expected, 1)
            if pct > limit_pct:
                bad.append((day, pct))
        if not bad:
            continue
        worst = max(bad, key=lambda b: b[1])
        listed = ", ".join(f"{d.isoformat()} {pct:.1f} %" for d, pct in bad)
        what_en, what_zh = (("intervals missing", "区间缺失") if share == "gap"
                            else ("intervals estimated", "区间为估算"))
        found.append(Finding(
            f"{device_id}/{metric}", round(worst[1], 3), limit_pct, "%",
            f"{device_id} {metric}: {what_en} above {limit_pct:g} % on {listed}",
            f"{device_id} {metric}：{what_zh}超过 {limit_pct:g}%：{listed}",
            {"days": {d.isoformat(): round(pct, 3) for d, pct in bad}}))
    return found


def data_gap(p: DataGapParams, rows: Iterable[MeterDay], anchor: datetime | None, tz: ZoneInfo) -> Outcome:
    """Meters with a local day whose missing-interval share exceeds ``max_gap_pct``."""
    if anchor is None:
        return Skipped("no interval energy for this park yet: run `parkpulse aggregate`")
    return _day_share(rows, complete_days(anchor, tz, p.lookback_days), p.max_gap_pct, "gap")


def estimated_share(p: EstimatedShareParams, rows: Iterable[MeterDay], anchor: datetime | None,
                    tz: ZoneInfo) -> Outcome:
    """Meters with a local day whose estimated-interval share exceeds ``max_estimated_pct``."""
    if anchor is None:
        return Skipped("no interval energy for this park yet: run `parkpulse aggregate`")
    return _day_share(rows, complete_days(anchor, tz, p.lookback_days), p.max_estimated_pct, "estimated")


def counter_anomaly(p: CounterAnomalyParams, rows: Iterable[FlaggedInterval], anchor: datetime | None,
                    tz: ZoneInfo) -> Outcome:
    """Meters with an interval flagged with one of ``flags`` in the last ``lookback_hours`` before ``anchor``."""
    if anchor is None:
        return Skipped("no interval energy for this park yet: run `parkpulse aggregate`")
    start = anchor - timedelta(hours=p.lookback_hours)
    hits: dict[tuple[str, str], list[FlaggedInterval]] = defaultdict(list)
    for r in rows:
        if r.flags & p.mask and start <= r.ts <= anchor:
            hits[(r.device_id, r.metric)].append(r)
    found: list[Finding] = []
    for (device_id, metric), flagged in sorted(hits.items()):
        flagged.sort(key=lambda r: r.ts)
        names = sorted({n for r in flagged for n in describe_flags(r.flags & p.mask)})
        at = ", ".join(_iso(r.ts, tz) for r in flagged[:5]) + (" …" if len(flagged) > 5 else "")
        found.append(Finding(
            f"{device_id}/{metric}", float(len(flagged)), None, "intervals",
            f"{device_id} {metric}: {', '.join(names)} in {len(flagged)} interval(s) at {at}",
            f"{device_id} {metric}：{len(flagged)} 个区间出现 {', '.join(names)}，时间 {at}",
            {"flags": names, "intervals": [r.ts.isoformat() for r in flagged[:50]]}))
    return found


def meter_balance(p: MeterBalanceParams, rows: Iterable[BalanceRow], tz: ZoneInfo) -> Outcome:
    """Carriers whose balance is outside the limit in one of the ``lookback_periods`` newest periods."""
    by_carrier: dict[str, list[BalanceRow]] = defaultdict(list)
    for r in rows:
        by_carrier[r.carrier].append(r)
    if not by_carrier:
        return Skipped(f"no {p.grain} balance for this park: a carrier needs a level-1 and a level-2 meter")
    found: list[Finding] = []
    for carrier, periods in sorted(by_carrier.items()):
        newest = sorted(periods, key=lambda r: r.period_start)[-p.lookback_periods:]
        if p.limit_pct is None:
            bad = [r for r in newest if r.alarm]
        else:
            bad = [r for r in newest if r.difference_pct is None or abs(r.difference_pct) > p.limit_pct]
        if not bad:
            continue
        worst = max(bad, key=lambda r: abs(r.difference_pct) if r.difference_pct is not None else float("inf"))
        pct = "n/a (no supply)" if worst.difference_pct is None else f"{worst.difference_pct:+.2f} %"
        limit = "the aggregation policy's limit" if p.limit_pct is None else f"±{p.limit_pct:g} %"
        found.append(Finding(
            carrier, None if worst.difference_pct is None else round(worst.difference_pct, 4), p.limit_pct, "%",
            f"{carrier} balance ({p.grain} {_iso(worst.period_start, tz)[:16]}): supply − Σ level 2 = {pct}, "
            f"outside {limit}; check the level-2 meters and the unmetered load",
            f"{carrier} 一二级计量差（{_iso(worst.period_start, tz)[:16]}）{pct}，超出限值",
            {"grain": p.grain, "periods": [r.period_start.isoformat() for r in bad], "unit": worst.unit}))
    return found


def pue_limit(p: PueLimitParams, rows: Iterable[PueDay]) -> Outcome:
    """Data centres whose PUE over their last ``window_days`` days of results exceeds the site's limit."""
    by_site: dict[str, list[PueDay]] = defaultdict(list)
    for r in rows:
        by_site[r.site_id].append(r)
    if not by_site:
        return Skipped("no daily PUE for this park: it needs a data-centre site with dc_facility and dc_it meters")
    found: list[Finding] = []
    for site_id, days in sorted(by_site.items()):
        newest = max(r.day_start for r in days)
        window = [r for r in days if r.plausible and r.day_start > newest - timedelta(days=p.window_days)]
        facility, it = sum(r.facility_kwh for r in window), sum(r.it_kwh for r in window)
        if len(window) < p.min_days or it <= 0:
            continue
        pue = facility / it
        limit, how = p.limit_for(site_id)
        if pue <= limit:
            continue
        found.append(Finding(
            site_id, round(pue, 4), limit, "1",
            f"data centre {site_id}: PUE {pue:.3f} over {len(window)} day(s) ({facility:,.0f} kWh facility / "
            f"{it:,.0f} kWh IT) above its limit {limit:g} ({how})",
            f"数据中心 {site_id}：近 {len(window)} 天 PUE {pue:.3f}，超过限值 {limit:g}",
            {"days": len(window), "facility_kwh": facility, "it_kwh": it, "limit_basis": how}))
    return found


def contracted_demand(p: ContractedDemandParams, energy_by_interval: dict[datetime, float],
                      tz: ZoneInfo) -> Outcome:
    """The park when its 15-min demand (Σ level-1 import kWh × 60 / interval) exceeded the contracted maximum."""
    if p.contracted_demand_kw is None:
        return Skipped("contracted_demand_kw is not set for this park: `parkpulse alarms rules --park PARK "
                       "--set contracted_demand.contracted_demand_kw=KW`")
    if not energy_by_interval:
        return Skipped("no interval energy of a level-1 electricity import meter: register the boundary meter "
                       "with metering level 1")
    anchor = max(energy_by_interval)
    start = anchor - timedelta(hours=p.lookback_hours)
    per_hour = 60.0 / p.interval_minutes
    over = {ts: e * per_hour for ts, e in energy_by_interval.items()
            if start < ts <= anchor and e * per_hour > p.contracted_demand_kw}
    if not over:
        return []
    peak_ts = max(over, key=lambda ts: over[ts])
    peak = over[peak_ts]
    return [Finding(
        "park", round(peak, 3), p.contracted_demand_kw, "kW",
        f"demand {peak:,.1f} kW in the {p.interval_minutes}-min interval from {_iso(peak_ts, tz)} above the "
        f"contracted {p.contracted_demand_kw:,.0f} kW ({len(over)} interval(s) over in the last "
        f"{p.lookback_hours:g} h)",
        f"{_iso(peak_ts, tz)} 起 {p.interval_minutes} 分钟需量 {peak:,.1f} kW，超过合同最大需量 "
        f"{p.contracted_demand_kw:,.0f} kW",
        {"intervals_over": sorted(ts.isoformat() for ts in over)})]


def uplink_backlog(p: UplinkBacklogParams) -> Outcome:
    """A stub: the uplink to the municipal platform does not exist yet, so there is nothing to measure."""
    return Skipped(f"no uplink to a municipal platform exists yet; the rule (limit {p.max_backlog_records} "
                   "records) is evaluated once it does")


def utc(ts: datetime) -> datetime:
    """``ts`` in UTC (naive datetimes are refused: every stored time is aware)."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: pass an aware UTC time")
    return ts.astimezone(UTC)

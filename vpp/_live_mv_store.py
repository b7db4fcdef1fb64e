"""PostgreSQL adapter of live M&V: fixed baselines, per-interval delivery, and the meters' counters.

The baseline of an event is written once (at notification) with everything needed to rebuild flex's
:class:`~flex._baseline.BaselineResult` later, so the final evaluation uses exactly the baseline the park
was told about. The boundary meters' energy counters are read straight from ``readings`` so live M&V
does not wait for the 15-minute aggregation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from flex import Direction
from flex._baseline import AdjustmentResult, BaselineResult, EventWindow
from flex._baseline_method import BaselineMethod
from flex._calendar import DayType
from vpp._live_mv import Counter, LivePerformance

_EVENT_COLUMNS = """event_id, park_id, fixed_at, start_at, end_at, direction, committed_kw, requested_kw,
    interval_minutes, baseline_method, baseline_params, event_day, event_day_type, reference_day, baseline_days,
    adjustment, estimated_share, warnings, status, as_of, delivered_kwh, forecast_kwh, avg_reduction_kw,
    missing_intervals, quality_ok, quality_reasons"""


@dataclass(frozen=True)
class MvEvent:
    """An event under live M&V: its fixed baseline and the latest (or final) figures."""

    event_id: str
    park_id: str
    fixed_at: datetime
    window: EventWindow
    direction: Direction
    committed_kw: float
    requested_kw: float
    baseline: BaselineResult
    status: str = "active"
    as_of: datetime | None = None
    delivered_kwh: float | None = None
    forecast_kwh: float | None = None
    avg_reduction_kw: float | None = None
    missing_intervals: int | None = None
    quality_ok: bool | None = None
    quality_reasons: tuple[str, ...] = ()

    @property
    def interval_minutes(self) -> int:
        """The event's metering interval (the baseline method's)."""
        return self.baseline.method.interval_minutes


@dataclass(frozen=True, slots=True)
class MvIntervalRow:
    """One stored interval of an event."""

    ts: datetime
    baseline_kw: float
    planned_kw: float | None
    metered_kw: float | None
    reduction_kw: float | None
    complete: bool


def _adjustment_json(adjustment: AdjustmentResult) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(adjustment).items()}


def _adjustment(data: Mapping[str, Any]) -> AdjustmentResult:
    values: dict[str, Any] = dict(data) if data else {"kind": "none", "applied": False}
    for key in ("window_start", "window_end"):
        raw = values.get(key)
        if isinstance(raw, str):
            values[key] = datetime.fromisoformat(raw)
    return AdjustmentResult(**values)


class LiveMvStore:
    """Live M&V tables (migration 0016) and the counter readings, over a small connection pool."""

    def __init__(self, database_url: str | None = None, *, connection: psycopg.Connection[Any] | None = None,
                 max_size: int = 3) -> None:
        """Open a pool on ``database_url`` (closed by :meth:`close`), or use one autocommit ``connection``
        the caller owns (an API request's)."""
        self._own: psycopg.Connection[Any] | None = connection
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        if connection is None:
            if database_url is None:
                raise ValueError("LiveMvStore needs a database URL or a connection")
            self._pool = ConnectionPool(database_url, min_size=1, max_size=max_size, open=True,
                                        kwargs={"autocommit": True}, name="parkpulse-vpp-live-mv")

    def close(self) -> None:
        """Close the pool (a caller's connection stays open)."""
        if self._pool is not None:
            self._pool.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        if self._own is not None:
            yield self._own
            return
        assert self._pool is not None
        with self._pool.connection() as conn:
            yield conn

    # --- events and baselines ------------------------------------------------------------------------------

    def save_event(self, event: MvEvent) -> None:
        """Store (or replace, for a modified event) the event's fixed baseline and its intervals."""
        b = event.baseline
        with self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM vpp_mv_events WHERE event_id = %s", (event.event_id,))
            conn.execute(
                f"""INSERT INTO vpp_mv_events ({_EVENT_COLUMNS}) VALUES ({", ".join(["%s"] * 26)})""",
                (event.event_id, event.park_id, event.fixed_at, event.window.start, event.window.end,
                 event.direction.value, event.committed_kw, event.requested_kw, b.method.interval_minutes,
                 b.method.name, Jsonb(b.method.model_dump(mode="json")), b.event_day, b.event_day_type.value,
                 b.reference_day, list(b.days_used), Jsonb(_adjustment_json(b.adjustment)), b.estimated_share,
                 list(b.warnings), event.status, None, None, None, None, None, None, []),
            )
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO vpp_mv_intervals (event_id, ts, baseline_kw, baseline_unadjusted_kw)
                       VALUES (%s, %s, %s, %s)""",
                    [(event.event_id, *row) for row in
                     b.profile.select("ts", "baseline_kw", "baseline_unadjusted_kw").iter_rows()],
                )

    def get_event(self, event_id: str) -> MvEvent | None:
        """The event with its rebuilt baseline, or None."""
        with self._conn() as conn:
            row = conn.execute(f"SELECT {_EVENT_COLUMNS} FROM vpp_mv_events WHERE event_id = %s",
                               (event_id,)).fetchone()
            if row is None:
                return None
            profile = conn.execute(
                """SELECT ts, baseline_unadjusted_kw, baseline_kw FROM vpp_mv_intervals WHERE event_id = %s
                   ORDER BY ts""", (event_id,)).fetchall()
        return self._event(row, profile)

    def active_events(self) -> list[MvEvent]:
        """Every event still measured live (not final, not cancelled)."""
        with self._conn() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT event_id FROM vpp_mv_events WHERE status = 'active' ORDER BY start_at").fetchall()]
        return [e for e in (self.get_event(i) for i in ids) if e is not None]

    def list_events(self, park_id: str, *, limit: int = 50) -> list[MvEvent]:
        """The park's measured events, newest first."""
        with self._conn() as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT event_id FROM vpp_mv_events WHERE park_id = %s ORDER BY start_at DESC LIMIT %s",
                (park_id, limit)).fetchall()]
        return [e for e in (self.get_event(i) for i in ids) if e is not None]

    @staticmethod
    def _event(row: tuple[Any, ...], profile: Sequence[tuple[Any, ...]]) -> MvEvent:
        (event_id, park_id, fixed_at, start, end, direction, committed, requested, _minutes, _name, params,
         event_day, day_type, reference_day, days, adjustment, est, warnings, status, as_of, delivered, forecast,
         avg, missing, quality_ok, reasons) = row
        window = EventWindow(start.astimezone(UTC), end.astimezone(UTC))
        frame = pl.DataFrame(
            [(ts.astimezone(UTC), float(u), float(b)) for ts, u, b in profile],
            schema={"ts": pl.Datetime("us", "UTC"), "baseline_unadjusted_kw": pl.Float64, "baseline_kw": pl.Float64},
            orient="row",
        )
        baseline = BaselineResult(
            method=BaselineMethod.model_validate(params), window=window, event_day=event_day,
            event_day_type=DayType(day_type), reference_day=reference_day, profile=frame,
            days_used=tuple(days or ()), audit=(), adjustment=_adjustment(adjustment), estimated_share=est,
            warnings=tuple(warnings or ()),
        )
        return MvEvent(event_id, park_id, fixed_at.astimezone(UTC), window, Direction(direction), committed,
                       requested, baseline, status, as_of, delivered, forecast, avg, missing, quality_ok,
                       tuple(reasons or ()))

    def set_status(self, event_id: str, status: str) -> None:
        """Mark an event cancelled (or active again)."""
        with self._conn() as conn:
            conn.execute("UPDATE vpp_mv_events SET status = %s WHERE event_id = %s", (status, event_id))

    def save_live(self, event_id: str, perf: LivePerformance, *, final: bool = False,
                  quality: tuple[bool, Sequence[str]] | None = None) -> None:
        """Write the live (or final) figures and every interval's plan, metered demand and reduction."""
        with self._conn() as conn, conn.transaction():
            with conn.cursor() as cur:
                cur.executemany(
                    """UPDATE vpp_mv_intervals SET planned_kw = %s, metered_kw = %s, reduction_kw = %s,
                           complete = %s, updated_at = now() WHERE event_id = %s AND ts = %s""",
                    [(r.planned_kw, r.metered_kw, r.reduction_kw, r.complete, event_id, r.ts)
                     for r in perf.intervals],
                )
            conn.execute(
                """UPDATE vpp_mv_events SET as_of = %s, delivered_kwh = %s, forecast_kwh = %s,
                       avg_reduction_kw = %s, missing_intervals = %s,
                       status = CASE WHEN %s THEN 'final' ELSE status END,
                       quality_ok = %s, quality_reasons = %s WHERE event_id = %s""",
                (perf.as_of, perf.delivered_kwh, perf.forecast_kwh, perf.avg_reduction_kw, perf.missing_intervals,
                 final, quality[0] if quality else None, list(quality[1]) if quality else [], event_id),
            )

    def intervals(self, event_id: str) -> list[MvIntervalRow]:
        """The stored intervals of an event, in time order."""
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT ts, baseline_kw, planned_kw, metered_kw, reduction_kw, complete FROM vpp_mv_intervals
                   WHERE event_id = %s ORDER BY ts""", (event_id,)).fetchall()
        return [MvIntervalRow(r[0].astimezone(UTC), r[1], r[2], r[3], r[4], r[5]) for r in rows]

    # --- meters --------------------------------------------------------------------------------------------

    def counters(self, park_id: str, start: datetime, end: datetime) -> list[Counter]:
        """The boundary (level-1) meters' import/export counters in [start − 5 min, end + 5 min].

        Bad-quality readings (quality 3) are left out; the margin lets the first and the last interval
        boundary be interpolated between readings on both sides.
        """
        margin = timedelta(minutes=5)
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT s.series_id, s.metric, r.ts, r.value
                   FROM devices d JOIN series s ON s.device_key = d.device_key
                   JOIN readings r ON r.series_id = s.series_id
                   WHERE d.park_id = %s AND d.metering_level = 1
                     AND s.metric IN ('active_energy_import', 'active_energy_export')
                     AND r.ts >= %s AND r.ts <= %s AND r.quality < 3
                   ORDER BY s.series_id, r.ts""",
                (park_id, start - margin, end + margin),
            ).fetchall()
        series: dict[int, tuple[float, list[tuple[datetime, float]]]] = {}
        for series_id, metric, ts, value in rows:
            sign = -1.0 if metric == "active_energy_export" else 1.0
            series.setdefault(series_id, (sign, []))[1].append((ts.astimezone(UTC), float(value)))
        return list(series.values())

    def latest_power_kw(self, park_id: str, *, since: datetime) -> float | None:
        """Sum of the boundary meters' latest active power readings newer than ``since`` (None if any is older)."""
        with self._conn() as conn:
            rows = conn.execute(
                """SELECT s.series_id,
                          (SELECT r.value FROM readings r WHERE r.series_id = s.series_id AND r.ts >= %s
                           ORDER BY r.ts DESC LIMIT 1)
                   FROM devices d JOIN series s ON s.device_key = d.device_key
                   WHERE d.park_id = %s AND d.metering_level = 1 AND s.metric = 'active_power'""",
                (since, park_id),
            ).fetchall()
        if not rows or any(v is None for _, v in rows):
            return None
        return float(sum(v for _, v in rows))


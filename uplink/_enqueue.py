"""Compute and enqueue: the glue between the mapping, the database and the queues.

* :func:`enqueue_range` recomputes one park's records for a window from the database and enqueues them
  (``parkpulse uplink enqueue``); :func:`enqueue_records` stores given records (tests, imports).
* :func:`after_aggregate` is the hook ``parkpulse aggregate`` calls after each run: it recomputes every
  configured park from the earliest reading that run recomputed (late data revises what was sent, however
  late it came), at least the last ``uplink_lookback_days`` days and at most ``uplink_revision_horizon_days``,
  and refreshes the quality flags. It never raises; it returns lines to print.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from schemas.uplink_record import UplinkRecord
from uplink._endpoints import EndpointConfig, load_endpoints
from uplink._inputs import load_inputs
from uplink._items import load_items
from uplink._mapping import compute_records
from uplink._quality import refresh_quality
from uplink._settings import UplinkSettings
from uplink._store import EndpointQueue, EnqueueReport, upsert_records
from uplink.errors import UplinkError, UplinkStoreError

logger = logging.getLogger(__name__)


def queues(endpoints: Sequence[EndpointConfig]) -> list[EndpointQueue]:
    """The store's view of the configured endpoints."""
    return [EndpointQueue(e.name, e.profile, e.park, e.periods) for e in endpoints]


def _groups(endpoints: Sequence[EndpointConfig], park: str | None) -> dict[tuple[str, str], str]:
    """(park, profile) → enterprise code, for the endpoints of ``park`` (all parks when None)."""
    out: dict[tuple[str, str], str] = {}
    for ep in endpoints:
        if park is None or ep.park == park:
            out.setdefault((ep.park, ep.profile), ep.enterprise_code)
    return out


def compute_park(conn: psycopg.Connection[Any], park: str, profile: str, *, enterprise_code: str, start: date,
                 end: date, now: datetime) -> list[UplinkRecord]:
    """The profile's records of ``park`` for local ``[start, end)`` as computed from the database now."""
    table = load_items(profile)
    inputs = load_inputs(conn, table, park, enterprise_code=enterprise_code, start=start, end=end)
    return compute_records(table, inputs, start, end, now=now)


def enqueue_range(database_url: str, endpoints: Sequence[EndpointConfig], park: str, start: date, end: date, *,
                  now: datetime | None = None) -> EnqueueReport:
    """Recompute ``park``'s records for local ``[start, end)`` for every profile it is configured with, and
    enqueue them for its endpoints (idempotent)."""
    now = now or datetime.now(UTC)
    groups = _groups(endpoints, park)
    if not groups:
        raise UplinkError(f"no endpoint is configured for park {park!r}; add one to the endpoints file")
    total = EnqueueReport()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for (park_id, profile), code in sorted(groups.items()):
                records = compute_park(conn, park_id, profile, enterprise_code=code, start=start, end=end, now=now)
                total += upsert_records(conn, profile, records, queues(endpoints))
    except psycopg.errors.UndefinedTable as exc:
        raise UplinkStoreError(f"uplink tables missing ({exc.diag.message_primary}); run `parkpulse db migrate`"
                               ) from None
    except psycopg.OperationalError as exc:
        raise UplinkStoreError(f"database unreachable: {exc}; is it running (`parkpulse services up`)?") from None
    return total


def enqueue_records(database_url: str, endpoints: Sequence[EndpointConfig], profile: str,
                    records: Sequence[UplinkRecord]) -> EnqueueReport:
    """Store and enqueue given records of ``profile`` (their ``revision`` is ignored: the store assigns it)."""
    with psycopg.connect(database_url) as conn:
        return upsert_records(conn, profile, records, queues(endpoints))


def recompute_start(today: date, tz: ZoneInfo, earliest_change: datetime | None, *, lookback_days: int,
                    horizon_days: int) -> date:
    """First local day to recompute: the earliest changed day, but within ``[today - horizon, today - lookback]``."""
    start = today - timedelta(days=lookback_days)
    if earliest_change is not None:
        start = min(start, earliest_change.astimezone(tz).date())
    return max(start, today - timedelta(days=horizon_days))


def after_aggregate(database_url: str, reports_dir: Path | None = None, *, earliest_change: datetime | None = None,
                    endpoints_file: Path | None = None, lookback_days: int | None = None,
                    now: datetime | None = None) -> list[str]:
    """Hook for ``aggregation._cli.AFTER_RUN``: recompute and enqueue what the run changed, for every park.

    ``earliest_change`` is the earliest reading time the run recomputed from (its ``RunReport``); None
    recomputes only the look-back.
    """
    del reports_dir
    settings = UplinkSettings(database_url=database_url)
    path = endpoints_file or settings.uplink_endpoints_file
    if path is None:
        return []  # uplink not configured: nothing to do, nothing to say
    now = now or datetime.now(UTC)
    days = lookback_days or settings.uplink_lookback_days
    lines: list[str] = []
    try:
        endpoints = load_endpoints(path)
    except UplinkError as exc:
        return [f"uplink: {exc}"]
    for park in sorted({e.park for e in endpoints}):
        try:
            with psycopg.connect(database_url) as conn:
                tz = conn.execute("SELECT timezone FROM parks WHERE park_id = %s", (park,)).fetchone()
            zone = ZoneInfo(str(tz[0]) if tz else "Asia/Shanghai")
            today = now.astimezone(zone).date()
            start = recompute_start(today, zone, earliest_change, lookback_days=days,
                                    horizon_days=settings.uplink_revision_horizon_days)
            end = today + timedelta(days=1)
            report = enqueue_range(database_url, endpoints, park, start, end, now=now)
            flags = refresh_quality(database_url, endpoints, park, start, today, now=now)
            lines.append(f"uplink {park}: {report.new} new, {report.revised} revised, {report.unchanged} unchanged "
                         f"records; {flags} quality flags")
        except (UplinkError, psycopg.Error, OSError) as exc:
            logger.warning("uplink enqueue for %s failed: %s", park, exc)
            lines.append(f"uplink {park}: enqueue failed: {exc}")
    return lines

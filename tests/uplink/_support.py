"""Helpers of the uplink tests: records and endpoints of a test's own park."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.uplink_record import Period, UplinkRecord
from uplink._endpoints import EndpointAuth, EndpointConfig
from uplink._keys import format_record_key

SH = ZoneInfo("Asia/Shanghai")


def record(park: str, day: int, value: float, *, item: str = "01010001", period: Period = "day",
           month: int = 11, quality: str = "measured") -> UplinkRecord:
    """A record of ``park`` for local 2026-``month``-``day``."""
    start = datetime(2026, month, day, tzinfo=SH)
    return UplinkRecord("914403001234567890", format_record_key(park, item, period, start), 1, item, period, start,
                        value, "kWh", quality, 1.0, ("m1",), datetime(2026, 12, 1, tzinfo=UTC))  # type: ignore[arg-type]


def days(park: str, n: int, *, value: float = 100.0, first: int = 1) -> list[UplinkRecord]:
    """Daily records for ``n`` consecutive November days."""
    return [record(park, first + i, value + i) for i in range(n)]


def endpoint(park: str, suffix: str, base_url: str = "http://127.0.0.1:9", *, profile: str = "national-json",
             batch_size: int = 100, auth: EndpointAuth | None = None, interval: int = 15) -> EndpointConfig:
    """An endpoint of ``park`` named ``{park}-{suffix}``."""
    return EndpointConfig(name=f"{park}-{suffix}", profile=profile, park=park, enterprise_code="914403001234567890",
                          base_url=base_url, auth=auth or EndpointAuth(), batch_size=batch_size,
                          realtime_interval_min=interval)


def shift(r: UplinkRecord, hours: int) -> datetime:
    """A time ``hours`` after the record's period start (UTC)."""
    return r.period_start.astimezone(UTC) + timedelta(hours=hours)

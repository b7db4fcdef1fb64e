"""A park-month for the report tests: a boundary meter with a daily profile, three level-2 meters, a data
centre (facility and IT meters), a gas meter, and a few quarantined messages.

Every expected figure is computed here from the register increments written, never by the code under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from aggregation._jobs import AggregationJob
from aggregation._settings import AggregationSettings
from infra.db import SiteRecord
from tests.aggregation._seed import Meter, create_park, seed

SH = ZoneInfo("Asia/Shanghai")
OCT = datetime(2026, 10, 1, tzinfo=SH).astimezone(UTC)
NOV = datetime(2026, 11, 1, tzinfo=SH).astimezone(UTC)
Q = timedelta(minutes=15)
N_INTERVALS = 31 * 96


def boundary_kwh(ts: datetime) -> float:
    """Energy of the boundary meter's interval starting at ``ts``: 30-50 kWh, highest at local noon."""
    hour = ts.astimezone(SH).hour
    return 30.0 + 20.0 * math.sin(math.pi * hour / 24) ** 2


METERS = [
    Meter("main", per_interval=boundary_kwh, level=1, role="park_boundary", rated_power_kw=4000),
    Meter("office", per_interval=10.0, level=2, site="office", rated_power_kw=600),
    Meter("workshop", per_interval=12.0, level=2, site="workshop", rated_power_kw=1600),
    Meter("dc-facility", per_interval=15.0, level=2, site="dc", role="dc_facility", rated_power_kw=400),
    Meter("dc-it", per_interval=10.0, level=3, site="dc", role="dc_it", metadata={"pue_category": "2"}),
    Meter("gas", metric="gas_volume", per_interval=2.5, level=1, role="park_boundary"),
]
SITES = [SiteRecord("office", is_public_building=True, floor_area_m2=12_000), SiteRecord("workshop"),
         SiteRecord("dc", kind="data_centre")]
#: (reason, received_at) of quarantined messages: three in October, one in November (not in the report).
QUARANTINED = [("unregistered", datetime(2026, 10, 3, 8, tzinfo=SH)),
               ("unregistered", datetime(2026, 10, 9, tzinfo=SH)),
               ("bad_value", datetime(2026, 10, 31, 23, 59, tzinfo=SH)),
               ("bad_value", datetime(2026, 11, 1, tzinfo=SH))]


@dataclass(frozen=True)
class Expected:
    """Independent expectations for October."""

    month_kwh: dict[str, float]
    load_kw_sorted: list[float]
    pue: float = 15.0 / 10.0


def build_park(conn: psycopg.Connection, database_url: str, park_id: str) -> Expected:
    """Seed October, run the aggregation job (which publishes the month's indicators), add quarantine rows."""
    create_park(conn, park_id, SITES)
    conn.execute("UPDATE parks SET name = %s WHERE park_id = %s", ("深圳湾示范园区", park_id))
    seed(conn, park_id, METERS, OCT, NOV)
    AggregationJob(AggregationSettings(database_url=database_url, aggregation_park=park_id,
                                       aggregation_gap_timeout_s=0)).run()
    for reason, at in QUARANTINED:
        conn.execute("""INSERT INTO quarantine (received_at, source, park_id, device_id, reason, detail, n_rejected,
                                                raw, raw_length, raw_sha256)
                        VALUES (%s, 'mqtt', %s, 'ghost', %s, 'test', 2, %s, 2, sha256(%s))""",
                     (at, park_id, reason, b"{}", b"{}"))
    intervals = [OCT + i * Q for i in range(N_INTERVALS)]
    main = [boundary_kwh(t) for t in intervals]
    month = {m.device_id: float(m.per_interval) * N_INTERVALS for m in METERS if not callable(m.per_interval)}
    month["main"] = sum(main)
    return Expected(month, sorted((e * 4 for e in main), reverse=True))

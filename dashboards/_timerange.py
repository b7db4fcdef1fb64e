"""Grafana's relative time expressions for dashboard and panel ranges (the subset the boards use).

Dashboard ranges are ``now``, ``now-6h``, ``now+1d`` (units s m h d w M y). A panel's relative-time override
(``timeFrom``) follows ``rangeutil.describeTextRange``: ``6h`` means the last 6 hours, ``+24h`` the next 24
hours, both relative to now rather than to the dashboard's range.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Final

from dashboards._macros import TimeRange, add_months

_EXPR_RE: Final = re.compile(r"^now(?:([-+])(\d+)([smhdwMy]))?$")
_FIXED: Final[dict[str, timedelta]] = {
    "s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_relative(expr: str, now: datetime) -> datetime:
    """``now``, ``now-6h`` or ``now+2d`` as an instant (months and years are calendar steps)."""
    match = _EXPR_RE.match(expr.strip())
    if match is None:
        raise ValueError(f"unsupported time expression {expr!r}")
    sign, amount, unit = match.groups()
    if sign is None:
        return now
    count = int(amount) * (-1 if sign == "-" else 1)
    if unit in _FIXED:
        return now + count * _FIXED[unit]
    return add_months(now, count * (12 if unit == "y" else 1))


def dashboard_range(time_from: str, now: datetime, time_to: str = "now") -> TimeRange:
    """The dashboard's default range, evaluated at ``now``."""
    return TimeRange(parse_relative(time_from, now), parse_relative(time_to, now))


def panel_range(time_from: str | None, dashboard: TimeRange, now: datetime) -> TimeRange:
    """The range a panel queries: its ``timeFrom`` override if set, else the dashboard's."""
    if not time_from:
        return dashboard
    if time_from.startswith("+"):
        return TimeRange(now, parse_relative("now" + time_from, now))
    return TimeRange(parse_relative("now-" + time_from, now), now)

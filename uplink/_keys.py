"""Stable record keys: ``{park}|{data item}|{period}|{local ISO start}``.

The key names one data item's value for one period, so a resend or a recomputation of the same period
carries the same key and the platform (and our queue) replace instead of doubling. The start is written in
the park's local time with its UTC offset (``2026-11-20T00:00:00+08:00``) because days and months are
local; parsing gives back an aware datetime.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, get_args

from schemas.uplink_record import Period
from uplink.errors import RecordKeyError

PERIODS: Final[tuple[str, ...]] = get_args(Period)
_PART: Final = re.compile(r"[^|\s]{1,128}")


@dataclass(frozen=True, slots=True)
class RecordKey:
    """The parts of a record key."""

    park_id: str
    data_item_code: str
    period: Period
    period_start: datetime


def format_record_key(park_id: str, data_item_code: str, period: Period, period_start: datetime) -> str:
    """The key of one item's value for one period; ``period_start`` must be aware (local time zone)."""
    for what, part in (("park", park_id), ("data item code", data_item_code)):
        if not _PART.fullmatch(part):
            raise RecordKeyError(f"{park_id}|{data_item_code}", f"{what} {part!r} is empty, too long or holds "
                                 "'|' or white space")
    if period not in PERIODS:
        raise RecordKeyError(f"{park_id}|{data_item_code}|{period}", f"period must be one of {PERIODS}")
    if period_start.tzinfo is None or period_start.utcoffset() is None:
        raise RecordKeyError(f"{park_id}|{data_item_code}|{period}", "period start must be time-zone aware")
    return f"{park_id}|{data_item_code}|{period}|{period_start.isoformat()}"


def parse_record_key(key: str) -> RecordKey:
    """The parts of ``key``; raises :class:`RecordKeyError` naming what is wrong."""
    parts = key.split("|")
    if len(parts) != 4:
        raise RecordKeyError(key, f"expected 4 parts separated by '|', got {len(parts)}")
    park, item, period, start = parts
    for what, part in (("park", park), ("data item code", item)):
        if not _PART.fullmatch(part):
            raise RecordKeyError(key, f"{what} {part!r} is empty, too long or holds white space")
    if period not in PERIODS:
        raise RecordKeyError(key, f"period {period!r} is not one of {PERIODS}")
    try:
        when = datetime.fromisoformat(start)
    except ValueError:
        raise RecordKeyError(key, f"period start {start!r} is not an ISO 8601 date-time") from None
    if when.tzinfo is None:
        raise RecordKeyError(key, f"period start {start!r} has no UTC offset")
    return RecordKey(park, item, period, when)  # type: ignore[arg-type]  # checked against PERIODS above

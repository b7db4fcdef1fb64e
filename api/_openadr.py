"""OpenADR 3 report documents (REST/JSON, spec 3.0.1/3.1) built from ParkPulse results (pure).

Two reports, both in 15-min intervals under one ``AGGREGATED_REPORT`` resource (domain.md §5.2):

* availability — ``UP_REGULATION_AVAILABLE`` and ``DOWN_REGULATION_AVAILABLE`` (readingType FORECAST,
  units KW): the park's declared, derated flexibility for a chosen duration, slot by slot;
* event performance — ``BASELINE`` and ``USAGE`` (units KWH per interval), plus ``DELTA_USAGE``
  (usage − baseline) and ``DATA_QUALITY`` (OK / ESTIMATED / MISSING) so the VTN can settle and audit.

A report is tied to a VTN program and event (``programID`` is required by 3.0.x, ``eventID`` by all 3.x),
so both ids are inputs; ``clientName`` is the VEN's name at the VTN.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import polars as pl

INTERVAL_H: Final = 0.25
INTERVAL_ISO: Final = "PT15M"
AGGREGATED: Final = "AGGREGATED_REPORT"


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _descriptor(payload_type: str, reading_type: str | None, units: str | None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type}
    if reading_type:
        out["readingType"] = reading_type
    if units:
        out["units"] = units
    out.update(extra)
    return out


def _report(
    *, program_id: str, event_id: str, client_name: str, report_name: str, descriptors: list[dict[str, Any]],
    start: datetime, intervals: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "objectType": "REPORT",
        "programID": program_id,
        "eventID": event_id,
        "clientName": client_name,
        "reportName": report_name,
        "payloadDescriptors": descriptors,
        "resources": [
            {"resourceName": AGGREGATED, "intervalPeriod": {"start": _iso(start), "duration": INTERVAL_ISO},
             "intervals": intervals}
        ],
    }


def availability_report(
    forecast: pl.DataFrame,
    *,
    duration_h: float,
    program_id: str,
    event_id: str,
    client_name: str,
    park_id: str,
) -> dict[str, Any]:
    """UP/DOWN_REGULATION_AVAILABLE forecast for ``duration_h`` from a forecast frame
    (``slot_start``, ``duration_h``, ``up_kw``, ``down_kw``); empty frames are rejected."""
    rows = forecast.filter(pl.col("duration_h") == duration_h).sort("slot_start")
    if rows.is_empty():
        raise ValueError(f"the forecast has no slots for duration {duration_h} h")
    start = rows["slot_start"][0]
    intervals = [
        {
            "id": i,
            "payloads": [
                {"type": "UP_REGULATION_AVAILABLE", "values": [round(float(up), 3)]},
                {"type": "DOWN_REGULATION_AVAILABLE", "values": [round(float(down), 3)]},
            ],
        }
        for i, (up, down) in enumerate(zip(rows["up_kw"].to_list(), rows["down_kw"].to_list(), strict=True))
    ]
    return _report(
        program_id=program_id, event_id=event_id, client_name=client_name,
        report_name=f"{park_id}_flex_{_iso(start)}_{duration_h:g}h",
        descriptors=[
            _descriptor("UP_REGULATION_AVAILABLE", "FORECAST", "KW"),
            _descriptor("DOWN_REGULATION_AVAILABLE", "FORECAST", "KW"),
        ],
        start=start, intervals=intervals,
    )


def _quality(actual_kw: float | None, estimated_share: float | None) -> str:
    if actual_kw is None:
        return "MISSING"
    return "ESTIMATED" if (estimated_share or 0.0) > 0 else "OK"


def event_report(
    intervals: pl.DataFrame,
    *,
    program_id: str,
    event_id: str,
    client_name: str,
    park_id: str,
    local_event_id: str,
) -> dict[str, Any]:
    """BASELINE, USAGE, DELTA_USAGE and DATA_QUALITY per 15-min interval of an evaluated event.

    ``intervals`` is the stored M&V table (``ts``, ``baseline_kw``, ``actual_kw``, ``estimated_share``).
    Energies are kW × 0.25 h. USAGE is import energy (the spec allows no negative usage), so an exporting
    interval reports 0; a missing interval carries no USAGE and DATA_QUALITY MISSING.
    """
    rows = intervals.sort("ts")
    if rows.is_empty():
        raise ValueError(f"event {local_event_id} has no evaluated intervals")
    out: list[dict[str, Any]] = []
    for i, (baseline_kw, actual_kw, est) in enumerate(
        rows.select("baseline_kw", "actual_kw", "estimated_share").iter_rows()
    ):
        baseline_kwh = round(float(baseline_kw) * INTERVAL_H, 4)
        payloads: list[dict[str, Any]] = [{"type": "BASELINE", "values": [baseline_kwh]}]
        if actual_kw is not None:
            usage_kwh = round(float(actual_kw) * INTERVAL_H, 4)
            payloads.append({"type": "USAGE", "values": [max(0.0, usage_kwh)]})
            payloads.append({"type": "DELTA_USAGE", "values": [round(usage_kwh - baseline_kwh, 4)]})
        payloads.append({"type": "DATA_QUALITY", "values": [_quality(actual_kw, est)]})
        out.append({"id": i, "payloads": payloads})
    return _report(
        program_id=program_id, event_id=event_id, client_name=client_name,
        report_name=f"{park_id}_event_{local_event_id}",
        descriptors=[
            _descriptor("BASELINE", "ESTIMATED", "KWH"),
            _descriptor("USAGE", "DIRECT_READ", "KWH"),
            _descriptor("DELTA_USAGE", "DIRECT_READ", "KWH"),
            _descriptor("DATA_QUALITY", None, None),
        ],
        start=rows["ts"][0], intervals=out,
    )


def payload_values(report: dict[str, Any], payload_type: str) -> Sequence[Any]:
    """All values of one payload type across the report's intervals (for tests and logging)."""
    values: list[Any] = []
    for resource in report["resources"]:
        for interval in resource["intervals"]:
            values.extend(v for p in interval["payloads"] if p["type"] == payload_type for v in p["values"])
    return values

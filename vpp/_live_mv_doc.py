"""The one document shape of an event's live M&V, shared by the CLI, the API and the dashboard."""

from __future__ import annotations

from typing import Any

from vpp._live_mv_store import MvEvent, MvIntervalRow


def performance_document(event: MvEvent, rows: list[MvIntervalRow]) -> dict[str, Any]:
    """The JSON shape of an event's live M&V (shared by the CLI, the API and the dashboard)."""
    hours = event.interval_minutes / 60.0
    done = [r for r in rows if r.complete]
    planned_kwh = sum((r.planned_kw if r.planned_kw is not None else event.committed_kw) * hours for r in rows)
    duration_h = len(rows) * hours
    return {
        "event_id": event.event_id,
        "park_id": event.park_id,
        "status": event.status,
        "start": event.window.start.isoformat(),
        "end": event.window.end.isoformat(),
        "direction": event.direction.value,
        "requested_kw": event.requested_kw,
        "committed_kw": event.committed_kw,
        "baseline": {
            "fixed_at": event.fixed_at.isoformat(),
            "method": event.baseline.method.name,
            "interval_minutes": event.interval_minutes,
            "days_used": [d.isoformat() for d in event.baseline.days_used],
            "adjustment_applied": event.baseline.adjustment.applied,
            "warnings": list(event.baseline.warnings),
        },
        "as_of": event.as_of.isoformat() if event.as_of else None,
        "completed_intervals": len(done),
        "delivered_kwh": event.delivered_kwh,
        "planned_kwh": planned_kwh,
        "forecast_kwh": event.forecast_kwh,
        "avg_reduction_kw": event.avg_reduction_kw,
        "forecast_avg_kw": event.forecast_kwh / duration_h if event.forecast_kwh is not None and duration_h else None,
        "delivered_ratio": (event.avg_reduction_kw / event.committed_kw
                            if event.avg_reduction_kw is not None and event.committed_kw > 0 and done else None),
        "missing_intervals": event.missing_intervals,
        "quality_ok": event.quality_ok,
        "quality_reasons": list(event.quality_reasons),
        "intervals": [
            {"ts": r.ts.isoformat(), "baseline_kw": r.baseline_kw, "planned_kw": r.planned_kw,
             "metered_kw": r.metered_kw, "reduction_kw": r.reduction_kw, "complete": r.complete}
            for r in rows
        ],
    }

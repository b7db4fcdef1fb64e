"""The projection report as rows (JSON, CSV, API) and as a terminal table with the method and back-test.

``level`` is the stored, hysteresis-filtered 预警 level when the target has been evaluated
(``parkpulse targets evaluate``), else the level of the current ratio (``level_now``), marked
``level_source = "current ratio"``. A closed period's level is its final ratio's.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import date, datetime
from typing import Any, Final

from rich.table import Table

from alarms._projection_store import ProjectionReport, ProjectionRow
from alarms._targets import TARGET_INDICATORS

ROW_FIELDS: Final = ("indicator", "name_zh", "subject_kind", "subject", "variant", "period", "unit", "direction",
                     "target", "target_id", "source", "source_kind", "valid_from", "kind", "to_date", "projected",
                     "band_low", "band_high", "ratio", "level", "level_source", "level_now", "level_since",
                     "pending_level", "pending_count", "method", "method_zh", "backtest_months", "backtest_mape",
                     "backtest_bias", "band_method", "note")
_COLOUR: Final = {"green": "green", "yellow": "yellow", "red": "red"}


def row_dict(row: ProjectionRow) -> dict[str, Any]:
    """One row with every field of :data:`ROW_FIELDS` (floats at full precision, ``None`` when unknown)."""
    k, t, v = row.key, row.version.target, row.version
    proj = row.projection
    bt = proj.backtest if proj is not None else None
    stored = row.stored
    use_stored = stored is not None and row.running
    return {
        "indicator": k.indicator, "name_zh": TARGET_INDICATORS[k.indicator].name_zh,
        "subject_kind": k.subject_kind, "subject": k.subject, "variant": k.variant, "period": k.period_label,
        "unit": t.unit, "direction": TARGET_INDICATORS[k.indicator].direction, "target": t.value,
        "target_id": v.target_id, "source": t.source, "source_kind": t.source_kind,
        "valid_from": v.valid_from.isoformat(), "kind": row.kind,
        "to_date": proj.to_date if proj is not None and k.month == 0 else None,
        "projected": row.value, "band_low": row.low, "band_high": row.high,
        "ratio": row.ratio if row.ratio is None or math.isfinite(row.ratio) else None,
        "level": stored.level if use_stored and stored else row.level,
        "level_source": "stored" if use_stored else ("final" if not row.running and row.level else "current ratio"),
        "level_now": row.level,
        "level_since": stored.level_since.isoformat() if use_stored and stored else None,
        "pending_level": stored.pending_level if use_stored and stored else None,
        "pending_count": stored.pending_count if use_stored and stored else 0,
        "method": proj.method_text if proj is not None and proj.value is not None else None,
        "method_zh": proj.method_text_zh if proj is not None and proj.value is not None else None,
        "backtest_months": bt.n if bt is not None else 0,
        "backtest_mape": bt.mape if bt is not None else None,
        "backtest_bias": bt.bias if bt is not None else None,
        "band_method": proj.band_how if proj is not None and proj.value is not None else None,
        "note": row.note,
    }


def report_dict(report: ProjectionReport) -> dict[str, Any]:
    """The whole report: park, year, as-of day, the month the data runs to, and the rows."""
    return {"park_id": report.park_id, "timezone": report.timezone, "year": report.year,
            "as_of": report.as_of.isoformat(), "data_through": _before(report.cutoff),
            "generated_at": report.generated_at.isoformat(), "rows": [row_dict(r) for r in report.rows]}


def _before(cutoff: date) -> str:
    """The last closed month before ``cutoff`` (``YYYY-MM``)."""
    index = cutoff.year * 12 + cutoff.month - 2
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _json_default(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def to_json(report: ProjectionReport) -> str:
    """JSON of :func:`report_dict` (UTF-8 text, Chinese kept)."""
    return json.dumps(report_dict(report), ensure_ascii=False, indent=2, default=_json_default)


def to_csv(report: ProjectionReport) -> str:
    """One CSV line per target (header :data:`ROW_FIELDS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row_dict(row).items()})
    return buf.getvalue()


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("%", "1"):
        return f"{value:,.3f}" if unit == "1" else f"{value:,.2f}"
    return f"{value:,.4g}" if abs(value) < 100 else f"{value:,.0f}"


def _level_text(d: dict[str, Any]) -> str:
    level = d["level"]
    if level is None:
        return "—"
    text = f"[{_COLOUR[level]}]{level}[/]"
    if d["level_source"] == "current ratio":
        text += " (now)"
    if d["pending_level"]:
        text += f" → {d['pending_level']}? {d['pending_count']}d"
    return text


def to_table(report: ProjectionReport, *, compact: bool = False) -> Table:
    """A rich table: target, to date, projection with band, ratio and 预警 level per target.

    ``compact`` (80 columns, for the demo) drops the Chinese name, the subject column and the to-date column.
    """
    title = (f"{report.park_id} {report.year} 目标与预警 · targets and 预警 (as of {report.as_of}, data through "
             f"{_before(report.cutoff)})")
    table = Table(title=title, title_justify="left")
    headers = ((("quantity", "left"), ("period", "left"), ("target", "right"), ("projected [band]", "right"),
                ("ratio", "right"), ("预警", "left")) if compact else
               (("指标 indicator", "left"), ("对象 subject", "left"), ("期间", "left"), ("目标 target", "right"),
                ("至今 to date", "right"), ("预计 projected", "right"), ("区间 band", "right"), ("比值", "right"),
                ("预警", "left")))
    for header, justify in headers:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in report.rows:
        d = row_dict(row)
        unit = d["unit"]
        band = f"{_num(d['band_low'], unit)}–{_num(d['band_high'], unit)}" if d["band_low"] is not None else "—"
        ratio = "—" if row.ratio is None else ("∞" if not math.isfinite(row.ratio) else f"{row.ratio:.1%}")
        target = f"{_num(d['target'], unit)} {'' if unit == '1' else unit}".rstrip()
        period = f"{d['period']} {'' if d['kind'] == 'none' else d['kind']}".rstrip()
        if compact:
            subject = "" if d["subject_kind"] == "park" else f" {d['subject']}"
            table.add_row(f"{d['indicator']}{subject}", period, target,
                          f"{_num(d['projected'], unit)} [{band}]", ratio, _level_text(d))
            continue
        table.add_row(f"{d['name_zh']} {d['indicator']} ({d['variant']})",
                      "park" if d["subject_kind"] == "park" else f"{d['subject_kind']} {d['subject']}",
                      period, target, _num(d["to_date"], unit), _num(d["projected"], unit),
                      band, ratio, _level_text(d))
    return table


def method_lines(report: ProjectionReport) -> list[str]:
    """One line per projected quantity: the method, the back-test error and how the band was drawn."""
    lines: list[str] = []
    seen: set[tuple[str, str, str, str]] = set()
    for row in report.rows:
        k = row.key
        ident = (k.indicator, k.variant, k.subject_kind, k.subject)
        if ident in seen:
            continue
        seen.add(ident)
        label = f"{k.indicator} ({k.variant}{'' if k.subject_kind == 'park' else ', ' + k.subject})"
        proj = row.projection
        if proj is None or proj.value is None:
            lines.append(f"{label}: not projected — {row.note}")
            continue
        bt = proj.backtest
        if bt.mape is None or bt.bias is None:
            err = "back-test: no closed month with history before it yet"
        else:
            split = bt.by_method()
            parts = (" (" + ", ".join(f"{m.replace('_', ' ')} {n} mo {e:.1%}" for m, (n, e) in split.items()) + ")"
                     if len(split) > 1 else "")
            err = (f"back-test over {bt.n} months (each forecast from the months before it): MAPE {bt.mape:.1%}"
                   f"{parts}, bias {bt.bias:+.1%}")
        filled = (f"; {proj.filled} closed month(s) without data filled with the forecast" if proj.filled else "")
        lines.append(f"{label}: method {proj.method_text}{filled}; {err}; band: {proj.band_how}")
    return lines

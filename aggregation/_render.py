"""Rendering an indicator :class:`~aggregation._report.Report` as JSON, CSV or a rich table."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from rich.table import Table

from aggregation._indicators import CATALOGUE
from aggregation._report import Report

CSV_COLUMNS = ("park_id", "period", "period_start", "period_end", "subject", "indicator", "name_zh", "variant",
               "headline", "value", "unit", "numerator", "denominator", "estimated_share", "completeness", "status",
               "factor_vintages", "notes", "factors")
BY_SOURCE = ("co2_by_source", "energy_by_source")


def factor_text(label: str, prov: dict[str, Any]) -> str:
    """``label=value unit [vintage; source]``: one factor with its provenance, as one line of text."""
    return f"{label}={prov['value']:g} {prov['unit']} [{prov['vintage']}; {prov['source']}]"


def report_rows(report: Report) -> list[dict[str, Any]]:
    """One flat dict per result, in catalogue order (the shape of the CSV and JSON rows)."""
    order = {k: i for i, k in enumerate(CATALOGUE)}
    rows: list[dict[str, Any]] = []
    for r in sorted(report.results, key=lambda r: (order.get(r.indicator, 99), r.subject, not r.headline)):
        rows.append({
            "park_id": report.park_id, "period": report.period.label,
            "period_start": report.period.start.isoformat(), "period_end": report.period.end.isoformat(),
            "subject": r.subject, "indicator": r.indicator, "name_zh": r.name_zh, "variant": r.variant,
            "headline": r.headline, "value": r.value, "unit": r.unit, "numerator": r.numerator,
            "denominator": r.denominator, "estimated_share": r.estimated_share,
            "completeness": report.completeness, "status": r.status,
            "factor_vintages": {k: v["vintage"] for k, v in r.factors.items()}, "notes": list(r.notes),
            "factors": r.factors,
        })
    return rows


def to_json(report: Report) -> str:
    """The full report as JSON: header, every result, and the factors used with their provenance."""
    doc = {
        "park_id": report.park_id, "period": report.period.label, "kind": report.period.kind,
        "local_start": report.period.start.isoformat(), "local_end_exclusive": report.period.end.isoformat(),
        "timezone": report.timezone, "generated_at": report.generated_at.isoformat(),
        "metered_completeness": report.completeness, "declared_sources": list(report.declared_sources),
        "results": report_rows(report), "factors": report.factor_vintages, "warnings": report.warnings,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def to_csv(report: Report) -> str:
    """One CSV row per result (factor vintages and notes as ``;``-joined text)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in report_rows(report):
        row["factor_vintages"] = "; ".join(f"{k}={v}" for k, v in row["factor_vintages"].items())
        row["notes"] = "; ".join(row["notes"])
        row["factors"] = "; ".join(factor_text(k, v) for k, v in row["factors"].items())
        writer.writerow(row)
    return buf.getvalue()


def _fmt(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}"


def to_table(report: Report, all_variants: bool = False) -> Table:
    """A rich table of the headline results (every variant with ``all_variants``)."""
    share = "—" if report.completeness is None else f"{report.completeness:.1%}"
    table = Table(title=f"{report.park_id} · {report.period.label} ({report.timezone}) · metered completeness {share}",
                  show_lines=False)
    for col in ("指标 indicator", "variant", "subject", "value", "unit", "est. share", "status", "factor vintages",
                "note"):
        table.add_column(col, overflow="fold")
    for row in report_rows(report):
        if not (row["headline"] or all_variants) or (row["indicator"] in BY_SOURCE and not all_variants):
            continue
        est = "—" if row["estimated_share"] is None else f"{row['estimated_share']:.1%}"
        vintages = ", ".join(sorted(set(row["factor_vintages"].values())))
        note = row["notes"][0] if row["notes"] and (row["status"] != "ok" or row["indicator"].startswith("pue")) else ""
        table.add_row(row["name_zh"], row["variant"], row["subject"], _fmt(row["value"]), row["unit"], est,
                      row["status"], vintages, note)
    return table


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def by_source_table(report: Report) -> Table | None:
    """CO₂ (location, market) and 综合能耗 (当量值, 等价值) per source, with the factors applied."""
    rows = [r for r in report.results if r.indicator in BY_SOURCE and not r.subject]
    if not rows:
        return None
    columns = ("location:tCO2", "market:tCO2", "calorific:tce", "coal_equivalent:tce")
    values: dict[str, dict[str, float | None]] = {}
    activity: dict[str, str] = {}
    factors: dict[str, dict[str, str]] = {}
    for r in rows:
        prefix, _, source = r.variant.partition(":")
        values.setdefault(source, {})[f"{prefix}:{r.unit}"] = r.value
        if r.notes:
            activity.setdefault(source, r.notes[0].removeprefix("activity (numerator) ").split(" x ")[0])
        for label, prov in r.factors.items():
            factors.setdefault(source, {})[label] = f"{prov['value']:g} {prov['unit']}"
    table = Table(title=f"{report.park_id} · {report.period.label}: CO2 and 综合能耗 by source "
                        "(factor vintages: JSON/CSV formats)")
    for col in ("source", "activity", "tCO2 location", "tCO2 market", "tce 当量值", "tce 等价值", "factors"):
        table.add_column(col, overflow="fold", justify="right" if col.startswith("t") else "left")
    for source in sorted(values, key=lambda s: (s != "grid_electricity", s)):
        v = values[source]
        table.add_row(source, activity.get(source, ""), *(_num(v.get(c), 3) for c in columns),
                      "\n".join(dict.fromkeys(factors.get(source, {}).values())))
    totals = {f"{r.variant}:{r.unit}": r.value for r in report.results
              if r.indicator in ("total_co2", "total_energy") and not r.subject}
    table.add_row("total", "", _num(totals.get("location:tCO2"), 3), _num(totals.get("market:tCO2"), 3),
                  _num(totals.get("当量值:tce"), 3), _num(totals.get("等价值:tce"), 3), "", style="bold")
    return table

"""Declared (non-metered) inputs: industrial value added, fuels, certificates, emissions, heat, areas.

Imported from CSV (``parkpulse import <kind> FILE.csv``) with these columns (header row required)::

    park_id,period,subject,quantity,unit,source,note          (+ optional "kind" column)

* ``period`` — flows: ``2026-10``, ``2026-Q4``, ``2026`` or ``2026-10-01/2026-11-01`` (end exclusive);
  stocks (areas): the date the value is valid from, ``2026-10-01`` or ``2026-10``.
* ``subject`` — the site id for ``floor_area``, the fuel for ``fuel``, otherwise optional (an enterprise
  id, a certificate batch …); rows with different subjects add up.
* ``unit`` — the kind's unit; energy kinds also accept any energy unit of ``schemas.units``.
* ``source`` — mandatory: where the number comes from (统计局月报, invoice no., GEC platform …).

Parsing is pure and all-or-nothing: one bad line rejects the file with every problem listed. For a
period, flows are summed pro rata by days of overlap; stocks take the latest value valid at its end.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from aggregation._amounts import DeclaredTotals
from aggregation._factors import FactorRegistry
from aggregation._periods import Period, parse_period
from aggregation.errors import DeclaredDataError, PeriodError
from schemas.errors import UnitError
from schemas.units import conversion_factor, get_unit


@dataclass(frozen=True, slots=True)
class DeclaredKind:
    """One kind of declared input: canonical unit, flow or stock, what the subject means."""

    name: str
    unit: str
    stock: bool
    subject: Literal["optional", "site", "fuel"]
    description: str
    synonyms: tuple[str, ...] = ()


KINDS: Final[dict[str, DeclaredKind]] = {k.name: k for k in (
    DeclaredKind("value_added", "10^4 CNY", False, "optional", "industrial value added (工业增加值)",
                 ("万元", "1e4 CNY", "10k CNY")),
    DeclaredKind("gross_output", "10^4 CNY", False, "optional", "gross industrial output value (工业总产值), "
                 "reported to the online-monitoring platforms (uplink/)", ("万元", "1e4 CNY", "10k CNY")),
    DeclaredKind("product_output", "t", False, "optional", "output of a product with a consumption-limit standard "
                 "(产品产量; subject: the product), reported by uplink/", ("吨",)),
    DeclaredKind("fuel", "", False, "fuel", "fuel consumed, unit as in the factor registry (t or m3)"),
    DeclaredKind("green_certificates", "cert", False, "optional", "green electricity certificates retired "
                 "(绿证, excluding those bundled with green-power trades)", ("张", "certificate", "GEC")),
    DeclaredKind("green_power_trade", "MWh", False, "optional", "green-power trades delivered (绿电交易)"),
    DeclaredKind("process_emissions", "tCO2", False, "optional", "non-combustion process CO2", ("t",)),
    DeclaredKind("waste_heat_available", "GJ", False, "optional", "recoverable waste-heat resource (GB/T 1028)"),
    DeclaredKind("waste_heat_recovered", "GJ", False, "optional", "waste heat recovered where not metered"),
    DeclaredKind("renewable_heat", "GJ", False, "optional", "solar thermal, geothermal or biomass heat used"),
    DeclaredKind("heat_exported", "GJ", False, "optional", "heat delivered outside the park boundary"),
    DeclaredKind("floor_area", "m2", True, "site", "floor area of a building (site)", ("㎡", "m²")),
    DeclaredKind("roof_new_total", "m2", True, "optional", "roof area of new factory buildings", ("㎡", "m²")),
    DeclaredKind("roof_new_pv", "m2", True, "optional", "roof area of new factory buildings with PV", ("㎡", "m²")),
    DeclaredKind("roof_new_installable", "m2", True, "optional", "installable roof area of new factory buildings",
                 ("㎡", "m²")),
)}

#: CLI command → default kind (a ``kind`` column in the file may name another kind of the same family).
COMMANDS: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "value-added": ("value_added", ("value_added",)),
    "output": ("gross_output", ("gross_output", "product_output")),
    "fuels": ("fuel", ("fuel",)),
    "green-certificates": ("green_certificates", ("green_certificates", "green_power_trade")),
    "process-emissions": ("process_emissions", ("process_emissions",)),
    "waste-heat": ("waste_heat_available", ("waste_heat_available", "waste_heat_recovered", "heat_exported")),
    "renewable-heat": ("renewable_heat", ("renewable_heat",)),
    "areas": ("floor_area", ("floor_area", "roof_new_total", "roof_new_pv", "roof_new_installable")),
    "declared": ("", tuple(KINDS)),
}
REQUIRED_COLUMNS: Final = ("park_id", "period", "quantity", "source")


@dataclass(frozen=True, slots=True)
class DeclaredRow:
    """One validated declared value, in its kind's canonical unit."""

    park_id: str
    kind: str
    subject: str
    period_start: date
    period_end: date | None
    quantity: float
    unit: str
    source: str
    note: str | None = None


def _normalise(kind: DeclaredKind, qty: float, unit: str, subject: str, registry: FactorRegistry) -> tuple[float, str]:
    if kind.name == "fuel":
        fuel = registry.fuels.get(subject)
        if fuel is None:
            raise ValueError(f"unknown fuel {subject!r}; known: {', '.join(sorted(registry.fuels))}")
        if unit != fuel.unit:
            raise ValueError(f"fuel {subject} must be declared in {fuel.unit}, got {unit!r}")
        return qty, unit
    if unit == kind.unit or unit in kind.synonyms or (not unit and kind.unit):
        return qty, kind.unit
    try:
        if get_unit(kind.unit).dimension == "energy":
            return qty * conversion_factor(unit, kind.unit), kind.unit
    except UnitError as exc:
        raise ValueError(f"unit {unit!r}: {exc.reason}") from None
    raise ValueError(f"{kind.name} must be in {kind.unit}, got {unit!r}")


def _period(kind: DeclaredKind, text: str) -> tuple[date, date | None]:
    raw = text.strip()
    if kind.stock:
        try:
            if len(raw) == 7:
                return date.fromisoformat(raw + "-01"), None
            return date.fromisoformat(raw), None
        except ValueError:
            raise ValueError(f"{kind.name} is valid from a date: use YYYY-MM-DD or YYYY-MM, got {raw!r}") from None
    if "/" in raw:
        lo, _, hi = raw.partition("/")
        try:
            start, end = date.fromisoformat(lo.strip()), date.fromisoformat(hi.strip())
        except ValueError:
            raise ValueError(f"date range must be YYYY-MM-DD/YYYY-MM-DD, got {raw!r}") from None
        if end <= start:
            raise ValueError(f"empty date range {raw!r} (the end is exclusive)")
        return start, end
    try:
        period = parse_period(raw, today=date.max)
    except PeriodError as exc:
        raise ValueError(exc.reason) from None
    if period.kind == "ytd":
        raise ValueError("a declared flow needs a month, quarter, year or date range, not year to date")
    return period.start, period.end


def _parse_row(rec: dict[str, str], default_kind: str, allowed: tuple[str, ...],
               registry: FactorRegistry) -> DeclaredRow:
    """One CSV record → :class:`DeclaredRow`; raises ValueError naming the problem."""
    kind_name = rec.get("kind") or default_kind
    if kind_name not in allowed:
        raise ValueError(f"kind {kind_name!r} is not accepted here (one of {', '.join(allowed)})")
    kind = KINDS[kind_name]
    subject = rec.get("subject", "")
    if kind.subject in ("site", "fuel") and not subject:
        raise ValueError(f"{kind.name} needs a subject ({kind.subject})")
    if not rec["park_id"]:
        raise ValueError("park_id is empty")
    if not rec["source"]:
        raise ValueError("source is empty: say where the number comes from")
    qty = float(rec["quantity"])
    if not math.isfinite(qty) or qty < 0:
        raise ValueError(f"quantity must be a finite number >= 0, got {rec['quantity']!r}")
    qty, unit = _normalise(kind, qty, rec.get("unit", ""), subject, registry)
    start, end = _period(kind, rec["period"])
    return DeclaredRow(rec["park_id"], kind.name, subject, start, end, qty, unit, rec["source"],
                       rec.get("note") or None)


def parse_declared_csv(text: str, source_name: str, command: str, registry: FactorRegistry) -> list[DeclaredRow]:
    """Validate a declared-data CSV for ``command``; raises :class:`DeclaredDataError` listing all problems."""
    default_kind, allowed = COMMANDS[command]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise DeclaredDataError(source_name, 1, f"not a CSV header ({exc}); save the file as UTF-8 CSV") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DeclaredDataError(source_name, 1, f"missing column(s) {missing}; header is {header}")
    rows: list[DeclaredRow] = []
    problems: list[str] = []
    try:
        records = list(reader)
    except csv.Error as exc:
        raise DeclaredDataError(source_name, reader.line_num, f"not valid CSV ({exc}); save the file as UTF-8 CSV "
                                "and quote values that contain commas, quotes or line breaks") from None
    for line_no, raw in enumerate(records, start=2):
        extra = raw.pop(None, None)
        if extra:
            problems.append(f"line {line_no}: {len(header) + len(extra)} fields but the header has {len(header)}; "
                            "quote a value that contains a comma")
            continue
        rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not any(rec.values()):
            continue
        try:
            rows.append(_parse_row(rec, default_kind, allowed, registry))
        except (ValueError, KeyError) as exc:
            problems.append(f"line {line_no}: {exc}")
    if problems:
        raise DeclaredDataError(source_name, None, "; ".join(problems[:20])
                                + (f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""))
    if not rows:
        raise DeclaredDataError(source_name, None, "no data rows")
    return rows


def _overlap_fraction(row: DeclaredRow, period: Period) -> float:
    if row.period_end is None:
        return 0.0
    lo, hi = max(row.period_start, period.start), min(row.period_end, period.end)
    if hi <= lo:
        return 0.0
    return (hi - lo).days / (row.period_end - row.period_start).days


def declared_totals(rows: list[DeclaredRow], period: Period) -> DeclaredTotals:
    """Sum flows pro rata over ``period`` and take the stocks valid at its end (latest first)."""
    flows: dict[str, float] = {}
    fuels: dict[str, float] = {}
    seen: dict[str, bool] = {}
    sources: set[str] = set()
    for r in rows:
        if KINDS[r.kind].stock:
            continue
        frac = _overlap_fraction(r, period)
        if frac <= 0:
            continue
        sources.add(r.source)
        seen[r.kind] = True
        if r.kind == "fuel":
            fuels[r.subject] = fuels.get(r.subject, 0.0) + r.quantity * frac
        else:
            flows[r.kind] = flows.get(r.kind, 0.0) + r.quantity * frac
    stocks: dict[tuple[str, str], DeclaredRow] = {}
    for r in sorted((r for r in rows if KINDS[r.kind].stock), key=lambda r: r.period_start):
        if r.period_start < period.end:
            stocks[(r.kind, r.subject)] = r
    for r in stocks.values():
        sources.add(r.source)

    def stock_sum(kind: str) -> float | None:
        vals = [r.quantity for (k, _), r in stocks.items() if k == kind]
        return sum(vals) if vals else None

    return DeclaredTotals(
        value_added_10k_cny=flows.get("value_added") if seen.get("value_added") else None,
        fuels=fuels,
        green_certificates=flows.get("green_certificates", 0.0),
        green_trade_mwh=flows.get("green_power_trade", 0.0),
        process_emissions_t=flows.get("process_emissions", 0.0),
        waste_heat_available_gj=flows.get("waste_heat_available") if seen.get("waste_heat_available") else None,
        waste_heat_recovered_gj=flows.get("waste_heat_recovered", 0.0),
        renewable_heat_gj=flows.get("renewable_heat", 0.0),
        heat_exported_gj=flows.get("heat_exported", 0.0),
        roof_new_total_m2=stock_sum("roof_new_total"),
        roof_new_pv_m2=stock_sum("roof_new_pv"),
        roof_new_installable_m2=stock_sum("roof_new_installable"),
        floor_areas_m2={s: r.quantity for (k, s), r in stocks.items() if k == "floor_area"},
        sources=tuple(sorted(sources)),
    )


def affected_months(rows: list[DeclaredRow]) -> set[tuple[str, date]]:
    """(park, month start) pairs whose indicators a set of declared rows can change."""
    out: set[tuple[str, date]] = set()
    for r in rows:
        end = r.period_end or date(r.period_start.year + 1, 12, 31)
        current = date(r.period_start.year, r.period_start.month, 1)
        while current < end:
            out.add((r.park_id, current))
            current = date(current.year + (current.month == 12), current.month % 12 + 1, 1)
    return out

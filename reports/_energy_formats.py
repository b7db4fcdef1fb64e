"""Per-meter energy (:class:`~aggregation._meter_energy.MeterEnergyRow`) as JSON, CSV or a rich table.

JSON and CSV keep full float precision (the shortest text that reads back to the same float, as
``repr``), so a 700 MWh month survives a round trip to the kWh and beyond; the table is for people.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import orjson
from rich import box
from rich.table import Table

from aggregation._meter_energy import MeterEnergyRow
from reports import _labels as lbl

CSV_COLUMNS: Final = ("device_id", "metric", "carrier", "metering_level", "site_id", "role", "unit", "period",
                      "period_start", "energy", "estimated_energy", "estimated_share", "n_intervals", "n_expected",
                      "completeness", "quality", "flags", "flag_names")


def row_dict(row: MeterEnergyRow) -> dict[str, Any]:
    """One row as a flat dict (the JSON object and the CSV row; ``period_start`` is UTC ISO 8601)."""
    return {
        "device_id": row.device_id, "metric": row.metric, "carrier": row.carrier, "metering_level": row.metering_level,
        "site_id": row.site_id, "role": row.role, "unit": row.unit, "period": row.period,
        "period_start": row.period_start.isoformat(), "energy": row.energy, "estimated_energy": row.estimated_energy,
        "estimated_share": row.estimated_share, "n_intervals": row.n_intervals, "n_expected": row.n_expected,
        "completeness": row.completeness, "quality": row.quality, "flags": row.flags,
        "flag_names": list(row.flag_names),
    }


def to_json(rows: Sequence[MeterEnergyRow], *, park_id: str, timezone: str, grain: str, start: date,
            end: date) -> str:
    """The rows with their request: park, time zone, grain and the local window ``[from, to)``."""
    doc = {"park_id": park_id, "timezone": timezone, "grain": grain, "from": start.isoformat(),
           "to": end.isoformat(), "rows": [row_dict(r) for r in rows]}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ";".join(value)
    return value


def to_csv(rows: Sequence[MeterEnergyRow]) -> str:
    """One CSV line per meter and period; floats as ``repr``; ``flag_names`` joined with ``;``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row_dict(row).items()})
    return buf.getvalue()


_SHORT_METRIC: Final = {"active_energy_import": "import", "active_energy_export": "export",
                         "generated_energy": "generated", "gas_volume": "gas", "heat_energy": "heat",
                         "water_volume": "water", "cooling_energy": "cooling", "steam_mass": "steam",
                         "recovered_heat_energy": "recovered", "reactive_energy_import": "reactive"}


def to_table(rows: Sequence[MeterEnergyRow], title: str) -> Table:
    """A compact rich table for the terminal (numbers rounded for reading; JSON or CSV carry exact values)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("meter", overflow="fold", min_width=6)
    table.add_column("metric", overflow="fold", min_width=6)
    table.add_column("lvl", justify="right")
    table.add_column("period", no_wrap=True)
    table.add_column("energy", justify="right", no_wrap=True)
    table.add_column("est.", justify="right", no_wrap=True)
    table.add_column("compl.", justify="right", no_wrap=True)
    table.add_column("quality", no_wrap=True)
    with_flags = any(r.flags for r in rows)
    if with_flags:
        table.add_column("flags", overflow="fold")
    for r in rows:
        cells = [r.device_id, _SHORT_METRIC.get(r.metric, r.metric),
                 "—" if r.metering_level is None else str(r.metering_level), r.period, lbl.human(r.energy, r.unit),
                 lbl.pct(r.estimated_share), lbl.pct(r.completeness), r.quality]
        table.add_row(*cells, *([", ".join(r.flag_names)] if with_flags else []))
    return table

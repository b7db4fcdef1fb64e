"""The monthly report as an Excel workbook (XlsxWriter): one sheet per section, native Excel charts.

Numbers are written as numbers (never text), with the unit in the column header, or in a ``unit``
column where one table mixes carriers; shares are fractions shown with a percent format. Charts are
native Excel charts over the sheet's own cells, so Excel draws the Chinese labels with its own fonts and
the server needs no CJK font for the workbook.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Final

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from reports import _labels as lbl
from reports._data import MonthlyData

_WIDE: Final = 34
_NUMBER: Final = "#,##0.000"
_PRECISE: Final = "#,##0.000000"
_PCT: Final = "0.00%"


class _Formats:
    """The workbook's cell formats, created once."""

    def __init__(self, wb: Workbook) -> None:
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.header = wb.add_format({"bold": True, "bg_color": "#dbe7f3", "text_wrap": True, "valign": "top",
                                     "border": 1})
        self.text = wb.add_format({"valign": "top"})
        self.wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        self.number = wb.add_format({"num_format": _NUMBER})
        self.precise = wb.add_format({"num_format": _PRECISE})
        self.pct = wb.add_format({"num_format": _PCT})
        self.int = wb.add_format({"num_format": "#,##0"})
        self.date = wb.add_format({"num_format": "yyyy-mm-dd"})
        self.note = wb.add_format({"italic": True, "font_color": "#7f4f00", "text_wrap": True})


def _table(ws: Worksheet, row: int, headers: Sequence[str], rows: Sequence[Sequence[Any]],
           formats: Sequence[Format | None], *, fmt: _Formats) -> int:
    """Write a header row and data rows from ``row``; ``None`` cells stay empty. Returns the next free row."""
    for col, h in enumerate(headers):
        ws.write_string(row, col, h, fmt.header)
    for r, values in enumerate(rows, start=row + 1):
        for col, value in enumerate(values):
            cell_format = formats[col] if col < len(formats) else None
            if value is None:
                continue
            if isinstance(value, bool):
                ws.write_string(r, col, "是 yes" if value else "否 no", cell_format)
            elif isinstance(value, int | float):
                ws.write_number(r, col, value, cell_format)
            else:
                ws.write(r, col, value, cell_format)
    return row + 1 + len(rows)


def _not_computed(ws: Worksheet, row: int, what: str, fmt: _Formats) -> int:
    ws.write_string(row, 0, f"{lbl.NOT_COMPUTED}: {what}", fmt.note)
    return row + 2


def _summary(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["summary"])
    ws.set_column(0, 0, _WIDE)
    ws.set_column(1, 1, 28)
    ws.set_column(2, 3, 14)
    ws.write_string(0, 0, lbl.TITLE, fmt.title)
    facts: list[tuple[str, Any, Format | None]] = [
        (lbl.both("园区", "park"), lbl.park_label(data.park_id, data.park_name), None),
        (lbl.both("月份", "month"), data.period, None),
        (lbl.both("本地起止", "local start – end (exclusive)"),
         f"{data.local_start.isoformat()} – {data.local_end.isoformat()}", None),
        (lbl.both("时区", "time zone"), data.timezone, None),
        (lbl.both("生成时间", "generated (UTC)"), data.generated_at.strftime("%Y-%m-%d %H:%M:%S"), None),
        (lbl.both("状态", "state"), lbl.both("已结账", "closed") if data.closed else lbl.both("暂定", "provisional"),
         None),
        (lbl.column("completeness"), data.metered_completeness, fmt.pct),
    ]
    row = 2
    for label, value, cell_format in facts:
        ws.write_string(row, 0, label, fmt.header)
        if value is None:
            ws.write_string(row, 1, lbl.NONE)
        elif isinstance(value, float):
            ws.write_number(row, 1, value, cell_format)
        else:
            ws.write_string(row, 1, str(value))
        row += 1
    for note in data.notes:
        ws.write_string(row, 0, note, fmt.note)
        row += 1
    row += 1
    headline = [r for r in data.indicators if r.headline]
    if not headline:
        _not_computed(ws, row, "no indicators published", fmt)
        return
    _table(ws, row, [lbl.column("indicator"), lbl.column("variant"), lbl.column("value"), lbl.column("unit")],
           [(lbl.indicator_name(r.indicator, r.name_zh), lbl.lookup(lbl.VARIANT, r.variant)
             + (f" · {r.subject}" if r.subject else ""), r.value, r.unit) for r in headline],
           [fmt.wrap, fmt.text, fmt.precise, fmt.text], fmt=fmt)


def _indicators(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["indicators"])
    ws.set_column(0, 0, _WIDE)
    ws.set_column(1, 2, 20)
    ws.set_column(3, 3, 18)
    ws.set_column(4, 11, 13)
    ws.set_column(12, 12, 60)
    ws.freeze_panes(1, 1)
    headers = [lbl.column("indicator"), "id", lbl.column("variant"), lbl.column("subject"), lbl.column("value"),
               lbl.column("unit"), lbl.both("主口径", "headline"), lbl.column("estimated_share"),
               lbl.column("completeness"), lbl.column("status"), lbl.column("revision"), lbl.column("vintages"),
               lbl.both("说明", "notes")]
    rows = [(lbl.indicator_name(r.indicator, r.name_zh), r.indicator, lbl.lookup(lbl.VARIANT, r.variant),
             r.subject or None, r.value, r.unit, r.headline, r.estimated_share, r.completeness, r.status, r.revision,
             "; ".join(r.vintages) or None, "; ".join(r.notes) or None) for r in data.indicators]
    if not rows:
        _not_computed(ws, 0, "no indicators published for this month (run `parkpulse aggregate`)", fmt)
        return
    _table(ws, 0, headers, rows, [fmt.wrap, fmt.text, fmt.text, fmt.text, fmt.precise, fmt.text, fmt.text, fmt.pct,
                                  fmt.pct, fmt.text, fmt.int, fmt.wrap, fmt.wrap], fmt=fmt)


def _by_source(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["by_source"])
    ws.set_column(0, 0, 28)
    ws.set_column(1, 4, 20)
    if not data.by_source:
        _not_computed(ws, 0, "co2_by_source / energy_by_source are not published for this month", fmt)
        return
    headers = [lbl.column("source"), lbl.column("co2_location"), lbl.column("co2_market"),
               lbl.column("energy_calorific"), lbl.column("energy_coal_equivalent")]
    rows = [(lbl.lookup(lbl.SOURCE, s.source), s.co2_location_t, s.co2_market_t, s.energy_calorific_tce,
             s.energy_coal_equivalent_tce) for s in data.by_source]
    _table(ws, 0, headers, rows, [fmt.text, fmt.precise, fmt.precise, fmt.precise, fmt.precise], fmt=fmt)


def _meters(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["meters"])
    ws.set_column(0, 0, 16)
    ws.set_column(1, 2, 18)
    ws.set_column(3, 5, 10)
    ws.set_column(6, 12, 14)
    ws.set_column(13, 13, 40)
    ws.freeze_panes(1, 1)
    if not data.meters:
        _not_computed(ws, 0, "no meter rollups for this month", fmt)
        return
    headers = [lbl.column("device"), lbl.column("metric"), lbl.column("carrier"), lbl.column("level"),
               lbl.column("site"), lbl.column("unit"), lbl.column("energy", "unit"),
               lbl.column("estimated_energy", "unit"), lbl.column("estimated_share"),
               lbl.both("有效时段", "intervals present"), lbl.both("应有时段", "intervals expected"),
               lbl.column("completeness"), lbl.column("quality"), lbl.column("flags")]
    rows = [(m.device_id, m.metric, m.carrier, m.metering_level, m.site_id, m.unit, m.energy, m.estimated_energy,
             m.estimated_share, m.n_intervals, m.n_expected, m.completeness, lbl.lookup(lbl.QUALITY, m.quality),
             ", ".join(m.flag_names) or None) for m in data.meters]
    _table(ws, 0, headers, rows, [fmt.text, fmt.text, fmt.text, fmt.int, fmt.text, fmt.text, fmt.precise,
                                  fmt.precise, fmt.pct, fmt.int, fmt.int, fmt.pct, fmt.text, fmt.wrap], fmt=fmt)


def _balance(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["balance"])
    ws.set_column(0, len(data.balance.columns), 16)
    if not data.balance.rows:
        _not_computed(ws, 0, "no balance for this month (needs level-1 and level-2 meters of a carrier)", fmt)
        return
    cols = lbl.balance_order(data.balance.columns)
    index = {c: i for i, c in enumerate(data.balance.columns)}
    headers = [" ".join(lbl.BALANCE_COLUMNS.get(c, (c, ""))).strip() for c in cols]
    formats = [fmt.precise if c.endswith(("energy", "difference")) else fmt.number if c == "difference_pct"
               else fmt.text for c in cols]
    rows = [tuple(lbl.lookup(lbl.CARRIER, r[index[c]]) if c == "carrier" else r[index[c]] for c in cols)
            for r in data.balance.rows]
    _table(ws, 0, headers, rows, formats, fmt=fmt)


def _quality(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["quality"])
    ws.set_column(0, 1, 22)
    ws.set_column(2, 8, 16)
    row = _table(ws, 0, [lbl.column("carrier"), lbl.column("metric"), lbl.column("unit"),
                         lbl.column("energy", "unit"), lbl.column("estimated_energy", "unit"),
                         lbl.column("estimated_share"), lbl.both("有效时段", "intervals present"),
                         lbl.both("应有时段", "intervals expected"), lbl.column("completeness"),
                         lbl.both("表计数", "meters")],
                 [(lbl.lookup(lbl.CARRIER, q.carrier), q.metric, q.unit, q.energy, q.estimated_energy,
                   q.estimated_share, q.n_intervals, q.n_expected, q.completeness, q.n_meters) for q in data.quality],
                 [fmt.text, fmt.text, fmt.text, fmt.precise, fmt.precise, fmt.pct, fmt.int, fmt.int, fmt.pct, fmt.int],
                 fmt=fmt)
    row += 1
    ws.write_string(row, 0, lbl.both("隔离的消息", "Quarantined input this month"), fmt.title)
    row += 1
    if not data.quarantine:
        ws.write_string(row, 0, lbl.both("无", "none"))
        return
    _table(ws, row, [lbl.column("reason"), lbl.column("source"), lbl.column("messages"), lbl.column("rows_rejected")],
           [(q.reason, q.source, q.messages, q.readings_rejected) for q in data.quarantine],
           [fmt.text, fmt.text, fmt.int, fmt.int], fmt=fmt)


def _daily(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["daily"])
    ws.set_column(0, 0, 12)
    if not data.daily:
        _not_computed(ws, 0, "no daily park rollups for this month", fmt)
        return
    keys = sorted({(d.carrier, d.metric, d.unit) for d in data.daily})
    days = sorted({d.day for d in data.daily})
    value = {(d.day, d.carrier, d.metric): d.energy for d in data.daily}
    ws.set_column(1, len(keys), 20)
    headers = [lbl.column("date"), *(f"{lbl.lookup(lbl.CARRIER, c)} · {lbl.lookup(lbl.METRIC, m)} ({u})"
                                      for c, m, u in keys)]
    _table(ws, 0, headers, [(day, *(value.get((day, c, m)) for c, m, _ in keys)) for day in days],
           [fmt.date, *([fmt.precise] * len(keys))], fmt=fmt)
    name = lbl.SHEETS["daily"]
    anchor = 1
    for carrier in sorted({c for c, _, _ in keys}):
        chart = wb.add_chart({"type": "column"})
        unit = ""
        for col, (c, _m, u) in enumerate(keys, start=1):
            if c != carrier:
                continue
            unit = u
            chart.add_series({"name": [name, 0, col], "categories": [name, 1, 0, len(days), 0],
                              "values": [name, 1, col, len(days), col]})
        chart.set_title({"name": f"{lbl.SECTIONS['daily']} · {lbl.lookup(lbl.CARRIER, carrier)}"})
        chart.set_y_axis({"name": unit})
        chart.set_x_axis({"date_axis": True, "num_format": "mm-dd"})
        chart.set_size({"width": 720, "height": 300})
        ws.insert_chart(anchor, len(keys) + 2, chart)
        anchor += 16


def _load(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["load"])
    ws.set_column(0, 1, 18)
    if data.load is None or not data.load.load_kw:
        _not_computed(ws, 0, "no level-1 electricity import meter with interval energy this month", fmt)
        return
    load = data.load
    _table(ws, 0, [lbl.column("rank_hours"), lbl.column("load_kw")],
           [((i + 1) * load.interval_h, kw) for i, kw in enumerate(load.load_kw)], [fmt.number, fmt.precise], fmt=fmt)
    name, n = lbl.SHEETS["load"], len(load.load_kw)
    chart = wb.add_chart({"type": "scatter", "subtype": "straight"})
    chart.add_series({"name": lbl.column("load_kw"), "categories": [name, 1, 0, n, 0], "values": [name, 1, 1, n, 1]})
    chart.set_title({"name": lbl.SECTIONS["load"]})
    chart.set_x_axis({"name": lbl.column("rank_hours"), "min": 0})
    chart.set_y_axis({"name": lbl.column("load_kw"), "min": 0})
    chart.set_legend({"none": True})
    chart.set_size({"width": 720, "height": 320})
    ws.insert_chart(1, 3, chart)


def _pue(wb: Workbook, data: MonthlyData, fmt: _Formats) -> None:
    ws = wb.add_worksheet(lbl.SHEETS["pue"])
    ws.set_column(0, 0, 12)
    ws.set_column(1, 4, 16)
    _table(ws, 0, [lbl.column("date"), lbl.column("site"), lbl.column("pue"), lbl.column("facility_kwh"),
                   lbl.column("it_kwh")],
           [(p.day, p.site_id, p.pue, p.facility_kwh, p.it_kwh) for p in data.pue],
           [fmt.date, fmt.text, fmt.precise, fmt.precise, fmt.precise], fmt=fmt)
    name = lbl.SHEETS["pue"]
    chart = wb.add_chart({"type": "line"})
    start = 1
    for site in sorted({p.site_id for p in data.pue}):
        count = sum(1 for p in data.pue if p.site_id == site)
        chart.add_series({"name": site, "categories": [name, start, 0, start + count - 1, 0],
                          "values": [name, start, 2, start + count - 1, 2], "marker": {"type": "circle", "size": 3}})
        start += count
    chart.set_title({"name": lbl.SECTIONS["pue"]})
    chart.set_x_axis({"date_axis": True, "num_format": "mm-dd"})
    chart.set_y_axis({"name": "PUE"})
    chart.set_size({"width": 720, "height": 300})
    ws.insert_chart(1, 6, chart)


def write_xlsx(data: MonthlyData) -> bytes:
    """The workbook's bytes: summary, indicators, by source, meters, balance, quality, daily, load (, PUE)."""
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "remove_timezone": True})
    wb.set_properties({"title": f"{lbl.TITLE} · {data.park_id} · {data.period}", "author": "ParkPulse",
                       "comments": "generated by parkpulse report monthly"})
    fmt = _Formats(wb)
    for section in (_summary, _indicators, _by_source, _meters, _balance, _quality, _daily, _load):
        section(wb, data, fmt)
    if data.has_data_centre:
        _pue(wb, data, fmt)
    wb.close()
    return buf.getvalue()

"""The monthly report as a PDF (ReportLab platypus, A4 portrait), bilingual, with the CJK font embedded.

ReportLab is pip-only (no Pango or Cairo): the TrueType CJK font found by :mod:`reports._fonts` is
registered once and embedded as a subset, so the PDF shows the same glyphs on any reader. Before a
single page is laid out, every string the report will print is checked against the font's character
map: a missing glyph stops the report with the font to install instead of printing a box.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, Final

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from reports import _labels as lbl
from reports._charts import daily_energy_chart, load_duration_chart, pue_chart
from reports._data import MonthlyData
from reports._fonts import CjkFont

FONT_NAME: Final = "ParkPulseCJK"
_MARGIN: Final = 14 * mm
_FRAME_W: Final = A4[0] - 2 * _MARGIN


def _register(font: CjkFont) -> str:
    """Register the font with ReportLab under one name per file (idempotent)."""
    name = f"{FONT_NAME}-{''.join(ch for ch in font.path.stem if ch.isalnum())}"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont(name, str(font.path), subfontIndex=0))
    return name


class _Styles:
    def __init__(self, font: str) -> None:
        self.title = ParagraphStyle("title", fontName=font, fontSize=16, leading=21, spaceAfter=4)
        self.h1 = ParagraphStyle("h1", fontName=font, fontSize=12, leading=16, spaceBefore=8, spaceAfter=4,
                                 textColor=colors.HexColor("#16426e"), keepWithNext=1)  # no heading orphaned
        self.body = ParagraphStyle("body", fontName=font, fontSize=8.5, leading=11.5, alignment=TA_LEFT)
        self.note = ParagraphStyle("note", parent=self.body, textColor=colors.HexColor("#7f4f00"), fontSize=8)
        self.cell = ParagraphStyle("cell", fontName=font, fontSize=7, leading=8.6, wordWrap="CJK")
        self.head = ParagraphStyle("head", parent=self.cell, textColor=colors.white)
        self.num = ParagraphStyle("num", parent=self.cell, alignment=2)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _grid(st: _Styles, headers: Sequence[str], rows: Sequence[Sequence[str]], widths_mm: Sequence[float],
          numeric: Sequence[int] | range = ()) -> Table:
    """A table of wrapped cells that repeats its header on every page it spans."""
    body = [[Paragraph(_esc(h), st.head) for h in headers]]
    body.extend([Paragraph(_esc(v), st.num if i in numeric else st.cell) for i, v in enumerate(r)] for r in rows)
    scale = min(1.0, _FRAME_W / (sum(widths_mm) * mm))
    table = Table(body, colWidths=[w * mm * scale for w in widths_mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#2a5d8f")),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f1f5f9")]),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b8c4d0")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 2.5), ("RIGHTPADDING", (0, 0), (-1, -1), 2.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return table


def _image(png: bytes) -> Image:
    w, h = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=_FRAME_W, height=_FRAME_W * h / w)


def _summary(data: MonthlyData, st: _Styles) -> list[Flowable]:
    state = lbl.both("已结账", "closed") if data.closed else lbl.both("暂定", "provisional")
    facts = [
        (lbl.both("园区", "park"), lbl.park_label(data.park_id, data.park_name)),
        (lbl.both("月份", "month"), f"{data.period} ({data.local_start.isoformat()} – {data.local_end.isoformat()}, "
                                   f"{data.timezone})"),
        (lbl.both("状态", "state"), state),
        (lbl.column("completeness"), lbl.pct(data.metered_completeness)),
        (lbl.both("生成时间", "generated"), data.generated_at.strftime("%Y-%m-%d %H:%M UTC")),
    ]
    out: list[Flowable] = [Paragraph(_esc(lbl.TITLE), st.title),
                           _grid(st, [lbl.both("项目", "item"), lbl.both("内容", "value")], facts, (45, 135))]
    out.extend(Paragraph(_esc(n), st.note) for n in data.notes)
    return out


def _indicators(data: MonthlyData, st: _Styles) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(_esc(lbl.SECTIONS["indicators"]), st.h1)]
    if not data.indicators:
        return [*out, Paragraph(_esc(f"{lbl.NOT_COMPUTED}: run `parkpulse aggregate`"), st.note)]
    rows = []
    for r in data.indicators:
        name = lbl.indicator_name(r.indicator, r.name_zh) + ("" if r.headline else " ·")
        variant = lbl.lookup(lbl.VARIANT, r.variant) + (f" · {r.subject}" if r.subject else "")
        note = r.notes[0] if r.notes and r.status != "ok" else ""
        rows.append((name, variant, lbl.human(r.value), r.unit, lbl.pct(r.estimated_share), r.status,
                     "; ".join(r.vintages), note))
    headers = [lbl.column("indicator"), lbl.column("variant"), lbl.column("value"), lbl.column("unit"),
               lbl.column("estimated_share"), lbl.column("status"), lbl.column("vintages"), lbl.both("说明", "note")]
    out.append(_grid(st, headers, rows, (38, 22, 16, 17, 13, 19, 27, 34), numeric=(2, 4)))
    out.append(Paragraph(_esc("主口径在前；末尾带 · 的为其他口径。Headline values first; rows marked · are other "
                              "variants."), st.note))
    return out


def _by_source(data: MonthlyData, st: _Styles) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(_esc(lbl.SECTIONS["by_source"]), st.h1)]
    if not data.by_source:
        return [*out, Paragraph(_esc(f"{lbl.NOT_COMPUTED}: co2_by_source / energy_by_source"), st.note)]
    rows = [(lbl.lookup(lbl.SOURCE, s.source), lbl.human(s.co2_location_t), lbl.human(s.co2_market_t),
             lbl.human(s.energy_calorific_tce), lbl.human(s.energy_coal_equivalent_tce)) for s in data.by_source]
    headers = [lbl.column("source"), lbl.column("co2_location"), lbl.column("co2_market"),
               lbl.column("energy_calorific"), lbl.column("energy_coal_equivalent")]
    return [*out, _grid(st, headers, rows, (40, 30, 30, 30, 30), numeric=(1, 2, 3, 4))]


def _cell(column: str, value: Any) -> str:
    if value is None:
        return lbl.NONE
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, float):
        return f"{value:.2f}%" if column == "difference_pct" else lbl.human(value)
    if column in ("carrier", "metric"):
        return lbl.lookup(lbl.CARRIER if column == "carrier" else lbl.METRIC, str(value))
    return str(value)


def _balance(data: MonthlyData, st: _Styles) -> list[Flowable]:
    """One column per carrier, one row per term (whatever terms ``balance_checks`` has)."""
    out: list[Flowable] = [Paragraph(_esc(lbl.SECTIONS["balance"]), st.h1)]
    if not data.balance.rows:
        return [*out, Paragraph(_esc(f"{lbl.NOT_COMPUTED}: no level-1 and level-2 meters of one carrier"), st.note)]
    cols = data.balance.columns
    terms = [c for c in lbl.balance_order(cols) if c != "carrier"]
    records = [dict(zip(cols, r, strict=True)) for r in data.balance.rows]
    headers = [lbl.both("项目", "term"), *(_cell("carrier", r.get("carrier")) for r in records)]
    rows = [[" ".join(lbl.BALANCE_COLUMNS.get(t, (t, ""))).strip(), *(_cell(t, r.get(t)) for r in records)]
            for t in terms]
    widths = [50.0, *([30.0] * len(records))]
    return [*out, _grid(st, headers, rows, widths, numeric=range(1, len(records) + 1))]


def _quality(data: MonthlyData, st: _Styles) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(_esc(lbl.SECTIONS["quality"]), st.h1)]
    if data.quality:
        rows = [(lbl.lookup(lbl.CARRIER, q.carrier), lbl.lookup(lbl.METRIC, q.metric), str(q.n_meters),
                 lbl.human(q.energy, q.unit), lbl.pct(q.estimated_share, 2), f"{q.n_intervals:,} / {q.n_expected:,}",
                 lbl.pct(q.completeness, 2)) for q in data.quality]
        out.append(_grid(st, [lbl.column("carrier"), lbl.column("metric"), lbl.both("表计数", "meters"),
                              lbl.column("energy"), lbl.column("estimated_share"), lbl.column("intervals"),
                              lbl.column("completeness")], rows, (26, 26, 12, 28, 18, 30, 18), numeric=(2, 3, 4, 6)))
    out.append(Spacer(1, 3 * mm))
    if data.quarantine:
        counts = [(q.reason, q.source, f"{q.messages:,}", f"{q.readings_rejected:,}") for q in data.quarantine]
        out.append(_grid(st, [lbl.column("reason"), lbl.column("source"), lbl.column("messages"),
                              lbl.column("rows_rejected")], counts, (60, 30, 25, 25), numeric=(2, 3)))
    else:
        out.append(Paragraph(_esc(lbl.both("本月无隔离消息。", "No input was quarantined this month.")), st.body))
    return out


def _charts(data: MonthlyData, st: _Styles, font: CjkFont) -> list[Flowable]:
    out: list[Flowable] = []
    charts = [("daily", daily_energy_chart(data.daily, font)), ("load", load_duration_chart(data.load, font))]
    if data.has_data_centre:
        charts.append(("pue", pue_chart(data.pue, font)))
    for key, png in charts:
        if png is None:
            out.append(KeepTogether([Paragraph(_esc(lbl.SECTIONS[key]), st.h1),
                                     Paragraph(_esc(f"{lbl.NOT_COMPUTED}: no data this month"), st.note)]))
        else:
            out.append(KeepTogether([Paragraph(_esc(lbl.SECTIONS[key]), st.h1), _image(png)]))
    return out


def _meters(data: MonthlyData, st: _Styles) -> list[Flowable]:
    out: list[Flowable] = [Paragraph(_esc(lbl.SECTIONS["meters"]), st.h1)]
    if not data.meters:
        return [*out, Paragraph(_esc(f"{lbl.NOT_COMPUTED}: no meter rollups this month"), st.note)]
    rows = [(m.device_id, lbl.lookup(lbl.METRIC, m.metric), lbl.NONE if m.metering_level is None else
             str(m.metering_level), m.site_id or lbl.NONE, lbl.human(m.energy, m.unit), lbl.pct(m.estimated_share, 2),
             lbl.pct(m.completeness, 2), lbl.lookup(lbl.QUALITY, m.quality), ", ".join(m.flag_names))
            for m in data.meters]
    headers = [lbl.column("device"), lbl.column("metric"), lbl.column("level"), lbl.column("site"),
               lbl.column("energy"), lbl.column("estimated_share"), lbl.column("completeness"), lbl.column("quality"),
               lbl.column("flags")]
    return [*out, _grid(st, headers, rows, (22, 21, 10, 14, 28, 15, 16, 25, 31), numeric=(4, 5, 6))]


def write_pdf(data: MonthlyData, font: CjkFont) -> bytes:
    """The PDF's bytes: summary, indicators, by source, balance, quality, charts, per-meter energy.

    Raises:
        FontNotFoundError: the font lacks a character the report would print.
    """
    font.require([*lbl.fixed_texts(), *data.texts()])
    name = _register(font)
    st = _Styles(name)
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=_MARGIN, rightMargin=_MARGIN, topMargin=_MARGIN + 4 * mm,
                            bottomMargin=_MARGIN, title=f"{lbl.TITLE} {data.park_id} {data.period}",
                            author="ParkPulse", subject=f"{data.park_id} {data.period}")

    def footer(canvas: Canvas, document: Any) -> None:
        canvas.saveState()
        canvas.setFont(name, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(_MARGIN, A4[1] - _MARGIN + 1 * mm, f"{data.park_id} · {data.period} · {lbl.TITLE}")
        canvas.drawRightString(A4[0] - _MARGIN, 8 * mm, f"第 {document.page} 页 page {document.page}")
        canvas.restoreState()

    story = [*_summary(data, st), *_indicators(data, st), *_by_source(data, st), *_balance(data, st),
             *_quality(data, st), *_charts(data, st, font), *_meters(data, st)]
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()

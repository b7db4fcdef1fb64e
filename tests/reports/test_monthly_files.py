"""`parkpulse report monthly`: open the files it wrote and check them against the database and the seed.

The workbook is read back with openpyxl, the PDF with PyMuPDF (text, fonts, and PNG renders of every page
saved under /tmp/report-pngs/ for a person to look at).
"""

from __future__ import annotations

import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import psycopg
import pymupdf
import pytest
import typer
from typer.testing import CliRunner

from aggregation._meter_energy import MeterEnergyRow
from reports import _labels as lbl
from reports._cli import register_report_commands
from reports._data import BalanceTable, MonthlyData
from reports._fonts import CjkFont
from reports._pdf import write_pdf
from reports._xlsx import write_xlsx
from tests.reports._park import N_INTERVALS, build_park

PNG_DIR = Path("/tmp/report-pngs")


def _cli() -> typer.Typer:
    app = typer.Typer()
    register_report_commands(app)
    return app


def _write(database_url: str, park_id: str, fmt: str, target: Path, **env: str) -> str:
    result = CliRunner().invoke(_cli(), ["monthly", "--park", park_id, "--period", "2026-10", "--format", fmt,
                                         "-o", str(target), "--database-url", database_url], env=env or None)
    assert result.exit_code == 0, result.output
    return result.output


def _sheet_rows(ws) -> list[dict]:
    rows = list(ws.iter_rows(values_only=True))
    header = rows[0]
    return [dict(zip(header, r, strict=False)) for r in rows[1:] if any(v is not None for v in r)]


@pytest.mark.services
def test_workbook_numbers_match_the_database(database_url: str, db_conn: psycopg.Connection, park_id: str,
                                             tmp_path: Path):
    expected = build_park(db_conn, database_url, park_id)
    target = tmp_path / "october.xlsx"
    out = _write(database_url, park_id, "xlsx", target)
    assert "wrote" in out
    wb = openpyxl.load_workbook(target)
    assert wb.sheetnames == [lbl.SHEETS[k] for k in ("summary", "indicators", "by_source", "meters", "balance",
                                                     "quality", "daily", "load", "pue")]

    meters = {r[lbl.column("device")]: r for r in _sheet_rows(wb[lbl.SHEETS["meters"]])}
    stored = dict(db_conn.execute("""SELECT d.device_id, m.energy FROM meter_rollups m JOIN series s USING (series_id)
                                     JOIN devices d USING (device_key) WHERE d.park_id = %s AND m.grain = 'month'""",
                                  (park_id,)).fetchall())
    assert set(meters) == set(expected.month_kwh) == set(stored)
    for device, kwh in expected.month_kwh.items():
        cell = meters[device][lbl.column("energy", "unit")]
        assert isinstance(cell, float | int)                          # a number, not text
        assert cell == pytest.approx(kwh, rel=1e-9)
        assert cell == pytest.approx(stored[device], rel=1e-15)
        assert meters[device][lbl.column("completeness")] == 1
    assert meters["gas"][lbl.column("unit")] == "m3"

    indicators = _sheet_rows(wb[lbl.SHEETS["indicators"]])
    db_rows = db_conn.execute("""SELECT indicator, value, headline FROM indicator_results WHERE park_id = %s
                                 AND period = '2026-10' AND indicator NOT IN ('co2_by_source', 'energy_by_source')""",
                              (park_id,)).fetchall()
    assert len(indicators) == len(db_rows) > 10
    by_id: dict[str, list] = defaultdict(list)
    for r in indicators:
        by_id[r["id"]].append(r[lbl.column("value")])
    want: dict[str, list] = defaultdict(list)
    for ind, value, _ in db_rows:
        want[ind].append(value)
    assert set(by_id) == set(want)
    for indicator, values in want.items():
        got = sorted(by_id[indicator], key=lambda v: (v is None, v or 0))
        for cell, value in zip(got, sorted(values, key=lambda v: (v is None, v or 0)), strict=True):
            assert cell == (None if value is None else pytest.approx(value, rel=1e-15)), indicator
    headline_flags = [r[lbl.both("主口径", "headline")] for r in indicators]
    assert headline_flags == sorted(headline_flags, key=lambda v: v != "是 yes")      # headline rows first

    by_source = db_conn.execute("""SELECT indicator, variant, value FROM indicator_results WHERE park_id = %s
                                   AND period = '2026-10' AND indicator IN ('co2_by_source', 'energy_by_source')""",
                                (park_id,)).fetchall()
    source_sheet = wb[lbl.SHEETS["by_source"]]
    if by_source:
        values = {v for row in source_sheet.iter_rows(min_row=2, values_only=True) for v in row[1:] if v is not None}
        for indicator, variant, value in by_source:
            if value is not None:
                assert any(v == pytest.approx(value, rel=1e-15) for v in values), (indicator, variant)
    else:
        assert str(source_sheet["A1"].value).startswith(lbl.NOT_COMPUTED)

    balance = _sheet_rows(wb[lbl.SHEETS["balance"]])
    db_balance = db_conn.execute("""SELECT level1_energy, level2_energy, difference FROM balance_checks
                                    WHERE park_id = %s AND grain = 'month' AND carrier = 'electricity'""",
                                 (park_id,)).fetchone()
    assert db_balance is not None
    elec = next(r for r in balance if r[" ".join(lbl.BALANCE_COLUMNS["carrier"])] == lbl.CARRIER["electricity"])
    assert (elec[" ".join(lbl.BALANCE_COLUMNS["level1_energy"])], elec[" ".join(lbl.BALANCE_COLUMNS["level2_energy"])],
            elec[" ".join(lbl.BALANCE_COLUMNS["difference"])]) == pytest.approx(db_balance)
    assert elec[" ".join(lbl.BALANCE_COLUMNS["level1_energy"])] == pytest.approx(expected.month_kwh["main"])

    quality = list(wb[lbl.SHEETS["quality"]].iter_rows(values_only=True))
    counts = {(r[0], r[2], r[3]) for r in quality if r[0] in ("unregistered", "bad_value")}
    assert counts == {("unregistered", 2, 4), ("bad_value", 1, 2)}   # October only; 2 readings each

    daily = _sheet_rows(wb[lbl.SHEETS["daily"]])
    assert len(daily) == 31
    assert daily[0][lbl.column("date")] == datetime(2026, 10, 1)     # local dates
    elec_col = next(k for k in daily[0] if str(k).startswith(lbl.CARRIER["electricity"]))
    gas_col = next(k for k in daily[0] if str(k).startswith(lbl.CARRIER["gas"]))
    assert sum(r[elec_col] for r in daily) == pytest.approx(expected.month_kwh["main"])
    assert sum(r[gas_col] for r in daily) == pytest.approx(expected.month_kwh["gas"])

    load = _sheet_rows(wb[lbl.SHEETS["load"]])
    assert len(load) == N_INTERVALS
    assert [r[lbl.column("load_kw")] for r in load] == pytest.approx(expected.load_kw_sorted)
    assert load[-1][lbl.column("rank_hours")] == pytest.approx(31 * 24)

    pue = _sheet_rows(wb[lbl.SHEETS["pue"]])
    assert len(pue) == 31
    assert all(r[lbl.column("pue")] == pytest.approx(expected.pue) for r in pue)

    charts = [n for n in zipfile.ZipFile(target).namelist() if n.startswith("xl/charts/chart")]
    assert len(charts) == 4                                          # electricity, gas, load, PUE
    xml = "".join(zipfile.ZipFile(target).read(n).decode() for n in charts)
    assert f"'{lbl.SHEETS['load']}'!$B$2:$B${N_INTERVALS + 1}" in xml


@pytest.mark.services
def test_pdf_shows_the_numbers_in_chinese_and_english(database_url: str, db_conn: psycopg.Connection,
                                                      park_id: str, tmp_path: Path, cjk_font: CjkFont):
    expected = build_park(db_conn, database_url, park_id)
    target = tmp_path / "october.pdf"
    _write(database_url, park_id, "pdf", target)
    doc = pymupdf.open(target)
    text = "\n".join(page.get_text() for page in doc)
    for needle in (lbl.TITLE, "深圳湾示范园区", lbl.SECTIONS["balance"], lbl.SECTIONS["load"], lbl.SECTIONS["pue"],
                   lbl.SECTIONS["meters"], "unregistered"):
        assert needle in text, needle
    assert lbl.human(expected.month_kwh["main"], "kWh") in text
    assert lbl.human(expected.month_kwh["gas"], "m3") in text
    total = db_conn.execute("""SELECT value FROM indicator_results WHERE park_id = %s AND period = '2026-10'
                               AND indicator = 'total_energy' AND headline""", (park_id,)).fetchone()
    assert total is not None
    assert lbl.human(total[0]) in text
    fonts = {(f[3], f[1]) for page in doc for f in page.get_fonts()}
    assert any("WenQuanYi" in name and ext == "ttf" for name, ext in fonts), fonts   # the CJK font is embedded
    PNG_DIR.mkdir(exist_ok=True)
    for i, page in enumerate(doc, start=1):
        page.get_pixmap(dpi=110).save(PNG_DIR / f"monthly-{i}.png")
    assert doc.page_count >= 3


def _empty_month(**changes) -> MonthlyData:
    base = {"park_id": "p-empty", "park_name": None, "timezone": "Asia/Shanghai", "period": "2026-10",
            "local_start": date(2026, 10, 1), "local_end": date(2026, 11, 1),
            "generated_at": datetime(2026, 11, 2, tzinfo=UTC), "closed": True, "indicators": (), "by_source": (),
            "meters": (), "balance": BalanceTable((), ()), "quality": (), "quarantine": (), "daily": (), "load": None,
            "pue": ()}
    base.update(changes)
    return MonthlyData(**base)


def test_missing_sections_say_not_computed(cjk_font: CjkFont, tmp_path: Path):
    data = _empty_month()
    path = tmp_path / "empty.xlsx"
    path.write_bytes(write_xlsx(data))
    wb = openpyxl.load_workbook(path)
    assert lbl.SHEETS["pue"] not in wb.sheetnames                    # no data centre, no PUE sheet
    for key in ("indicators", "by_source", "meters", "balance", "daily", "load"):
        assert str(wb[lbl.SHEETS[key]]["A1"].value).startswith(lbl.NOT_COMPUTED), key
    text = "".join(p.get_text() for p in pymupdf.open(stream=write_pdf(data, cjk_font), filetype="pdf"))
    assert text.count(lbl.NOT_COMPUTED) >= 6
    assert lbl.SECTIONS["pue"] not in text


def test_a_character_the_font_lacks_stops_the_pdf(cjk_font: CjkFont):
    meter = MeterEnergyRow("m-\U0001f600", "active_energy_import", "electricity", 1, None, None, "kWh", "2026-10",
                           datetime(2026, 9, 30, 16, tzinfo=UTC), 1.0, 0.0, 0.0, 96, 96, 1.0, "measured", 0, ())
    from reports.errors import FontNotFoundError

    with pytest.raises(FontNotFoundError, match="has no glyph"):
        write_pdf(_empty_month(meters=(meter,)), cjk_font)

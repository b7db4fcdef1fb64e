"""What ``parkpulse demo`` prints: a short summary, and an indicator table that fits 80 columns."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from aggregation import CATALOGUE
from parkpulse.cli import app
from parkpulse.demo import DemoResult, device_rows, indicator_tables, print_result
from simulators import SimulationReport

WIDTH = 80
#: Long variants and subjects as the report produces them (and longer), to stress the layout.
VARIANTS = ["electricity (含绿证)", "location, 当量值", "coal_equivalent:grid_electricity", "当量值", "GJ"]
VALUES: list[float | None] = [7.498633231242579e-05, -123456.789, 2630.14, None, 1.0e12, 87.73217940445363]


def _render(*renderables: Any) -> list[str]:
    console = Console(width=WIDTH, file=io.StringIO(), record=True, color_system=None)
    for item in renderables:
        console.print(item)
    return console.export_text().splitlines()


def _rows() -> list[dict[str, Any]]:
    """One row per catalogue indicator, cycling through awkward variants, values, statuses and notes."""
    rows = []
    for i, spec in enumerate(CATALOGUE.values()):
        rows.append({
            "name_zh": spec.name_zh, "unit": spec.unit, "variant": VARIANTS[i % len(VARIANTS)],
            "subject": "data-centre-hall-2" if spec.id.startswith("pue") else "",
            "value": VALUES[i % len(VALUES)], "estimated_share": 0.125 if i % 4 == 1 else 0.0,
            "status": "missing_input" if VALUES[i % len(VALUES)] is None else "ok",
            "notes": [f"[note {i}] grid factor [MEE/NBS 2023] used for 2026: add the 2026 factor when published"],
            "headline": True, "factor_vintages": {},
        })
    return rows


def _cells(line: str, start: int, end: int) -> str:
    """The characters of ``line`` in terminal columns [start, end) (CJK characters are two columns)."""
    out, at = [], 0
    for char in line:
        if start <= at < end:
            out.append(char)
        at += cell_len(char)
    return "".join(out)


def _columns(lines: list[str], first: str, middle: str | None, last: str) -> list[list[str]]:
    """Rows of a table laid out ``# | first | [middle...] value | last`` as [#, first, middle, value, last].

    ``#`` and the value are right-aligned single tokens: the value is the last token before ``last``'s
    column on a row's first line (without ``middle``, the value ends the ``first`` cell). Continuation
    lines (no number) add to the row above; the next table's header or a blank line ends the table.
    """
    head = next(line for line in lines if first in line and last in line and line.lstrip().startswith("#"))
    a, c = cell_len(head[: head.index(first)]), cell_len(head[: head.index(last)])
    b = cell_len(head[: head.index(middle)]) if middle else c
    rows: list[list[str]] = []
    for line in lines[lines.index(head) + 2:]:
        number, left, mid, right = (_cells(line, x, y).strip() for x, y in ((0, a), (a, b), (b, c), (c, 999)))
        if not (number or left or mid or right) or number == "#":
            break
        if number:
            carrier = mid if middle else left
            value = carrier.split()[-1]
            carrier = carrier[: -len(value)].strip()
            rows.append([number, left if middle else carrier, carrier if middle else "", value, right])
        else:
            for i, part in ((1, left), (2, mid), (4, right)):
                rows[-1][i] += part
    return rows


def test_indicator_tables_fit_80_columns_and_crop_nothing():
    rows = _rows()
    lines = _render(*indicator_tables(rows, "Park indicators, a-rather-long-park-id-0001, 2026-12 (Asia/Shanghai)"))
    assert all(cell_len(line) <= WIDTH for line in lines), [line for line in lines if cell_len(line) > WIDTH]
    assert "…" not in "\n".join(lines)
    table = _columns(lines, "指标 indicator", "variant", "unit")
    assert len(table) == len(rows)

    def squeeze(text: str) -> str:
        return re.sub(r"\s+", "", text)

    for number, (row, shown) in enumerate(zip(rows, table, strict=True), start=1):
        variant = f"{row['subject']}: {row['variant']}" if row["subject"] else row["variant"]
        value = "—" if row["value"] is None else format(row["value"], ".4g")
        assert shown[0] == str(number)
        assert squeeze(shown[1]) == squeeze(row["name_zh"])  # folded at most, never cut
        assert squeeze(shown[2]) == squeeze(variant)
        assert shown[3] == value
        assert shown[4] == row["unit"]
    one_line = [line for line in lines if re.match(r"^ *\d+ ", line)]
    for row, line in zip(rows, one_line, strict=False):  # value, unit and names of <= 28 columns never wrap
        assert (format(row["value"], ".4g") if row["value"] is not None else "—") in line
        assert row["unit"] in line
        if cell_len(row["name_zh"]) <= 28:
            assert row["name_zh"] in line
    quality = _columns(lines, "status", None, "note")
    expected = [(str(i), r["status"], f"{r['estimated_share']:.1%}", squeeze(r["notes"][0]))
                for i, r in enumerate(rows, start=1) if r["status"] != "ok" or r["estimated_share"] > 0]
    assert [(q[0], q[1], q[3], squeeze(q[4])) for q in quality] == expected  # notes are text, not markup


def test_the_second_table_lists_only_rows_that_are_not_plain():
    rows = _rows()
    for row in rows:
        row["status"], row["estimated_share"], row["value"] = "ok", 0.0, 1.5
    lines = _render(*indicator_tables(rows, "t"))
    assert lines[-1] == f"all {len(rows)} values: status ok, no estimated part"
    rows[3]["status"] = "no_data"
    lines = _render(*indicator_tables(rows, "t"))
    quality = lines[next(i for i, line in enumerate(lines) if "status" in line and "note" in line):]
    assert [line.split()[:2] for line in quality[2:] if re.match(r"^ *\d+ +[a-z_]+ +\d", line)] == [
        ["4", "no_data"]]


def _result(stored_overrides: dict[tuple[str, str], int]) -> DemoResult:
    counts = {(d, m): 120 for d in ("m1-boundary", "m2-hall-a", "pv-1") for m in ("active_energy_import",
                                                                                    "active_power")}
    report = SimulationReport(park_id="demo-park", simulated_start=datetime(2026, 12, 3, 22, tzinfo=UTC),
                              simulated_end=datetime(2026, 12, 4, tzinfo=UTC), sample_interval_s=60,
                              batch_interval_s=300, speed=1440.0, seed=1, devices=3, messages_published=72,
                              readings_published=720, duplicates_published=2, malformed_published=1, counts=counts)
    stored = counts | stored_overrides
    return DemoResult(report=report, stored=stored, quarantined={"invalid_json": 1, "schema_violation": 2},
                      complete=stored == counts, duplicates_dropped=20)


def test_summary_shows_totals_and_only_the_devices_not_fully_stored():
    result = _result({("m2-hall-a", "active_power"): 117})
    assert [(r.device_id, r.published, r.stored, r.short_metrics) for r in device_rows(result)] == [
        ("m2-hall-a", 240, 237, ("active_power",))]
    lines = _render_result(result, verbose=False)
    text = "\n".join(lines)
    assert "720 readings in 72 messages (+2 duplicate, 1 malformed)" in text
    assert re.search(r"stored +717 readings in the database", text)
    assert "20 readings dropped as already stored" in text
    assert "3 messages: invalid_json 1, schema_violation 2" in text
    device_lines = [line for line in lines if re.match(r"^ *(m1|m2|pv)", line)]
    assert len(device_lines) == 1
    assert device_lines[0].split() == ["m2-hall-a", "240", "237", "missing:", "active_power"]
    assert "some published readings are missing" in text


def test_readings_left_by_an_earlier_run_are_shown_but_do_not_fail_the_demo():
    result = _result({("pv-1", "active_power"): 125})   # 5 more stored than published: an earlier run's
    result = replace(result, complete=True)
    (row,) = device_rows(result)
    assert (row.device_id, row.published, row.stored, row.short_metrics, row.extra_metrics) == (
        "pv-1", 240, 245, (), ("active_power",))
    text = "\n".join(_render_result(result, verbose=False))
    assert "also stored by an earlier run: active_power" in text
    assert "every published reading is stored exactly once" in text


def test_verbose_lists_every_device_and_a_complete_run_none():
    complete = _result({})
    quiet = "\n".join(_render_result(complete, verbose=False))
    assert "every device complete; --verbose lists them" in quiet
    assert "m1-boundary" not in quiet
    assert "every published reading is stored exactly once" in quiet
    lines = _render_result(complete, verbose=True)
    assert [line.split() for line in lines if re.match(r"^ *(m1|m2|pv)", line)] == [
        ["m1-boundary", "240", "240", "ok"], ["m2-hall-a", "240", "240", "ok"], ["pv-1", "240", "240", "ok"]]


def _render_result(result: DemoResult, *, verbose: bool) -> list[str]:
    console = Console(width=WIDTH, file=io.StringIO(), record=True, color_system=None)
    print_result(result, console, verbose=verbose)
    lines = console.export_text().splitlines()
    assert all(cell_len(line) <= WIDTH for line in lines)
    assert "…" not in "\n".join(lines)
    return lines


@pytest.mark.parametrize("args", [["demo", "--help"]])
def test_demo_offers_verbose(args):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "--verbose" in result.output

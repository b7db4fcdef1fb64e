"""Meter events as entered: ratios, times, field rules and the CSV import (all or nothing, by line)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation._event_input import (
    COLUMNS,
    EventInput,
    InvalidMeterEventError,
    check_fields,
    complete,
    normalise_kind,
    parse_event_time,
    parse_events_csv,
    parse_ratio,
)

HEADER = ",".join(COLUMNS)


def test_ratios_give_ct_times_pt_multipliers() -> None:
    assert parse_ratio("200/5") == 40.0
    assert parse_ratio(" 400 / 5 ") == 80.0
    assert parse_ratio("200/5x10000/100") == pytest.approx(4000.0)    # CT 40 x PT 100
    assert parse_ratio("40") == 40.0
    for bad in ("", "200/0", "a/5", "200//5", "-200/5", "0"):
        with pytest.raises(ValueError, match="ratio"):
            parse_ratio(bad)


def test_kinds_and_times_as_people_type_them() -> None:
    assert normalise_kind("Ratio-Change") == "ratio_change"
    assert normalise_kind(" reset") == "reset"
    with pytest.raises(ValueError, match="replacement, ratio-change, reset"):
        normalise_kind("swap")
    assert parse_event_time("2026-10-14T09:30+08:00").utcoffset() is not None
    assert parse_event_time("2026-10-14T01:30Z") == datetime(2026, 10, 14, 1, 30, tzinfo=UTC)
    assert parse_event_time("2026-10-14 09:30").tzinfo is None     # read in the park's zone by the store
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_event_time("14/10/2026")


def _ev(**kw: object) -> EventInput:
    base: dict[str, object] = {"park_id": "p", "device_id": "m1", "kind": "replacement",
                               "occurred_at": datetime(2026, 10, 14, 1, 30, tzinfo=UTC)}
    return complete(EventInput(**{**base, **kw}))  # type: ignore[arg-type]


def test_each_kind_requires_its_values() -> None:
    assert check_fields(_ev(old_final=10.0, new_initial=0.0)) == []
    assert "old meter's final register" in check_fields(_ev(new_initial=0.0))[0]
    assert check_fields(_ev(kind="reset")) == []                             # cleared to 0 by default
    assert _ev(kind="reset").new_initial == 0.0
    assert check_fields(_ev(kind="ratio_change", old_ratio="200/5", new_ratio="400/5")) == []
    assert "nothing changed" in check_fields(_ev(kind="ratio_change", old_ratio="200/5", new_ratio="40"))[0]
    assert "belong to a ratio change" in check_fields(_ev(kind="reset", old_multiplier=2.0, new_multiplier=3.0))[0]
    assert "finite number >= 0" in check_fields(_ev(old_final=-1.0, new_initial=0.0))[0]
    with pytest.raises(ValueError, match="give one of them"):
        _ev(kind="ratio_change", old_ratio="200/5", old_multiplier=41.0, new_ratio="400/5")


def test_a_csv_import_reads_every_kind() -> None:
    text = (f"{HEADER}\n"
            "p,m1,replacement,2026-10-14T09:30+08:00,,12345.6,0.4,,,,,WO-7\n"
            "p,m2,ratio-change,2026-10-15T10:00+08:00,active_energy_import,,,200/5,400/5,,,\n"
            "p,m3,reset,2026-10-16 08:00,,,,,,,,\n")
    rows = parse_events_csv(text, "events.csv")
    assert [(r.device_id, r.kind, r.line) for r in rows] == [("m1", "replacement", 2), ("m2", "ratio_change", 3),
                                                             ("m3", "reset", 4)]
    assert (rows[0].old_final, rows[0].new_initial, rows[0].note) == (12345.6, 0.4, "WO-7")
    assert (rows[1].old_multiplier, rows[1].new_multiplier) == (40.0, 80.0)
    assert rows[2].new_initial == 0.0
    assert rows[2].occurred_at.tzinfo is None


def test_a_bad_file_is_rejected_whole_with_every_problem_by_line() -> None:
    text = ("device_id,kind,at,old_final,new_initial\n"
            "m1,replacement,2026-10-14T09:30+08:00,12345.6,0.4\n"
            "m2,swap,2026-10-14T09:30+08:00,1,0\n"
            "m3,replacement,yesterday,1,0\n"
            "m4,replacement,2026-10-14T09:30+08:00,abc,0\n"
            "m5,replacement,2026-10-14T09:30+08:00,,0\n")
    with pytest.raises(InvalidMeterEventError) as info:
        parse_events_csv(text, "events.csv", park_id="p")
    problems = info.value.problems
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5", "line 6"]
    assert "swap" in problems[0]
    assert "at:" in problems[1]
    assert "old_final" in problems[2]
    assert "final register" in problems[3]
    assert str(info.value).startswith("events.csv: ")


def test_header_problems_say_what_is_expected() -> None:
    with pytest.raises(InvalidMeterEventError, match="missing column"):
        parse_events_csv("device_id,at\nm1,2026-10-14T09:30+08:00\n", "f.csv", park_id="p")
    with pytest.raises(InvalidMeterEventError, match="park_id"):
        parse_events_csv("device_id,kind,at\nm1,reset,2026-10-14T09:30+08:00\n", "f.csv")
    with pytest.raises(InvalidMeterEventError, match="unknown column"):
        parse_events_csv("device_id,kind,at,colour\nm1,reset,2026-10-14T09:30+08:00,red\n", "f.csv", park_id="p")
    with pytest.raises(InvalidMeterEventError, match="not the park of this import"):
        parse_events_csv("park_id,device_id,kind,at\nq,m1,reset,2026-10-14T09:30+08:00\n", "f.csv", park_id="p")
    with pytest.raises(InvalidMeterEventError, match="no data rows"):
        parse_events_csv(f"{HEADER}\n", "f.csv", park_id="p")


# The parser never crashes: any text gives rows or an InvalidMeterEventError whose problems each name a line.
cell_st = st.one_of(
    st.sampled_from(["", "m1", "replacement", "ratio-change", "reset", "2026-10-14T09:30+08:00", "2026-10-14 09:30",
                     "12.5", "-3", "nan", "inf", "1e400", "200/5", "400/5", "0/0", "x", "p", "P", "a,b", '"', "\n"]),
    st.text(max_size=12),
)


@st.composite
def csv_text(draw: st.DrawFn) -> str:
    header = draw(st.one_of(st.just(list(COLUMNS)), st.lists(st.sampled_from([*COLUMNS, "extra", ""]), max_size=8)))
    rows = draw(st.lists(st.lists(cell_st, min_size=0, max_size=len(header) + 2), max_size=6))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    if draw(st.booleans()):       # sometimes damage the CSV itself
        cut = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:cut] + draw(st.sampled_from(['"', "\x00", "\r", ",,,", "\ufeff"])) + text[cut:]
    return text


@settings(max_examples=300, deadline=None)
@given(csv_text(), st.sampled_from([None, "p"]))
def test_the_parser_never_crashes_and_names_the_line_of_each_problem(text: str, park: str | None) -> None:
    problems: list[str] = []
    rows = []
    try:
        rows = parse_events_csv(text, "f.csv", park_id=park)
    except InvalidMeterEventError as exc:       # the only error it may raise
        problems = exc.problems
        assert problems
    assert all(p.startswith(("line ", "no data rows")) for p in problems), problems
    for row in rows:
        assert check_fields(row) == []
        assert row.line is not None
        assert row.line >= 2

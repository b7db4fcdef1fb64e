"""Park calendar files (CSV/YAML) and the layered calendar: parsing, clear errors, never a crash."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flex import (
    CalendarDay,
    CalendarDayKind,
    CalendarFileError,
    DayType,
    load_holiday_calendar,
    parse_calendar_csv,
    parse_calendar_rows,
    parse_calendar_yaml,
    read_calendar_file,
    render_calendar_csv,
)

names = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=64).map(str.strip)
days = st.lists(
    st.builds(CalendarDay, st.dates(date(2000, 1, 1), date(2099, 12, 31)), st.sampled_from(list(CalendarDayKind)),
              names),
    min_size=1, max_size=30, unique_by=lambda d: d.day,
)


def _yaml(entries: list[CalendarDay]) -> str:
    return yaml.safe_dump({"days": [{"date": d.day.isoformat(), "kind": d.kind.value, "name": d.name}
                                    for d in entries]}, allow_unicode=True)


@given(days)
def test_valid_files_round_trip_in_both_formats(entries: list[CalendarDay]):
    expected = sorted(entries, key=lambda d: d.day)
    assert parse_calendar_csv(render_calendar_csv(entries)) == expected
    assert parse_calendar_yaml(_yaml(entries)) == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400), st.sampled_from(["csv", "yaml"]))
def test_arbitrary_text_gives_days_or_a_calendar_error(text: str, kind: str):
    parse = parse_calendar_csv if kind == "csv" else parse_calendar_yaml
    try:
        parsed = parse(text, "f")
    except CalendarFileError as exc:
        message = str(exc)
    else:
        assert all(isinstance(d, CalendarDay) for d in parsed)
        return
    assert message.startswith("calendar f")


yaml_values = st.one_of(
    st.from_regex(r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}(:[0-9]{2})?)?\Z"),
    st.sampled_from(["!!int x", "!!float y", "!!timestamp 2026-02-30", "!!binary aGk=", "!!str 1", "~", "[]",
                     "{}", "&a [*a]", "holiday", "workday", "'2026-01-01'", "2026-02-29"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(yaml_values, yaml_values, yaml_values), min_size=1, max_size=5))
def test_yaml_with_odd_dates_and_tags_never_crashes(rows: list[tuple[str, str, str]]):
    text = "\n".join(f"- {{date: {d}, kind: {k}, name: {n}}}" for d, k, n in rows)
    try:
        parsed = parse_calendar_yaml(text, "f.yaml")
    except CalendarFileError:
        return
    assert all(isinstance(d, CalendarDay) for d in parsed)


# Corruptions of one field of one row, and the words the error must contain.
CORRUPTIONS = {
    "date": ["2026-02-30", "26-01-01", "tomorrow", "", "1999-12-31", "2026-01-01T00:00"],
    "kind": ["holyday", "", "work day", "1"],
    "name": ["x" * 65, "bell\x07"],
}


@settings(max_examples=150)
@given(days, st.data())
def test_a_bad_field_is_named_with_its_row(entries: list[CalendarDay], data: st.DataObject):
    field = data.draw(st.sampled_from(sorted(CORRUPTIONS)))
    bad = data.draw(st.sampled_from(CORRUPTIONS[field]))
    index = data.draw(st.integers(0, len(entries) - 1))
    rows = [{"date": d.day.isoformat(), "kind": d.kind.value, "name": d.name} for d in entries]
    rows[index][field] = bad
    out = io.StringIO()
    writer = csv.DictWriter(out, ["date", "kind", "name"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with pytest.raises(CalendarFileError) as csv_error:
        parse_calendar_csv(out.getvalue(), "days.csv")
    assert (csv_error.value.row, csv_error.value.field) == (index + 2, field)  # line 1 is the header
    assert f"row {index + 2}, field '{field}'" in str(csv_error.value)
    with pytest.raises(CalendarFileError) as yaml_error:
        parse_calendar_rows(rows, "body")
    assert (yaml_error.value.row, yaml_error.value.field) == (index + 1, field)


def test_errors_say_what_to_do():
    cases = {
        "date,kind\n2026-10-01,holiday\n2026-10-01,workday\n": "row 3, field 'date': 2026-10-01 is already given "
                                                              "in row 2",
        "date,knd\n": "field 'knd': unknown column; the header is date,kind,name",
        "kind,name\n": "the header has no 'date' column",
        "date,kind\n2026-10-01,holiday,x\n": "3 fields but the header has 2",
        "date,kind,name\n": "no days in the file",
        "date,kind\n2026-10-01,vacation\n": "write holiday or workday",
    }
    for text, message in cases.items():
        with pytest.raises(CalendarFileError, match=message):
            parse_calendar_csv(text, "f.csv")
    with pytest.raises(CalendarFileError, match="unknown top-level key"):
        parse_calendar_yaml("holidays: []\n")
    with pytest.raises(CalendarFileError, match="row 2, field 'nme': unknown key"):
        parse_calendar_yaml("- {date: 2026-10-01, kind: holiday}\n- {date: 2026-10-02, kind: holiday, nme: x}\n")
    with pytest.raises(CalendarFileError, match="has a time"):
        parse_calendar_yaml("- {date: 2026-10-01T08:00:00, kind: holiday}\n")


def test_csv_comments_bom_case_and_missing_names():
    text = "\ufeffDate,Kind,Name\n# our shutdowns\n2026-08-03,HOLIDAY,年度检修\n\n2026-10-10,workday\n"
    assert parse_calendar_csv(text) == [
        CalendarDay(date(2026, 8, 3), CalendarDayKind.HOLIDAY, "年度检修"),
        CalendarDay(date(2026, 10, 10), CalendarDayKind.WORKDAY, ""),
    ]


def test_file_types(tmp_path):
    good = tmp_path / "days.yml"
    good.write_text("- {date: 2026-08-03, kind: holiday, name: 检修}\n", encoding="utf-8")
    assert read_calendar_file(good)[0].name == "检修"
    other = tmp_path / "days.txt"
    other.write_text("date,kind\n", encoding="utf-8")
    with pytest.raises(CalendarFileError, match=r"name it \.csv or \.yaml"):
        read_calendar_file(other)
    binary = tmp_path / "days.csv"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(CalendarFileError, match="save it as UTF-8"):
        read_calendar_file(binary)


def test_park_days_override_the_national_calendar():
    national = load_holiday_calendar()
    national_day = date(2026, 10, 1)          # 国庆节
    adjusted = date(2026, 10, 10)             # Saturday, 调休上班
    shutdown = date(2026, 8, 4)               # a Tuesday
    uncovered = date(2031, 3, 3)              # the data file stops before 2031
    layered = national.with_park_days([
        CalendarDay(national_day, CalendarDayKind.WORKDAY, "continuous process"),
        CalendarDay(adjusted, CalendarDayKind.HOLIDAY, "no 调休 here"),
        CalendarDay(shutdown, CalendarDayKind.HOLIDAY, "年度检修"),
        CalendarDay(uncovered, CalendarDayKind.HOLIDAY, ""),
        CalendarDay(date(2026, 8, 8), CalendarDayKind.WORKDAY, ""),  # Saturday
    ])
    assert (national.day_type(national_day), layered.day_type(national_day)) == (DayType.HOLIDAY, DayType.WORKDAY)
    assert (national.day_type(adjusted), layered.day_type(adjusted)) == (DayType.ADJUSTED_WORKDAY, DayType.HOLIDAY)
    assert (national.day_type(shutdown), layered.day_type(shutdown)) == (DayType.WORKDAY, DayType.HOLIDAY)
    assert layered.day_type(date(2026, 8, 8)) is DayType.ADJUSTED_WORKDAY
    assert layered.holiday_name(shutdown) == "年度检修"
    assert layered.holiday_name(national_day) is None
    assert layered.covers(uncovered)
    assert layered.day_type(uncovered) is DayType.HOLIDAY
    assert not layered.covers(uncovered + timedelta(days=1))
    assert national.with_park_days([]) is national

    special = {s.day: s for s in layered.special_days(2026)}
    assert (special[national_day].source, special[national_day].overrides) == ("park", DayType.HOLIDAY)
    assert special[shutdown].overrides is DayType.WORKDAY
    assert special[date(2026, 10, 2)].source == "national"
    # every national holiday and adjusted workday of 2026 is listed once
    listed_national = {d for d, s in special.items() if s.source == "national"}
    expected = ({d for d in national.holidays if d.year == 2026}
                | {d for d in national.adjusted_workdays if d.year == 2026}) - {national_day, adjusted}
    assert listed_national == expected

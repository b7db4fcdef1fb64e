"""Targets as data: validation, versioning (old versions keep judging past periods), import files, the CLI.

The pure rules are checked on their own; the database tests run the store and the ``parkpulse targets``
commands against the real TimescaleDB, each on a park of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import psycopg
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from alarms._targets import (
    TargetInput,
    TargetVersion,
    effective_version,
    judged_on,
    plan_version,
    validate_target,
)
from alarms._targets_cli import targets_app
from alarms._targets_errors import InvalidTargetError, TargetFileError, UnknownParkError
from alarms._targets_file import CSV_FIELDS, parse_targets, parse_targets_csv, parse_targets_yaml
from alarms._targets_store import effective_targets, load_versions, record_targets

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _target(value: float = 1500.0, **kw: object) -> TargetInput:
    args: dict[str, object] = {"park_id": "p", "indicator": "total_energy", "year": 2026, "value": value,
                               "unit": "tce", "source": "示范园区 实施方案"}
    args.update(kw)
    return validate_target(**args)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ validation
def test_validation_fills_defaults_and_canonical_units():
    t = _target(unit=" TCE ")
    assert (t.variant, t.month, t.unit, t.subject_kind, t.subject) == ("calorific", 0, "tce", "park", "")
    co2 = _target(indicator="total_co2", unit="t")
    assert (co2.variant, co2.unit) == ("location", "tCO2")
    share = _target(indicator="nonfossil_share", unit="%", value=25)
    assert share.variant == "coal_equivalent"  # the share's basis on both sides (domain.md 1.2)
    pue = _target(indicator="pue", unit="1", value=1.25, subject_kind="site", subject="dc-1")
    assert (pue.variant, pue.subject_kind) == ("annual", "site")


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"indicator": "water"}, "has no targets"),
    ({"unit": "kgce"}, "write it in 'tce'"),
    ({"variant": "market"}, "does not apply to total_energy"),
    ({"year": 1800}, "year 1800 is out of range"),
    ({"month": 13}, "month 13 is out of range"),
    ({"value": -1.0}, "below 0"),
    ({"value": float("nan")}, "not a finite number"),
    ({"indicator": "renewable_share", "unit": "%", "value": 120.0}, "write shares in percent"),
    ({"indicator": "pue", "unit": "1", "value": 1.2}, "per site"),
    ({"indicator": "pue", "unit": "1", "value": 0.9, "subject_kind": "site", "subject": "dc"}, "below 1"),
    ({"source": "  "}, "say where the target comes from"),
    ({"subject_kind": "site", "subject": ""}, "needs the site's id"),
])
def test_invalid_targets_name_the_field_and_the_fix(kw, fragment):
    with pytest.raises(InvalidTargetError, match=fragment):
        _target(**kw)


# ------------------------------------------------------------------------------------------------ versioning (pure)
def _stored(target_id: int, target: TargetInput, start: date, end: date | None = None,
            superseded: bool = False) -> TargetVersion:
    return TargetVersion(target_id, target, start, end, T0, T0 if superseded else None)


def test_first_version_covers_the_whole_period_and_a_change_starts_today():
    first = plan_version(_target(), [], today=date(2026, 3, 10))
    assert (first.unchanged, first.valid_from) == (False, date(2026, 1, 1))
    v1 = _stored(1, _target(), date(2026, 1, 1))
    same = plan_version(_target(), [v1], today=date(2026, 5, 1))
    assert same.unchanged
    change = plan_version(_target(1400), [v1], today=date(2026, 6, 10))
    assert (change.valid_from, change.end_at, change.supersede) == (date(2026, 6, 10), {1: date(2026, 6, 10)}, ())


def test_a_version_starting_on_or_before_later_ones_supersedes_them():
    v1 = _stored(1, _target(), date(2026, 1, 1), date(2026, 6, 1))
    v2 = _stored(2, _target(1400), date(2026, 6, 1))
    plan = plan_version(_target(1300, valid_from=date(2026, 4, 1)), [v1, v2], today=date(2026, 7, 1))
    assert plan.end_at == {1: date(2026, 4, 1)}
    assert plan.supersede == (2,)


def test_a_change_after_the_period_ended_keeps_the_old_value_for_it_and_says_so():
    old = _target(year=2025)
    plan = plan_version(_target(900, year=2025), [_stored(1, old, date(2025, 1, 1))], today=date(2026, 2, 3))
    assert plan.valid_from == date(2026, 2, 3)
    assert plan.note is not None
    assert "--valid-from 2025-01-01" in plan.note


def test_the_version_judging_a_period_is_the_one_in_effect_on_its_last_day_or_today():
    v1 = _stored(1, _target(1500, month=1), date(2026, 1, 1), date(2026, 6, 10))
    v2 = _stored(2, _target(1400, month=1), date(2026, 6, 10))
    gone = _stored(3, _target(1000, month=1), date(2026, 7, 1), superseded=True)
    key = v1.key
    assert judged_on(key, date(2026, 8, 1)) == date(2026, 1, 31)
    assert effective_version([v1, v2, gone], judged_on(key, date(2026, 8, 1))) is v1  # January kept its target
    annual = _stored(4, _target(1400), date(2026, 6, 10))
    assert judged_on(annual.key, date(2026, 8, 1)) == date(2026, 8, 1)
    assert effective_version([v1, v2, gone], date(2026, 7, 15)) is v2


# ------------------------------------------------------------------------------------------------ import files
CSV = """park_id,indicator,variant,year,month,value,unit,source,source_kind,site,enterprise,valid_from,note
p,total_energy,calorific,2026,,1500,tce,示范园区 实施方案 2026,seed_plan,,,,
p,total_energy,calorific,2026,1,140,tce,示范园区 实施方案 2026,seed_plan,,,,
p,pue,,2026,,1.25,1,深圳 新建数据中心 (seed 002),provincial_allocation,dc-1,,,
"""

YAML = """park: p
targets:
  - {indicator: total_energy, basis: calorific, year: 2026, annual: 1500, unit: tce,
     monthly: {1: 140, 2: 120}, source: 示范园区 实施方案 2026, source_kind: seed_plan}
  - {indicator: total_co2, method: market, year: 2026, annual: 2400, unit: t, source: company goal,
     source_kind: company_goal, enterprise: ACME}
"""


def test_csv_and_yaml_give_the_same_targets():
    rows = parse_targets_csv(CSV, "t.csv")
    assert [(t.indicator, t.month, t.value, t.subject_kind, t.subject) for t in rows] == [
        ("total_energy", 0, 1500.0, "park", ""), ("total_energy", 1, 140.0, "park", ""),
        ("pue", 0, 1.25, "site", "dc-1")]
    ydoc = parse_targets(YAML, "t.yaml")
    assert [(t.indicator, t.variant, t.month, t.value) for t in ydoc] == [
        ("total_energy", "calorific", 0, 1500.0), ("total_energy", "calorific", 1, 140.0),
        ("total_energy", "calorific", 2, 120.0), ("total_co2", "market", 0, 2400.0)]
    assert ydoc[-1].key.subject_label == "enterprise ACME"


@pytest.mark.parametrize(("text", "name", "row", "field", "fragment"), [
    ("indicator,year,value,unit\n", "a.csv", 1, None, "missing column(s) source"),
    ("indicator,year,value,unit,source,colour\n", "a.csv", 1, None, "unknown column(s) 'colour'"),
    ("indicator,year,value,unit,source\ntotal_energy,2026,lots,tce,x\n", "a.csv", 2, "value", "not a number"),
    ("indicator,year,month,value,unit,source\ntotal_energy,2026,13,1,tce,x\n", "a.csv", 2, "month", "between 1 and 12"),
    ("indicator,year,value,unit,source\ntotal_energy,2026,1,kg,x\n", "a.csv", 2, None, "write it in 'tce'"),
    ("indicator,year,value,unit,source\ntotal_energy,2026,1,tce,x\n", "b.csv", 2, "park_id", "pass --park"),
    ("indicator,year,value,unit,source\n" + "total_energy,2026,1,tce,x\n" * 2, "a.csv", 3, None,
     "same target as row 2"),
    ("targets: {a: 1}\n", "a.yaml", None, "targets", "list of entries"),
    ("park: p\ntargets:\n  - {indicator: total_energy, year: 2026, unit: tce, source: x}\n", "a.yaml", 1, "annual",
     "no value"),
    ("park: p\ntargets:\n  - {indicator: total_energy, year: 2026, annual: 1, colour: red, unit: tce, source: x}\n",
     "a.yaml", 1, "colour", "unknown field"),
    ("targets: [\n", "a.yaml", 2, None, "not valid YAML"),
])
def test_bad_files_name_the_row_the_field_and_the_fix(text, name, row, field, fragment):
    with pytest.raises(TargetFileError) as info:
        parse_targets(text, name, park="p" if name != "b.csv" else None)
    assert (info.value.row, info.value.field) == (row, field)
    assert fragment in str(info.value)


def _outcome(parse: Callable[[], list[TargetInput]]) -> list[TargetInput] | TargetFileError:
    """The parsed targets or the TargetFileError; any other exception fails the test."""
    try:
        return parse()
    except TargetFileError as exc:
        return exc


_CELL = st.one_of(st.text(max_size=12), st.sampled_from(["total_energy", "pue", "2026", "1", "tce", "%", "", "x"]),
                  st.integers(-5, 3000).map(str), st.floats(allow_nan=True).map(str))


@given(rows=st.lists(st.lists(_CELL, min_size=len(CSV_FIELDS), max_size=len(CSV_FIELDS)), max_size=5))
def test_any_csv_rows_parse_or_fail_with_a_located_error(rows):
    body = "\n".join(",".join(c.replace(",", ";").replace("\n", " ").replace('"', "'") for c in r) for r in rows)
    text = ",".join(CSV_FIELDS) + "\n" + body
    outcome = _outcome(lambda: parse_targets_csv(text, "f.csv", park="p"))
    if isinstance(outcome, TargetFileError):
        assert outcome.file == "f.csv"
        assert str(outcome).startswith("f.csv")
    else:
        assert all(t.value >= 0 for t in outcome)


@given(text=st.text(max_size=300))
def test_any_text_parses_or_fails_with_a_targets_file_error(text):
    for name in ("f.csv", "f.yaml"):
        outcome = _outcome(lambda name=name: parse_targets(text, name, park="p"))
        if isinstance(outcome, TargetFileError):
            assert str(outcome).startswith(name)


_YAML_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 3000), st.floats(allow_nan=True),
                                     st.text(max_size=8), st.dates()),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=3), max_leaves=8)


@given(entries=st.lists(st.dictionaries(st.sampled_from(["indicator", "year", "annual", "monthly", "unit", "source",
                                                         "basis", "method", "site", "enterprise", "valid_from"]),
                                        _YAML_VALUE, max_size=8), max_size=4))
def test_any_yaml_entries_parse_or_fail_with_a_located_error(entries):
    import yaml

    text = yaml.safe_dump({"park": "p", "targets": entries}, allow_unicode=True)
    outcome = _outcome(lambda: parse_targets_yaml(text, "f.yaml"))
    if isinstance(outcome, TargetFileError):
        assert outcome.row is None or 1 <= outcome.row <= len(entries)


# ------------------------------------------------------------------------------------------------ database
pytestmark_db = pytest.mark.services


@pytestmark_db
def test_versions_in_the_database_keep_past_periods_on_their_old_target(db_conn: psycopg.Connection, park_id: str):
    def t(value: float, **kw: object) -> TargetInput:
        return _target(value, park_id=park_id, **kw)

    first = record_targets(db_conn, [t(1500), t(140, month=1), t(130, month=6)], recorded_by="test",
                           today=date(2026, 1, 20))
    assert [r.status for r in first] == ["created"] * 3
    again = record_targets(db_conn, [t(1500)], recorded_by="test", today=date(2026, 2, 1))
    assert again[0].status == "unchanged"
    # in June the plan is tightened: the annual target and January's (closed) and June's monthly targets change
    changed = record_targets(db_conn, [t(1400), t(120, month=1), t(125, month=6)], recorded_by="test",
                             today=date(2026, 6, 10))
    assert {r.valid_from for r in changed} == {date(2026, 6, 10)}
    assert changed[1].note is not None  # January had ended: the note says how to restate it

    def values(as_of: date) -> dict[int, float]:
        return {v.target.month: v.target.value for v in effective_targets(db_conn, park_id, 2026, as_of)}

    assert values(date(2026, 5, 31)) == {0: 1500.0, 1: 140.0, 6: 130.0}
    assert values(date(2026, 6, 10)) == {0: 1400.0, 1: 140.0, 6: 125.0}  # January keeps its old target
    # a restatement from the period start supersedes the June version entirely
    record_targets(db_conn, [t(1350, valid_from=date(2026, 1, 1))], recorded_by="test", today=date(2026, 7, 1))
    annual = [v for v in load_versions(db_conn, park_id) if v.target.month == 0]
    assert [(v.target.value, v.valid_from, v.valid_to, v.superseded_at is not None) for v in annual] == [
        (1500.0, date(2026, 1, 1), date(2026, 6, 10), True), (1400.0, date(2026, 6, 10), None, True),
        (1350.0, date(2026, 1, 1), None, False)]
    assert annual[0].replaced_by == annual[2].target_id
    assert values(date(2026, 3, 1))[0] == 1350.0
    with pytest.raises(UnknownParkError, match="register it first"):
        record_targets(db_conn, [_target(park_id="no-such-park-x")], recorded_by="test")


@pytestmark_db
def test_cli_set_import_list_and_history(database_url: str, park_id: str, tmp_path):
    runner = CliRunner()
    app = typer.Typer()
    app.add_typer(targets_app, name="targets")

    def run(*args: str) -> str:
        result = runner.invoke(app, ["targets", *args, "--database-url", database_url])
        assert result.exit_code == 0, result.output
        return result.output

    out = run("set", park_id, "--indicator", "total_energy", "--basis", "calorific", "--year", "2026",
              "--annual", "1500", "--monthly", "1=140", "--unit", "tce", "--source", "示范园区 实施方案",
              "--source-kind", "seed_plan")
    assert out.count("version ") == 2
    assert "valid from 2026-01-01" in out
    file = tmp_path / "targets.yaml"
    file.write_text(f"park: {park_id}\ntargets:\n  - {{indicator: pue, site: dc-1, year: 2026, annual: 1.25, "
                    "unit: '1', source: 深圳 新建数据中心 PUE<1.25 (seed 002), source_kind: provincial_allocation}\n"
                    "  - {indicator: total_energy, basis: calorific, year: 2026, annual: 1500, unit: tce, "
                    "source: 示范园区 实施方案, source_kind: seed_plan}\n", encoding="utf-8")
    out = run("import", str(file))
    assert "unchanged  total_energy" in out
    assert "pue (annual) 2026 site dc-1 = 1.25 1" in out
    out = run("set", park_id, "--indicator", "total_energy", "--year", "2026", "--annual", "1400", "--unit", "tce",
              "--source", "示范园区 实施方案", "--source-kind", "seed_plan", "--valid-from", "2026-07-01")
    assert "ends version(s)" in out
    listed = run("list", park_id, "--year", "2026", "--as-of", "2026-08-01", "--format", "json")
    assert '"value": 1400.0' in listed
    assert '"value": 1500.0' not in listed
    history = run("history", park_id, "--format", "json")
    assert '"valid_to": "2026-07-01"' in history
    bad = runner.invoke(app, ["targets", "set", park_id, "--indicator", "pue", "--year", "2026", "--annual", "1.3",
                              "--unit", "1", "--source", "x", "--database-url", database_url])
    assert bad.exit_code == 1
    assert "name the data-centre site with --site" in bad.output

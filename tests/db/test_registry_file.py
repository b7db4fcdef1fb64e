"""Registry files (pure): the YAML and CSV layouts, every problem reported with its line, and round trips.

Expected line numbers are counted from the literal files below, not from the parser. The property tests
check that any text gives either a document or a :class:`RegistryFileError` naming lines, never a crash,
and that every valid document survives dump → parse in both formats.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.db import CSV_COLUMNS, RegistryFileError, dump_registry, parse_registry, registry_format, registry_tree
from infra.db.errors import RegistryError
from schemas.registry import (
    CARRIERS,
    DEVICE_KINDS,
    DEVICE_ROLES,
    SITE_KINDS,
    DeviceEntry,
    ParkEntry,
    RegistryDocument,
    SiteEntry,
)

NESTED = """\
version: 1
park:
  park_id: binjiang
  name: 滨江智造园
  province: 江苏
  sites:
    - site_id: ws-a
      kind: workshop
      floor_area_m2: 12000
      roof_area_m2: 9000
      is_public_building: 否
      devices:
        - {device_id: ws-a-main, kind: electricity_meter, carrier: electricity, metering_level: 2}
  devices:
    - device_id: grid-in
      metering_level: 1
      role: park_boundary
      multiplier: 40
    - {device_id: pv-roof, kind: pv_inverter, role: pv, site: ws-a}
"""


def problems_of(text: str, fmt: str) -> list[tuple[int, str | None]]:
    with pytest.raises(RegistryFileError) as caught:
        parse_registry(text, fmt)  # type: ignore[arg-type]
    return [(p.line, p.field) for p in caught.value.problems]


def test_nested_yaml_reads_park_sites_and_devices():
    doc = parse_registry(NESTED, "yaml").document
    assert doc.park == ParkEntry(park_id="binjiang", name="滨江智造园", province="江苏")
    assert doc.park.timezone == "Asia/Shanghai"
    assert doc.sites == (SiteEntry(site_id="ws-a", kind="workshop", floor_area_m2=12000.0, roof_area_m2=9000.0),)
    assert [d.device_id for d in doc.devices] == ["grid-in", "pv-roof", "ws-a-main"]
    by_id = {d.device_id: d for d in doc.devices}
    assert by_id["ws-a-main"].site_id == "ws-a"  # from the nesting
    assert by_id["pv-roof"].site_id == "ws-a"    # from `site:`
    assert by_id["grid-in"].multiplier == 40.0
    assert by_id["grid-in"].kind is None          # not stated: left to the device's birth message


def test_csv_rows_with_and_without_the_record_column():
    text = ("park_id,site_id,device_id,name,kind,metering_level,floor_area_m2,role\n"
            "binjiang,,,滨江,,,,\n"
            "binjiang,ws-a,,,workshop,,12000,\n"
            ",ws-a,ws-a-main,,electricity_meter,2,,\n"
            "binjiang,,grid-in,,,1,,park_boundary\n")
    doc = parse_registry(text, "csv").document
    assert doc.park.park_id == "binjiang"
    assert doc.sites == (SiteEntry(site_id="ws-a", kind="workshop", floor_area_m2=12000.0),)
    assert {d.device_id: (d.site_id, d.metering_level) for d in doc.devices} == {
        "ws-a-main": ("ws-a", 2), "grid-in": (None, 1)}


def test_every_yaml_problem_is_reported_with_its_line():
    text = """\
park:
  park_id: p
  timezone: Mars/Base
  sites:
    - site_id: a
      kind: castle
      devices:
        - device_id: d1
          role: boss
          site: b
    - site_id: a
  devices:
    - device_id: d1
    - device_id: 007
      metering_level: true
      multiplier: 0
      colour: blue
"""
    assert problems_of(text, "yaml") == [
        (3, "timezone"), (6, "kind"), (9, "role"), (10, "site_id"), (11, "site_id"), (13, "device_id"),
        (14, "device_id"), (15, "metering_level"), (16, "multiplier"), (17, "colour")]


def test_every_csv_problem_is_reported_with_its_line():
    text = ("record,park_id,site_id,device_id,kind,metering_level,timezone,carrier\n"
            "park,p,,,,,Asia/Shanghai,\n"
            "\n"
            "site,q,s1,,castle,,,\n"
            ",,,d1,gas_meter,4,,\n"
            "device,p,,d2,,,Asia/Shanghai,\n"
            "thing,p,,,,,,\n"
            "device,p,,d3,,,,coal\n"
            "device,p,,d1,,,,\n")
    assert problems_of(text, "csv") == [
        (4, "kind"), (4, "park_id"), (5, "metering_level"), (6, "timezone"), (7, "record"), (8, "carrier"),
        (9, "device_id")]


def test_csv_header_problems_say_which_columns():
    with pytest.raises(RegistryFileError, match=r"unknown column.*'metring_level'"):
        parse_registry("park_id,metring_level\np,1\n", "csv")
    with pytest.raises(RegistryFileError, match="no park_id column"):
        parse_registry("device_id\nd\n", "csv")
    with pytest.raises(RegistryFileError, match="comma-separated"):
        parse_registry("park_id;name\np;x\n", "csv")


def test_one_park_per_file():
    assert problems_of("park_id\n\n", "csv") == [(1, None)]
    assert problems_of("park_id\na\nb\n", "csv") == [(3, "park_id")]
    assert problems_of("version: 2\npark: {park_id: p}\n", "yaml") == [(1, "version")]
    assert problems_of("parks: []\n", "yaml") == [(1, "park"), (1, "parks")]


def test_yaml_aliases_tags_and_duplicate_keys_are_refused():
    assert problems_of("park: {park_id: p, sites: &s [{site_id: a}], devices: *s}\n", "yaml") == [(1, "devices")]
    assert problems_of("park:\n  park_id: p\n  park_id: q\n", "yaml") == [(3, "park_id")]
    assert problems_of("park:\n  park_id: !!python/name:os.system p\n", "yaml") == [(2, "park_id")]


def test_the_format_comes_from_the_extension():
    assert registry_format("a/B.CSV") == "csv"
    assert registry_format("park.yml") == "yaml"
    with pytest.raises(RegistryError, match=r"\.yaml, \.yml or \.csv"):
        registry_format("park.xlsx")


def test_the_json_tree_imports_as_yaml():
    doc = parse_registry(NESTED, "yaml").document
    assert parse_registry(json.dumps(registry_tree(doc), ensure_ascii=False), "yaml").document == doc


def test_a_csv_export_opens_in_a_spreadsheet_with_one_row_per_entity():
    doc = parse_registry(NESTED, "yaml").document
    rows = list(csv.DictReader(io.StringIO(dump_registry(doc, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["record"], r["site_id"], r["device_id"]) for r in rows] == [
        ("park", "", ""), ("site", "ws-a", ""), ("device", "ws-a", "pv-roof"), ("device", "ws-a", "ws-a-main"),
        ("device", "", "grid-in")]
    assert all(r["park_id"] == "binjiang" for r in rows)
    assert rows[4]["multiplier"] == "40"


# --- properties -----------------------------------------------------------------------------------------

ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,12}", fullmatch=True)
words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=[*map(chr, range(32)), "\x7f"]),
                min_size=1, max_size=24).filter(
    lambda s: s.strip() == s)
areas = st.none() | st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def documents(draw: st.DrawFn) -> RegistryDocument:
    park = ParkEntry(park_id=draw(ids), name=draw(st.none() | words), province=draw(st.none() | words),
                     grid_region=draw(st.none() | words), auto_register=draw(st.booleans()),
                     timezone=draw(st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "UTC", "Europe/Berlin"])))
    site_ids = draw(st.lists(ids, max_size=4, unique=True))
    sites = tuple(SiteEntry(site_id=s, name=draw(st.none() | words), kind=draw(st.sampled_from(SITE_KINDS)),
                            floor_area_m2=draw(areas), roof_area_m2=draw(areas),
                            is_public_building=draw(st.booleans())) for s in sorted(site_ids))
    device_ids = draw(st.lists(ids, max_size=6, unique=True))
    devices = tuple(DeviceEntry(
        device_id=d, kind=draw(st.none() | st.sampled_from(DEVICE_KINDS)),
        carrier=draw(st.none() | st.sampled_from(CARRIERS)), metering_level=draw(st.none() | st.integers(1, 3)),
        site_id=draw(st.none() | st.sampled_from([*site_ids, "elsewhere"])),
        role=draw(st.none() | st.sampled_from(DEVICE_ROLES)), register_max=draw(areas), multiplier=draw(areas),
        rated_power_kw=draw(areas), profile=draw(st.none() | ids)) for d in sorted(device_ids))
    return RegistryDocument(park=park, sites=sites, devices=devices)


@given(documents(), st.sampled_from(["yaml", "csv"]))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_every_document_survives_dump_and_parse(doc: RegistryDocument, fmt: str):
    assert parse_registry(dump_registry(doc, fmt), fmt).document == doc  # type: ignore[arg-type]


def _check_problems(text: str, fmt: str) -> None:
    """Parsing ``text`` gives a document, or problems that each name a line of the file and say something."""
    error: RegistryFileError | None = None
    try:
        parse_registry(text, fmt)  # type: ignore[arg-type]
    except RegistryFileError as exc:
        error = exc
    if error is None:
        return
    assert error.problems
    n_lines = text.count("\n") + text.count("\r") + 2
    for problem in error.problems:
        assert 0 <= problem.line <= n_lines
        assert problem.message.strip()
        assert str(problem) in str(error)


@given(st.text(max_size=400), st.sampled_from(["yaml", "csv"]))
@settings(max_examples=300)
def test_any_text_gives_a_document_or_problems_with_lines(text: str, fmt: str):
    _check_problems(text, fmt)


scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=12) | ids
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(["park", "park_id", "sites", "devices", "site_id", "device_id", "site", "kind", "role",
                     "metering_level", "multiplier", "timezone", "version", "name", "x"]), inner, max_size=4),
    max_leaves=25)


@given(trees)
@settings(max_examples=300)
def test_any_yaml_structure_gives_a_document_or_problems(tree: object):
    _check_problems(yaml.safe_dump(tree, allow_unicode=True), "yaml")


@given(st.lists(st.sampled_from([*CSV_COLUMNS, "other"]), min_size=1, max_size=8, unique=True),
       st.lists(st.lists(st.sampled_from(["", "p", "s", "d", "1", "4", "x,y", "true", "-1", "nan", "park", "site",
                                          "device", "Asia/Shanghai", "pv", "gas", '"']), max_size=9), max_size=6))
@settings(max_examples=300)
def test_any_csv_sheet_gives_a_document_or_problems(header: list[str], rows: list[list[str]]):
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    _check_problems(buffer.getvalue(), "csv")


def test_non_finite_and_huge_numbers_are_problems_not_crashes():
    assert problems_of("park_id,site_id,floor_area_m2\np,,\np,s,nan\n", "csv") == [(3, "floor_area_m2")]
    assert problems_of("park_id,site_id,floor_area_m2\np,,\np,s,1e999\n", "csv") == [(3, "floor_area_m2")]
    assert math.isfinite(parse_registry("park_id,site_id,floor_area_m2\np,,\np,s,1e300\n", "csv")
                         .document.sites[0].floor_area_m2 or 0)


# --- one vocabulary ---------------------------------------------------------------------------------------

def test_the_roles_and_kinds_the_code_base_uses_are_in_the_registry_vocabulary():
    from aggregation._inputs import BOUNDARY_ROLES, RENEWABLE_ROLES
    from aggregation._pue import FACILITY_ROLE, IT_ROLE
    from edge.profile import ModbusProfile
    from schemas import Carrier
    from simulators import DEFAULT_SCENARIO, load_scenario
    from simulators._device_specs import REGISTER_METRICS

    assert {FACILITY_ROLE, IT_ROLE, *RENEWABLE_ROLES, *BOUNDARY_ROLES} - {""} <= set(DEVICE_ROLES)
    assert set(REGISTER_METRICS) <= set(DEVICE_KINDS)
    assert ModbusProfile.model_fields["kind"].default in DEVICE_KINDS
    assert set(CARRIERS) == {c.value for c in Carrier}
    scenario = load_scenario(DEFAULT_SCENARIO)
    assert {d.role for d in scenario.all_devices() if d.role} <= set(DEVICE_ROLES)
    assert {d.kind for d in scenario.all_devices()} <= set(DEVICE_KINDS)
    assert {s.kind for s in scenario.sites} <= set(SITE_KINDS)


def test_escaped_surrogates_are_problems_that_still_print():
    with pytest.raises(RegistryFileError) as caught:
        parse_registry('{"park": {"park_id": "p", "name": "\\ud800"}, "\\udc00": 1}', "yaml")
    # the unknown top-level key (escaped) and the name with an unpaired surrogate
    assert sorted((p.line, p.field) for p in caught.value.problems) == [(1, "\\udc00"), (1, "name")]
    str(caught.value).encode("utf-8")  # the message quotes the file's text, escaped

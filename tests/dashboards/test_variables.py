"""Browser-side template-variable interpolation for a SQL datasource."""

from __future__ import annotations

import pytest

from dashboards import ALL, InterpolationError, VariableState, interpolate, referenced_variables, state_from_rows

PARK = VariableState("park", "p-1", options=("p-1", "p-2"))
BUILDINGS = VariableState("building", ALL, multi=True, include_all=True, options=("-", "office", "o'brien"))


def test_single_value_is_raw_and_sqlstring_quotes_and_escapes():
    states = {"park": VariableState("park", "o'hara")}
    assert interpolate("d.park_id = '$park'", {"park": PARK}) == "d.park_id = 'p-1'"
    assert interpolate("d.park_id = ${park:sqlstring}", states) == "d.park_id = 'o''hara'"


def test_all_means_every_option_quoted():
    assert interpolate("site IN ($building)", {"building": BUILDINGS}) == "site IN ('-','office','o''brien')"
    assert interpolate("ARRAY[${building:sqlstring}]", {"building": BUILDINGS}) == "ARRAY['-','office','o''brien']"


def test_all_with_no_options_still_makes_a_valid_array():
    empty = VariableState("dc", ALL, multi=True, include_all=True, options=())
    assert interpolate("x = ANY(ARRAY[${dc:sqlstring}]::text[])", {"dc": empty}) == "x = ANY(ARRAY[]::text[])"


def test_custom_all_value_is_inserted_as_written():
    state = VariableState("building", ALL, multi=True, include_all=True, all_value="NULL", options=("a",))
    assert interpolate("coalesce($building, site)", {"building": state}) == "coalesce(NULL, site)"


def test_multi_selection_and_formats():
    state = VariableState("device", ("m-1", "m-2"), multi=True, include_all=True, options=("m-1", "m-2", "m-3"))
    states = {"device": state}
    assert interpolate("IN ($device)", states) == "IN ('m-1','m-2')"
    assert interpolate("${device:csv}|${device:pipe}|[[device]]", states) == "m-1,m-2|m-1|m-2|'m-1','m-2'"
    assert interpolate("${device:singlequote}", states) == "'m-1','m-2'"
    with pytest.raises(InterpolationError, match="format"):
        interpolate("${device:glob}", states)


def test_builtins_and_macros():
    scoped = {"__interval": "1m", "__interval_ms": "60000"}
    sql = "$__timeGroup(ts, $__interval), $__interval_ms, $__timeFilter(ts), $unknown"
    # $__interval_ms is one token (\w+ is greedy); macros and unknown names are left for the server
    assert interpolate(sql, {}, scoped) == "$__timeGroup(ts, 1m), 60000, $__timeFilter(ts), $unknown"


def test_referenced_variables():
    assert referenced_variables("'$park' ${building:sqlstring} [[device]] $__interval") == {
        "park", "building", "device", "__interval"}


def test_state_from_rows_reads_the_value_column():
    rows = [("office", "综合办公楼"), ("-", "园区级")]
    state = state_from_rows("building", rows, ["__value", "__text"], multi=True, include_all=True)
    assert state.current == ALL
    assert state.options == ("office", "-")
    park = state_from_rows("park", [("p-2", "Park 2")], ["__text_first", "x"], multi=False, include_all=False)
    assert park.current == "p-2"
    with pytest.raises(InterpolationError, match="no options"):
        state_from_rows("park", [], ["__value"], multi=False, include_all=False)

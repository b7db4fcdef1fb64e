"""The alarm rules file and per-park overrides: the built-in rules, precedence, ``--set`` and bad input.

Pure tests: no database. Every malformed file or override must give an :class:`AlarmRulesError` that names
where the problem is, never another exception (hypothesis).
"""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alarms._rules_errors import AlarmRulesError
from alarms._rules_model import (
    FLAG_NAMES,
    PueLimitRule,
    effective_rules,
    load_rules,
    override_rule,
    parse_assignment,
    parse_rules,
)

BUILTIN_TEXT = resources.files("alarms").joinpath("data/alarm_rules.yaml").read_text(encoding="utf-8")
BUILTIN_DOC = yaml.safe_load(BUILTIN_TEXT)


def test_builtin_file_has_every_rule_kind_of_the_issue():
    rules = load_rules()
    kinds = {r.kind for r in rules.rules}
    assert kinds == {"device_offline", "data_gap", "estimated_share", "counter_anomaly", "meter_balance", "pue_limit",
                     "contracted_demand", "uplink_backlog"}
    assert len({r.id for r in rules.rules}) == len(rules.rules)
    # seed 002 (Shenzhen): new data centres PUE < 1.25, existing ones retrofitted above 1.4
    pue = rules.rule("pue_limit")
    assert isinstance(pue, PueLimitRule)
    assert (pue.params.limits.new, pue.params.limits.existing) == (1.25, 1.4)
    # contracted demand is a per-park parameter: unset in the shipped file
    demand = rules.rule("contracted_demand")
    assert demand is not None
    assert demand.params.contracted_demand_kw is None


def test_pue_limit_per_site_status_or_number():
    pue = load_rules().rule("pue_limit")
    assert isinstance(pue, PueLimitRule)
    changed = override_rule(pue, {"params": {"sites": {"dc-new": "new", "dc-own": 1.3}}}, "test")
    assert isinstance(changed, PueLimitRule)
    assert changed.params.limit_for("dc-new") == (1.25, "new")
    assert changed.params.limit_for("dc-own") == (1.3, "site limit")
    assert changed.params.limit_for("dc-other") == (1.4, "existing")


def test_database_override_wins_over_the_files_park_section():
    doc = copy.deepcopy(BUILTIN_DOC)
    doc["parks"] = {"p1": {"contracted_demand": {"params": {"contracted_demand_kw": 2000}, "severity": "warning"}}}
    rules = parse_rules(yaml.safe_dump(doc, allow_unicode=True), "mine.yaml")
    from_file = {r.id: r for r in effective_rules(rules, "p1", {})}
    assert from_file["contracted_demand"].params.contracted_demand_kw == 2000  # type: ignore[union-attr]
    assert from_file["contracted_demand"].severity == "warning"
    both = {r.id: r for r in effective_rules(rules, "p1", {"contracted_demand": {"params": {
        "contracted_demand_kw": 3000}}})}
    assert both["contracted_demand"].params.contracted_demand_kw == 3000  # type: ignore[union-attr]
    assert both["contracted_demand"].severity == "warning"          # the file's park value still applies
    other = {r.id: r for r in effective_rules(rules, "p2", {})}
    assert other["contracted_demand"].params.contracted_demand_kw is None  # type: ignore[union-attr]


def test_override_errors_name_the_rule_and_field():
    rules = load_rules()
    with pytest.raises(AlarmRulesError) as err:
        effective_rules(rules, "p1", {"device_offline": {"params": {"intervals": -2}}})
    assert "park p1" in str(err.value)
    assert "rules.device_offline.params.intervals" in str(err.value)
    with pytest.raises(AlarmRulesError, match="no rule 'nope'"):
        effective_rules(rules, "p1", {"nope": {"enabled": False}})
    with pytest.raises(AlarmRulesError, match=r"rules.device_offline.kind: cannot be overridden"):
        effective_rules(rules, "p1", {"device_offline": {"kind": "pue_limit"}})
    with pytest.raises(AlarmRulesError, match="unknown interval flag 'bogus'"):
        effective_rules(rules, "p1", {"counter_anomaly": {"params": {"flags": ["bogus"]}}})


def test_file_errors_name_the_rule_and_field():
    doc = copy.deepcopy(BUILTIN_DOC)
    doc["rules"][0]["params"]["intervals"] = 0
    doc["rules"][6]["params"]["min_days"] = 99
    with pytest.raises(AlarmRulesError) as err:
        parse_rules(yaml.safe_dump(doc, allow_unicode=True), "mine.yaml")
    text = str(err.value)
    assert text.startswith("mine.yaml: ")
    assert "rules[0] (device_offline).params.intervals" in text
    assert "rules[6] (pue_limit).params" in text
    assert "min_days (99) must not exceed window_days" in text
    doc = copy.deepcopy(BUILTIN_DOC)
    doc["rules"].append(copy.deepcopy(doc["rules"][0]))
    with pytest.raises(AlarmRulesError, match="used twice"):
        parse_rules(yaml.safe_dump(doc, allow_unicode=True), "dup.yaml")
    with pytest.raises(AlarmRulesError, match=r"broken.yaml: line 2, column 8: not valid YAML"):
        parse_rules("version: 1\n  rules: x\n", "broken.yaml")


def test_set_assignments():
    assert parse_assignment("contracted_demand.contracted_demand_kw=3000") == (
        "contracted_demand", {"params": {"contracted_demand_kw": 3000}})
    assert parse_assignment("device_offline.enabled=false") == ("device_offline", {"enabled": False})
    assert parse_assignment("pue_limit.sites.dc-1=new") == ("pue_limit", {"params": {"sites": {"dc-1": "new"}}})
    assert parse_assignment("pue_limit.params.window_days=30") == ("pue_limit", {"params": {"window_days": 30}})
    assert parse_assignment("counter_anomaly.flags=[spike]") == ("counter_anomaly", {"params": {"flags": ["spike"]}})
    assert parse_assignment("contracted_demand.contracted_demand_kw=") == (
        "contracted_demand", {"params": {"contracted_demand_kw": None}})
    for bad in ("nodot=1", "rule.field", "=3", "r..x=1"):
        with pytest.raises(AlarmRulesError, match="--set"):
            parse_assignment(bad)


# --- hypothesis: bad input never crashes -------------------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                     | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def _refusal(parse: Callable[[], object]) -> AlarmRulesError | None:
    """The AlarmRulesError ``parse`` raised, or None when it accepted its input (any other error fails)."""
    try:
        parse()
    except AlarmRulesError as exc:
        return exc
    return None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "设备：", max_size=300))
def test_any_text_is_a_rules_file_or_a_clear_error(text: str):
    exc = _refusal(lambda: parse_rules(text, "fuzz.yaml"))
    if exc is not None:
        assert str(exc).startswith("fuzz.yaml: ")
        assert exc.problems
        assert all(exc.problems)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


_PATHS = [p for p in _paths(BUILTIN_DOC) if p]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PATHS), _json)
def test_any_field_replaced_gives_a_valid_file_or_an_error_naming_where(path: tuple[Any, ...], value: Any):
    doc = copy.deepcopy(BUILTIN_DOC)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    exc = _refusal(lambda: parse_rules(yaml.safe_dump(doc, allow_unicode=True), "fuzz.yaml"))
    if exc is None:
        return
    assert str(exc).startswith("fuzz.yaml")
    top = path[0]
    assert any(str(top) in p or "(top level)" in p for p in exc.problems), exc.problems
    if top == "rules" and len(path) > 2 and isinstance(path[1], int) and path[2] not in ("id", "kind"):
        rule_id = BUILTIN_DOC["rules"][path[1]]["id"]
        # the rule is named by its index and its id
        assert any(f"rules[{path[1]}] ({rule_id})" in p for p in exc.problems), exc.problems


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([r["id"] for r in BUILTIN_DOC["rules"]]),
       st.dictionaries(st.sampled_from(["enabled", "severity", "raise_after", "reopen_within_min", "params", "kind",
                                        "bogus"]), _json, max_size=3))
def test_any_override_is_applied_or_refused_naming_the_rule(rule_id: str, override: dict[str, Any]):
    exc = _refusal(lambda: effective_rules(load_rules(), "p1", {rule_id: override}))
    if exc is not None:
        assert str(exc).startswith("park p1: ")
        assert all(f"rules.{rule_id}" in p for p in exc.problems), exc.problems


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_set_text_is_parsed_or_refused(text: str):
    exc = _refusal(lambda: parse_assignment(text))
    if exc is not None:
        assert str(exc).startswith("--set: ")
        return
    rule_id, override = parse_assignment(text)
    assert rule_id
    assert isinstance(override, dict)


def test_flag_names_are_the_interval_flags():
    assert {"epoch_break", "spike", "rollover", "meter_replaced", "reset_confirmed"} <= set(FLAG_NAMES)

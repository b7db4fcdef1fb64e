"""Direction aliases (one table, everywhere) and DR policy files overriding the built-in policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flex import DataFileError, Direction, load_policy, override_policy, parse_direction
from flex._direction import ALIASES, direction_words

REDUCE = ["up", "reduce", "Reduction", "削峰", "peak-shaving", "Peak Shaving", " peak_shaving ", "load-reduction"]
INCREASE = ["down", "increase", "填谷", "valley-filling", "Valley_Filling", "load increase"]


def test_every_word_people_use_maps_to_its_direction():
    assert {parse_direction(w) for w in REDUCE} == {Direction.UP}
    assert {parse_direction(w) for w in INCREASE} == {Direction.DOWN}
    assert parse_direction(Direction.DOWN) is Direction.DOWN
    assert Direction.UP.label == "up (load reduction, 削峰)"
    assert Direction.DOWN.label == "down (load increase, 填谷)"
    assert direction_words(Direction.UP)[0] == "up"
    assert set(ALIASES.values()) == set(Direction)


@given(st.text(max_size=30))
def test_unknown_words_are_refused_with_the_list(word: str):
    try:
        parsed = parse_direction(word)
    except ValueError as exc:
        message = str(exc)
    else:
        assert parsed in (Direction.UP, Direction.DOWN)
        return
    assert "削峰" in message
    assert "valley-filling" in message


def test_an_override_file_changes_only_its_keys(tmp_path: Path):
    built_in = load_policy()
    path = tmp_path / "policy.yaml"
    path.write_text("verified_capacity:\n  statistic: median\ndeclared_duration_h: 4\n"
                    "performance_bands:\n  bands:\n    - {name: pass, min_ratio: 0.9}\n"
                    "    - {name: fail, max_ratio: 0.9}\n", encoding="utf-8")
    policy = load_policy(path)
    assert (policy.verified.statistic, built_in.verified.statistic) == ("median", "max")
    assert (policy.declared_duration_h, built_in.declared_duration_h) == (4.0, 2.0)
    assert (policy.band_for(1.0), built_in.band_for(1.0)) == ("pass", "full")
    assert policy.verified.lookback_days == built_in.verified.lookback_days
    assert policy.data_quality == built_in.data_quality
    assert policy.source == str(path)
    assert override_policy({}) == built_in.model_copy(update={"source": "<memory>"})


@pytest.mark.parametrize(("override", "message"), [
    ({"verified_capacity": {"statistic": "mean"}}, "key 'verified_capacity.statistic': Input should be 'max' or "
                                                   "'median' (got 'mean')"),
    ({"verifed_capacity": {}}, "unknown key 'verifed_capacity'"),
    ({"derating": {"min_factr": 0.1}}, "unknown key 'derating.min_factr'"),
    ({"declared_duration_h": 0}, "key 'declared_duration_h': Input should be greater than 0"),
    ({"declared_duration_h": "two"}, "key 'declared_duration_h': expected a number"),
    ({"data_quality": {"max_event_estimated_share": {"value": 1.5}}},
     "key 'data_quality.max_event_estimated_share': Input should be less than or equal to 1"),
    ({"performance_bands": {"bands": [{"name": "x", "min_ratio": 1, "max_ratio": 0.5}]}},
     "key 'performance_bands.bands.0'"),
    ({"performance_bands": {"bands": [{"name": "x", "minratio": 1}]}}, "key 'performance_bands.bands.0.minratio'"),
    ({"annual_max_demand": {"basis": "rolling"}}, "key 'annual_max_demand.basis'"),
    ({"derating": {"min_factor": 0.9, "max_factor": 0.5}}, "min_factor must not exceed max_factor"),
    ({"derating": 1}, "key 'derating': expected a mapping"),
    ([1, 2], "expected a mapping of policy keys"),
])
def test_bad_override_files_name_the_key(override: object, message: str):
    with pytest.raises(DataFileError) as info:
        override_policy(override, "deploy.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("data file deploy.yaml")


def test_unreadable_and_invalid_yaml_files(tmp_path: Path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("verified_capacity: [\n", encoding="utf-8")
    with pytest.raises(DataFileError, match="not valid YAML at line"):
        load_policy(broken)
    with pytest.raises(DataFileError, match="cannot read the policy file"):
        load_policy(tmp_path / "missing.yaml")

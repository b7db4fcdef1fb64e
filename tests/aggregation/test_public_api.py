"""The package's public names and its shipped data files."""

from __future__ import annotations

import aggregation
from aggregation._policy import default_policy
from aggregation._quality import IntervalFlag, describe_flags


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(aggregation.__all__) == sorted(set(aggregation.__all__))
    for name in aggregation.__all__:
        assert hasattr(aggregation, name), name
    exported_classes = {n for n in dir(aggregation) if n[0].isupper() and not n.startswith("_")}
    assert exported_classes <= set(aggregation.__all__)
    assert {"AggregationJob", "interval_energy", "compute_indicators"} <= set(aggregation.__all__)


def test_policy_ships_sources_for_every_threshold() -> None:
    p = default_policy()
    assert p.vee.spike_margin == 1.2
    assert p.vee.linear_gap_max_s == 7200
    assert p.pue.grade_limits == (1.2, 1.3, 1.5)
    assert {r.id for r in p.pue.rules} >= {"shenzhen_new_build", "shenzhen_retrofit"}


def test_flags_describe_themselves() -> None:
    assert describe_flags(int(IntervalFlag.ROLLOVER | IntervalFlag.SPLIT)) == ["split", "rollover"]
    assert describe_flags(0) == []

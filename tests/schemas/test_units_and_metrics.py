import math

import pytest

from schemas import METRICS, MetricKind, UnitError, UnknownMetricError, conversion_factor, convert, get_metric


def test_energy_conversions_are_exact_si_relations():
    assert convert(1.0, "kWh", "MJ") == pytest.approx(3.6)
    assert convert(1.0, "GJ", "kWh") == pytest.approx(1000 / 3.6)
    assert convert(2500.0, "Wh", "kWh") == pytest.approx(2.5)
    assert convert(1.5, "MWh", "kWh") == pytest.approx(1500.0)
    assert convert(500.0, "W", "kW") == pytest.approx(0.5)
    assert convert(50.0, "%", "1") == pytest.approx(0.5)


def test_conversion_refuses_other_dimensions_and_unknown_units():
    with pytest.raises(UnitError, match="expected energy"):
        conversion_factor("V", "kWh")
    with pytest.raises(UnitError, match="unknown unit"):
        conversion_factor("kwh", "kWh")  # units are case-sensitive: kwh is not a unit
    with pytest.raises(UnitError, match="affine"):
        conversion_factor("K", "degC")


def test_every_registered_metric_has_a_known_canonical_unit():
    for spec in METRICS.values():
        assert conversion_factor(spec.unit, spec.unit) == 1.0
        if spec.min_value is not None and spec.max_value is not None:
            assert spec.min_value < spec.max_value


def test_registry_lookup():
    spec = get_metric("active_energy_import")
    assert (spec.unit, spec.kind, spec.carrier.value) == ("kWh", MetricKind.CUMULATIVE, "electricity")
    assert get_metric("heat_energy").unit == "GJ"
    with pytest.raises(UnknownMetricError):
        get_metric("energy")
    assert not math.isnan(convert(0.0, "kWh", "kWh"))

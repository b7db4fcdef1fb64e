"""Registry metrics and units added for CJ/T 188 water, gas and heat meters; existing names unchanged."""

from __future__ import annotations

import pytest

from schemas import METRICS, MetricKind, UnitError, conversion_factor, convert, get_metric


@pytest.mark.parametrize(("name", "unit", "kind", "carrier"), [
    ("gas_volume", "m3", MetricKind.CUMULATIVE, "gas"),              # existing, unchanged
    ("heat_energy", "GJ", MetricKind.CUMULATIVE, "heat"),
    ("water_volume", "m3", MetricKind.CUMULATIVE, "water"),
    ("supply_temperature", "degC", MetricKind.INSTANTANEOUS, "none"),
    ("return_temperature", "degC", MetricKind.INSTANTANEOUS, "none"),
    ("gas_volume_working", "m3", MetricKind.CUMULATIVE, "gas"),      # new
    ("heat_volume", "m3", MetricKind.CUMULATIVE, "heat"),
    ("heat_volume_flow", "m3/h", MetricKind.INSTANTANEOUS, "heat"),
    ("water_flow", "m3/h", MetricKind.INSTANTANEOUS, "water"),
    ("cooling_power", "kW", MetricKind.INSTANTANEOUS, "cooling"),
    ("battery_low", "state", MetricKind.STATE, "none"),
    ("valve_state", "state", MetricKind.STATE, "none"),
])
def test_meter_metrics(name: str, unit: str, kind: MetricKind, carrier: str) -> None:
    spec = get_metric(name)
    assert (spec.unit, spec.kind, spec.carrier.value) == (unit, kind, carrier)


def test_state_metrics_are_bounded() -> None:
    assert (METRICS["battery_low"].min_value, METRICS["battery_low"].max_value) == (0.0, 1.0)
    assert (METRICS["valve_state"].min_value, METRICS["valve_state"].max_value) == (0.0, 2.0)


def test_cjt188_unit_codes_convert_to_registry_units() -> None:
    assert convert(1_000_000.0, "kJ", "GJ") == pytest.approx(1.0)
    assert convert(1e9, "J", "GJ") == pytest.approx(1.0)
    assert convert(1.0, "MWh", "GJ") == pytest.approx(3.6)
    assert convert(2500.0, "L/h", "m3/h") == pytest.approx(2.5)
    assert convert(1500.0, "L", "m3") == pytest.approx(1.5)
    assert conversion_factor("h", "h") == 1.0
    with pytest.raises(UnitError, match="expected volume_flow"):
        conversion_factor("h", "m3/h")

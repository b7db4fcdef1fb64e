"""Golden indicator arithmetic: both 当量/等价 bases, location- and market-based CO₂, shares, public buildings."""

from __future__ import annotations

import pytest

from aggregation._amounts import Amount, DeclaredTotals, IndicatorInputs, PublicBuilding
from aggregation._factors import default_registry
from aggregation._indicators import MISSING, IndicatorResult, compute_indicators
from aggregation._periods import parse_period
from aggregation._policy import default_policy

REG, POLICY = default_registry(), default_policy()


def inputs(**over: object) -> IndicatorInputs:
    base: dict[str, object] = dict(
        park_id="p", period=parse_period("2026-10"), province="广东",
        grid_import_kwh=Amount(100_000, 10_000), grid_export_kwh=Amount(10_000), pv_generation_kwh=Amount(30_000),
        gas_m3=Amount(10_000), heat_purchased_gj=Amount(500), recovered_heat_gj=Amount(300),
        declared=DeclaredTotals(value_added_10k_cny=5_000, fuels={"diesel": 10.0}, green_certificates=20,
                                green_trade_mwh=30, process_emissions_t=50, waste_heat_available_gj=400,
                                roof_new_total_m2=20_000, roof_new_pv_m2=8_000, roof_new_installable_m2=16_000),
        public_buildings=(PublicBuilding("office", 10_000, Amount(50_000), Amount(1_000), Amount(20)),),
    )
    base.update(over)
    return IndicatorInputs(**base)  # type: ignore[arg-type]


def pick(results: list[IndicatorResult], indicator: str, variant: str | None = None) -> IndicatorResult:
    found = [r for r in results if r.indicator == indicator and (variant is None or r.variant == variant)]
    assert len(found) == 1, (indicator, variant, [r.variant for r in results if r.indicator == indicator])
    return found[0]


# Hand arithmetic for inputs() (October 2026, 广东 -> 南方 grid, 2023 factors; coal rate 2022 for 等价值):
# electricity consumed = 100 000 + 30 000 - 10 000 = 120 000 kWh = 120 MWh; PV self-consumed 20 MWh
# 当量值: 120 x 0.1229 = 14.748; gas 10 000 x 0.0012143 = 12.143; heat 500 x 0.03412 = 17.06;
#         diesel 10 x 1.4571 = 14.571  ->  E = 58.522 tce
# 等价值: 120 x 0.3007 = 36.084 + 12.143 + 17.06 + 14.571 = 79.858 tce
E_CAL, E_EQ = 14.748 + 12.143 + 17.06 + 14.571, 36.084 + 12.143 + 17.06 + 14.571
# CO2 common: gas 10 000 x 0.002165 = 21.65; diesel 10 x 3.145 = 31.45; heat 500 x 0.11 = 55; process 50
COMMON = 21.65 + 31.45 + 55 + 50
CO2_LOC = 90 * 0.4042 + COMMON            # net purchase 100 - 10 = 90 MWh x 南方 2023 average
CO2_MKT = (90 - 50) * 0.6096 + COMMON     # 30 MWh trades + 20 certificates off, rest x residual factor


def test_energy_intensity_on_both_bases() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    cal, eq = pick(res, "energy_intensity_va", "当量值"), pick(res, "energy_intensity_va", "等价值")
    assert cal.value == pytest.approx(E_CAL / 5_000)          # 0.0117044 tce/10^4 CNY
    assert eq.value == pytest.approx(E_EQ / 5_000)            # 0.0159716
    assert cal.headline
    assert not eq.headline
    assert cal.unit == "tce/10^4 CNY"
    # estimated: 10 000 kWh of the import x 0.1229 / 1000 = 1.229 tce of 58.522
    assert cal.estimated_share == pytest.approx(1.229 / E_CAL)
    assert "coal_coefficient.electricity.calorific" in cal.factors
    assert "coal_coefficient.electricity.coal_equivalent.2022" in eq.factors


def test_equivalent_basis_can_be_the_headline() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators, intensity_basis=POLICY.indicators.share_basis)
    assert pick(res, "energy_intensity_va", "等价值").headline


def test_co2_intensity_location_and_market_based() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    loc, mkt = pick(res, "co2_intensity_va", "location"), pick(res, "co2_intensity_va", "market")
    assert loc.value == pytest.approx(CO2_LOC / 5_000)       # 194.478 t / 5000 = 0.0388956
    assert mkt.value == pytest.approx(CO2_MKT / 5_000)       # 182.484 t / 5000 = 0.0364968
    assert loc.factors["grid_emission_factor.average.南方.2023"]["value"] == 0.4042
    assert "grid_emission_factor.excl_market_nonfossil.national.2023" in mkt.factors
    assert pick(res, "carbon_per_energy", "location, 当量值").value == pytest.approx(CO2_LOC / E_CAL)


def test_certificates_cannot_reduce_location_based_emissions() -> None:
    more = inputs(declared=DeclaredTotals(value_added_10k_cny=5_000, fuels={"diesel": 10.0}, green_certificates=80,
                                          green_trade_mwh=30, process_emissions_t=50))
    res = compute_indicators(more, REG, POLICY.indicators)
    assert pick(res, "total_co2", "location").value == pytest.approx(CO2_LOC)
    # 110 MWh of instruments, capped at the 90 MWh net purchase: market-based Scope 2 is zero
    assert pick(res, "total_co2", "market").value == pytest.approx(COMMON)


def test_shares_use_one_basis_on_both_sides() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    # non-fossil (等价值): (20 MWh PV + 50 MWh green) x 0.3007 = 21.049 tce of 79.858
    assert pick(res, "nonfossil_share").value == pytest.approx(70 * 0.3007 / E_EQ * 100)
    # renewable electricity (含绿证): (20 000 + 50 000) / 120 000 kWh
    assert pick(res, "renewable_share", "electricity (含绿证)").value == pytest.approx(70_000 / 120_000 * 100)
    # electrification (当量值): 14.748 / 58.522
    assert pick(res, "electrification_rate").value == pytest.approx(14.748 / E_CAL * 100)


def test_calorific_basis_would_understate_the_nonfossil_share() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    share_eq = pick(res, "nonfossil_share").value
    share_cal = 70 * 0.1229 / E_CAL * 100     # the mixed-basis mistake the domain notes warn about
    assert share_eq is not None
    assert share_eq > share_cal


def test_waste_heat_roof_and_public_buildings() -> None:
    res = compute_indicators(inputs(), REG, POLICY.indicators)
    assert pick(res, "waste_heat_recovery_rate").value == pytest.approx(300 / 400 * 100)
    assert pick(res, "rooftop_pv_coverage", "total roof").value == pytest.approx(40.0)
    assert pick(res, "rooftop_pv_coverage", "installable roof").value == pytest.approx(50.0)
    pb = pick(res, "public_building_energy_intensity")
    # 50 000 kWh x 3.6 + 1 000 m3 x 35.544 MJ/m3 + 20 GJ x 1000 = 235 544 MJ over 10 000 m2
    assert pb.value == pytest.approx(23.5544)
    assert pb.unit == "MJ/m2"


def test_declared_floor_area_overrides_the_site_table() -> None:
    res = compute_indicators(inputs(declared=DeclaredTotals(floor_areas_m2={"office": 20_000})), REG,
                             POLICY.indicators)
    assert pick(res, "public_building_energy_intensity").value == pytest.approx(235_544 / 20_000)


def test_missing_declared_inputs_say_which_import_to_run() -> None:
    res = compute_indicators(inputs(declared=DeclaredTotals()), REG, POLICY.indicators)
    ei = pick(res, "energy_intensity_va", "当量值")
    assert ei.value is None
    assert ei.status == MISSING
    assert "import value-added" in ei.notes[0]
    assert pick(res, "waste_heat_recovery_rate").status == MISSING
    assert pick(res, "total_energy", "当量值").value == pytest.approx(E_CAL - 14.571)   # no diesel declared


def test_exported_electricity_deduction_is_a_policy_choice() -> None:
    from dataclasses import replace
    gross = replace(POLICY.indicators, deduct_exported_electricity=False)
    res = compute_indicators(inputs(), REG, gross)
    assert pick(res, "total_co2", "location").value == pytest.approx(100 * 0.4042 + COMMON)

"""综合能耗 and CO₂ of a period as sums over their sources, each source with its activity and factor.

The totals the indicators publish are *defined* as the sum of these lines (``math.fsum``, so the order of
the sources does not matter and the sum is correctly rounded): a reviewer who adds up the published
by-source rows gets the published total exactly. Sources:

* ``grid_electricity`` — electricity bought from the grid. For 综合能耗: electricity consumed less the
  on-site generation self-consumed (kWh); for CO₂: the purchased electricity (net of export when the
  policy deducts it), location-based at the grid average factor, market-based at the residual factor
  after green-power trades and certificates;
* ``onsite_electricity`` — on-site renewable generation self-consumed (综合能耗 only; 0 tCO₂ in both
  methods, domain.md §2.2);
* ``natural_gas`` — the metered boundary gas; ``fuel:<name>`` — each declared fuel;
* ``purchased_heat`` — metered purchased heat less declared heat exported;
* ``renewable_heat`` (综合能耗), ``fresh_water`` (综合能耗, 耗能工质, by policy), ``process_emissions`` (CO₂).

Pure functions over :class:`~aggregation._amounts.IndicatorInputs` and the factor registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from aggregation._amounts import Amount, IndicatorInputs
from aggregation._factors import Basis, Factor, FactorRegistry
from aggregation._policy import IndicatorPolicy
from schemas.units import convert

GRID: Final = "grid_electricity"
ONSITE: Final = "onsite_electricity"
GAS: Final = "natural_gas"
HEAT: Final = "purchased_heat"
RENEWABLE_HEAT: Final = "renewable_heat"
WATER: Final = "fresh_water"
PROCESS: Final = "process_emissions"
FUEL_PREFIX: Final = "fuel:"
_MWH_PER_KWH: Final = convert(1.0, "kWh", "MWh")


@dataclass(frozen=True, slots=True)
class SourceLine:
    """One source of a total: its activity (in ``activity_unit``), the factors applied and the result."""

    source: str
    activity: Amount
    activity_unit: str
    result: Amount
    factors: tuple[Factor, ...] = ()
    note: str = ""


def line_total(lines: tuple[SourceLine, ...]) -> Amount:
    """Σ of the lines' results, correctly rounded (independent of their order), never below zero."""
    return Amount(math.fsum(line.result.value for line in lines),
                  math.fsum(line.result.estimated for line in lines)).clamp()


@dataclass(frozen=True, slots=True)
class EnergyAccount:
    """综合能耗 on one basis, by source, with the pieces other indicators reuse."""

    basis: Basis
    total_tce: Amount
    electricity_tce: Amount
    renewable_tce: Amount          # on-site renewable electricity + green instruments + renewable heat
    pv_self_tce: Amount            # on-site renewable electricity consumed (1258号 deduction column)
    factors: tuple[Factor, ...]
    sources: tuple[SourceLine, ...] = ()


@dataclass(frozen=True, slots=True)
class CarbonAccount:
    """CO₂ of the period, location- and market-based, by source."""

    location_t: Amount
    market_t: Amount
    factors_location: tuple[Factor, ...]
    factors_market: tuple[Factor, ...]
    notes: tuple[str, ...]
    location_sources: tuple[SourceLine, ...] = ()
    market_sources: tuple[SourceLine, ...] = ()


def electricity_balance(inp: IndicatorInputs) -> tuple[Amount, Amount]:
    """(electricity consumed, on-site generation self-consumed), kWh.

    consumed = import + generation − export; self-consumed = generation − export (never below zero).
    """
    consumed = (inp.grid_import_kwh + inp.pv_generation_kwh - inp.grid_export_kwh).clamp()
    pv_self = (inp.pv_generation_kwh - inp.grid_export_kwh).clamp()
    return consumed, pv_self


def green_mwh(inp: IndicatorInputs, registry: FactorRegistry) -> tuple[float, Factor]:
    """Green-power trades plus certificates in MWh, capped at the purchased electricity.

    The cap keeps a surplus of certificates from pushing a share above 100 %.
    """
    cert = registry.certificate_energy()
    purchased_mwh = convert(inp.grid_import_kwh.value, "kWh", "MWh")
    raw = inp.declared.green_trade_mwh + inp.declared.green_certificates * cert.value
    return min(raw, purchased_mwh), cert


def _line(source: str, activity: Amount, unit: str, factor: Factor | None, *, scale: float = 1.0,
          note: str = "") -> SourceLine:
    """``activity`` x ``factor.value`` x ``scale`` (a zero activity needs no factor)."""
    if factor is None:
        return SourceLine(source, activity, unit, Amount(), (), note)
    return SourceLine(source, activity, unit, activity.scale(factor.value * scale), (factor,), note)


def energy_account(inp: IndicatorInputs, basis: Basis, registry: FactorRegistry,
                   policy: IndicatorPolicy) -> EnergyAccount:
    """综合能耗 (tce) of the period on ``basis`` (GB/T 2589-2020), by source."""
    year = inp.period.year
    k_el = registry.coal_coefficient("electricity", basis, year)
    k_heat = registry.coal_coefficient("heat", basis, year)
    consumed, pv_self = electricity_balance(inp)
    grid_kwh = Amount(consumed.value - pv_self.value, max(consumed.estimated - pv_self.estimated, 0.0))
    net_heat = Amount(inp.heat_purchased_gj.value - inp.declared.heat_exported_gj, inp.heat_purchased_gj.estimated)
    lines = [
        _line(GRID, grid_kwh, "kWh", k_el, scale=_MWH_PER_KWH),
        _line(GAS, inp.gas_m3, "m3", registry.coal_coefficient("natural_gas", basis, year)
              if inp.gas_m3.value else None),
        _line(HEAT, net_heat, "GJ", k_heat, note="purchased less declared heat exported"),
    ]
    if pv_self.value:
        lines.append(_line(ONSITE, pv_self, "kWh", k_el, scale=_MWH_PER_KWH,
                           note="on-site renewable electricity self-consumed (deducted from energy totals under "
                           "发改能源〔2022〕1258号)"))
    for fuel, qty in sorted(inp.declared.fuels.items()):
        spec = registry.fuels.get(fuel)
        lines.append(_line(FUEL_PREFIX + fuel, Amount(qty), spec.unit if spec else "",
                           registry.coal_coefficient(fuel, basis, year), note="declared"))
    renewable_heat = Amount(inp.declared.renewable_heat_gj)
    if renewable_heat.value:
        lines.append(_line(RENEWABLE_HEAT, renewable_heat, "GJ", k_heat, note="declared"))
    if policy.include_energy_media and inp.water_m3.value:
        lines.append(_line(WATER, inp.water_m3, "m3", registry.coal_coefficient("fresh_water", basis, year),
                           note="耗能工质 at 等价值 (policy include_energy_media)"))
    sources = tuple(lines)
    used: list[Factor] = [k_el, k_heat]
    for line in sources:
        used.extend(f for f in line.factors if f not in used)
    gmwh, cert = green_mwh(inp, registry)
    if gmwh:
        used.append(cert)
    elec = consumed.scale(_MWH_PER_KWH * k_el.value)
    pv_tce = pv_self.scale(_MWH_PER_KWH * k_el.value)
    renewable = pv_tce + Amount(gmwh * k_el.value) + renewable_heat.scale(k_heat.value)
    return EnergyAccount(basis, line_total(sources), elec, renewable, pv_tce, tuple(used), sources)


def carbon_account(inp: IndicatorInputs, registry: FactorRegistry, policy: IndicatorPolicy) -> CarbonAccount:
    """Scope 1 (fuels, process) + Scope 2 (electricity, heat) CO₂ in tonnes, both methods, by source."""
    year = inp.period.year
    common: list[SourceLine] = []
    if inp.gas_m3.value:
        common.append(_line(GAS, inp.gas_m3, "m3", registry.fuel_emission_factor("natural_gas")))
    else:
        common.append(_line(GAS, inp.gas_m3, "m3", None))
    for fuel, qty in sorted(inp.declared.fuels.items()):
        spec = registry.fuels.get(fuel)
        common.append(_line(FUEL_PREFIX + fuel, Amount(qty), spec.unit if spec else "",
                            registry.fuel_emission_factor(fuel), note="declared"))
    ef_heat = registry.heat_emission_factor()
    heat = (inp.heat_purchased_gj - Amount(inp.declared.heat_exported_gj)).clamp()
    common.append(_line(HEAT, heat, "GJ", ef_heat, note="purchased less declared heat exported"))
    if inp.declared.process_emissions_t:
        process = Amount(inp.declared.process_emissions_t)
        common.append(SourceLine(PROCESS, process, "tCO2", process, (), "declared non-combustion process CO2"))
    scope2_kwh = inp.grid_import_kwh
    if policy.deduct_exported_electricity:
        scope2_kwh = (scope2_kwh - inp.grid_export_kwh).clamp()
    scope2_mwh = scope2_kwh.scale(_MWH_PER_KWH)
    ef_loc = registry.grid_factor("average", year, inp.province, inp.grid_region)
    ef_res = registry.grid_factor(policy.market_residual_factor, year, inp.province, inp.grid_region)
    gmwh, cert = green_mwh(inp, registry)
    covered = min(gmwh, scope2_mwh.value)
    market_mwh = Amount(scope2_mwh.value - covered,
                        scope2_mwh.estimated * (1 - covered / scope2_mwh.value) if scope2_mwh.value else 0.0)
    location_grid = _line(GRID, scope2_mwh, "MWh", ef_loc, note="purchased electricity x grid average factor")
    market_grid = _line(GRID, market_mwh, "MWh", ef_res,
                        note=f"purchased electricity less {covered:.6g} MWh of green trades and certificates "
                             "x residual factor")
    if gmwh and market_grid.factors:
        market_grid = SourceLine(GRID, market_mwh, "MWh", market_grid.result, (ef_res, cert), market_grid.note)
    location = (location_grid, *common)
    market = (market_grid, *common)
    factors_common = [f for line in common for f in line.factors]
    market_factors = (*factors_common, ef_res, cert) if gmwh else (*factors_common, ef_res)
    return CarbonAccount(line_total(location), line_total(market), (*factors_common, ef_loc), market_factors, (),
                         location, market)

"""Park indicators (pilot guide Table 2 rows metering can serve) as pure functions.

Names and units follow seed 001 (表 2 碳达峰试点园区建设参考指标) and the zero-carbon park system; the
formulas are domain.md §1.2 with the coefficients of the factor registry:

* 综合能耗 ``E = Σ eᵢ·kᵢ`` (tce): electricity consumed (import + on-site generation − export), natural
  gas, purchased heat, declared fuels, non-electric renewable heat and, by policy, purchased fresh water;
  electricity at 当量值 (calorific) or 等价值 (coal-equivalent, the year's coal rate).
* CO₂ (t): fuels x EF + process emissions + Scope 2 electricity x grid factor + purchased heat x EF.
  Location-based uses the park's provincial → regional → national average factor; market-based takes
  green-power trades and certificates off the purchased electricity and applies the residual factor.
* Shares (非化石能源消费占比, energy-based renewable share) use the coal-equivalent basis on both sides.

Every result states its unit, variant, numerator and denominator, the factors (with vintages) it used
and the estimated share of the metered energy behind it. A missing input gives ``value=None`` with a
status that names the import to run, never a silent zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from aggregation._amounts import Amount, IndicatorInputs
from aggregation._by_source import (
    CarbonAccount,
    EnergyAccount,
    SourceLine,
    carbon_account,
    electricity_balance,
    energy_account,
    green_mwh,
)
from aggregation._factors import Basis, Factor, FactorRegistry, vintage_warning
from aggregation._policy import IndicatorPolicy
from schemas.units import MJ_PER_GJ, MJ_PER_KWH, convert

__all__ = ["CATALOGUE", "MISSING", "NO_DATA", "OK", "CarbonAccount", "EnergyAccount", "IndicatorResult",
           "IndicatorSpec", "carbon_account", "compute_indicators", "electricity_balance", "energy_account",
           "green_mwh"]

OK: Final = "ok"
MISSING: Final = "missing_input"
NO_DATA: Final = "no_data"


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator of the catalogue: stable id, Chinese name, unit and where it is defined."""

    id: str
    name_zh: str
    unit: str
    reference: str


CATALOGUE: Final[dict[str, IndicatorSpec]] = {s.id: s for s in (
    IndicatorSpec("energy_intensity_va", "单位工业增加值综合能耗", "tce/10^4 CNY", "seed 001 表2 第2行"),
    IndicatorSpec("co2_intensity_va", "单位工业增加值二氧化碳排放量", "tCO2/10^4 CNY", "seed 001 表2 第3行"),
    IndicatorSpec("nonfossil_share", "非化石能源消费占比", "%", "seed 001 表2 第4行"),
    IndicatorSpec("renewable_share", "可再生能源使用比例", "%", "seed 001 表2 第5行"),
    IndicatorSpec("waste_heat_recovery_rate", "工业余热回收利用率", "%", "seed 001 表2 第6行"),
    IndicatorSpec("rooftop_pv_coverage", "新建厂房屋顶光伏覆盖率", "%", "seed 001 表2 第8行"),
    IndicatorSpec("public_building_energy_intensity", "公共建筑单位面积能耗", "MJ/m2", "seed 001 表2 第9行"),
    IndicatorSpec("carbon_per_energy", "单位能耗碳排放", "tCO2/tce", "零碳园区核心指标 (domain.md 1.1)"),
    IndicatorSpec("electrification_rate", "电能占终端用能比重", "%", "seed 001 表1 第8行"),
    IndicatorSpec("total_energy", "综合能耗", "tce", "GB/T 2589-2020"),
    IndicatorSpec("total_co2", "二氧化碳排放总量", "tCO2", "domain.md 1.2"),
    IndicatorSpec("industrial_value_added", "工业增加值", "10^4 CNY", "declared"),
    IndicatorSpec("pue", "电能使用效率 PUE (期间)", "1", "ISO/IEC 30134-2; GB 40879-2021"),
    IndicatorSpec("pue_rolling_12m", "电能使用效率 PUE (滚动12个月)", "1", "ISO/IEC 30134-2"),
    IndicatorSpec("co2_by_source", "二氧化碳排放(分来源)", "tCO2", "domain.md 1.2, 2.2; variant method:source"),
    IndicatorSpec("energy_by_source", "综合能耗(分来源)", "tce", "GB/T 2589-2020; variant basis:source"),
)}


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    """One computed indicator value for one period and variant."""

    indicator: str
    variant: str
    value: float | None
    unit: str
    numerator: float | None = None
    denominator: float | None = None
    estimated_share: float | None = None
    factors: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = OK
    notes: tuple[str, ...] = ()
    headline: bool = True
    subject: str = ""

    @property
    def name_zh(self) -> str:
        """Chinese indicator name from the catalogue."""
        return CATALOGUE[self.indicator].name_zh


def _ratio(num: float, den: float | None, scale: float = 1.0) -> float | None:
    if den is None or den <= 0:
        return None
    return num / den * scale


def _prov(*factors: Factor) -> dict[str, dict[str, Any]]:
    return {f.label: f.provenance() for f in factors}


def _missing(indicator: str, variant: str, what: str, headline: bool = True) -> IndicatorResult:
    return IndicatorResult(indicator, variant, None, CATALOGUE[indicator].unit, status=MISSING,
                           notes=(what,), headline=headline)


def compute_indicators(inp: IndicatorInputs, registry: FactorRegistry, policy: IndicatorPolicy,
                       intensity_basis: Basis | None = None) -> list[IndicatorResult]:
    """Every park indicator for one period, all variants; the default variant of each is ``headline``."""
    basis_default = intensity_basis or policy.intensity_basis
    accounts = {b: energy_account(inp, b, registry, policy) for b in Basis}
    carbon = carbon_account(inp, registry, policy)
    va = inp.declared.value_added_10k_cny
    out: list[IndicatorResult] = []
    need_va = "industrial value added (parkpulse import value-added)"

    out.append(IndicatorResult("industrial_value_added", "declared", va, "10^4 CNY",
                               status=OK if va is not None else MISSING,
                               notes=() if va is not None else (need_va,)))
    for basis, acc in accounts.items():
        out.append(IndicatorResult("total_energy", basis.label_zh, acc.total_tce.value, "tce",
                                   estimated_share=acc.total_tce.share, factors=_prov(*acc.factors),
                                   headline=basis is basis_default,
                                   notes=(f"of which on-site renewable electricity {acc.pv_self_tce.value:.6g} tce "
                                          "(deducted from energy totals under 发改能源〔2022〕1258号)",)))
        if va is None or va <= 0:
            out.append(_missing("energy_intensity_va", basis.label_zh, need_va, basis is basis_default))
        else:
            out.append(IndicatorResult("energy_intensity_va", basis.label_zh, _ratio(acc.total_tce.value, va),
                                       "tce/10^4 CNY", acc.total_tce.value, va, acc.total_tce.share,
                                       _prov(*acc.factors), headline=basis is basis_default))
    for variant, amount, factors in (("location", carbon.location_t, carbon.factors_location),
                                     ("market", carbon.market_t, carbon.factors_market)):
        headline = variant == "location"
        out.append(IndicatorResult("total_co2", variant, amount.value, "tCO2", estimated_share=amount.share,
                                   factors=_prov(*factors), notes=carbon.notes, headline=headline))
        if va is None or va <= 0:
            out.append(_missing("co2_intensity_va", variant, need_va, headline))
        else:
            out.append(IndicatorResult("co2_intensity_va", variant, _ratio(amount.value, va), "tCO2/10^4 CNY",
                                       amount.value, va, amount.share, _prov(*factors), notes=carbon.notes,
                                       headline=headline))
        acc = accounts[basis_default]
        out.append(IndicatorResult("carbon_per_energy", f"{variant}, {acc.basis.label_zh}",
                                   _ratio(amount.value, acc.total_tce.value), "tCO2/tce", amount.value,
                                   acc.total_tce.value, _combined_share(amount, acc.total_tce),
                                   _prov(*factors, *acc.factors), OK if acc.total_tce.value > 0 else NO_DATA,
                                   notes=(f"zero-carbon park thresholds {policy.carbon_per_energy_thresholds} "
                                          "tCO2/tce",), headline=headline))
    out.extend(_share_indicators(inp, accounts[policy.share_basis], registry))
    out.extend(_other_indicators(inp, accounts[Basis.CALORIFIC], registry))
    out.extend(_by_source_rows(accounts, carbon))
    dated = [*carbon.factors_location, *carbon.factors_market, *(f for a in accounts.values() for f in a.factors)]
    return _with_fallback_notes(out, {f.label: f for f in dated}, inp.period.year)


def _source_result(indicator: str, variant: str, unit: str, line: SourceLine) -> IndicatorResult:
    """One by-source row: value = the source's share of the total, numerator = its activity data."""
    applied = " x ".join(f"{f.value:g} {f.unit}" for f in line.factors[:1])
    notes = [f"activity (numerator) {line.activity.value:.10g} {line.activity_unit}"
             + (f" x {applied}" if applied else "")]
    if line.note:
        notes.append(line.note)
    return IndicatorResult(indicator, variant, line.result.value, unit, numerator=line.activity.value,
                           estimated_share=line.result.share, factors=_prov(*line.factors), notes=tuple(notes),
                           headline=False)


def _by_source_rows(accounts: dict[Basis, EnergyAccount], carbon: CarbonAccount) -> list[IndicatorResult]:
    """``co2_by_source`` (variant ``method:source``) and ``energy_by_source`` (``basis:source``) rows.

    The rows of one method or basis add up (``math.fsum``) exactly to ``total_co2`` / ``total_energy``.
    """
    out: list[IndicatorResult] = []
    for method, lines in (("location", carbon.location_sources), ("market", carbon.market_sources)):
        out.extend(_source_result("co2_by_source", f"{method}:{line.source}", "tCO2", line) for line in lines)
    for basis, acc in accounts.items():
        out.extend(_source_result("energy_by_source", f"{basis.value}:{line.source}", "tce", line)
                   for line in acc.sources)
    return out


def _with_fallback_notes(results: list[IndicatorResult], factors: dict[str, Factor],
                         year: int) -> list[IndicatorResult]:
    """Append a FALLBACK note to every result that uses a factor of another year than ``year``."""
    out: list[IndicatorResult] = []
    for r in results:
        warnings = [w for label in r.factors if label in factors
                    and (w := vintage_warning(factors[label], year)) is not None and w not in r.notes]
        out.append(replace(r, notes=(*r.notes, *warnings)) if warnings else r)
    return out


def _combined_share(*amounts: Amount) -> float | None:
    total = sum(a.value for a in amounts)
    if total <= 0:
        return None
    return min(sum(a.estimated for a in amounts) / total, 1.0)


def _share_indicators(inp: IndicatorInputs, acc: EnergyAccount, registry: FactorRegistry) -> list[IndicatorResult]:
    """非化石能源消费占比 and 可再生能源使用比例 (electricity- and energy-based)."""
    out: list[IndicatorResult] = []
    status = OK if acc.total_tce.value > 0 else NO_DATA
    prov = _prov(*acc.factors)
    out.append(IndicatorResult("nonfossil_share", acc.basis.label_zh, _ratio(acc.renewable_tce.value,
                               acc.total_tce.value, 100.0), "%", acc.renewable_tce.value, acc.total_tce.value,
                               _combined_share(acc.renewable_tce, acc.total_tce), prov, status,
                               notes=("both sides on the same basis; grid electricity counted fossil "
                                      "unless covered by green trades or certificates",)))
    consumed, pv_self = electricity_balance(inp)
    gmwh, cert = green_mwh(inp, registry)
    renewable_kwh = pv_self + Amount(convert(gmwh, "MWh", "kWh"))
    out.append(IndicatorResult("renewable_share", "electricity (含绿证)",
                               _ratio(renewable_kwh.value, consumed.value, 100.0), "%", renewable_kwh.value,
                               consumed.value, _combined_share(renewable_kwh, consumed),
                               _prov(cert), OK if consumed.value > 0 else NO_DATA,
                               notes=("(on-site renewable self-consumption + green trades + certificates) "
                                      "/ electricity consumed, kWh",)))
    out.append(IndicatorResult("renewable_share", f"energy, {acc.basis.label_zh}",
                               _ratio(acc.renewable_tce.value, acc.total_tce.value, 100.0), "%",
                               acc.renewable_tce.value, acc.total_tce.value,
                               _combined_share(acc.renewable_tce, acc.total_tce), prov, status, headline=False))
    return out


def _other_indicators(inp: IndicatorInputs, calorific: EnergyAccount,
                      registry: FactorRegistry) -> list[IndicatorResult]:
    """余热回收利用率, 屋顶光伏覆盖率, 公共建筑单位面积能耗, 电能占终端用能比重."""
    out: list[IndicatorResult] = []
    d = inp.declared
    recovered = inp.recovered_heat_gj + Amount(d.waste_heat_recovered_gj)
    if d.waste_heat_available_gj is None or d.waste_heat_available_gj <= 0:
        out.append(_missing("waste_heat_recovery_rate", "GJ", "recoverable waste heat (parkpulse import waste-heat)"))
    else:
        out.append(IndicatorResult("waste_heat_recovery_rate", "GJ",
                                   _ratio(recovered.value, d.waste_heat_available_gj, 100.0), "%", recovered.value,
                                   d.waste_heat_available_gj, recovered.share))
    if d.roof_new_total_m2 is None or d.roof_new_pv_m2 is None:
        out.append(_missing("rooftop_pv_coverage", "total roof", "new factory roof areas (parkpulse import areas)"))
    else:
        out.append(IndicatorResult("rooftop_pv_coverage", "total roof",
                                   _ratio(d.roof_new_pv_m2, d.roof_new_total_m2, 100.0), "%", d.roof_new_pv_m2,
                                   d.roof_new_total_m2, 0.0))
        if d.roof_new_installable_m2:
            out.append(IndicatorResult("rooftop_pv_coverage", "installable roof",
                                       _ratio(d.roof_new_pv_m2, d.roof_new_installable_m2, 100.0), "%",
                                       d.roof_new_pv_m2, d.roof_new_installable_m2, 0.0, headline=False))
    out.append(_public_buildings(inp, registry))
    consumed, _ = electricity_balance(inp)
    out.append(IndicatorResult("electrification_rate", calorific.basis.label_zh,
                               _ratio(calorific.electricity_tce.value, calorific.total_tce.value, 100.0), "%",
                               calorific.electricity_tce.value, calorific.total_tce.value,
                               _combined_share(calorific.electricity_tce, calorific.total_tce),
                               _prov(*calorific.factors), OK if calorific.total_tce.value > 0 else NO_DATA,
                               notes=(f"electricity consumed {consumed.value:.6g} kWh at 当量值",)))
    return out


def _public_buildings(inp: IndicatorInputs, registry: FactorRegistry) -> IndicatorResult:
    """公共建筑单位面积能耗 (MJ/m²): electricity x 3.6, gas x LHV, heat x 1000, over the floor area."""
    if not inp.public_buildings:
        return _missing("public_building_energy_intensity", "MJ", "no public building sites "
                        "(sites.is_public_building)")
    lhv = registry.heating_value("natural_gas")
    energy = Amount()
    area = 0.0
    kwh = 0.0
    missing_area: list[str] = []
    for b in inp.public_buildings:
        declared_area = inp.declared.floor_areas_m2.get(b.site_id)
        a = declared_area if declared_area is not None else b.floor_area_m2
        if a is None or a <= 0:
            missing_area.append(b.site_id)
            continue
        area += a
        kwh += b.electricity_kwh.value
        energy = energy + b.electricity_kwh.scale(MJ_PER_KWH) + b.gas_m3.scale(lhv.value) + b.heat_gj.scale(MJ_PER_GJ)
    if area <= 0:
        return _missing("public_building_energy_intensity", "MJ",
                        f"floor area of public buildings {missing_area} (parkpulse import areas)")
    notes = [f"electricity {kwh:.6g} kWh = {kwh / area:.6g} kWh/m2 over {area:.6g} m2"]
    if missing_area:
        notes.append(f"excluded for missing floor area: {', '.join(missing_area)}")
    return IndicatorResult("public_building_energy_intensity", "MJ", _ratio(energy.value, area), "MJ/m2",
                           energy.value, area, energy.share, _prov(lhv), notes=tuple(notes))

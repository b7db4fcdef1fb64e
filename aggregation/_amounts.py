"""Small value types the indicator arithmetic is written in.

An :class:`Amount` is a quantity together with the part of it that was estimated, so every derived number
carries its own estimated share through sums and factor multiplications. :class:`DeclaredTotals` and
:class:`IndicatorInputs` are what a period's indicators are computed from: metered amounts out of the
rollups, declared (non-metered) quantities out of the imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aggregation._periods import Period


@dataclass(frozen=True, slots=True)
class Amount:
    """A non-negative quantity and the estimated part of it (same unit)."""

    value: float = 0.0
    estimated: float = 0.0

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, self.estimated + other.estimated)

    def __sub__(self, other: Amount) -> Amount:
        return Amount(self.value - other.value, self.estimated + other.estimated)

    def scale(self, factor: float) -> Amount:
        """Multiply value and estimated part by ``factor`` (unit conversion or coefficient)."""
        return Amount(self.value * factor, self.estimated * factor)

    def clamp(self) -> Amount:
        """Never below zero; the estimated part never above the value."""
        value = max(self.value, 0.0)
        return Amount(value, min(max(self.estimated, 0.0), value))

    @property
    def share(self) -> float | None:
        """Estimated share 0..1 (``None`` for a zero amount)."""
        if self.value <= 0:
            return None
        return min(max(self.estimated / self.value, 0.0), 1.0)


@dataclass(frozen=True, slots=True)
class DeclaredTotals:
    """Non-metered inputs summed over a period, with the sources they were imported from."""

    value_added_10k_cny: float | None = None
    fuels: dict[str, float] = field(default_factory=dict)      # registry unit of each fuel (t or m3)
    green_certificates: float = 0.0                            # certificates retired for the period
    green_trade_mwh: float = 0.0                               # 绿电交易 (bundled certificates)
    process_emissions_t: float = 0.0                           # tCO2, non-combustion
    waste_heat_available_gj: float | None = None               # recoverable waste-heat resource
    waste_heat_recovered_gj: float = 0.0                       # recovered, where not metered
    renewable_heat_gj: float = 0.0                             # solar thermal, geothermal, biomass heat
    heat_exported_gj: float = 0.0
    roof_new_total_m2: float | None = None
    roof_new_pv_m2: float | None = None
    roof_new_installable_m2: float | None = None
    floor_areas_m2: dict[str, float] = field(default_factory=dict)  # site_id -> declared floor area
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicBuilding:
    """One public building (site) with its metered energy and floor area for the period."""

    site_id: str
    floor_area_m2: float | None
    electricity_kwh: Amount = Amount()
    gas_m3: Amount = Amount()
    heat_gj: Amount = Amount()


@dataclass(frozen=True, slots=True)
class IndicatorInputs:
    """Everything the park indicators of one period are computed from."""

    park_id: str
    period: Period
    province: str | None = None
    grid_region: str | None = None
    grid_import_kwh: Amount = Amount()       # level-1 electricity import
    grid_export_kwh: Amount = Amount()       # level-1 electricity export
    pv_generation_kwh: Amount = Amount()     # on-site PV (and other renewable) generation
    gas_m3: Amount = Amount()                # level-1 natural gas
    heat_purchased_gj: Amount = Amount()     # level-1 heat
    water_m3: Amount = Amount()              # level-1 fresh water (耗能工质)
    recovered_heat_gj: Amount = Amount()     # waste-heat recovery loops (meters)
    declared: DeclaredTotals = field(default_factory=DeclaredTotals)
    public_buildings: tuple[PublicBuilding, ...] = ()
    completeness: float | None = None        # present / expected intervals of the meters used

"""The factor registry: coal-equivalent coefficients, emission factors and heating values, as data.

The numbers live in ``aggregation/data/factors.yaml`` with unit, region, year, vintage, source and
confidence. This module loads and validates that file and answers one question per factor kind with the
selection rules written at the top of the file: the region falls back province → grid region → national,
and the year is the latest one published at or before the reporting year (never a newer vintage applied
to an older year). Every answer is a :class:`Factor` that knows its own label, so a result can record
exactly which vintages it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aggregation.errors import FactorNotFoundError, RegistryError

NATIONAL = "national"
BUILTIN = "aggregation/data/factors.yaml (built in)"


class Basis(StrEnum):
    """How electricity is converted to coal equivalent (GB/T 2589-2020)."""

    CALORIFIC = "calorific"              # 当量值: 0.1229 kgce/kWh, the heat content of electricity
    COAL_EQUIVALENT = "coal_equivalent"  # 等价值 / 发电煤耗法: the year's thermal coal rate (~0.30 kgce/kWh)

    @property
    def label_zh(self) -> str:
        """The Chinese label a report prints next to the value."""
        return "当量值" if self is Basis.CALORIFIC else "等价值"


#: Kinds whose value is a physical constant of a fuel or instrument: zero is never valid for these. Every
#: other kind accepts zero (a green-certificate or self-generated source, purchased heat from waste heat).
POSITIVE_KINDS: Final = frozenset({"heating_value", "certificate_energy"})


class _FactorRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["coal_coefficient", "heating_value", "grid_emission_factor", "fuel_emission_factor",
                  "heat_emission_factor", "certificate_energy"]
    subject: str
    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    unit: str
    basis: Basis | None = None
    region: str = NATIONAL
    year: int | None = None
    published: str | None = None
    vintage: str
    source: str
    confidence: Literal["V", "K", "U"]

    @model_validator(mode="after")
    def _zero_only_where_physical(self) -> _FactorRow:
        if self.value == 0 and self.kind in POSITIVE_KINDS:
            raise ValueError(f"{self.kind} {self.subject!r} is 0: a {self.kind.replace('_', ' ')} must be > 0 "
                             "(zero is accepted only for emission factors and coal coefficients)")
        return self


class _FuelRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit: str
    fossil: bool


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factors: list[_FactorRow]
    region_aliases: dict[str, str] = Field(default_factory=dict)
    province_grid_region: dict[str, str] = Field(default_factory=dict)
    fuels: dict[str, _FuelRow] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Factor:
    """One selected factor: its value and unit, and where it comes from."""

    kind: str
    subject: str
    value: float
    unit: str
    region: str
    year: int | None
    vintage: str
    source: str
    confidence: str
    basis: str | None = None

    @property
    def label(self) -> str:
        """Stable, human-readable identity, e.g. ``grid_emission_factor.average.南方.2023``."""
        parts = [self.kind, self.subject]
        if self.basis:
            parts.append(self.basis)
        if self.region != NATIONAL or self.kind == "grid_emission_factor":
            parts.append(self.region)
        if self.year is not None:
            parts.append(str(self.year))
        return ".".join(parts)

    def provenance(self) -> dict[str, Any]:
        """What a published result records about this factor."""
        return {"value": self.value, "unit": self.unit, "vintage": self.vintage, "source": self.source,
                "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class FuelSpec:
    """A fuel that can be declared: its registry subject, quantity unit and fossil flag."""

    name: str
    unit: str
    fossil: bool


class FactorRegistry:
    """Validated factor table with the selection rules of ``factors.yaml``."""

    def __init__(self, rows: list[_FactorRow], aliases: dict[str, str], province_region: dict[str, str],
                 fuels: dict[str, FuelSpec], source: str = BUILTIN) -> None:
        self._rows = rows
        self._aliases = {k.lower(): v for k, v in aliases.items()}
        self._province_region = province_region
        self.fuels = fuels
        self.source = source

    @classmethod
    def from_file(cls, path: Path | None = None) -> FactorRegistry:
        """Load ``path`` (default: the shipped ``factors.yaml``); raises :class:`RegistryError`."""
        name = str(path) if path is not None else BUILTIN
        try:
            text = (path.read_text(encoding="utf-8") if path is not None
                    else resources.files("aggregation").joinpath("data/factors.yaml").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"cannot read the factor registry {name}: {exc}; check "
                                "PARKPULSE_AGGREGATION_FACTORS_FILE or --factors") from exc
        try:
            parsed = _RegistryFile.model_validate(yaml.safe_load(text))
        except yaml.YAMLError as exc:
            raise RegistryError(f"factor registry {name} is not valid YAML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:10])
            raise RegistryError(f"factor registry {name} is invalid: {problems} (fix these entries; the shipped "
                                "aggregation/data/factors.yaml shows every field)") from exc
        fuels = {fuel: FuelSpec(fuel, f.unit, f.fossil) for fuel, f in parsed.fuels.items()}
        return cls(parsed.factors, parsed.region_aliases, parsed.province_grid_region, fuels, name)

    def canonical_region(self, name: str | None) -> str | None:
        """Map a park's province or grid-region spelling to the registry's key (``None`` stays ``None``)."""
        if name is None or not name.strip():
            return None
        key = name.strip()
        return self._aliases.get(key.lower(), key)

    def region_chain(self, province: str | None, grid_region: str | None) -> list[str]:
        """Regions to try in order: the province, its grid region, then national."""
        chain: list[str] = []
        prov = self.canonical_region(province)
        region = self.canonical_region(grid_region)
        if prov:
            chain.append(prov)
            if region is None:
                region = self._province_region.get(prov)
        if region and region not in chain:
            chain.append(region)
        if NATIONAL not in chain:
            chain.append(NATIONAL)
        return chain

    def _pick_year(self, rows: list[_FactorRow], year: int) -> _FactorRow | None:
        dated = [r for r in rows if r.year is not None]
        undated = [r for r in rows if r.year is None]
        usable = [r for r in dated if r.year is not None and r.year <= year]
        if usable:
            return max(usable, key=lambda r: r.year or 0)
        if undated:
            return undated[0]
        return None

    @staticmethod
    def _to_factor(row: _FactorRow) -> Factor:
        return Factor(row.kind, row.subject, row.value, row.unit, row.region, row.year, row.vintage,
                      row.source, row.confidence, row.basis.value if row.basis else None)

    def coal_coefficient(self, subject: str, basis: Basis, year: int) -> Factor:
        """tce per unit of ``subject`` on ``basis``; non-electric energy uses its calorific value on both."""
        rows = [r for r in self._rows if r.kind == "coal_coefficient" and r.subject == subject]
        wanted = [r for r in rows if r.basis == basis]
        if not wanted and subject != "electricity":
            wanted = [r for r in rows if r.basis == Basis.CALORIFIC]
        row = self._pick_year(wanted, year)
        if row is None:
            raise FactorNotFoundError("coal_coefficient", subject, f"basis {basis.value}, year <= {year}")
        return self._to_factor(row)

    def heating_value(self, subject: str) -> Factor:
        """Lower heating value (MJ per unit) of a fuel, for MJ-based indicators."""
        return self._single("heating_value", subject)

    def fuel_emission_factor(self, subject: str) -> Factor:
        """tCO2 per unit of fuel burnt."""
        return self._single("fuel_emission_factor", subject)

    def heat_emission_factor(self) -> Factor:
        """tCO2 per GJ of purchased heat."""
        return self._single("heat_emission_factor", "heat")

    def certificate_energy(self) -> Factor:
        """MWh represented by one green electricity certificate."""
        return self._single("certificate_energy", "green_certificate")

    def single(self, kind: str, subject: str) -> Factor:
        """The one factor of an undated ``kind`` (heating value, fuel or heat EF, certificate energy)."""
        return self._single(kind, subject)

    def _single(self, kind: str, subject: str) -> Factor:
        rows = [r for r in self._rows if r.kind == kind and r.subject == subject]
        if not rows:
            raise FactorNotFoundError(kind, subject, "not in the registry")
        return self._to_factor(rows[0])

    def grid_factor(self, subject: str, year: int, province: str | None = None,
                    grid_region: str | None = None) -> Factor:
        """Grid CO2 factor (tCO2/MWh): the most specific region first, latest year <= ``year``.

        ``subject`` is ``average``, ``excl_market_nonfossil`` or ``fossil``. A region whose only vintages
        are newer than ``year`` is skipped rather than back-applied.
        """
        rows = [r for r in self._rows if r.kind == "grid_emission_factor" and r.subject == subject]
        for region in self.region_chain(province, grid_region):
            row = self._pick_year([r for r in rows if r.region == region], year)
            if row is not None:
                return self._to_factor(row)
        # Only vintages newer than the reporting year exist: use the oldest national one, visibly.
        national = sorted((r for r in rows if r.region == NATIONAL), key=lambda r: r.year or 0)
        if national:
            return self._to_factor(national[0])
        raise FactorNotFoundError("grid_emission_factor", subject, f"no region of {province}/{grid_region}")

    def all_factors(self) -> list[Factor]:
        """Every row of the registry (for ``parkpulse report factors``)."""
        return [self._to_factor(r) for r in self._rows]


@cache
def default_registry() -> FactorRegistry:
    """The shipped registry, loaded once per process."""
    return FactorRegistry.from_file()


def load_registry(path: Path | None) -> FactorRegistry:
    """The registry in force: the programme's file when one is configured, else the shipped one."""
    return FactorRegistry.from_file(path) if path is not None else default_registry()


def vintage_warning(factor: Factor, year: int) -> str | None:
    """A visible warning when a year-specific factor of another year stands in for ``year``, else ``None``."""
    if factor.year is None or factor.year == year:
        return None
    if factor.year < year:
        return (f"FALLBACK {factor.label}: reporting year {year} is beyond the newest vintage for "
                f"{factor.region}, {factor.year} [{factor.vintage}], which is used instead; add the {year} factor "
                "to the factors file when it is published")
    return (f"FALLBACK {factor.label}: no vintage <= {year} for {factor.region}; the newer {factor.year} "
            f"[{factor.vintage}] is applied instead; add the {year} factor to the factors file")


@dataclass(frozen=True, slots=True)
class EffectiveFactor:
    """A factor the indicators of one park and year would use: what it is for, and the one selected."""

    use: str
    kind: str
    subject: str
    basis: str | None
    year: int
    factor: Factor | None
    warning: str | None


def effective_factors(registry: FactorRegistry, year: int, province: str | None = None,
                      grid_region: str | None = None,
                      residual_subject: str = "excl_market_nonfossil") -> list[EffectiveFactor]:
    """Every factor the indicators of ``year`` select for a park in ``province`` / ``grid_region``.

    A factor the registry cannot supply is listed with ``factor=None`` and a warning naming what to add,
    so the listing itself never fails.
    """
    wanted: list[tuple[str, str, str, Basis | None]] = [
        ("CO2 grid electricity, location-based", "grid_emission_factor", "average", None),
        ("CO2 grid electricity, market-based (residual)", "grid_emission_factor", residual_subject, None),
        ("综合能耗 electricity, 当量值", "coal_coefficient", "electricity", Basis.CALORIFIC),
        ("综合能耗 electricity, 等价值", "coal_coefficient", "electricity", Basis.COAL_EQUIVALENT),
        ("综合能耗 purchased heat", "coal_coefficient", "heat", Basis.CALORIFIC),
        ("综合能耗 natural gas (metered)", "coal_coefficient", "natural_gas", Basis.CALORIFIC),
        ("综合能耗 fresh water (耗能工质)", "coal_coefficient", "fresh_water", Basis.CALORIFIC),
        ("CO2 natural gas (metered)", "fuel_emission_factor", "natural_gas", None),
        ("CO2 purchased heat", "heat_emission_factor", "heat", None),
        ("green certificate energy", "certificate_energy", "green_certificate", None),
        ("public buildings: natural gas heating value", "heating_value", "natural_gas", None),
    ]
    for fuel in sorted(registry.fuels):
        wanted.append((f"综合能耗 declared fuel {fuel}", "coal_coefficient", fuel, Basis.CALORIFIC))
        wanted.append((f"CO2 declared fuel {fuel}", "fuel_emission_factor", fuel, None))
    out: list[EffectiveFactor] = []
    for use, kind, subject, basis in wanted:
        try:
            if kind == "grid_emission_factor":
                factor = registry.grid_factor(subject, year, province, grid_region)
            elif kind == "coal_coefficient":
                factor = registry.coal_coefficient(subject, basis or Basis.CALORIFIC, year)
            else:
                factor = registry.single(kind, subject)
        except FactorNotFoundError as exc:
            out.append(EffectiveFactor(use, kind, subject, basis.value if basis else None, year, None,
                                       f"MISSING {exc}: add it to the factors file ({registry.source})"))
            continue
        out.append(EffectiveFactor(use, kind, subject, basis.value if basis else None, year, factor,
                                   vintage_warning(factor, year)))
    return out


def factors_document(registry: FactorRegistry, rows: list[EffectiveFactor], *, park: str | None,
                     province: str | None, grid_region: str | None, year: int) -> dict[str, Any]:
    """The effective factors as plain data (``report factors --format json`` and the API)."""
    return {
        "factors_file": registry.source, "park_id": park, "province": province, "grid_region": grid_region,
        "region_chain": registry.region_chain(province, grid_region), "year": year,
        "factors": [{
            "use": e.use, "kind": e.kind, "subject": e.subject, "basis": e.basis, "year_requested": e.year,
            "label": e.factor.label if e.factor else None,
            "value": e.factor.value if e.factor else None, "unit": e.factor.unit if e.factor else None,
            "region": e.factor.region if e.factor else None, "year_used": e.factor.year if e.factor else None,
            "vintage": e.factor.vintage if e.factor else None, "source": e.factor.source if e.factor else None,
            "confidence": e.factor.confidence if e.factor else None, "warning": e.warning,
        } for e in rows],
        "warnings": [e.warning for e in rows if e.warning],
    }

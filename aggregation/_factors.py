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
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aggregation.errors import FactorNotFoundError, RegistryError

NATIONAL = "national"


class Basis(StrEnum):
    """How electricity is converted to coal equivalent (GB/T 2589-2020)."""

    CALORIFIC = "calorific"              # 当量值: 0.1229 kgce/kWh, the heat content of electricity
    COAL_EQUIVALENT = "coal_equivalent"  # 等价值 / 发电煤耗法: the year's thermal coal rate (~0.30 kgce/kWh)

    @property
    def label_zh(self) -> str:
        """The Chinese label a report prints next to the value."""
        return "当量值" if self is Basis.CALORIFIC else "等价值"


class _FactorRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["coal_coefficient", "heating_value", "grid_emission_factor", "fuel_emission_factor",
                  "heat_emission_factor", "certificate_energy"]
    subject: str
    value: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    unit: str
    basis: Basis | None = None
    region: str = NATIONAL
    year: int | None = None
    published: str | None = None
    vintage: str
    source: str
    confidence: Literal["V", "K", "U"]


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
                 fuels: dict[str, FuelSpec]) -> None:
        self._rows = rows
        self._aliases = {k.lower(): v for k, v in aliases.items()}
        self._province_region = province_region
        self.fuels = fuels

    @classmethod
    def from_file(cls, path: Path | None = None) -> FactorRegistry:
        """Load ``path`` (default: the shipped ``factors.yaml``); raises :class:`RegistryError`."""
        text = (path.read_text(encoding="utf-8") if path is not None
                else resources.files("aggregation").joinpath("data/factors.yaml").read_text(encoding="utf-8"))
        try:
            parsed = _RegistryFile.model_validate(yaml.safe_load(text))
        except (yaml.YAMLError, ValidationError) as exc:
            raise RegistryError(f"factor registry {path or 'factors.yaml'} is invalid: {exc}") from exc
        fuels = {name: FuelSpec(name, f.unit, f.fossil) for name, f in parsed.fuels.items()}
        return cls(parsed.factors, parsed.region_aliases, parsed.province_grid_region, fuels)

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

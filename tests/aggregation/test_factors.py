"""The factor registry: region fallback, vintage selection, coefficients per basis, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregation._factors import Basis, FactorRegistry, default_registry
from aggregation.errors import FactorNotFoundError, RegistryError

REG = default_registry()


def test_every_factor_has_unit_vintage_source_and_confidence() -> None:
    for f in REG.all_factors():
        assert f.unit
        assert f.vintage
        assert f.source
        assert f.confidence in {"V", "K", "U"}


def test_province_falls_back_to_its_grid_region_then_national() -> None:
    # 广东 has no provincial factor yet: 南方 grid, latest vintage <= 2026 is 2023
    f = REG.grid_factor("average", 2026, province="广东")
    assert (f.region, f.year, f.value) == ("南方", 2023, 0.4042)
    assert REG.grid_factor("average", 2022, province="广东省").value == 0.3869
    assert REG.grid_factor("average", 2026, grid_region="south").region == "南方"
    assert REG.grid_factor("average", 2026).region == "national"


def test_a_newer_vintage_is_never_back_applied_to_an_older_year() -> None:
    # 南方 starts at 2022: for 2021 the national 2021 factor is used, not 南方 2022
    f = REG.grid_factor("average", 2021, province="广东")
    assert (f.region, f.year, f.value) == ("national", 2021, 0.5568)


def test_most_specific_region_wins_with_its_latest_vintage() -> None:
    f = REG.grid_factor("average", 2023, province="河北")
    assert (f.region, f.year, f.value) == ("河北", 2022, 0.7252)
    assert f.label == "grid_emission_factor.average.河北.2022"


def test_residual_factor_for_market_based_scope2() -> None:
    assert REG.grid_factor("excl_market_nonfossil", 2026, province="广东").value == 0.6096


def test_coal_coefficients_per_basis() -> None:
    assert REG.coal_coefficient("electricity", Basis.CALORIFIC, 2026).value == 0.1229
    assert REG.coal_coefficient("electricity", Basis.COAL_EQUIVALENT, 2021).value == 0.3025
    assert REG.coal_coefficient("electricity", Basis.COAL_EQUIVALENT, 2026).year == 2022
    # non-electric energy has the same coefficient on both bases
    assert REG.coal_coefficient("natural_gas", Basis.COAL_EQUIVALENT, 2026).value == 0.0012143
    with pytest.raises(FactorNotFoundError):
        REG.coal_coefficient("electricity", Basis.COAL_EQUIVALENT, 2019)
    with pytest.raises(FactorNotFoundError):
        REG.fuel_emission_factor("unobtainium")


def test_malformed_registry_is_rejected(tmp_path: Path) -> None:
    bad = tmp_path / "factors.yaml"
    bad.write_text("factors:\n  - {kind: coal_coefficient, subject: x, value: -1, unit: t, vintage: v, "
                   "source: s, confidence: V}\n", encoding="utf-8")
    with pytest.raises(RegistryError):
        FactorRegistry.from_file(bad)

"""The factor registry: region fallback, vintage selection, coefficients per basis, validation, zero factors,
the effective factors of a park and year with their FALLBACK warnings, and ``report factors``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregation._factors import (
    Basis,
    FactorRegistry,
    default_registry,
    effective_factors,
    load_registry,
    vintage_warning,
)
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


# ------------------------------------------------------------------ zero factors, effective factors, CLI
SHIPPED = Path("aggregation/data/factors.yaml")


def _with_value(tmp_path: Path, kind: str, subject: str, value: object) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    hits = [r for r in raw["factors"] if r["kind"] == kind and r["subject"] == subject]
    assert hits, (kind, subject)
    for row in hits:
        row["value"] = value
    path = tmp_path / f"{kind}-{subject}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("kind", "subject"), [("heat_emission_factor", "heat"),
                                               ("fuel_emission_factor", "natural_gas"),
                                               ("grid_emission_factor", "average"),
                                               ("coal_coefficient", "fresh_water")])
def test_zero_is_accepted_where_physically_valid(tmp_path: Path, kind: str, subject: str) -> None:
    reg = FactorRegistry.from_file(_with_value(tmp_path, kind, subject, 0))
    assert [f.value for f in reg.all_factors() if (f.kind, f.subject) == (kind, subject)] == \
        [0.0] * sum(1 for f in REG.all_factors() if (f.kind, f.subject) == (kind, subject))


@pytest.mark.parametrize(("kind", "subject"), [("heating_value", "natural_gas"),
                                               ("certificate_energy", "green_certificate")])
def test_zero_is_refused_for_physical_constants(tmp_path: Path, kind: str, subject: str) -> None:
    with pytest.raises(RegistryError, match=f"{kind} {subject!r} is 0"):
        FactorRegistry.from_file(_with_value(tmp_path, kind, subject, 0))


@pytest.mark.parametrize(("kind", "subject"), [("heat_emission_factor", "heat"), ("heating_value", "natural_gas")])
def test_negative_values_are_refused_naming_the_entry(tmp_path: Path, kind: str, subject: str) -> None:
    with pytest.raises(RegistryError, match=r"factors\.\d+\.value: Input should be greater than or equal to 0"):
        FactorRegistry.from_file(_with_value(tmp_path, kind, subject, -0.1))


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10, 10), st.floats(allow_nan=True),
                    st.text(max_size=8))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["kind", "subject", "value", "unit", "basis", "region", "year", "vintage", "source",
                              "confidence", "extra_field"]), value=_scalar, garbage=st.text(max_size=40))
def test_a_malformed_factors_file_is_a_clear_registry_error(tmp_path: Path, field: str, value: object,
                                                           garbage: str) -> None:
    """Whatever one entry holds, loading either succeeds or raises RegistryError naming the entry."""
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    raw["factors"][3][field] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    messages: dict[str, str] = {}
    for name, text in (("entry", path.read_text(encoding="utf-8")), ("garbage", garbage)):
        path.write_text(text, encoding="utf-8")
        try:
            FactorRegistry.from_file(path)
        except RegistryError as exc:
            messages[name] = str(exc)
    for message in messages.values():
        assert str(path) in message
    if "entry" in messages:
        assert "factors.3" in messages["entry"]


def test_effective_factors_name_the_vintage_used_and_warn_on_fallback() -> None:
    rows = {e.use: e for e in effective_factors(REG, 2026, province="广东")}
    loc = rows["CO2 grid electricity, location-based"]
    assert loc.factor is not None
    assert (loc.factor.region, loc.factor.year) == ("南方", 2023)
    assert loc.warning is not None
    assert "2026" in loc.warning
    assert "2023" in loc.warning
    assert rows["综合能耗 electricity, 当量值"].warning is None          # no vintage: never a fallback
    assert rows["综合能耗 electricity, 等价值"].factor.year == 2022     # type: ignore[union-attr]
    exact = {e.use: e for e in effective_factors(REG, 2022, province="广东")}
    assert exact["CO2 grid electricity, location-based"].warning is None
    assert exact["CO2 grid electricity, location-based"].factor.value == 0.3869  # type: ignore[union-attr]
    # a year older than every vintage of the chain: the newer national vintage is applied, visibly
    old = {e.use: e for e in effective_factors(REG, 2019, province="广东")}
    assert "newer 2021" in (old["CO2 grid electricity, location-based"].warning or "")
    assert "MISSING" in (old["综合能耗 electricity, 等价值"].warning or "")
    f = REG.grid_factor("average", 2023, province="河北")
    assert vintage_warning(f, 2023) is not None
    assert "河北" in (vintage_warning(f, 2023) or "")


def test_load_registry_uses_the_configured_file(tmp_path: Path) -> None:
    path = _with_value(tmp_path, "heat_emission_factor", "heat", 0)
    assert load_registry(None) is REG
    assert load_registry(path).source == str(path)
    with pytest.raises(RegistryError, match="PARKPULSE_AGGREGATION_FACTORS_FILE"):
        load_registry(tmp_path / "missing.yaml")


def test_report_factors_shows_file_region_chain_vintage_and_fallback(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from aggregation._cli import report_app

    app = typer.Typer()
    app.add_typer(report_app, name="report")
    path = _with_value(tmp_path, "heat_emission_factor", "heat", 0)
    monkeypatch.setenv("PARKPULSE_AGGREGATION_FACTORS_FILE", str(path))
    runner = CliRunner()
    res = runner.invoke(app, ["report", "factors", "--year", "2026", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["factors_file"] == str(path)                         # the configured file, not the built-in one
    assert doc["region_chain"] == ["national"]
    heat = next(f for f in doc["factors"] if f["kind"] == "heat_emission_factor")
    assert heat["value"] == 0.0
    grid = next(f for f in doc["factors"] if f["use"] == "CO2 grid electricity, location-based")
    assert (grid["year_requested"], grid["year_used"]) == (2026, 2023)
    assert grid["warning"].startswith("FALLBACK")
    assert grid["warning"] in doc["warnings"]
    res = runner.invoke(app, ["report", "factors", "--year", "2026", "--factors", str(SHIPPED)],
                        env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert f"factors file: {SHIPPED}" in res.output
    assert "warning: FALLBACK grid_emission_factor.average.national.2023" in res.output
    res = runner.invoke(app, ["report", "factors", "--factors", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 1
    assert "cannot read the factor registry" in res.output


@pytest.mark.services
def test_report_factors_for_a_park_follows_its_province(database_url: str, park_id: str,
                                                        db_conn: object) -> None:
    import json

    import typer
    from typer.testing import CliRunner

    from aggregation._cli import report_app
    from tests.aggregation._seed import create_park

    create_park(db_conn, park_id, province="广东省", grid_region=None)  # type: ignore[arg-type]
    app = typer.Typer()
    app.add_typer(report_app, name="report")
    res = CliRunner().invoke(app, ["report", "factors", "--park", park_id, "--year", "2022", "--format", "json",
                                   "--database-url", database_url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["region_chain"] == ["广东", "南方", "national"]
    grid = next(f for f in doc["factors"] if f["use"] == "CO2 grid electricity, location-based")
    assert (grid["region"], grid["year_used"], grid["value"], grid["warning"]) == ("南方", 2022, 0.3869, None)
    res = CliRunner().invoke(app, ["report", "factors", "--park", "no-such-park", "--database-url", database_url])
    assert res.exit_code == 1
    assert "unknown park" in res.output

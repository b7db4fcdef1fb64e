"""Device profiles are data: the shipped files load, match domain.md §7.2/§7.3, and bad files fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.profile import (
    Dlt645Profile,
    ModbusFunction,
    ModbusProfile,
    builtin_profiles,
    find_profiles,
    load_profile,
    parse_profile,
    plan_reads,
)
from edge.registers import DataType, WordOrder


def _modbus(name: str) -> ModbusProfile:
    profile = builtin_profiles()[name]
    assert isinstance(profile, ModbusProfile)
    return profile


def test_shipped_profiles() -> None:
    assert set(builtin_profiles()) >= {"eastron_sdm630", "chint_dtsu666", "dlt645_2007_3p"}
    for profile in builtin_profiles().values():
        assert profile.source, f"{profile.name} must cite its source"
        assert profile.confidence, f"{profile.name} must state its confidence"


def test_sdm630_register_map() -> None:
    points = {p.metric: p for p in _modbus("eastron_sdm630").resolved_points()}
    assert points["active_power"].address == 0x0034
    assert points["active_energy_import"].address == 0x0048
    assert points["active_energy_export"].address == 0x004A
    assert {p.function for p in points.values()} == {ModbusFunction.INPUT}
    assert {(p.type, p.word_order) for p in points.values()} == {(DataType.FLOAT32, WordOrder.ABCD)}


def test_dtsu666_register_map_and_scaling() -> None:
    points = {p.metric: p for p in _modbus("chint_dtsu666").resolved_points()}
    assert points["active_power"].address == 0x2012 == 8210
    assert points["active_energy_import"].address == 0x401E == 16414
    assert points["active_energy_export"].address == 0x4028 == 16424
    assert {p.function for p in points.values()} == {ModbusFunction.HOLDING}
    assert points["voltage_l1"].scale == 0.1
    assert points["voltage_l1"].scaling.value == "pt"
    assert points["current_l1"].scale == 0.001
    assert points["current_l1"].scaling.value == "ct"
    assert points["active_power"].unit_factor == 0.001  # W -> kW


def test_dlt645_profile_identifiers() -> None:
    profile = builtin_profiles()["dlt645_2007_3p"]
    assert isinstance(profile, Dlt645Profile)
    points = {p.metric: p for p in profile.points}
    assert points["active_energy_import"].di == 0x00010000
    assert (points["active_energy_import"].n_bytes, points["active_energy_import"].decimals) == (4, 2)
    assert points["voltage_l1"].di == 0x02010100
    assert points["current_l1"].signed
    # rollover point: 999999.99 kWh secondary x CT 200 x PT 1 = 199999998 kWh primary
    assert profile.register_max(200.0, 1.0) == pytest.approx(999999.99 * 200)


def test_read_plan_merges_nearby_registers() -> None:
    sdm = _modbus("eastron_sdm630")
    blocks = plan_reads(sdm.resolved_points(), max_registers=80, max_gap=40)
    assert [(b.start, b.count) for b in blocks] == [(0x0000, 0x004E)]  # 0x00 .. 0x4C + 2 registers
    split = plan_reads(sdm.resolved_points(), max_registers=80, max_gap=0)
    assert len(split) > 1
    assert sum(len(b.points) for b in split) == len(sdm.points)
    dtsu = _modbus("chint_dtsu666")
    starts = [b.start for b in plan_reads(dtsu.resolved_points(), max_registers=64, max_gap=32)]
    assert starts == [0x2006, 0x401E]


def _profile_data(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {"name": "x", "protocol": "modbus", "points": [
        {"metric": "active_power", "address": 0, "unit": "kW"}]}
    data.update(overrides)
    return data


@pytest.mark.parametrize(("overrides", "message"), [
    ({"points": [{"metric": "no_such_metric", "address": 0, "unit": "kW"}]}, "not in the registry"),
    ({"points": [{"metric": "active_power", "address": 0, "unit": "V"}]}, "voltage"),
    ({"points": [{"metric": "active_power", "address": 0, "unit": "kW"},
                 {"metric": "active_power", "address": 2, "unit": "kW"}]}, "listed twice"),
    ({"energy_metric": "active_energy_import"}, "energy_metric"),
    ({"protocol": "bacnet"}, "protocol"),
    ({"max_registers_per_read": 126}, "125"),
])
def test_invalid_profiles_raise_config_error(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile(_profile_data(**overrides))


def test_site_profiles_override_builtins_and_names_match_files(tmp_path: Path) -> None:
    (tmp_path / "eastron_sdm630.yaml").write_text(
        "name: eastron_sdm630\nprotocol: modbus\nmodel: site copy\n"
        "points: [{metric: active_power, address: 52, unit: W}]\n", encoding="utf-8")
    assert find_profiles([tmp_path])["eastron_sdm630"].model == "site copy"
    wrong = tmp_path / "other.yaml"
    wrong.write_text("name: eastron_sdm630\nprotocol: modbus\npoints: [{metric: active_power, address: 0, unit: W}]\n",
                     encoding="utf-8")
    with pytest.raises(ConfigError, match="file stem"):
        load_profile(wrong)
    with pytest.raises(ConfigError, match="does not exist"):
        find_profiles([tmp_path / "missing"])

"""Pure parts of command handling: the profile ``writable:`` section, validation, id recovery, config."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.commands import check_command, recover_command_id
from edge.commands_agent import CommandService
from edge.commands_config import CommandsConfig, SafetyRange
from edge.config import parse_config
from edge.errors import ConfigError
from edge.profile import ModbusProfile, builtin_profiles, parse_profile
from edge.profile_writable import WritableSection, from_raw, to_raw, unit_factor
from edge.registers import decode_registers, encode_registers
from schemas.commands import CommandAction, RejectCode, build_command

SHIPPED = ("generic_bess_modbus", "generic_ev_charger_modbus", "generic_hvac_modbus")
NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _writable(name: str) -> WritableSection:
    profile = builtin_profiles()[name]
    assert isinstance(profile, ModbusProfile)
    assert profile.writable is not None
    return profile.writable


def _profile(writable: dict[str, Any]) -> dict[str, Any]:
    return {"name": "x", "protocol": "modbus", "points": [{"metric": "active_power", "address": 0, "unit": "kW"}],
            "writable": writable}


@pytest.mark.parametrize(("name", "action"), [
    ("generic_bess_modbus", CommandAction.SET_ACTIVE_POWER),
    ("generic_ev_charger_modbus", CommandAction.SET_POWER_LIMIT),
    ("generic_hvac_modbus", CommandAction.SET_TEMPERATURE_SETPOINT),
])
def test_shipped_profiles_support_their_action_and_release_only(name: str, action: CommandAction) -> None:
    writable = _writable(name)
    assert {a for a in CommandAction if writable.supports(a)} == {action, CommandAction.RELEASE}
    assert builtin_profiles()[name].kind in {"battery", "ev_charger", "hvac"}


@settings(max_examples=200)
@given(name=st.sampled_from(SHIPPED), fraction=st.floats(0.0, 1.0))
def test_any_value_within_limits_round_trips_through_the_registers(name: str, fraction: float) -> None:
    writable = _writable(name)
    ((action, reg),) = writable.setpoints().items()
    value = reg.minimum + fraction * (reg.maximum - reg.minimum)
    words = encode_registers(to_raw(reg, value, action), reg.type, reg.word_order)
    back = from_raw(reg, decode_registers(words, reg.type, reg.word_order), unit_factor(reg, action))
    assert abs(back - value) <= reg.scale / 2 + 1e-9
    assert abs(back - value) <= reg.match_tolerance


@given(kw=st.floats(-500.0, 500.0, allow_nan=False))
def test_a_register_in_watts_is_converted_to_the_commands_kilowatts(kw: float) -> None:
    profile = parse_profile(_profile({"set_active_power": {"address": 10, "type": "int32", "unit": "W",
                                                           "minimum": -500, "maximum": 500}}))
    assert isinstance(profile, ModbusProfile)
    writable = profile.writable
    assert isinstance(writable, WritableSection)
    reg = writable.setpoints()[CommandAction.SET_ACTIVE_POWER]
    raw = to_raw(reg, kw, CommandAction.SET_ACTIVE_POWER)
    assert raw == round(kw * 1000)
    assert from_raw(reg, raw, unit_factor(reg, CommandAction.SET_ACTIVE_POWER)) == pytest.approx(kw, abs=5e-4)


@pytest.mark.parametrize(("writable", "message"), [
    ({}, "at least one setpoint"),
    ({"set_active_power": {"address": 0, "unit": "kW", "minimum": 5, "maximum": 1}}, "above maximum"),
    ({"set_active_power": {"address": 0, "unit": "degC", "minimum": 0, "maximum": 1}}, "not convertible"),
    ({"set_temperature_setpoint": {"address": 0, "type": "int16", "scale": 0.001, "unit": "degC",
                                   "minimum": 0, "maximum": 100}}, "does not fit"),
    ({"release": {"address": 3}, "set_active_power": {"address": 2, "unit": "kW", "minimum": 0, "maximum": 1}},
     "overlaps"),
    ({"set_active_power": {"address": 0, "unit": "kW", "minimum": 0, "maximum": 1, "colour": "red"}}, "colour"),
])
def test_invalid_writable_sections_are_refused_with_the_reason(writable: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_profile(_profile(writable))


def _command(**overrides: Any) -> Any:
    fields: dict[str, Any] = {"command_id": "c-1", "park": "p", "device": "bess", "value": -100.0,
                              "action": CommandAction.SET_ACTIVE_POWER, "issued_at": NOW - timedelta(seconds=5),
                              "expires_at": NOW + timedelta(minutes=1), "issued_by": "vpp"}
    return build_command(**(fields | overrides))


def _check(message: Any, *, limits: dict[CommandAction, SafetyRange] | None = None,
           overridden: str | None = None, now: datetime = NOW) -> RejectCode | None:
    rejection = check_command(message, park_id="p", device_id="bess", now=now,
                              writable=_writable("generic_bess_modbus"), limits=limits or {}, overridden=overridden)
    return None if rejection is None else rejection.code


@settings(max_examples=300)
@given(value=st.floats(-400.0, 400.0, allow_nan=False), low=st.floats(-300.0, 0.0), high=st.floats(0.0, 300.0))
def test_out_of_range_exactly_when_outside_the_device_or_the_site_limits(value: float, low: float,
                                                                         high: float) -> None:
    code = _check(_command(value=value), limits={CommandAction.SET_ACTIVE_POWER: SafetyRange(minimum=low,
                                                                                               maximum=high)})
    inside = -250.0 <= value <= 250.0 and low <= value <= high
    assert code == (None if inside else RejectCode.OUT_OF_RANGE)


@given(offset_s=st.integers(-120, 120))
def test_expired_exactly_when_expires_at_is_not_in_the_future(offset_s: int) -> None:
    now = NOW + timedelta(minutes=1) + timedelta(seconds=offset_s)
    code = _check(_command(), now=now)
    assert code == (RejectCode.EXPIRED if offset_s >= 0 else None)


def test_rejection_order_and_reasons() -> None:
    assert _check(_command(device="other")) is RejectCode.INVALID_COMMAND
    assert _check(_command(park="q")) is RejectCode.INVALID_COMMAND
    assert _check(_command(hold_until=NOW - timedelta(seconds=1))) is RejectCode.EXPIRED
    assert _check(_command(action=CommandAction.SET_POWER_LIMIT)) is RejectCode.UNSUPPORTED_ACTION
    assert _check(_command(value=-999.0), overridden="maintenance") is RejectCode.OVERRIDE_ACTIVE
    assert _check(_command(action=CommandAction.RELEASE, value=12345.0)) is None  # release takes no value


@given(command_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True),
       junk=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_the_command_id_of_an_invalid_command_is_recovered(command_id: str, junk: dict[str, int]) -> None:
    raw = json.dumps({**junk, "command_id": command_id, "value": "not a number"}).encode()
    assert recover_command_id(raw) == command_id


@given(raw=st.binary(max_size=200))
def test_recovery_never_raises_and_returns_only_valid_ids(raw: bytes) -> None:
    found = recover_command_id(raw)
    assert found is None or recover_command_id(json.dumps({"command_id": found}).encode()) == found


def test_commands_config_defaults_and_validation(tmp_path: Any) -> None:
    cfg = CommandsConfig()
    assert cfg.enabled
    assert not cfg.overridden("bess")
    assert cfg.audit_file(tmp_path / "outbox.sqlite") == tmp_path / "outbox-commands.sqlite"
    assert CommandsConfig(override=True).overridden("any")
    with pytest.raises(ValueError, match="release takes no value"):
        CommandsConfig.model_validate({"limits": {"bess": {"release": {"minimum": 0}}}})
    with pytest.raises(ValueError, match="above maximum"):
        SafetyRange(minimum=2, maximum=1)
    config = parse_config({"agent_id": "a", "park_id": "p", "outbox": {"path": str(tmp_path / "o.sqlite")},
                           "devices": [{"id": "bess", "profile": "generic_bess_modbus",
                                        "transport": {"kind": "modbus_tcp", "host": "127.0.0.1"}}],
                           "commands": {"limits": {"bes": {"set_active_power": {"maximum": 10}}}}})
    with pytest.raises(ConfigError, match="unknown device"):
        CommandService(config, {}, {}, lambda: NOW)


_REGISTER = st.fixed_dictionaries(
    {"address": st.integers(-2, 70000), "unit": st.sampled_from(["kW", "W", "degC", "kWh", ""])},
    optional={"type": st.sampled_from(["int16", "uint16", "int32", "float32", "int8"]),
              "scale": st.floats(-1, 10) | st.just(float("nan")), "minimum": st.floats(-1e6, 1e6),
              "maximum": st.floats(-1e6, 1e6), "tolerance": st.floats(-1, 5)})


@settings(max_examples=300)
@given(section=st.dictionaries(st.sampled_from(["set_active_power", "set_power_limit", "set_temperature_setpoint",
                                                "release", "bogus"]), _REGISTER, max_size=3))
def test_any_writable_section_either_loads_consistently_or_is_a_config_error(section: dict[str, Any]) -> None:
    try:
        profile = parse_profile(_profile(section))
    except ConfigError:
        return
    assert isinstance(profile, ModbusProfile)
    writable = profile.writable
    assert writable is not None
    addresses = [a for ref in writable.register_refs() for a in ref.span]
    assert len(addresses) == len(set(addresses))  # no two values share a register
    for action, reg in writable.setpoints().items():
        assert reg.minimum <= reg.maximum
        for limit in (reg.minimum, reg.maximum):  # the limits are representable in the register
            encode_registers(to_raw(reg, limit, action), reg.type, reg.word_order)

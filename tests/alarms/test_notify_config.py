"""The notify config: the shipped example loads, secrets resolve without showing up, bad input is explained.

Property tests feed arbitrary YAML text and arbitrary nested structures: the loader returns a config or
raises NotifyConfigError naming where the problem is, and never crashes with anything else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alarms._notify_config import (
    EmailChannelConfig,
    NotifyConfig,
    WeComChannelConfig,
    load_notify_config,
    parse_notify_config,
)
from alarms._notify_errors import NotifyConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "alarms" / "data" / "notify.example.yaml"
EXAMPLE_ENV = {
    "PARKPULSE_SMTP_PASSWORD": "smtp-pw-1",
    "PARKPULSE_WECOM_ROBOT_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wk-secret-77",
    "PARKPULSE_DINGTALK_ROBOT_URL": "https://oapi.dingtalk.com/robot/send?access_token=dt-token-88",
    "PARKPULSE_DINGTALK_ROBOT_SECRET": "SECdt-secret-99",
    "PARKPULSE_EMS_WEBHOOK_URL": "https://ems.example.com/hook",
    "PARKPULSE_EMS_WEBHOOK_SECRET": "ems-secret-00",
}


def _parse(text: str, environ: dict[str, str] | None = None, base: Path = Path()) -> NotifyConfig:
    return parse_notify_config(text, source="test.yaml", environ=environ or {}, base_dir=base)


MINIMAL = """
channels:
  hook: {kind: webhook, url: "http://127.0.0.1:9/hook"}
lists:
  ops: {channels: [hook]}
routes:
  "*": {warning: [ops], critical: [ops]}
"""


def test_the_shipped_example_loads_and_hides_its_secrets() -> None:
    config = load_notify_config(EXAMPLE, EXAMPLE_ENV)
    assert set(config.channels) == {"ops-mail", "ops-wecom", "duty-dingtalk", "ems-hook"}
    mail = config.channels["ops-mail"]
    assert isinstance(mail, EmailChannelConfig)
    assert mail.password is not None
    assert mail.password.get_secret_value() == "smtp-pw-1"
    wecom = config.channels["ops-wecom"]
    assert isinstance(wecom, WeComChannelConfig)
    assert wecom.url.get_secret_value().endswith("key=wk-secret-77")
    shown = repr(config) + str(config.model_dump())
    for secret in EXAMPLE_ENV.values():
        assert secret not in shown
    route = config.route_for("any-park")
    assert route is not None
    assert route.escalation is not None
    assert (route.escalation.after_minutes, route.escalation.to) == (30, ["duty-manager"])
    quiet = config.lists["operators"].quiet_hours
    assert quiet is not None
    assert (quiet.start.hour, quiet.end.hour, quiet.critical_overrides) == (22, 7, True)


def test_a_missing_environment_variable_names_the_field_and_the_variable() -> None:
    env = {k: v for k, v in EXAMPLE_ENV.items() if k != "PARKPULSE_DINGTALK_ROBOT_SECRET"}
    with pytest.raises(NotifyConfigError) as info:
        load_notify_config(EXAMPLE, env)
    message = str(info.value)
    assert "channels.duty-dingtalk.secret" in message
    assert "PARKPULSE_DINGTALK_ROBOT_SECRET is not set" in message
    for secret in EXAMPLE_ENV.values():
        assert secret not in message


def test_file_secrets_are_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "robot").write_text("https://robot.example/send?key=file-key-1\n", encoding="utf-8")
    config_file = tmp_path / "notify.yaml"
    config_file.write_text(MINIMAL.replace('url: "http://127.0.0.1:9/hook"', "url: {file: secrets/robot}"),
                           encoding="utf-8")
    config = load_notify_config(config_file, {})
    assert config.channels["hook"].url.get_secret_value() == "https://robot.example/send?key=file-key-1"  # type: ignore[union-attr]
    config_file.write_text(MINIMAL.replace('url: "http://127.0.0.1:9/hook"', "url: {file: secrets/none}"),
                           encoding="utf-8")
    with pytest.raises(NotifyConfigError, match=r"channels\.hook\.url: .*cannot read secret file"):
        load_notify_config(config_file, {})


@pytest.mark.parametrize(("change", "expected"), [
    (("[hook]}\nroutes", "[nope]}\nroutes"), r"lists\.ops\.channels names unknown channel\(s\) \['nope'\]"),
    (('"*": {warning: [ops]', '"*": {warning: [other]'), r"routes\.\* names unknown list\(s\) \['other'\]"),
    (("kind: webhook", "kind: pager"), r"channels\.hook: Input tag 'pager'"),
    (("{channels: [hook]}", "{channels: [hook], quiet_hours: {start: 22:00, end: '07:00'}}"),
     r"lists\.ops\.quiet_hours\.start: .*write times in quotes"),
    (("{channels: [hook]}", "{channels: [hook], quiet_hours: {start: '07:00', end: '07:00'}}"),
     r"lists\.ops\.quiet_hours: .*start and end are equal"),
    (("routes:", "retry: {max_attempts: 0}\nroutes:"), r"retry\.max_attempts: .*greater than or equal to 1"),
    (("lists:", "extra: 1\nlists:"), r"extra: Extra inputs are not permitted"),
    (('"http://127.0.0.1:9/hook"', '"ftp://127.0.0.1/x?key=k"'), r"channels\.hook\.url: .*absolute http"),
])
def test_invalid_configs_say_where_and_what(change: tuple[str, str], expected: str) -> None:
    assert change[0] in MINIMAL
    with pytest.raises(NotifyConfigError, match=expected):
        _parse(MINIMAL.replace(*change))


def test_yaml_syntax_errors_give_the_line() -> None:
    with pytest.raises(NotifyConfigError, match=r"not valid YAML at line 3"):
        _parse("channels:\n  a: 1\n  b: x: y\n")
    with pytest.raises(NotifyConfigError, match=r"must be a mapping"):
        _parse("- just\n- a list\n")


def test_email_auth_needs_both_halves() -> None:
    text = MINIMAL.replace('hook: {kind: webhook, url: "http://127.0.0.1:9/hook"}',
                           "hook: {kind: email, host: mx, sender: a@b.c, to: [d@e.f], username: u}")
    with pytest.raises(NotifyConfigError, match=r"channels\.hook: .*both username and password"):
        _parse(text)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 100_000), st.floats(allow_nan=False),
                     st.text(max_size=12), st.sampled_from(["email", "webhook", "wecom", "dingtalk", "*", "22:00"]))
_keys = st.sampled_from(["channels", "lists", "routes", "retry", "kind", "url", "host", "to", "sender", "channels",
                         "quiet_hours", "start", "end", "warning", "critical", "escalation", "after_minutes", "env",
                         "file", "secret", "hook", "ops", "*", "max_attempts"])
_trees = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_keys, inner, max_size=5)), max_leaves=30)


def _load_or_explain(text: str, environ: dict[str, str] | None = None) -> NotifyConfig | NotifyConfigError:
    """The config, or the NotifyConfigError explaining why not (anything else propagates and fails the test)."""
    try:
        return _parse(text, environ)
    except NotifyConfigError as exc:
        return exc


def _assert_explained(outcome: NotifyConfig | NotifyConfigError) -> None:
    if isinstance(outcome, NotifyConfig):
        assert outcome.channels
        assert outcome.lists
        assert outcome.routes
        return
    message = str(outcome)
    assert message.startswith("notify config test.yaml ")
    if " is invalid: " in message:   # the problems say where, then what
        where, _, what = message.split(" is invalid: ", 1)[1].partition(": ")
        assert where, message
        assert what.strip(), message
    else:
        assert "not valid YAML" in message or "must be a mapping" in message, message


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_trees)
def test_any_structure_loads_or_fails_with_a_config_error(tree: object) -> None:
    _assert_explained(_load_or_explain(yaml.safe_dump(tree, allow_unicode=True), {"env": "x"}))


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_any_text_loads_or_fails_with_a_config_error(text: str) -> None:
    _assert_explained(_load_or_explain(text))


@settings(max_examples=100)
@given(st.sampled_from(MINIMAL.splitlines()), st.text(max_size=20))
def test_mutated_minimal_config_loads_or_fails_with_a_config_error(line: str, noise: str) -> None:
    _assert_explained(_load_or_explain(MINIMAL.replace(line, line + noise) if line else MINIMAL + noise))

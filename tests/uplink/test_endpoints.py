"""The endpoints file: a valid file round-trips, anything else fails with EndpointConfigError naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from uplink._endpoints import load_endpoints, parse_endpoints
from uplink.errors import EndpointConfigError

GOOD = {"endpoints": [{
    "name": "city", "profile": "national-json", "park": "park-a", "enterprise_code": "914403001234567890",
    "base_url": "https://platform.example:8443/", "auth": {"kind": "token", "client_id": "c", "secret_file": "s.txt"},
    "ca_file": "ca.pem", "batch_size": 50, "realtime_interval_min": 60}]}


def test_good_file_resolves_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    (tmp_path / "s.txt").write_text("secret\n")
    [ep] = load_endpoints(path)
    assert ep.base_url == "https://platform.example:8443"
    assert ep.ca_file == tmp_path / "ca.pem"
    assert ep.auth.read_secret() == "secret"
    assert ep.periods == ("hour", "day", "month")


@pytest.mark.parametrize(("change", "where"), [
    ({"name": "City!"}, "endpoints.0.name"), ({"base_url": "ftp://x"}, "endpoints.0.base_url"),
    ({"realtime_interval_min": 20}, "endpoints.0.realtime_interval_min"),
    ({"auth": {"kind": "token"}}, "endpoints.0.auth"), ({"batch_size": 0}, "endpoints.0.batch_size"),
    ({"surprise": 1}, "endpoints.0.surprise")])
def test_bad_fields_are_named(change: dict[str, object], where: str) -> None:
    data = {"endpoints": [{**GOOD["endpoints"][0], **change}]}
    with pytest.raises(EndpointConfigError, match=where.replace(".", r"\.")):
        parse_endpoints(yaml.safe_dump(data))


def test_a_30_minute_real_time_period_is_refused_with_the_allowed_values() -> None:
    data = {"endpoints": [{**GOOD["endpoints"][0], "realtime_interval_min": 30}]}
    with pytest.raises(EndpointConfigError, match=r"30 minutes .* use 15, or 60 for hourly records"):
        parse_endpoints(yaml.safe_dump(data))


def test_duplicate_names_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EndpointConfigError, match="unique"):
        parse_endpoints(yaml.safe_dump({"endpoints": GOOD["endpoints"] * 2}))
    with pytest.raises(EndpointConfigError, match="PARKPULSE_UPLINK_ENDPOINTS_FILE"):
        load_endpoints(None)


_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10))
_ANY = st.recursive(_LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                    max_leaves=10)


@given(st.one_of(st.text(max_size=120), _ANY.map(yaml.safe_dump),
                 st.dictionaries(st.sampled_from(list(GOOD["endpoints"][0])), _ANY, max_size=4).map(
                     lambda d: yaml.safe_dump({"endpoints": [{**GOOD["endpoints"][0], **d}]}))))
@settings(max_examples=200)
def test_parser_fails_only_with_endpoint_config_error(text: str) -> None:
    error: EndpointConfigError | None = None
    try:
        endpoints = parse_endpoints(text)
    except EndpointConfigError as exc:
        error = exc
    if error is not None:
        assert str(error).startswith("endpoints.yaml: ")
    else:
        assert all(e.name and e.base_url.startswith(("http://", "https://")) for e in endpoints)


def test_the_shipped_example_file_loads() -> None:
    """deploy/uplink/endpoints.example.yaml is what the error message and the README point operators to."""
    from infra.paths import project_root

    endpoints = load_endpoints(project_root() / "deploy" / "uplink" / "endpoints.example.yaml")
    assert [(e.name, e.profile, e.auth.kind) for e in endpoints] == [
        ("city", "national-json", "token"), ("province", "guangdong-2013", "client_cert")]

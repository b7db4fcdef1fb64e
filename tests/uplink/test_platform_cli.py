"""``platform-sim`` as a command: option parsing, and a real process serving HTTPS with a fault set."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import httpx
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from simulators.platform import Faults
from simulators.platform._cli import parse_credentials, parse_faults
from tests.fixtures.tls_ca import TlsChain, tls_chain  # noqa: F401  (fixture)

RUN = ("import typer; from simulators.platform._cli import platform_sim_command; "
       "typer.run(platform_sim_command)")


def test_fault_pairs_become_a_fault_set() -> None:
    faults = parse_faults(["error_rate=0.25", "reject_item_codes=E01,E02", "down=503"])
    assert (faults.error_rate, faults.reject_item_codes, faults.down) == (0.25, ["E01", "E02"], "503")
    with pytest.raises(typer.BadParameter, match="error_rate"):
        parse_faults(["error_rate=2"])
    with pytest.raises(typer.BadParameter, match="known:"):
        parse_faults(["explode=1"])
    with pytest.raises(typer.BadParameter, match="key=value"):
        parse_faults(["error_rate"])


def test_unit_credentials_parse() -> None:
    assert parse_credentials(["914403:abc", "914404:d:e"]) == {"914403": "abc", "914404": "d:e"}
    with pytest.raises(typer.BadParameter, match="ENTERPRISE_CODE:SECRET"):
        parse_credentials(["nosecret"])


def test_the_command_serves_https_and_applies_its_faults(tls_chain: TlsChain) -> None:  # noqa: F811
    with subprocess.Popen(
            [sys.executable, "-c", RUN, "--profile", "guangdong-2013", "--port", "0", "--admin-port", "0",
             "--tls-cert", str(tls_chain.server_cert), "--tls-key", str(tls_chain.server_key),
             "--fault", "down=503", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
        try:
            assert process.stdout is not None
            started = json.loads(process.stdout.readline())
            assert started["profile"] == "guangdong-2013"
            with httpx.Client(verify=tls_chain.client_context(), timeout=5.0) as http:
                answer = http.post(started["base_url"] + "/gdec/login", content=b"<root/>")
                assert answer.status_code == 503
                assert b"<code>5000</code>" in answer.content
            assert httpx.get(started["admin_url"] + "/admin/stats", timeout=5.0).json()["down_answers"] == 1
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_command_refuses_to_serve_plain_http() -> None:
    done = subprocess.run([sys.executable, "-c", RUN, "--port", "0"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "HTTPS only" in done.stderr


@given(st.dictionaries(st.text(st.characters(blacklist_characters=":", codec="utf-8"), min_size=1),
                       st.text(st.characters(codec="utf-8"), min_size=1), max_size=5))
def test_credentials_round_trip(credentials: dict[str, str]) -> None:
    assert parse_credentials([f"{code}:{secret}" for code, secret in credentials.items()]) == credentials


@given(st.lists(st.text(max_size=30), max_size=4))
def test_any_fault_text_is_a_fault_set_or_a_bad_parameter(pairs: list[str]) -> None:
    with contextlib.suppress(typer.BadParameter):
        assert isinstance(parse_faults(pairs), Faults)

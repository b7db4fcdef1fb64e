"""``parkpulse vpp vtn3-sim`` (a real process on a real port) and ``parkpulse vpp ven3 events --json``."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from simulators.openadr3_vtn import Vtn3Admin, VtnState, event_body, running_vtn3
from vpp._cli import vpp_app

PARKPULSE = Path(sys.executable).with_name("parkpulse")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _token(url: str, proc: subprocess.Popen[str]) -> httpx.Response:
    """The VEN's token, retried while the process is still binding its port."""
    for _ in range(400):
        try:
            return httpx.post(f"{url}/auth/token", data={
                "grant_type": "client_credentials", "client_id": "ven-9", "client_secret": "secret-9"})
        except httpx.ConnectError:
            if proc.poll() is not None:
                pytest.fail(f"vtn3-sim exited with {proc.returncode}")
            time.sleep(0.05)
    pytest.fail("vtn3-sim never accepted a connection")


def test_vtn3_sim_serves_the_spec_on_the_given_port() -> None:
    port = _free_port()
    with subprocess.Popen([str(PARKPULSE), "vpp", "vtn3-sim", "--port", str(port), "--json",
                           "--ven-client", "ven-9:secret-9"], stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["vtn_url"] == f"http://127.0.0.1:{port}"
            answer = _token(info["vtn_url"], proc)
            assert answer.status_code == 200
            token = answer.json()["access_token"]
            programs = httpx.get(f"{info['vtn_url']}/programs", headers={"Authorization": f"Bearer {token}"})
            assert programs.json() == []
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_ven3_events_shows_what_the_ven_makes_of_each_event() -> None:
    state = VtnState()
    state.add_client("ven-1", "secret-1", "ven")
    async with running_vtn3(state) as vtn, Vtn3Admin(vtn.base_url) as admin:
        program = await admin.create_program("capacity")
        good = await admin.create_event(event_body(program["id"], start=datetime.now(UTC) + timedelta(hours=1),
                                                   step=timedelta(minutes=15), values=[250.0]))
        other = await admin.create_event({**event_body(program["id"], start=datetime.now(UTC),
                                                       step=timedelta(minutes=15), values=[1.0]),
                                          "targets": [{"type": "VEN_NAME", "values": ["someone-else"]}]})
        env = {"PARKPULSE_VEN3_VTN_URL": vtn.base_url, "PARKPULSE_VEN3_CLIENT_ID": "ven-1",
               "PARKPULSE_VEN3_CLIENT_SECRET": "secret-1", "PARKPULSE_VEN3_PARK_ID": "park-a",
               "PARKPULSE_VEN3_VEN_NAME": "ven-park-a"}
        result = await asyncio.to_thread(CliRunner().invoke, vpp_app, ["ven3", "events", "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = {row["vtn_event_id"]: row for row in json.loads(result.stdout)}
    assert rows[good["id"]]["signal"] == "IMPORT_CAPACITY_LIMIT"
    assert rows[good["id"]]["intervals"][0]["value"] == 250.0
    assert rows[other["id"]]["ignored"] == "targets another VEN or park"
    assert state.rejected_requests == []


def test_ven3_without_configuration_says_what_to_set() -> None:
    result = CliRunner().invoke(vpp_app, ["ven3", "events"], env={"PARKPULSE_VEN3_VTN_URL": ""})
    assert result.exit_code == 2
    assert "PARKPULSE_VEN3_VTN_URL" in result.output

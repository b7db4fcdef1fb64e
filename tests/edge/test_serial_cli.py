"""The commands an operator runs at commissioning, end to end over a pty pair, as separate processes.

``parkpulse protocol-sim --serial PORT`` serves a DL/T 645 meter on one end and writes an edge.yaml for
the other; ``edge-discover`` (edge/_cli.py) finds the meter's address from the other end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.config import Dlt645SerialTransport, load_config
from tests.fixtures.serial_pty import start_pty_pair

ROOT = Path(__file__).resolve().parents[2]
PARKPULSE = Path(sys.executable).parent / "parkpulse"
DISCOVER = "import typer; from edge._cli import edge_discover_command as c; typer.run(c)"


@pytest.fixture
def sim_on_pty(tmp_path: Path):  # type: ignore[no-untyped-def]
    pair = start_pty_pair(tmp_path / "pty")
    config = tmp_path / "edge.yaml"
    proc = subprocess.Popen(
        [str(PARKPULSE), "protocol-sim", "--modbus", "0", "--dlt645", "1", "--serial", pair.sim_end,
         "--baudrate", "2400", "--parity", "E", "--agent-port", pair.agent_end, "--write-config", str(config)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        text = proc.stdout.readline()
        seen.append(text)
        if "the agent opens" in text or proc.poll() is not None:
            break
    assert any("on serial" in s for s in seen), "".join(seen)
    yield pair, config
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()
    pair.stop()


def test_protocol_sim_serial_writes_a_config_and_discover_finds_the_meter(sim_on_pty) -> None:  # type: ignore[no-untyped-def]
    pair, config_path = sim_on_pty
    config = load_config(config_path)
    assert [b.port for b in config.serial_buses] == [pair.agent_end]
    bus = config.serial_buses[0]
    assert (bus.baudrate, bus.parity) == (2400, "E")
    transport = config.devices[0].transport
    assert isinstance(transport, Dlt645SerialTransport)
    assert transport.bus == bus.id

    found = subprocess.run([sys.executable, "-c", DISCOVER, "--port", pair.agent_end, "--baud", "2400",
                            "--window-s", "1"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(transport.address)
    assert "kWh" in lines[0]


def test_discover_on_a_silent_line_says_what_to_check(tmp_path: Path) -> None:
    pair = start_pty_pair(tmp_path)
    try:
        found = subprocess.run([sys.executable, "-c", DISCOVER, "--port", pair.agent_end, "--window-s", "0.3"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    finally:
        pair.stop()
    assert found.returncode == 1
    assert "no DL/T 645 meter answered" in found.stderr
    assert "baud rate" in found.stderr

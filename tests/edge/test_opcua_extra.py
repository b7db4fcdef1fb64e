"""OPC UA is an optional extra: without asyncua every entry point says which extra to install.

Each case runs in a child Python in which ``import asyncua`` fails (``sys.modules['asyncua'] = None``), so
it checks the same thing whether or not this environment has the extra.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRA = "pip install 'parkpulse[edge,opcua]'"


def run_without_asyncua(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\nsys.modules['asyncua'] = None  # import asyncua now raises ImportError\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=False)


def test_importing_the_reader_names_the_extra() -> None:
    run = run_without_asyncua("import edge.readers.opcua")
    assert run.returncode == 1
    assert "ImportError" in run.stderr
    assert EXTRA in run.stderr


def test_an_agent_config_with_an_opcua_device_is_refused_at_start_with_the_extra() -> None:
    run = run_without_asyncua("""
        from edge.config import parse_config
        from edge.errors import ConfigError
        from edge.readers import EndpointPool, build_reader
        config = parse_config({"agent_id": "gw", "park_id": "p", "devices": [{"id": "boiler-1", "transport": {
            "kind": "opcua", "url": "opc.tcp://10.0.0.5:4840",
            "nodes": [{"metric": "heat_power", "node_id": "ns=2;s=B.P", "unit": "MW"}]}}]})
        try:
            build_reader(config.devices[0], None, EndpointPool())
        except ConfigError as exc:
            print("REFUSED:", exc)
    """)
    assert run.returncode == 0, run.stderr
    assert "REFUSED: device boiler-1:" in run.stdout
    assert EXTRA in run.stdout


def test_the_simulator_command_names_the_extra() -> None:
    run = run_without_asyncua("""
        sys.argv = ["parkpulse", "protocol-sim", "opcua", "--port", "4999"]
        from parkpulse.cli import main
        main()
    """)
    assert run.returncode == 2
    assert EXTRA in run.stderr
    assert "Traceback" not in run.stderr

"""The edge install on its own: `pip install --no-compile 'parkpulse[edge]'` in a clean virtual environment.

This builds that environment from a copy of the working tree the way edge/README.md tells a gateway to,
checks that none of the server's packages can be imported there, that `parkpulse --help` still works and
names the server commands, that a server command answers with the install command (not a traceback), that
the installed `parkpulse protocol-sim` and `parkpulse edge` poll a simulated meter and publish to a real
Mosquitto, prints what the environment's packages weigh on disk once those ran (their files plus the
bytecode Python wrote for what they imported), and runs the edge tests that need no server inside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from tests.edge.helpers import Mosquitto, free_port

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("mosquitto", path="/usr/sbin:/usr/bin") is None,
                                                   reason="mosquitto is not installed")]

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("polars", "pyarrow", "adbc_driver_postgresql", "psycopg", "fastapi", "uvicorn")
SIZE_LIMIT_MB = 30.0
_NOT_OURS = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth", "__pycache__")


def _site_packages_mb(venv: Path) -> tuple[float, dict[str, float]]:
    """What the installed packages occupy (bytecode written at run time included), pip's own excepted."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    sizes: dict[str, float] = {}
    for entry in site.iterdir():
        if entry.name.startswith(_NOT_OURS) or entry.name.split("-")[0] in _NOT_OURS:
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        key = entry.name.split("-")[0].removesuffix(".py")
        sizes[key] = sizes.get(key, 0.0) + sum(p.stat().st_size for p in files) / 2**20
    return sum(sizes.values()), sizes


def _run(*args: str | Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, cwd=ROOT)


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv with `parkpulse[edge]` installed from a copy of this tree (no editable install)."""
    base = tmp_path_factory.mktemp("edge-install")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".cache", ".git", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache", ".pytest_cache",
        ".hypothesis", "build", "dist"))
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = _run(venv / "bin/python", "-m", "pip", "install", "--quiet", "--no-compile", f"{source}[edge]")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def test_no_server_package_is_importable(edge_venv: Path) -> None:
    probe = "import importlib.util, json; print(json.dumps([m for m in %r if importlib.util.find_spec(m)]))"
    found = json.loads(_run(edge_venv / "bin/python", "-I", "-c", probe % (SERVER_ONLY,)).stdout)
    assert found == []


def test_help_names_the_server_commands_and_they_explain_themselves(edge_venv: Path) -> None:
    helped = _run(edge_venv / "bin/parkpulse", "--help", env={**os.environ, "COLUMNS": "200"})
    assert helped.returncode == 0, helped.stderr
    for command in ("edge", "edge-outbox", "protocol-sim", "simulate", "schema"):
        assert f"│ {command} " in helped.stdout
    assert "needs the server install: pip install 'parkpulse[server]'" in helped.stdout
    for args in (("api",), ("report", "indicators", "--park", "p1"), ("ingest", "--park", "p1")):
        refused = _run(edge_venv / "bin/parkpulse", *args)
        assert refused.returncode == 2
        assert "pip install 'parkpulse[server]'" in refused.stderr
        assert "Traceback" not in refused.stderr


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    running = Mosquitto(tmp_path / "broker")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_the_installed_agent_polls_a_simulated_meter_and_publishes(edge_venv: Path, broker: Mosquitto,
                                                                   tmp_path: Path) -> None:
    park = f"t-slim-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "edge.yaml"
    modbus_port = free_port()
    sim = subprocess.Popen([edge_venv / "bin/parkpulse", "protocol-sim", "--modbus", "1", "--dlt645", "0",
                            "--modbus-port", str(modbus_port), "--dlt645-port", str(free_port()), "--park-id", park,
                            "--poll-interval-s", "0.5", "--write-config", str(config)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    received: list[dict[str, object]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"slim-{park}", protocol=mqtt.MQTTv5)
    sub.on_message = lambda _c, _u, msg: received.append(json.loads(msg.payload))
    agent: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 30
        while not config.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        data.update({"agent_id": "slim-agent", "mqtt": {"url": broker.url},
                     "outbox": {"path": str(tmp_path / "outbox.sqlite")}})
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe(f"parkpulse/v1/{park}/+/readings", qos=1)
        sub.loop_start()
        agent = subprocess.Popen([edge_venv / "bin/parkpulse", "edge", "--config", config],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for proc in (agent, sim):
            if proc is not None:
                proc.terminate()
                proc.wait(15)
        sub.loop_stop()
        sub.disconnect()
    assert received, "no readings arrived from the edge install's agent"
    assert all(isinstance(m["readings"], list) and m["readings"] for m in received)


def test_the_edge_install_weighs_at_most_30_mb_once_it_ran(edge_venv: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the agent test above (file order), so the bytecode of what the agent imports counts."""
    total_mb, sizes = _site_packages_mb(edge_venv)
    largest = ", ".join(f"{name} {mb:.1f}" for name, mb in sorted(sizes.items(), key=lambda kv: -kv[1])[:6])
    with capsys.disabled():
        print(f"\nEDGE INSTALL: {total_mb:.1f} MB of packages after running the agent (limit {SIZE_LIMIT_MB:.0f} MB); "
              f"largest MB: {largest}")
    assert total_mb <= SIZE_LIMIT_MB


def test_the_edge_tests_pass_inside_the_edge_install(edge_venv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = _run(edge_venv / "bin/python", "-m", "pip", "install", "--quiet", "pytest~=9.2", "pytest-asyncio~=1.5",
                 "hypothesis~=6.170")
    assert tools.returncode == 0, tools.stderr
    run = _run(edge_venv / "bin/python", "-m", "pytest", "tests/edge", "-q", "-p", "no:cacheprovider",
               "--ignore=tests/edge/test_slim_install.py", env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    with capsys.disabled():
        print(f"\nEDGE TESTS INSIDE THE EDGE INSTALL: {summary}")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]

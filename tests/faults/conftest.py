"""Fixtures of the fault suite: a private broker per test, process cleanup, park registration through the
operator CLI, and the ``FAULT ...`` summary line. The database is the shared, migrated test database
(``tests/fixtures/services.py``); each test's data is its own park.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from parkpulse.services import ServiceEndpoints
from tests.faults.harness import PARKPULSE, ROOT, FaultBroker, Outcome, ProcessGroup, free_port


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A scratch directory every service user can reach (pytest's tmp dirs are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="parkpulse-faults-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fault_broker(service_endpoints: ServiceEndpoints) -> Iterator[FaultBroker]:
    """A private Mosquitto of this test (the project's config, persistence on); never left running."""
    base = Path(tempfile.mkdtemp(prefix="parkpulse-faults-broker-"))
    base.chmod(0o755)
    broker = FaultBroker(base, free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def procs(workdir: Path, request: pytest.FixtureRequest) -> Iterator[ProcessGroup]:
    """Processes of this test; whatever still runs is stopped afterwards. Logs are printed on failure."""
    logs = workdir / "logs"
    logs.mkdir()
    group = ProcessGroup(logs)
    try:
        yield group
    finally:
        group.cleanup()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(group.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def register_park(database_url: str, park_id: str) -> None:
    """Register a park with auto-register the way an operator does (``parkpulse registry park add``):
    ingest accepts readings only for registered parks. Idempotent (the ``park_id`` fixture may have
    inserted it already)."""
    env = {**os.environ, "PARKPULSE_DATABASE_URL": database_url}
    done = subprocess.run([PARKPULSE, "registry", "park", "add", park_id, "--auto-register"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, f"parkpulse registry park add failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def fault_park(park_id: str, database_url: str) -> str:
    """This test's park, registered (auto-register) before anything publishes."""
    register_park(database_url, park_id)
    return park_id


@pytest.fixture
def report_fault(capsys: pytest.CaptureFixture[str]) -> Callable[[Outcome], None]:
    """Print a scenario's ``FAULT ...`` line straight to the terminal (shown even when the test passes)."""
    def report(outcome: Outcome) -> None:
        with capsys.disabled():
            print(f"\n{outcome.line()}", flush=True)
    return report

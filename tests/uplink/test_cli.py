"""``parkpulse uplink`` commands on the real database (the worker's ``run`` is exercised in test_worker.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from simulators.platform import PlatformSimulator
from tests.uplink._support import days, endpoint
from uplink._cli import uplink_app
from uplink._endpoints import EndpointAuth
from uplink._enqueue import enqueue_records
from uplink._metrics import MetricsServer, UplinkMetrics

pytestmark = pytest.mark.services
runner = CliRunner()


def _file(tmp_path: Path, *eps: object) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": [e.model_dump(mode="json") for e in eps]},  # type: ignore[attr-defined]
                                   allow_unicode=True))
    return path


def test_status_export_rejects_quality(database_url: str, park_id: str, db_conn: psycopg.Connection,
                                       tmp_path: Path) -> None:
    ep = endpoint(park_id, "cli")
    enqueue_records(database_url, [ep], "national-json", days(park_id, 4))
    common = ["--endpoints", str(_file(tmp_path, ep)), "--database-url", database_url]

    status = runner.invoke(uplink_app, ["status", "--json", *common])
    assert status.exit_code == 0, status.output
    row = json.loads(status.output)[0]
    assert (row["endpoint"], row["backlog"], row["acked"]) == (ep.name, 4, 0)
    assert row["oldest_unacked_key"].endswith("|day|2026-11-01T00:00:00+08:00")

    out = tmp_path / "export.json"
    export = runner.invoke(uplink_app, ["export", "--park", park_id, "--from", "2026-11-02", "--to", "2026-11-04",
                                        "--profile", "national-json", "-o", str(out), *common])
    assert export.exit_code == 0, export.output
    body = json.loads(out.read_text(encoding="utf-8"))
    text = json.dumps(body, ensure_ascii=False)
    assert "2026-11-02T00:00:00+08:00" in text
    assert "2026-11-03T00:00:00+08:00" in text
    assert "2026-11-01T00:00:00+08:00" not in text
    assert "2026-11-04T00:00:00+08:00" not in text

    rejects = runner.invoke(uplink_app, ["rejects", "--json", "--endpoint", ep.name, *common])
    assert rejects.exit_code == 0
    assert json.loads(rejects.output) == []

    quality = runner.invoke(uplink_app, ["quality", "--park", park_id, "--from", "2026-11-01", "--to", "2026-11-03",
                                         "--json", "--failed-only", *common])
    assert quality.exit_code == 1, quality.output        # only daily values were seeded: real-time is missing
    report = json.loads(quality.output)
    assert report["failed"] >= 2
    assert all(not f["passed"] for f in report["flags"])
    assert any(f["check"] == "completeness" and "missing meter data" in f["reason"] for f in report["flags"])


def test_errors_say_what_to_do(database_url: str, tmp_path: Path) -> None:
    missing = runner.invoke(uplink_app, ["status", "--endpoints", str(tmp_path / "none.yaml"),
                                         "--database-url", database_url])
    assert missing.exit_code == 2
    assert "cannot read endpoints file" in missing.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints:\n  - name: X\n")
    invalid = runner.invoke(uplink_app, ["status", "--endpoints", str(bad), "--database-url", database_url])
    assert invalid.exit_code == 2
    assert "endpoints.0" in invalid.output
    window = runner.invoke(uplink_app, ["enqueue", "--park", "p", "--from", "2026-11-05", "--to", "2026-11-01",
                                        "--endpoints", str(bad), "--database-url", database_url])
    assert window.exit_code == 2
    assert "--to must be after --from" in window.output


class _PlatformThread:
    """The platform simulator on its own event loop in a thread, so a synchronous CLI run can reach it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sim = PlatformSimulator("national-json")

    def __enter__(self) -> PlatformSimulator:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.__aenter__(), self.loop).result(30)
        return self.sim

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


def test_run_once_exit_codes(database_url: str, park_id: str, tmp_path: Path) -> None:
    auth = EndpointAuth(kind="token", client_id="914403001234567890", secret="x")
    with _PlatformThread() as sim:
        good = endpoint(park_id, "ok", sim.base_url, auth=auth)
        dead = endpoint(park_id, "dead", "http://127.0.0.1:9", auth=auth)   # discard port: connection refused
        enqueue_records(database_url, [good, dead], "national-json", days(park_id, 3))
        common = ["--endpoints", str(_file(tmp_path, good, dead)), "--database-url", database_url]
        only_good = runner.invoke(uplink_app, ["run", "--once", "--endpoint", good.name, "--json", *common])
        assert only_good.exit_code == 0, only_good.output
        assert json.loads(only_good.stdout)[good.name]["acked"] == 3
        both = runner.invoke(uplink_app, ["run", "--once", "--json", *common])
        assert both.exit_code == 1
        results = json.loads(both.stdout)
        assert results[good.name]["sent"] == 0
        assert results[dead.name]["acked"] == 0
        assert "ConnectError" in results[dead.name]["error"]
        assert len(sim.state.records) == 3


async def test_metrics_endpoint_serves_prometheus_text() -> None:
    metrics = UplinkMetrics()
    metrics.backlog["city"] = 7
    metrics.rejected["city"] += 2
    server = MetricsServer(metrics, "127.0.0.1", 0)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            ok = await client.get(f"http://127.0.0.1:{server.port}/metrics")
            missing = await client.get(f"http://127.0.0.1:{server.port}/other")
    finally:
        await server.close()
    assert ok.status_code == 200
    assert 'parkpulse_uplink_backlog{endpoint="city"} 7' in ok.text
    assert 'parkpulse_uplink_rejected_total{endpoint="city"} 2' in ok.text
    assert missing.status_code == 404

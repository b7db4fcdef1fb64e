"""Live M&V over the API and the CLI on the real database: the performance document of a measured event,
scoped keys, the not-found hint, and an OpenAPI contract fuzz of the route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from api import MemoryKeyStore, PgKeyStore, build_app
from flex import DrService, MemoryRepository
from parkpulse.cli import app as cli_app
from tests.api.fakes import FakeSettings
from tests.vpp.test_live_mv_store import END, T0, _register, _result, park  # noqa: F401 - the park fixture
from vpp._live_mv_service import LiveMv

pytestmark = pytest.mark.services

PATH = "/v1/parks/{park_id}/vpp/events/{event_id}/performance"


@pytest.fixture
def measured(database_url: str, park: str) -> str:  # noqa: F811 - the imported fixture
    """A final event of the park, measured from its meters."""
    event_id = f"{park}-api"
    _register(database_url, park, event_id)
    now = [T0 + timedelta(seconds=15)]
    mv = LiveMv(database_url, clock=lambda: now[0])
    try:
        mv.accept(_result(park, event_id))
        mv.set_plan(event_id, {T0: 300.0})
        now[0] = END + timedelta(seconds=15)
        mv.tick()
    finally:
        mv.store.close()
        mv._dr_store.close()
    return event_id


@pytest.fixture
async def api(database_url: str, park: str) -> AsyncIterator[dict]:  # noqa: F811
    keys = PgKeyStore(database_url)
    _, read_key = keys.create("Utility", [park])
    _, other_key = keys.create("Other", ["someone-else"])
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield {"client": client, "read": {"X-API-Key": read_key}, "other": {"X-API-Key": other_key}}


async def test_performance_document_of_a_final_event(api: dict, park: str, measured: str) -> None:  # noqa: F811
    client = api["client"]
    url = PATH.format(park_id=park, event_id=measured)
    got = await client.get(url, headers=api["read"])
    assert got.status_code == 200, got.text
    doc = got.json()
    assert doc["status"] == "final"
    assert doc["baseline"]["method"].startswith("JIANGSU_RT_15MIN")
    assert [i["baseline_kw"] for i in doc["intervals"]] == pytest.approx([1000.0] * 5)
    assert [i["reduction_kw"] for i in doc["intervals"]] == pytest.approx([300.0] * 3 + [200.0] * 2, abs=0.01)
    assert doc["delivered_kwh"] == pytest.approx(15.0 + 200.0 * 2 / 60, abs=0.01)
    assert doc["delivered_ratio"] == pytest.approx((15.0 + 200.0 * 2 / 60) / (5 / 60) / 300.0, abs=1e-3)
    assert (await client.get(url, headers=api["other"])).status_code == 403
    assert (await client.get(url)).status_code == 401
    missing = await client.get(PATH.format(park_id=park, event_id="nope"), headers=api["read"])
    assert missing.status_code == 404
    assert "only events received through the VPP loop" in missing.json()["detail"]


def test_cli_shows_the_same_document(park: str, measured: str) -> None:  # noqa: F811
    runner = CliRunner()
    out = runner.invoke(cli_app, ["vpp", "mv", "show", "--event", measured, "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["event_id"] == measured
    assert doc["completed_intervals"] == 5
    table = runner.invoke(cli_app, ["vpp", "mv", "show", "--event", measured])
    assert table.exit_code == 0, table.output
    assert "delivered ÷ committed" in table.output
    missing = runner.invoke(cli_app, ["vpp", "mv", "show", "--event", "nope"])
    assert missing.exit_code == 1
    assert "parkpulse dr evaluate" in missing.output


_KEYS = MemoryKeyStore()
_, _KEY = _KEYS.create("Utility", ["contract-vpp-mv"], scopes=("read",))
_APP = build_app(DrService(MemoryRepository()), _KEYS, FakeSettings())
_schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=schemathesis.Config.from_dict(
    {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "422"]}},
     "generation": {"mode": "positive"}})).include(path_regex=r"/vpp/events/\{event_id\}/performance$")


@pytest.fixture
def _contract_db(database_url: str) -> None:
    _APP.state.database_url = database_url


@pytest.mark.usefixtures("_contract_db")
@_schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_performance_route_contract(case) -> None:  # type: ignore[no-untyped-def]
    case.path_parameters["park_id"] = "contract-vpp-mv"
    case.call_and_validate(headers={"X-API-Key": _KEY})


def test_dashboard_live_row_reads_the_measured_event(database_url: str, park: str, measured: str) -> None:  # noqa: F811
    import psycopg

    from dashboards import DEFAULT_TIMEZONE, BuiltBoard, Lang
    from dashboards._context import build_context
    from dashboards._render import render_board
    from dashboards.boards import all_boards
    from tests.dashboards.panels import frame_problems, run_board

    ctx = build_context(Lang.EN)
    board = next(b for b in all_boards(ctx) if b.uid == "pp-vpp-dr")
    built = BuiltBoard(board, ctx, render_board(board, Lang.EN, timezone=DEFAULT_TIMEZONE))
    with psycopg.connect(database_url, autocommit=True) as conn:
        runs = {r.panel.title.en: r for r in run_board(built, conn, park, END + timedelta(minutes=5))}
    mine = ("Baseline vs metered vs planned", "Latest event, delivered ÷ committed", "Events, live")
    assert [frame_problems(runs[t]) for t in mine] == [[], [], []]
    curves = runs["Baseline vs metered vs planned"]
    metrics = {row[1] for row in curves.rows}
    assert metrics == {f"{measured} · baseline", f"{measured} · metered", f"{measured} · planned"}
    planned = [row[2] for row in curves.rows if row[1].endswith("planned")]
    assert planned == pytest.approx([700.0] * 5)  # baseline 1000 kW − 300 kW planned
    latest = dict(zip(runs["Latest event, delivered ÷ committed"].columns,
                      runs["Latest event, delivered ÷ committed"].rows[0], strict=True))
    delivered = (15.0 + 200.0 * 2 / 60) / (5 / 60)
    assert latest["delivered_pct"] == pytest.approx(100 * delivered / 300.0, abs=0.1)

"""``parkpulse dashboards deploy`` against a fake Grafana (httpx.MockTransport): requests and error mapping."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dashboards import (
    DeployError,
    GrafanaAuthError,
    GrafanaClient,
    GrafanaUnavailableError,
    Lang,
    build_dashboards,
    deploy_dashboards,
)
from dashboards._cli import dashboards_app


class FakeGrafana:
    """Records requests; the folder exists or not; dashboards get version 1, 2, …"""

    def __init__(self, *, folder_exists: bool, status: int = 200) -> None:
        self.folder_exists, self.status = folder_exists, status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path.startswith("/api/folders/"):
            return httpx.Response(200 if self.folder_exists else 404, json={"message": "folder not found"})
        if request.method == "POST" and path == "/api/folders":
            return httpx.Response(200, json={"uid": json.loads(request.content)["uid"]})
        if request.method == "POST" and path == "/api/dashboards/db":
            if self.status != 200:
                return httpx.Response(self.status, json={"message": "nope"})
            uid = json.loads(request.content)["dashboard"]["uid"]
            return httpx.Response(200, json={"uid": uid, "url": f"/d/{uid}", "version": 1, "status": "success"})
        return httpx.Response(404)


@pytest.fixture(scope="module")
def dashboards() -> list[dict[str, Any]]:
    return [b.json for b in build_dashboards([Lang.EN])]


def test_creates_the_folder_then_upserts_every_dashboard(dashboards):
    grafana = FakeGrafana(folder_exists=False)
    with GrafanaClient("http://grafana:3000/", "glsa_token", transport=httpx.MockTransport(grafana)) as client:
        results = deploy_dashboards(dashboards, client, folder_uid="parkpulse", folder_title="ParkPulse")
    assert [r.uid for r in results] == [d["uid"] for d in dashboards]
    methods = [(r.method, r.url.path) for r in grafana.requests]
    assert methods[:2] == [("GET", "/api/folders/parkpulse"), ("POST", "/api/folders")]
    assert methods[2:] == [("POST", "/api/dashboards/db")] * len(dashboards)
    assert all(r.headers["authorization"] == "Bearer glsa_token" for r in grafana.requests)
    body = json.loads(grafana.requests[2].content)
    assert body["folderUid"] == "parkpulse"
    assert body["overwrite"] is True
    assert body["dashboard"]["id"] is None
    assert body["dashboard"]["uid"] == dashboards[0]["uid"]


def test_existing_folder_is_left_alone(dashboards):
    grafana = FakeGrafana(folder_exists=True)
    with GrafanaClient("http://grafana:3000", "t", transport=httpx.MockTransport(grafana)) as client:
        deploy_dashboards(dashboards[:1], client, folder_uid="parkpulse", folder_title="ParkPulse")
    assert [r.method for r in grafana.requests] == ["GET", "POST"]


@pytest.mark.parametrize(("status", "error"), [(401, GrafanaAuthError), (403, GrafanaAuthError),
                                               (503, GrafanaUnavailableError), (412, DeployError)])
def test_http_errors_are_mapped(dashboards, status, error):
    grafana = FakeGrafana(folder_exists=True, status=status)
    with GrafanaClient("http://grafana:3000", "t", transport=httpx.MockTransport(grafana)) as client, \
            pytest.raises(error, match="nope"):
        deploy_dashboards(dashboards[:1], client, folder_uid="parkpulse", folder_title="ParkPulse")


def test_unreachable_grafana_is_worth_retrying(dashboards):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with GrafanaClient("http://grafana:3000", "t", transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(GrafanaUnavailableError, match="cannot reach"):
        deploy_dashboards(dashboards[:1], client, folder_uid="parkpulse", folder_title="ParkPulse")


def test_cli_deploy_needs_a_token(monkeypatch):
    monkeypatch.delenv("PARKPULSE_GRAFANA_TOKEN", raising=False)
    result = CliRunner().invoke(dashboards_app, ["deploy", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "PARKPULSE_GRAFANA_TOKEN" in result.output


def test_cli_deploy_reports_an_unreachable_grafana(monkeypatch):
    monkeypatch.setenv("PARKPULSE_GRAFANA_TOKEN", "glsa_x")
    result = CliRunner().invoke(dashboards_app, ["deploy", "--lang", "en", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach Grafana" in result.output

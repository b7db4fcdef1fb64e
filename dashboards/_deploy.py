"""Push rendered dashboards to a running Grafana over its HTTP API (``parkpulse dashboards deploy``).

Two endpoints are enough, so this uses ``httpx`` (already a dependency) rather than grafana-client, whose
``niquests`` → ``urllib3-future`` dependency shadows ``urllib3`` in the same environment (libraries.md §4):
``GET/POST /api/folders`` to make sure the folder exists and ``POST /api/dashboards/db`` with
``overwrite: true`` per dashboard. Authentication is a service-account token (``Authorization: Bearer``).
File provisioning (``deploy/grafana``) is the default way in; dashboards provisioned from files cannot be
overwritten through the API, so deploy to a Grafana (or folder) that does not provision the same uids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from dashboards.errors import DeployError, GrafanaAuthError, GrafanaUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeployResult:
    """What Grafana answered for one dashboard."""

    uid: str
    url: str
    version: int
    status: str


class GrafanaClient:
    """A minimal Grafana HTTP API client; ``transport`` lets tests answer without a server."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def __enter__(self) -> GrafanaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _request(self, method: str, path: str, json: Mapping[str, Any] | None = None) -> httpx.Response:
        try:
            response = self._client.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise GrafanaUnavailableError(f"cannot reach Grafana at {self._client.base_url}: {exc}") from exc
        if response.status_code in (401, 403):
            raise GrafanaAuthError(f"Grafana refused the token ({response.status_code}) for {method} {path}: "
                                   f"{_message(response)}")
        if response.status_code >= 500:
            raise GrafanaUnavailableError(f"Grafana answered {response.status_code} for {method} {path}: "
                                          f"{_message(response)}")
        return response

    def ensure_folder(self, uid: str, title: str) -> None:
        """Create the folder ``uid`` unless it exists (its title is left alone if it does)."""
        response = self._request("GET", f"/api/folders/{uid}")
        if response.status_code == 200:
            return
        if response.status_code != 404:
            raise DeployError(f"cannot read folder {uid}: {response.status_code} {_message(response)}")
        created = self._request("POST", "/api/folders", {"uid": uid, "title": title})
        if created.status_code not in (200, 201, 409, 412):  # 409/412: created concurrently
            raise DeployError(f"cannot create folder {uid}: {created.status_code} {_message(created)}")
        logger.info("created Grafana folder %s (%s)", uid, title)

    def put_dashboard(self, dashboard: Mapping[str, Any], folder_uid: str, message: str) -> DeployResult:
        """Create or overwrite one dashboard (matched by uid) in ``folder_uid``."""
        body = {"dashboard": {**dashboard, "id": None}, "folderUid": folder_uid, "overwrite": True, "message": message}
        response = self._request("POST", "/api/dashboards/db", body)
        if response.status_code != 200:
            raise DeployError(f"dashboard {dashboard.get('uid')}: {response.status_code} {_message(response)}")
        data = response.json()
        return DeployResult(str(data.get("uid")), str(data.get("url", "")), int(data.get("version", 0)),
                            str(data.get("status", "")))


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", data)) if isinstance(data, dict) else str(data)[:200]


def deploy_dashboards(dashboards: Iterable[Mapping[str, Any]], client: GrafanaClient, *, folder_uid: str,
                      folder_title: str, message: str = "parkpulse dashboards deploy") -> list[DeployResult]:
    """Make sure the folder exists, then upsert every dashboard; stops at the first failure."""
    client.ensure_folder(folder_uid, folder_title)
    results = []
    for dashboard in dashboards:
        result = client.put_dashboard(dashboard, folder_uid, message)
        logger.info("deployed %s version %d", result.uid, result.version)
        results.append(result)
    return results

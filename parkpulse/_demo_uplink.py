"""The demo's uplink step: the simulated park's day goes to a local energy online-monitoring platform.

A throwaway certificate chain (root CA → server certificate for 127.0.0.1, made by :mod:`infra.dev_pki`
in a temporary directory) lets the platform simulator speak HTTPS as a real platform would; the demo endpoint
(profile ``national-json``, token auth) is reset, the day's records are computed from the aggregated
data and enqueued (:func:`uplink._enqueue.enqueue_range`), and the delivery worker drains the queue once.
The step prints and returns how many records the platform acknowledged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import tempfile
from pathlib import Path

import psycopg

from infra.dev_pki import Issuer, issue_certificate, loopback_server_extensions, write_pem
from simulators.platform import PlatformSimulator
from uplink._endpoints import EndpointAuth, EndpointConfig
from uplink._enqueue import enqueue_range
from uplink._worker import UplinkWorker

PROFILE = "national-json"
DEMO_ENDPOINT = "demo-platform"
DEMO_ENTERPRISE = "91440300DEMO00001X"
_DEMO_SECRET = "demo-secret"  # noqa: S105 -- a throwaway credential of the local simulator


def make_demo_chain(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) files for 127.0.0.1, valid for a day."""
    ca, ca_key = issue_certificate("ParkPulse demo platform CA", None, ca=True, extensions=[], valid_days=1)
    server, server_key = issue_certificate("127.0.0.1", Issuer(ca, ca_key), ca=False,
                                           extensions=loopback_server_extensions(), valid_days=1)
    ca_path, _ = write_pem(directory / "ca", ca, ca_key)
    ca_path.with_suffix(".key").unlink()  # nothing else is signed with it
    cert_path, key_path = write_pem(directory / "server", server, server_key)
    return ca_path, cert_path, key_path


async def demo_uplink(database_url: str, park_id: str, day: dt.date) -> str:
    """Upload ``park_id``'s local ``day`` to a fresh local platform simulator; returns the summary line."""
    with tempfile.TemporaryDirectory(prefix="parkpulse-uplink-demo-") as tmp:
        ca, cert, key = make_demo_chain(Path(tmp))
        async with PlatformSimulator(PROFILE, tls_cert=cert, tls_key=key,
                                     credentials={DEMO_ENTERPRISE: _DEMO_SECRET}) as platform:
            endpoint = EndpointConfig(name=DEMO_ENDPOINT, profile=PROFILE, park=park_id,
                                      enterprise_code=DEMO_ENTERPRISE, base_url=platform.base_url, ca_file=ca,
                                      auth=EndpointAuth(kind="token", client_id=DEMO_ENTERPRISE,
                                                        secret=_DEMO_SECRET))
            await asyncio.to_thread(_reset_demo_queue, database_url)
            await asyncio.to_thread(enqueue_range, database_url, [endpoint], park_id, day,
                                    day + dt.timedelta(days=1))
            async with UplinkWorker(database_url, [endpoint], send_registers=True) as worker:
                result = (await worker.drain_once())[DEMO_ENDPOINT]
            acknowledged = result.acked
    line = f"uplink: {acknowledged} records acknowledged by the platform simulator (profile {PROFILE})"
    if result.error:
        line += f"; stopped on: {result.error}"
    return line


def _reset_demo_queue(database_url: str) -> None:
    """Forget the demo endpoint's earlier deliveries, so every demo run uploads the day again."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM uplink_deliveries WHERE endpoint = %s", (DEMO_ENDPOINT,))
        conn.execute("DELETE FROM uplink_register_deliveries WHERE endpoint = %s", (DEMO_ENDPOINT,))


def run_demo_uplink(database_url: str, park_id: str, day: dt.date) -> str:
    """Synchronous entry of the demo step (from inside a running event loop it runs on a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        line = asyncio.run(demo_uplink(database_url, park_id, day))
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            line = pool.submit(asyncio.run, demo_uplink(database_url, park_id, day)).result()
    print(line)
    return line

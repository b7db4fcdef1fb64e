"""The 2.0b VEN over mutual TLS with signed messages (a fixture-made CA), and registration retried until the
VTN comes up; both against a real openleadr VTN and the real database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from openleadr import OpenADRServer, utils

from tests.fixtures.tls_ca import make_tls_chain
from tests.flex.dbseed import seed_park
from tests.vpp.test_intake import Harness, add_battery
from tests.vpp.test_oadr2_ven import WAIT_S, dispatch_event, free_port
from vpp._oadr2 import Oadr2Ven
from vpp._oadr2_settings import Oadr2Settings

pytestmark = [
    pytest.mark.services,
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]


@pytest.fixture(autouse=True)
def _restore_openleadr_class_state() -> Iterator[None]:
    """OpenADRServer(ven_lookup=...) sets it on the VTNService *class*: keep it from leaking into other tests."""
    from openleadr.service.vtn_service import VTNService

    saved = {k: VTNService.__dict__[k] for k in ("ven_lookup", "fingerprint_lookup", "_create_message")
             if k in VTNService.__dict__}
    yield
    for key in ("ven_lookup", "fingerprint_lookup", "_create_message"):
        if key in saved:
            setattr(VTNService, key, saved[key])
        elif key in VTNService.__dict__:
            delattr(VTNService, key)


@pytest.fixture
def harness(database_url: str, db_conn: psycopg.Connection, park_id: str) -> Iterator[Harness]:
    seed_park(db_conn, park_id)
    h = Harness(database_url)
    add_battery(h.dr, park_id, at=datetime.now(UTC))
    yield h
    h.close()


def _leaf(path: Path) -> bytes:
    """The first certificate of a PEM file (the fixture's files carry the intermediate after it)."""
    pem = path.read_bytes()
    end = b"-----END CERTIFICATE-----"
    return pem[: pem.index(end) + len(end)] + b"\n"


def _server(port: int, registrations: dict[str, dict[str, Any]], **tls: Any) -> Any:
    async def on_create_party_registration(info: dict[str, Any]) -> tuple[str, str]:
        ven_id = f"ven-{info['ven_name']}"
        registrations[ven_id] = {"ven_id": ven_id, "ven_name": info["ven_name"], "registration_id": f"reg-{ven_id}",
                                 "fingerprint": info.get("fingerprint")}
        return ven_id, f"reg-{ven_id}"

    def ven_lookup(ven_id: str) -> dict[str, Any]:
        return registrations.get(ven_id, {})

    server = OpenADRServer(vtn_id="TLS_VTN", http_host="127.0.0.1", http_port=port, show_fingerprint=False,
                           requested_poll_freq=timedelta(seconds=1), ven_lookup=ven_lookup,
                           show_server_cert_domain=False, **tls)
    server.add_handler("on_create_party_registration", on_create_party_registration)
    return server


async def test_mutual_tls_and_signed_messages(tmp_path: Path, harness: Harness, database_url: str,
                                              park_id: str) -> None:
    chain = make_tls_chain(tmp_path / "pki")
    client_cert, client_key = chain.client("parkpulse-ven")
    vtn_fingerprint = utils.certificate_fingerprint(_leaf(chain.server_cert))
    port = free_port()
    registrations: dict[str, dict[str, Any]] = {}
    server = _server(port, registrations, cert=str(chain.server_cert), key=str(chain.server_key),
                     http_cert=str(chain.server_cert), http_key=str(chain.server_key), http_ca_file=str(chain.ca))
    await server.run()
    try:
        settings = Oadr2Settings(database_url=database_url, vtn_url=f"https://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
                                 park_id=park_id, ven_name="tls", cert=client_cert, key=client_key, ca_file=chain.ca,
                                 vtn_fingerprint=vtn_fingerprint, poll_interval=timedelta(seconds=1))
        async with Oadr2Ven(settings, harness.intake) as ven:
            await ven.wait_registered(WAIT_S)
            assert registrations[str(ven.ven_id)]["fingerprint"] == utils.certificate_fingerprint(_leaf(client_cert))
            opted: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            event_id = dispatch_event(server, ven.ven_id, 40.0, opted)
            assert await asyncio.wait_for(opted, WAIT_S) == "optIn"
            result = ven.last_result(event_id)
            assert result is not None
            assert harness.dr.get_event(result.dr_event_id) is not None
    finally:
        await server.stop()


async def test_registration_is_retried_until_the_vtn_answers(harness, database_url, park_id):
    port = free_port()
    settings = Oadr2Settings(database_url=database_url, vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b",
                             park_id=park_id, ven_name="late", poll_interval=timedelta(seconds=1),
                             register_backoff_initial_s=0.1, register_backoff_max_s=0.5)
    async with Oadr2Ven(settings, harness.intake) as ven:
        with pytest.raises(TimeoutError):
            await ven.wait_registered(1.0)  # nothing listens yet: the VEN keeps retrying
        server = _server(port, {})
        await server.run()
        try:
            await ven.wait_registered(WAIT_S)
            assert ven.ven_id == "ven-late"
        finally:
            await server.stop()

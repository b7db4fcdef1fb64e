"""The platform simulator over real HTTPS (fixture-made root → intermediate → server chain), both profiles.

Each test starts its own simulator on a free loopback port and talks to it the way the delivery worker
does (schemas.uplink_wire encode/decode over httpx), then checks what the platform stored through its
state or its admin endpoints.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx
import pytest

from schemas.errors import (
    UplinkAuthError,
    UplinkRequestRejected,
    UplinkTokenExpired,
    UplinkTransientError,
)
from schemas.uplink_record import InstrumentEntry
from schemas.uplink_wire import (
    auth_headers,
    decode_register_response,
    encode_instrument_request,
    load_wire_profile,
)
from simulators.platform import Faults, PlatformSimulator, PlatformStartError
from tests.fixtures.tls_ca import TlsChain, tls_chain  # noqa: F401  (fixture)
from tests.uplink._platform_helpers import ENTERPRISE, PlatformClient, day_record

PROFILES = ["national-json", "guangdong-2013"]


class Clock:
    """A clock the test moves by hand (token expiry, timed down periods)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=PROFILES)
async def platform(request: pytest.FixtureRequest, tls_chain: TlsChain,  # noqa: F811
                   clock: Clock) -> AsyncIterator[PlatformSimulator]:
    async with PlatformSimulator(request.param, tls_cert=tls_chain.server_cert, tls_key=tls_chain.server_key,
                                 credentials={ENTERPRISE: "s3cret"}, token_ttl_s=600, clock=clock,
                                 admin_port=0) as simulator:
        yield simulator


@pytest.fixture
async def client(platform: PlatformSimulator, tls_chain: TlsChain) -> AsyncIterator[PlatformClient]:  # noqa: F811
    async with httpx.AsyncClient(verify=tls_chain.client_context(), timeout=5.0) as http:
        yield PlatformClient(platform.profile, platform.base_url, http)


async def test_upload_over_https_is_acknowledged_per_record_and_stored(
        platform: PlatformSimulator, client: PlatformClient) -> None:
    assert platform.base_url.startswith("https://127.0.0.1:")
    assert await client.login() == 600
    records = [day_record("E01", day, 100.0 + day) for day in (1, 2, 3)]
    acks = await client.send(records)
    assert [(ack.record_key, ack.accepted) for ack in acks] == [(r.record_key, True) for r in records]
    assert {key: stored.record for key, stored in platform.state.records.items()} == {
        r.record_key: r for r in records}


async def test_resends_never_double_and_the_highest_revision_wins(
        platform: PlatformSimulator, client: PlatformClient) -> None:
    await client.login()
    first, revised = day_record("E01", 1, 100.0), day_record("E01", 1, 130.0, revision=2)
    await client.send([first])
    await client.send([first])
    await client.send([revised])
    stale = await client.send([first])
    assert stale[0].accepted  # an older revision is acknowledged but does not replace the newer one
    stored = platform.state.records[first.record_key]
    assert (stored.record.value, stored.record.revision, stored.receipts, stored.duplicates) == (130.0, 2, 4, 1)
    stats = platform.state.stats
    assert (stats.duplicates, stats.stale_revisions, len(platform.state.records)) == (1, 1, 1)


async def test_an_expired_token_answers_401_with_the_profile_code_and_a_new_token_works(
        platform: PlatformSimulator, client: PlatformClient, clock: Clock) -> None:
    await client.login()
    clock.now += 601
    with pytest.raises(UplinkTokenExpired):
        await client.send([day_record("E01", 1, 1.0)])
    await client.login()
    assert (await client.send([day_record("E01", 1, 1.0)]))[0].accepted
    await platform.set_faults(Faults(expire_tokens=True))
    with pytest.raises(UplinkTokenExpired):
        await client.send([day_record("E01", 2, 1.0)])


async def test_wrong_secret_and_missing_token_are_auth_errors(platform: PlatformSimulator,
                                                             client: PlatformClient) -> None:
    with pytest.raises(UplinkAuthError):
        await client.send([day_record("E01", 1, 1.0)])
    client.secret = "wrong"
    with pytest.raises(UplinkAuthError):
        await client.login()
    assert platform.state.records == {}


async def test_a_body_that_breaks_the_schema_is_refused_with_the_decoders_reason(
        platform: PlatformSimulator, client: PlatformClient) -> None:
    await client.login()
    answer = await client.http.post(platform.base_url + platform.profile.paths.data, content=b"{not a body",
                                    headers=auth_headers(platform.profile, client.token))
    assert answer.status_code == 400
    from schemas.uplink_wire import raise_for_error
    with pytest.raises(UplinkRequestRejected, match=r"BAD_REQUEST|4000"):
        raise_for_error(platform.profile, answer.status_code, answer.content)
    assert platform.state.stats.invalid_requests == 1


async def test_rejected_items_are_answered_per_record_and_do_not_block_the_others(
        platform: PlatformSimulator, client: PlatformClient) -> None:
    await client.login()
    await platform.set_faults(Faults(reject_item_codes=["E99"]))
    good, bad, misaligned = day_record("E01", 1, 1.0), day_record("E99", 1, 2.0), day_record("E02", 1, 3.0)
    misaligned = type(misaligned)(**{**{f: getattr(misaligned, f) for f in misaligned.__slots__},
                                     "period_start": misaligned.period_start.replace(hour=1)})
    acks = await client.send([good, bad, misaligned])
    assert [ack.accepted for ack in acks] == [True, False, False]
    assert "E99" in (acks[1].reason or "")
    assert "00:00" in (acks[2].reason or "")
    assert set(platform.state.records) == {good.record_key}
    assert len(platform.state.rejects) == 2


async def test_injected_5xx_and_lost_answers_are_transient(platform: PlatformSimulator,
                                                          client: PlatformClient) -> None:
    await client.login()
    await platform.set_faults(Faults(error_rate=1.0))
    with pytest.raises(UplinkTransientError, match="500"):
        await client.send([day_record("E01", 1, 1.0)])
    assert platform.state.records == {}
    await platform.set_faults(Faults(lost_ack_rate=1.0))
    with pytest.raises(UplinkTransientError, match="502"):
        await client.send([day_record("E01", 1, 1.0)])
    assert len(platform.state.records) == 1  # stored, but the answer was lost: the client must resend


async def test_a_hanging_platform_times_the_client_out(platform: PlatformSimulator, client: PlatformClient) -> None:
    await client.login()
    await platform.set_faults(Faults(hang_rate=1.0, hang_s=3.0))
    client.http.timeout = httpx.Timeout(0.3)
    with pytest.raises(httpx.ReadTimeout):
        await client.send([day_record("E01", 1, 1.0)])


async def test_down_with_503_then_refused_then_back_on_the_same_port(
        platform: PlatformSimulator, client: PlatformClient, clock: Clock) -> None:
    await client.login()
    port = platform.port
    await platform.set_faults(Faults(down="503"))
    with pytest.raises(UplinkTransientError, match="503"):
        await client.send([day_record("E01", 1, 1.0)])
    await platform.set_faults(Faults(down="refuse", down_for_s=3600))
    assert not platform.listening
    with pytest.raises(httpx.ConnectError):
        await client.send([day_record("E01", 1, 1.0)])
    clock.now += 3601  # the down period ends by itself; the reconciler reopens the port
    async with httpx.AsyncClient(timeout=2.0) as admin:
        for _ in range(200):
            if platform.listening:
                break
            stats = (await admin.get(f"{platform.admin_url}/admin/stats")).json()
            assert stats["profile"] == platform.profile.name
            import asyncio
            await asyncio.sleep(0.02)
    assert platform.listening
    assert platform.port == port
    await client.login()  # an hour later the token has expired too
    assert (await client.send([day_record("E01", 1, 1.0)]))[0].accepted


async def test_admin_endpoints_show_records_rejects_and_take_faults(platform: PlatformSimulator,
                                                                   client: PlatformClient) -> None:
    await client.login()
    async with httpx.AsyncClient(base_url=platform.admin_url or "", timeout=2.0) as admin:
        set_answer = await admin.post("/admin/faults", json={"reject_item_codes": ["E09"]})
        assert set_answer.status_code == 200
        assert (await admin.post("/admin/faults", json={"error_rate": 3})).status_code == 422
        await client.send([day_record("E01", 1, 5.0), day_record("E09", 1, 6.0)])
        records = (await admin.get("/admin/records")).json()["records"]
        rejects = (await admin.get("/admin/rejects")).json()["rejects"]
        stats = (await admin.get("/admin/stats")).json()
    assert [(r["data_item_code"], r["value"], r["revision"]) for r in records] == [("E01", 5.0, 1)]
    assert [r["data_item_code"] for r in rejects] == ["E09"]
    assert (stats["records_received"], stats["records_accepted"], stats["records_rejected"]) == (2, 1, 1)


async def test_instrument_register_upload_is_kept(platform: PlatformSimulator, client: PlatformClient) -> None:
    from datetime import date
    await client.login()
    entries = [InstrumentEntry("m-1", "总进线", "electricity", "electricity_meter", "0.5S", date(2026, 3, 1), 1,
                               ("E01",))]
    body, _ = encode_instrument_request(platform.profile, ENTERPRISE, entries, upload_id="reg-1")
    answer = await client.http.post(platform.base_url + platform.profile.paths.instruments, content=body,
                                    headers=auth_headers(platform.profile, client.token))
    assert decode_register_response(platform.profile, answer.status_code, answer.content).accepted
    assert platform.state.registers[ENTERPRISE].entries == tuple(entries)


async def test_a_client_trusting_another_ca_cannot_connect(platform: PlatformSimulator,
                                                           tls_chain: TlsChain) -> None:  # noqa: F811
    async with httpx.AsyncClient(verify=tls_chain.client_context(trust=tls_chain.other_ca)) as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.post(platform.base_url + platform.profile.paths.data, content=b"x")


async def test_client_certificates_are_required_when_a_client_ca_is_set(tls_chain: TlsChain) -> None:  # noqa: F811
    profile = load_wire_profile("national-json")
    async with PlatformSimulator(profile, tls_cert=tls_chain.server_cert, tls_key=tls_chain.server_key,
                                 client_ca=tls_chain.ca) as platform:
        async with httpx.AsyncClient(verify=tls_chain.client_context(), timeout=3.0) as anonymous:
            with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
                await anonymous.post(platform.base_url + (profile.auth.token_path or ""), content=b"{}")
        context = tls_chain.client_context()
        cert, key = tls_chain.client("91440300MA5TEST01X")
        context.load_cert_chain(cert, key)
        async with httpx.AsyncClient(verify=context, timeout=3.0) as http:
            client = PlatformClient(profile, platform.base_url, http)
            await client.login()
            assert (await client.send([day_record("E01", 1, 1.0)]))[0].accepted


async def test_a_taken_port_is_a_clear_start_error(platform: PlatformSimulator, tls_chain: TlsChain) -> None:  # noqa: F811
    with pytest.raises(PlatformStartError, match="pick another --port"):
        async with PlatformSimulator(platform.profile, port=platform.port, tls_cert=tls_chain.server_cert,
                                     tls_key=tls_chain.server_key):
            pass


def test_ssl_module_supports_the_chain(tls_chain: TlsChain) -> None:  # noqa: F811
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_chain.server_cert, tls_chain.server_key)
    assert tls_chain.server_cert.read_text().count("BEGIN CERTIFICATE") == 2

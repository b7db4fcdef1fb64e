"""Done-when integration tests of issue 14: the real delivery worker, TimescaleDB and two HTTPS platforms.

Two receiving data centres of one park — a city platform speaking ``national-json`` and a provincial one
speaking ``guangdong-2013`` (XML) — each a :class:`PlatformSimulator` behind a fixture-made certificate
chain. Records go in through the store (``enqueue_records``), out through ``UplinkWorker.drain_once`` (no
sleeping: the tests drive each drain), and the platforms' admin state says what arrived. Time on the
platforms is a hand-moved clock, so a two-day outage takes no wall time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api import PgKeyStore, build_app
from flex import DrService, MemoryRepository
from schemas.uplink_record import Period, UplinkRecord
from simulators.platform import Faults, PlatformSimulator
from tests.api.fakes import FakeSettings
from tests.fixtures.tls_ca import TlsChain, tls_chain  # noqa: F401  (fixture)
from tests.uplink._platform_helpers import ENTERPRISE, SHANGHAI
from uplink._endpoints import EndpointAuth, EndpointConfig
from uplink._enqueue import enqueue_records
from uplink._quality import refresh_quality
from uplink._store import list_rejects, queued_keys
from uplink._worker import UplinkWorker

pytestmark = pytest.mark.services

SECRET = "platform-secret"
CITY_ITEM, PROVINCE_ITEM = "01010001", "E0100001"


class Clock:
    """The platforms' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Setup:
    """Both platforms, their endpoint configs, and the park."""

    park: str
    city: PlatformSimulator
    province: PlatformSimulator
    endpoints: list[EndpointConfig]
    clock: Clock

    def endpoint(self, profile: str) -> EndpointConfig:
        return next(e for e in self.endpoints if e.profile == profile)


def records_15min(park: str, item: str, day: int, *, skip: frozenset[int] = frozenset(), value: float = 2.5,
                  ) -> list[UplinkRecord]:
    """The 96 quarter-hour values of ``item`` on December ``day`` 2026 (minus the ``skip`` indexes)."""
    out = []
    for index in range(96):
        if index in skip:
            continue
        start = datetime(2026, 12, day, tzinfo=SHANGHAI) + timedelta(minutes=15 * index)
        out.append(UplinkRecord(ENTERPRISE, f"{park}|{item}|15min|{start.isoformat()}", 1, item, "15min", start,
                                value + index / 100, "kWh", "measured", 1.0, ("m-main",),
                                datetime(2026, 12, day, tzinfo=UTC) + timedelta(days=1)))
    return out


def day_value(park: str, item: str, day: int, value: float, *, month: bool = False) -> UplinkRecord:
    """A daily (or, with ``month``, the monthly) value of ``item``."""
    start = datetime(2026, 12, 1 if month else day, tzinfo=SHANGHAI)
    period: Period = "month" if month else "day"
    return UplinkRecord(ENTERPRISE, f"{park}|{item}|{period}|{start.isoformat()}", 1, item, period, start, value,
                        "kWh", "measured", 1.0, ("m-main",), datetime(2026, 12, 5, tzinfo=UTC))


def enqueue(setup: Setup, database_url: str, make: Any) -> int:
    """Enqueue ``make(item)`` for both profiles (each profile has its own item codes); returns records per profile."""
    city, province = make(CITY_ITEM), make(PROVINCE_ITEM)
    enqueue_records(database_url, setup.endpoints, "national-json", city)
    enqueue_records(database_url, setup.endpoints, "guangdong-2013", province)
    return len(city)


@pytest.fixture
async def setup(tls_chain: TlsChain, park_id: str) -> AsyncIterator[Setup]:  # noqa: F811
    clock = Clock()
    common: dict[str, Any] = {"tls_cert": tls_chain.server_cert, "tls_key": tls_chain.server_key,
                              "credentials": {ENTERPRISE: SECRET}, "clock": clock, "token_ttl_s": 3600}
    async with PlatformSimulator("national-json", **common) as city, \
            PlatformSimulator("guangdong-2013", **common) as province:
        suffix = park_id[-8:]
        auth = EndpointAuth(kind="token", client_id=ENTERPRISE, secret=SECRET)
        endpoints = [EndpointConfig(name=f"city-{suffix}", profile="national-json", park=park_id,
                                    enterprise_code=ENTERPRISE, base_url=city.base_url, auth=auth,
                                    ca_file=tls_chain.ca, batch_size=40, timeout_s=1.0),
                     EndpointConfig(name=f"prov-{suffix}", profile="guangdong-2013", park=park_id,
                                    enterprise_code=ENTERPRISE, base_url=province.base_url, auth=auth,
                                    ca_file=tls_chain.ca, batch_size=40, timeout_s=1.0)]
        yield Setup(park_id, city, province, endpoints, clock)


async def drain_until_empty(worker: UplinkWorker, rounds: int = 60) -> list[dict[str, Any]]:
    """Drain every endpoint until a round sends nothing and fails nowhere (bounded)."""
    results = []
    for _ in range(rounds):
        round_ = await worker.drain_once()
        results.append(round_)
        if all(r.sent == 0 and r.error is None for r in round_.values()):
            return results
    raise AssertionError(f"queues did not drain in {rounds} rounds: {results[-1]}")


def stored(platform: PlatformSimulator) -> dict[str, tuple[int, float]]:
    return {key: (s.record.revision, s.record.value) for key, s in platform.state.records.items()}


async def test_two_day_outage_of_one_endpoint_backfills_without_loss_while_the_other_keeps_acking(
        setup: Setup, database_url: str) -> None:
    city_name, province_name = setup.endpoint("national-json").name, setup.endpoint("guangdong-2013").name
    await setup.province.set_faults(Faults(down="refuse", down_for_s=2 * 86400))
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        for day in (1, 2):  # two days of data arrive while the province is unreachable
            per_profile = enqueue(setup, database_url, lambda item, d=day: [
                *records_15min(setup.park, item, d), day_value(setup.park, item, d, 240.0 + d)])
            result = await worker.drain_once()
            assert result[city_name].error is None
            assert result[city_name].acked == per_profile  # the city keeps acknowledging
            assert result[province_name].acked == 0
            assert "ConnectError" in (result[province_name].error or "")
            setup.clock.now += 86400
        with psycopg.connect(database_url) as conn:
            waiting = queued_keys(conn, province_name)
        assert len(waiting) == 2 * 97
        assert {state for state, _, _ in waiting.values()} == {"pending"}
        await drain_until_empty(worker)  # the down period is over: the province reopens, the worker back-fills
    assert setup.province.listening
    assert len(setup.city.state.records) == len(setup.province.state.records) == 2 * 97
    with psycopg.connect(database_url) as conn:
        for name in (city_name, province_name):
            assert {state for state, _, _ in queued_keys(conn, name).values()} == {"acked"}
    arrival = [s.record.period_start for s in setup.province.state.records.values()]
    assert arrival == sorted(arrival), "back-fill sends the oldest periods first"
    assert setup.province.state.stats.duplicates == 0


async def test_a_hanging_endpoint_does_not_delay_the_other(setup: Setup, database_url: str) -> None:
    city_name, province_name = setup.endpoint("national-json").name, setup.endpoint("guangdong-2013").name
    await setup.province.set_faults(Faults(hang_rate=1.0, hang_s=5.0))
    per_profile = enqueue(setup, database_url, lambda item: records_15min(setup.park, item, 1)[:30])
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        result = await worker.drain_once()
    assert (result[city_name].acked, result[city_name].error) == (per_profile, None)
    assert "Timeout" in (result[province_name].error or "")
    assert len(setup.city.state.records) == per_profile


async def test_a_resend_storm_produces_no_duplicates_at_the_platform(setup: Setup, database_url: str) -> None:
    faults = Faults(lost_ack_rate=0.4, error_rate=0.2, seed=7)
    await setup.city.set_faults(faults)
    await setup.province.set_faults(faults)
    per_profile = enqueue(setup, database_url, lambda item: [*records_15min(setup.park, item, 1),
                                                             *records_15min(setup.park, item, 2)])
    async with UplinkWorker(database_url, setup.endpoints, send_registers=False) as worker:
        await drain_until_empty(worker, rounds=200)
        # the same values computed again: nothing changes, nothing is re-sent
        enqueue(setup, database_url, lambda item: records_15min(setup.park, item, 1))
        assert all(r.sent == 0 for r in (await worker.drain_once()).values())
    for platform in (setup.city, setup.province):
        assert platform.state.stats.lost_acks > 0, "the storm must have lost answers"
        assert platform.state.stats.duplicates > 0, "lost answers must have caused resends"
        assert len(platform.state.records) == per_profile
        assert {revision for revision, _ in stored(platform).values()} == {1}
        assert all(s.receipts == s.duplicates + 1 for s in platform.state.records.values())


async def test_a_late_reading_revises_a_sent_day_and_the_revision_is_acknowledged(
        setup: Setup, database_url: str) -> None:
    city_name = setup.endpoint("national-json").name
    enqueue(setup, database_url, lambda item: [day_value(setup.park, item, 1, 240.0)])
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        await drain_until_empty(worker)
        key = f"{setup.park}|{CITY_ITEM}|day|{datetime(2026, 12, 1, tzinfo=SHANGHAI).isoformat()}"
        assert stored(setup.city)[key] == (1, 240.0)
        enqueue(setup, database_url, lambda item: [day_value(setup.park, item, 1, 251.5)])  # a late meter reading
        with psycopg.connect(database_url) as conn:
            assert queued_keys(conn, city_name)[key] == ("pending", 2, 1)
        await drain_until_empty(worker)
    assert stored(setup.city)[key] == (2, 251.5)
    assert [(rev, value) for rev, value in stored(setup.province).values()] == [(2, 251.5)]
    with psycopg.connect(database_url) as conn:
        assert queued_keys(conn, city_name)[key] == ("acked", 2, 2)


async def test_an_expired_token_is_renewed_and_the_batch_resent(setup: Setup, database_url: str) -> None:
    per_profile = enqueue(setup, database_url, lambda item: records_15min(setup.park, item, 1)[:10])
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        await drain_until_empty(worker)
        await setup.city.set_faults(Faults(expire_tokens=True))
        await setup.province.set_faults(Faults(expire_tokens=True))
        enqueue(setup, database_url, lambda item: records_15min(setup.park, item, 2)[:10])
        result = await worker.drain_once()
    assert all(r.error is None and r.acked == per_profile for r in result.values())
    for platform in (setup.city, setup.province):
        assert platform.state.stats.expired_token_answers == 1
        assert platform.state.stats.tokens_issued == 2


async def test_a_rejected_item_is_kept_with_its_reason_and_does_not_block(setup: Setup, database_url: str) -> None:
    city_name = setup.endpoint("national-json").name
    await setup.city.set_faults(Faults(reject_item_codes=["01990001"]))
    good = records_15min(setup.park, CITY_ITEM, 1)[:20]
    bad = [replace(r, data_item_code="01990001", record_key=r.record_key.replace(CITY_ITEM, "01990001"))
           for r in records_15min(setup.park, CITY_ITEM, 1)[5:8]]
    enqueue_records(database_url, setup.endpoints, "national-json", [*good[:10], *bad, *good[10:]])
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        results = await drain_until_empty(worker)
    assert sum(r[city_name].acked for r in results) == 20
    assert sum(r[city_name].rejected for r in results) == 3
    with psycopg.connect(database_url) as conn:
        rejects = list_rejects(conn, city_name)
        states = queued_keys(conn, city_name)
    assert sorted(r.record_key for r in rejects) == sorted(r.record_key for r in bad)
    assert all("01990001" in (r.reason or "") for r in rejects)
    assert sorted(s for s, _, _ in states.values()) == ["acked"] * 20 + ["rejected"] * 3
    assert len(setup.city.state.records) == 20


async def test_quality_flags_show_the_missing_data_behind_a_day_in_the_api(
        setup: Setup, database_url: str) -> None:
    # day 1 complete, day 2 misses 16 of 96 quarter hours (83 % < 90 %); the month agrees with the days
    day1 = records_15min(setup.park, CITY_ITEM, 1)
    day2 = records_15min(setup.park, CITY_ITEM, 2, skip=frozenset(range(16)))
    totals = [sum(r.value for r in day1), sum(r.value for r in day2)]
    records = [*day1, *day2, day_value(setup.park, CITY_ITEM, 1, totals[0]),
               day_value(setup.park, CITY_ITEM, 2, totals[1])]
    enqueue_records(database_url, setup.endpoints, "national-json", records)
    async with UplinkWorker(database_url, setup.endpoints) as worker:
        await drain_until_empty(worker)
    refresh_quality(database_url, setup.endpoints, setup.park, date(2026, 12, 1), date(2026, 12, 3),
                    now=datetime(2026, 12, 5, tzinfo=UTC))
    keys = PgKeyStore(database_url)
    _, key = keys.create("Reader", [setup.park])
    app = build_app(DrService(MemoryRepository()), keys, FakeSettings(), database_url=database_url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        answer = await client.get(f"/v1/parks/{setup.park}/uplink/quality", headers={"X-API-Key": key},
                                  params={"from": "2026-12-01", "to": "2026-12-02", "failed_only": "true"})
    assert answer.status_code == 200, answer.text
    flagged = [(f["day"], f["data_item_code"], f["check"]) for f in answer.json()["flags"]]
    assert ("2026-12-02", CITY_ITEM, "completeness") in flagged
    assert ("2026-12-01", CITY_ITEM, "completeness") not in flagged
    reason = next(f["reason"] for f in answer.json()["flags"]
                  if (f["day"], f["data_item_code"], f["check"]) == ("2026-12-02", CITY_ITEM, "completeness"))
    assert "missing meter data: 16 of 96" in reason
    # after upload: what the platform holds for day 2 gives the same completeness
    on_platform = [s.record for s in setup.city.state.records.values()
                   if s.record.period == "15min" and s.record.period_start.day == 2]
    assert len(on_platform) / 96 == pytest.approx(80 / 96)

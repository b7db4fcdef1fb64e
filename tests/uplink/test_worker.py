"""The delivery worker against the real platform simulator (plain HTTP here; HTTPS and long faults are in
test_delivery_faults.py): acknowledgements, rejects, token renewal, and one endpoint down not delaying another."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from schemas.uplink_record import UplinkRecord
from simulators.platform import Faults, PlatformSimulator
from tests.uplink._support import SH, days, endpoint, record
from uplink._endpoints import EndpointAuth
from uplink._enqueue import enqueue_records
from uplink._keys import format_record_key
from uplink._quality import list_flags, refresh_quality
from uplink._store import endpoint_status, list_rejects, queued_keys, try_lock_endpoint, unlock_endpoint
from uplink._worker import UplinkWorker

pytestmark = pytest.mark.services
TOKEN = EndpointAuth(kind="token", client_id="914403001234567890", secret="s3cret")  # client id = unit code


@asynccontextmanager
async def _platform(**kwargs: object) -> AsyncIterator[PlatformSimulator]:
    async with PlatformSimulator("national-json", **kwargs) as sim:  # type: ignore[arg-type]
        yield sim


async def test_delivers_to_two_endpoints_and_renews_an_expired_token(database_url: str, park_id: str,
                                                                      db_conn: psycopg.Connection) -> None:
    async with _platform() as city, _platform() as prov:
        eps = [endpoint(park_id, "city", city.base_url, auth=TOKEN, batch_size=4),
               endpoint(park_id, "prov", prov.base_url, auth=TOKEN)]
        enqueue_records(database_url, eps, "national-json", days(park_id, 10))
        async with UplinkWorker(database_url, eps, send_registers=False) as worker:
            results = await worker.drain_once()
            assert {n: (r.sent, r.acked, r.rejected, r.error) for n, r in results.items()} == {
                eps[0].name: (10, 10, 0, None), eps[1].name: (10, 10, 0, None)}
            assert len(city.state.records) == len(prov.state.records) == 10
            assert city.state.stats.data_requests == 3          # batches of 4, 4 and 2

            await city.set_faults(Faults(expire_tokens=True))
            enqueue_records(database_url, eps, "national-json", [record(park_id, 3, 999.0)])
            again = await worker.drain_once(eps[0].name)
            assert (again[eps[0].name].acked, again[eps[0].name].error) == (1, None)
            stored = city.state.records[record(park_id, 3, 0).record_key]
            assert (stored.record.revision, stored.record.value) == (2, 999.0)
        assert worker.metrics.acked[eps[0].name] == 11
        assert worker.metrics.backlog[eps[0].name] == 0
        assert 'parkpulse_uplink_acked_total{endpoint="' + eps[0].name + '"} 11' in worker.metrics.render()


async def test_rejected_item_is_kept_and_does_not_block(database_url: str, park_id: str,
                                                        db_conn: psycopg.Connection) -> None:
    async with _platform(faults=Faults(reject_item_codes=["91000002"])) as sim:
        ep = endpoint(park_id, "a", sim.base_url, auth=TOKEN)
        records = [*days(park_id, 3), record(park_id, 1, 300.0, item="91000002", period="month")]
        enqueue_records(database_url, [ep], "national-json", records)
        async with UplinkWorker(database_url, [ep], send_registers=False) as worker:
            result = (await worker.drain_once())[ep.name]
        assert (result.acked, result.rejected, result.error) == (3, 1, None)
        rejects = list_rejects(db_conn, ep.name)
        assert [r.record_key for r in rejects] == [records[-1].record_key]
        assert rejects[0].reason == sim.state.rejects[0][1]
        assert rejects[0].reason
        assert endpoint_status(db_conn, ep.name).backlog == 0


async def test_one_endpoint_down_never_delays_the_other(database_url: str, park_id: str,
                                                        db_conn: psycopg.Connection) -> None:
    async with _platform() as up, _platform(faults=Faults(down="503")) as down:
        eps = [endpoint(park_id, "up", up.base_url, auth=TOKEN), endpoint(park_id, "down", down.base_url, auth=TOKEN)]
        enqueue_records(database_url, eps, "national-json", days(park_id, 6))
        async with UplinkWorker(database_url, eps, send_registers=False) as worker:
            results = await worker.drain_once()
            assert (results[eps[0].name].acked, results[eps[0].name].error) == (6, None)
            assert results[eps[1].name].acked == 0
            assert "503" in (results[eps[1].name].error or "")
            assert endpoint_status(db_conn, eps[1].name).backlog == 6
            assert {s for s, _, _ in queued_keys(db_conn, eps[1].name).values()} == {"pending"}

            await down.set_faults(Faults(down="up"))
            back = await worker.drain_once(eps[1].name)
            assert (back[eps[1].name].acked, back[eps[1].name].error) == (6, None)
            assert len(down.state.records) == 6


async def test_a_request_refused_as_a_whole_is_split_until_the_bad_record_is_alone(
        database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    async with _platform(faults=Faults(refuse_batch_item_codes=["91000002"])) as sim:
        ep = endpoint(park_id, "split", sim.base_url, auth=TOKEN, batch_size=8)
        bad = record(park_id, 4, 300.0, item="91000002", period="month")
        records = [*days(park_id, 7), bad]
        enqueue_records(database_url, [ep], "national-json", records)
        async with UplinkWorker(database_url, [ep], send_registers=False) as worker:
            result = (await worker.drain_once())[ep.name]
    assert (result.sent, result.acked, result.rejected, result.error) == (8, 7, 1, None)
    assert set(sim.state.records) == {r.record_key for r in records[:-1]}
    [reject] = list_rejects(db_conn, ep.name)
    assert reject.record_key == bad.record_key
    assert "request refused: invalid record" in reject.reason
    # halving 8 → 4 → 2 → 1 around the bad record: 4 refused requests, 3 accepted ones
    assert (sim.state.stats.invalid_requests, sim.state.stats.data_requests) == (4, 3)
    assert endpoint_status(db_conn, ep.name).backlog == 0


async def test_a_second_process_on_the_same_endpoint_waits_for_the_first(database_url: str, park_id: str,
                                                                          db_conn: psycopg.Connection) -> None:
    async with _platform() as sim:
        ep = endpoint(park_id, "locked", sim.base_url, auth=TOKEN)
        enqueue_records(database_url, [ep], "national-json", days(park_id, 4))
        with psycopg.connect(database_url, autocommit=True) as other_process:
            assert try_lock_endpoint(other_process, ep.name)
            async with UplinkWorker(database_url, [ep], send_registers=False) as worker:
                waiting = (await worker.drain_once())[ep.name]
                assert (waiting.sent, waiting.acked) == (0, 0)
                assert "another `parkpulse uplink run`" in (waiting.error or "")
                assert sim.state.stats.data_requests == 0
                assert endpoint_status(db_conn, ep.name).backlog == 4

                unlock_endpoint(other_process, ep.name)
                served = (await worker.drain_once())[ep.name]
                assert (served.acked, served.error) == (4, None)
                # the worker released the lock after its drain: another process may take it again
                assert try_lock_endpoint(other_process, ep.name)


async def test_registers_are_uploaded_once_per_content(database_url: str, park_id: str,
                                                       db_conn: psycopg.Connection) -> None:
    db_conn.execute("""INSERT INTO devices (park_id, device_id, kind, carrier, metering_level, metadata)
                       VALUES (%s, 'm1', 'electricity_meter', 'electricity', 1, '{"accuracy_class": "0.5S"}')""",
                    (park_id,))
    db_conn.execute("""INSERT INTO series (device_key, metric, unit) SELECT device_key, 'active_energy_import', 'kWh'
                       FROM devices WHERE park_id = %s""", (park_id,))
    async with _platform() as sim:
        ep = endpoint(park_id, "a", sim.base_url, auth=TOKEN).model_copy(update={"unit": {
            "name": "测试单位", "industry_code": "C3130", "region_code": "440300", "address": "深圳",
            "contact_name": "张三", "contact_phone": "0755-0000"}})
        async with UplinkWorker(database_url, [ep]) as worker:
            await worker.drain_once()
            await worker.drain_once()
        assert sim.state.stats.requests >= 2
        rows = db_conn.execute("SELECT kind, state, attempts FROM uplink_register_deliveries WHERE endpoint = %s "
                               "ORDER BY kind", (ep.name,)).fetchall()
        assert rows == [("instruments", "acked", 1), ("unit_info", "acked", 1)]
        entries = next(iter(sim.state.registers.values())).entries
        assert [(e.meter_code, e.accuracy_class, e.data_item_codes) for e in entries] == [
            ("m1", "0.5S", ("01010001", "90000001"))]


def test_backoff_is_capped_and_jittered() -> None:
    worker = UplinkWorker("postgresql://unused", [], backoff_base_s=2.0, backoff_cap_s=60.0, rng=random.Random(7))
    delays = [worker.backoff_s(n) for n in range(1, 12)]
    assert all(1.0 <= d <= 2.0 for d in delays[:1])
    assert all(d <= 60.0 for d in delays)
    assert max(delays) > 30.0
    assert len(set(delays)) == len(delays)


async def test_run_backs_off_the_down_endpoint_and_keeps_delivering_the_other(
        database_url: str, park_id: str, db_conn: psycopg.Connection) -> None:
    async with _platform() as up, _platform(faults=Faults(down="503")) as down:
        eps = [endpoint(park_id, "up", up.base_url, auth=TOKEN), endpoint(park_id, "down", down.base_url, auth=TOKEN)]
        enqueue_records(database_url, eps, "national-json", days(park_id, 4))
        delays: dict[str, list[float]] = {}
        enough = asyncio.Event()

        async def sleep(seconds: float) -> None:   # records each task's sleeps instead of waiting
            task = asyncio.current_task()
            assert task is not None
            delays.setdefault(task.get_name(), []).append(seconds)
            if len(delays.get(f"uplink-{eps[1].name}", [])) >= 3 and f"uplink-{eps[0].name}" in delays:
                enough.set()
            await asyncio.sleep(0.01)

        async with UplinkWorker(database_url, eps, sleep=sleep, poll_s=30.0, backoff_base_s=2.0,
                                send_registers=False) as worker:
            runner = asyncio.create_task(worker.run())
            async with asyncio.timeout(60):   # a safety net against a hang, not a timing assertion
                await enough.wait()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        backoff = delays[f"uplink-{eps[1].name}"][:3]
        assert 1.0 <= backoff[0] <= 2.0
        assert 2.0 <= backoff[1] <= 4.0
        assert 4.0 <= backoff[2] <= 8.0
        assert set(delays[f"uplink-{eps[0].name}"]) == {30.0}
        assert endpoint_status(db_conn, eps[0].name).acked == 4
        assert endpoint_status(db_conn, eps[1].name).backlog == 4
        assert worker.metrics.send_errors[eps[1].name] >= 3


async def test_quality_after_upload_per_endpoint(database_url: str, park_id: str,
                                                 db_conn: psycopg.Connection) -> None:
    db_conn.execute("UPDATE parks SET timezone = 'Asia/Shanghai' WHERE park_id = %s", (park_id,))
    day = datetime(2026, 11, 20, tzinfo=SH)
    quarter = [UplinkRecord("914403001234567890",
                            format_record_key(park_id, "01010001", "15min", day + timedelta(minutes=15 * i)), 1,
                            "01010001", "15min", day + timedelta(minutes=15 * i), 10.0, "kWh", "measured", 1.0,
                            ("m1",), datetime(2026, 11, 21, tzinfo=UTC)) for i in range(96)]
    async with _platform() as up, _platform(faults=Faults(down="503")) as down:
        eps = [endpoint(park_id, "up", up.base_url, auth=TOKEN), endpoint(park_id, "down", down.base_url, auth=TOKEN)]
        enqueue_records(database_url, eps, "national-json", quarter)
        async with UplinkWorker(database_url, eps, send_registers=False) as worker:
            await worker.drain_once()
    refresh_quality(database_url, eps, park_id, date(2026, 11, 20), date(2026, 11, 21),
                    now=datetime(2026, 11, 22, tzinfo=SH))
    flags = {f["profile"]: f for f in list_flags(db_conn, park_id, date(2026, 11, 20), date(2026, 11, 21))
             if f["data_item_code"] == "01010001" and f["check"] == "completeness"}
    assert flags["national-json"]["passed"]                      # computed: 96 of 96
    assert flags[f"national-json@{eps[0].name}"]["passed"]       # acknowledged by the platform that is up
    down_flag = flags[f"national-json@{eps[1].name}"]
    assert not down_flag["passed"]
    assert down_flag["value"] == 0.0
    assert "not acknowledged: 96 of 96" in down_flag["reason"]

"""Faults under a steady stream from an ordinary MQTT client (paho, QoS 1, persistent session, its own
reconnect and queue): ingest killed, broker SIGTERMed or SIGKILLed, database unreachable for 45 s.

Each scenario prints ``FAULT <scenario>: acked=... stored=... lost=... duplicated=...`` and asserts that
no acknowledged reading is missing and none is stored twice or changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.faults.harness import (
    FaultBroker,
    IngestProcess,
    LedgerPublisher,
    Outcome,
    ProcessGroup,
    ThreadedProxy,
    compare,
    count_stored,
    ingest_env,
    wait_stored,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.services]

Report = Callable[[Outcome], None]


def _devices(n: int) -> list[str]:
    return [f"m{i:03d}" for i in range(n)]


def _sleep_until(t0: float, at_s: float) -> None:
    time.sleep(max(0.0, t0 + at_s - time.monotonic()))


def _assert_clean(outcome: Outcome, *procs: IngestProcess) -> None:
    assert outcome.acked > 0, "nothing was acknowledged: the scenario did not run"
    assert outcome.lost == 0, f"{outcome.lost} acknowledged readings are not stored"
    assert outcome.duplicated == 0, f"{outcome.duplicated} readings stored twice, changed or never published"
    for proc in procs:
        assert proc.alive, f"{proc.name} is not running at the end (exits {proc.exit_codes})"


def test_ingest_kill9_mid_stream(fault_broker: FaultBroker, fault_park: str, database_url: str,
                                 db_conn: psycopg.Connection, procs: ProcessGroup, workdir: Path,
                                 report_fault: Report) -> None:
    """Two partitioned ingest instances; each is SIGKILLed once mid-stream and restarted (same client id)
    while the publisher keeps going at 3,000 readings/s."""
    instances = [
        IngestProcess(procs, f"ingest-p{i}", client_id=f"fi-{fault_park}-p{i}", park_id=fault_park,
                      env=ingest_env(database_url, fault_broker.url, workdir / "dead-letter",
                                     PARKPULSE_PARTITION_COUNT="2", PARKPULSE_PARTITION_INDEX=str(i)))
        for i in range(2)
    ]
    for proc in instances:
        proc.start()
    for proc in instances:
        proc.wait_connected()
    pub = LedgerPublisher(fault_broker.port, fault_park, client_id=f"fp-{fault_park}")
    try:
        pub.connect()
        pub.wait_subscriber()
        time.sleep(1.0)  # the second instance's subscription (a probe answers for either)
        t0 = time.monotonic()
        pub.start_stream(_devices(60), duration_s=20, readings_per_message=50)
        for victim, kill_at in ((instances[0], 5.0), (instances[1], 12.0)):
            _sleep_until(t0, kill_at)
            victim.kill9()
            _sleep_until(t0, kill_at + 2.5)
            victim.start()
            victim.wait_connected()
        pub.join_stream()
        pub.wait_pubacks(timeout=30)
        rows = wait_stored(db_conn, fault_park, pub.acked_keys())
        # messages each instance acknowledged unread because the other partition stores them (since restart)
        skipped = [int(p.metrics().get("parkpulse_ingest_messages_skipped_partition_total", -1)) for p in instances]
    finally:
        pub.close()
    outcome = compare("ingest-kill9", published=pub.published(), acked=pub.acked_keys(), rows=rows,
                      pubacks=dict(pub.reason_codes()), ingest_kills=2,
                      ingest_starts=sum(p.starts for p in instances), partitions=2,
                      skipped_other_partition=skipped)
    report_fault(outcome)
    _assert_clean(outcome, *instances)


@pytest.mark.parametrize(("mode", "outage_s"), [("sigterm", 8.0), ("kill9", 5.0)],
                         ids=["broker-sigterm", "broker-kill9"])
def test_broker_outage_direct_publisher(mode: str, outage_s: float, fault_broker: FaultBroker, fault_park: str,
                                        database_url: str, db_conn: psycopg.Connection,
                                        procs: ProcessGroup, workdir: Path, report_fault: Report) -> None:
    """60 devices x 1 message/s x 50 readings for 20 s; the broker goes down at 6 s (SIGTERM: 8 s outage,
    SIGKILL: 5 s) and comes back from its persistence; the publisher reconnects by itself."""
    ingest = IngestProcess(procs, "ingest", client_id=f"fi-{fault_park}", park_id=fault_park,
                           env=ingest_env(database_url, fault_broker.url, workdir / "dead-letter"))
    ingest.start()
    ingest.wait_connected()
    pub = LedgerPublisher(fault_broker.port, fault_park, client_id=f"fp-{fault_park}")
    try:
        pub.connect()
        pub.wait_subscriber()
        t0 = time.monotonic()
        pub.start_stream(_devices(60), duration_s=20, readings_per_message=50)
        _sleep_until(t0, 6.0)
        down = time.monotonic()
        if mode == "sigterm":
            fault_broker.sigterm()
        else:
            fault_broker.kill9()
        time.sleep(max(0.0, down + outage_s - time.monotonic()))
        fault_broker.start()
        outage = time.monotonic() - down
        pub.join_stream()
        pub.wait_pubacks(timeout=30)
        rows = wait_stored(db_conn, fault_park, pub.acked_keys())
    finally:
        pub.close()
    outcome = compare(f"broker-{mode}", published=pub.published(), acked=pub.acked_keys(), rows=rows,
                      pubacks=dict(pub.reason_codes()), outage_s=round(outage, 1),
                      publisher_reconnects=pub.connects - 1, ingest_exits=len(ingest.exit_codes))
    report_fault(outcome)
    _assert_clean(outcome, ingest)


def test_database_down_45s(fault_broker: FaultBroker, fault_park: str, database_url: str,
                           db_conn: psycopg.Connection, procs: ProcessGroup, workdir: Path,
                           report_fault: Report) -> None:
    """Ingest reaches TimescaleDB through a proxy that is cut for 45 s while 30 devices keep publishing
    20 readings/s each; the backlog waits in the broker's persistent session and drains afterwards."""
    parts = urlsplit(database_url)
    proxy = ThreadedProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    via_proxy = urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")))
    ingest = IngestProcess(procs, "ingest", client_id=f"fi-{fault_park}", park_id=fault_park,
                           env=ingest_env(via_proxy, fault_broker.url, workdir / "dead-letter"))
    pub = LedgerPublisher(fault_broker.port, fault_park, client_id=f"fp-{fault_park}")
    try:
        ingest.start()
        ingest.wait_connected()
        pub.connect()
        pub.wait_subscriber()
        t0 = time.monotonic()
        pub.start_stream(_devices(30), duration_s=60, readings_per_message=20)
        _sleep_until(t0, 6.0)
        proxy.cut()
        cut_at = time.monotonic()
        _sleep_until(t0, 51.0)
        stored_while_down = count_stored(db_conn, fault_park)
        proxy.restore()
        down = time.monotonic() - cut_at
        pub.join_stream()
        pub.wait_pubacks(timeout=30)
        rows = wait_stored(db_conn, fault_park, pub.acked_keys(), timeout=120)
        storage_errors = ingest.metrics().get("parkpulse_ingest_storage_errors_total", -1)
        alive = ingest.alive
    finally:
        pub.close()
        ingest.cleanup()
        proxy.close()
    outcome = compare("database-down-45s", published=pub.published(), acked=pub.acked_keys(), rows=rows,
                      pubacks=dict(pub.reason_codes()), db_down_s=round(down, 1),
                      stored_before_restore=stored_while_down, storage_errors=int(storage_errors),
                      ingest_alive=alive)
    report_fault(outcome)
    assert outcome.acked > 0
    assert outcome.lost == 0, f"{outcome.lost} acknowledged readings are not stored"
    assert outcome.duplicated == 0
    assert alive, "ingest exited during the database outage"

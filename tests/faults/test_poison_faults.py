"""Poison messages in the middle of valid traffic: ingest keeps running, every poison message is kept in
``quarantine`` (or the dead-letter file), every valid reading around them is stored, and a new ingest
instance started after a retained poison birth was published starts and keeps consuming.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.faults.harness import (
    FaultBroker,
    IngestProcess,
    Key,
    LedgerPublisher,
    Outcome,
    ProcessGroup,
    compare,
    ingest_env,
    ts_text,
    wait_for,
    wait_stored,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.services]

Report = Callable[[Outcome], None]
BIRTHS_RECEIVED = 'parkpulse_ingest_messages_received_total{kind="birth"}'


def _reading(ts: datetime, value: float) -> bytes:
    return (b'{"ts":"' + ts_text(ts).encode() + b'","metric":"active_power","value":' + str(value).encode()
            + b',"unit":"kW"}')


def poison_messages(park_id: str) -> tuple[list[tuple[str, str, bytes, bool]], set[Key]]:
    """(name, topic, raw payload, retain) of each poison message, and the keys of readings they carry.

    The payloads are raw JSON text: ``\\u0000`` and ``\\ud800`` below are six-character escapes, valid JSON
    syntax that decodes to a NUL and to a lone surrogate, neither of which PostgreSQL text or UTF-8 can hold.
    """
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    r1, r2, r3 = _reading(now, 1.5), _reading(now + timedelta(seconds=1), 2.5), _reading(now, 3.5)

    def topic(device: str, kind: str) -> str:
        return f"parkpulse/v1/{park_id}/{device}/{kind}"

    messages = [
        ("nul-key", topic("p-nulkey", "readings"),
         b'{"v":1,"device":"p-nulkey","seq":1,"readings":[' + r1 + b'],"x\\u0000":1}', False),
        ("nul-birth-retained", topic("p-nulbirth", "birth"),
         b'{"v":1,"device":"p-nulbirth","kind":"meter\\u0000"}', True),
        ("lone-surrogate-birth", topic("p-surrogate", "birth"),
         b'{"v":1,"device":"p-surrogate","kind":"meter","firmware":"\\ud800"}', True),
        ("garbage-1mb", topic("p-garbage", "readings"), random.Random(7).randbytes(1_000_000), False),
        ("duplicate-keys", topic("p-dupkeys", "readings"),
         b'{"v":1,"device":"p-dupkeys","seq":1,"readings":[' + r2 + b'],"readings":[' + r3 + b']}', False),
    ]
    carried = {(d, "active_power", ts) for d, ts in (("p-nulkey", now), ("p-dupkeys", now + timedelta(seconds=1)),
                                                      ("p-dupkeys", now))}
    return messages, carried


def _quarantined_topics(db_conn: psycopg.Connection, park_id: str) -> dict[str, str]:
    """Topic → the reasons its quarantine records give (``reason x count``)."""
    rows = db_conn.execute("SELECT topic, reason, count(*) FROM quarantine WHERE topic LIKE %s "
                           "GROUP BY topic, reason ORDER BY topic, reason", (f"parkpulse/v1/{park_id}/%",)).fetchall()
    out: dict[str, str] = {}
    for topic, reason, n in rows:
        out[str(topic)] = "+".join(filter(None, (out.get(str(topic)), f"{reason}x{n}")))
    return out


def _dead_lettered(dead_letter_dir: Path, device: str) -> bool:
    if not dead_letter_dir.is_dir():
        return False
    return any(device in path.read_text(errors="replace") for path in dead_letter_dir.rglob("*") if path.is_file())


def test_poison_messages_mid_stream(fault_broker: FaultBroker, fault_park: str, database_url: str,
                                    db_conn: psycopg.Connection, procs: ProcessGroup, workdir: Path,
                                    report_fault: Report) -> None:
    dead_letters = workdir / "dead-letter"
    env = ingest_env(database_url, fault_broker.url, dead_letters)
    first = IngestProcess(procs, "ingest-a", client_id=f"fa-{fault_park}", park_id=fault_park, env=env)
    second = IngestProcess(procs, "ingest-b", client_id=f"fb-{fault_park}", park_id=fault_park, env=env)
    devices = [f"m{i:03d}" for i in range(10)]
    poison, carried = poison_messages(fault_park)
    first.start()
    first.wait_connected()
    pub = LedgerPublisher(fault_broker.port, fault_park, client_id=f"fp-{fault_park}")
    try:
        pub.connect()
        pub.wait_subscriber()
        # wave 1: valid traffic with the poison in the middle of it
        t0 = time.monotonic()
        pub.start_stream(devices, duration_s=12, readings_per_message=20)
        time.sleep(3.0)
        for _name, topic, payload, retain in poison:
            pub.publish(topic, payload, retain=retain)
            time.sleep(0.5)
        pub.join_stream()
        pub.wait_pubacks(timeout=30)
        wave1 = pub.acked_keys()
        wait_stored(db_conn, fault_park, wave1, timeout=30, stall=10)
        first_survived = first.alive
        # a new instance, started after the retained poison births were published
        second.start()

        def births_in() -> bool:
            return second.metrics().get(BIRTHS_RECEIVED, 0.0) >= 2 or not second.alive

        with suppress(AssertionError):  # a failure here is reported and asserted below, after the FAULT line
            second.wait_connected()
            wait_for(births_in, timeout=15, what="the new instance to receive the retained births")
        births_seen = second.metrics().get(BIRTHS_RECEIVED, 0.0)
        first_exit = first.terminate(timeout=30)
        # wave 2: only the new instance is left to store it
        pub.start_stream(devices, duration_s=5, readings_per_message=20)
        pub.join_stream()
        pub.wait_pubacks(timeout=30)
        wave2 = pub.acked_keys() - wave1
        rows = wait_stored(db_conn, fault_park, pub.acked_keys(), timeout=45, stall=15)
        second_alive = second.alive
        elapsed = time.monotonic() - t0
    finally:
        pub.close()
    quarantined = _quarantined_topics(db_conn, fault_park)
    dead = {name: _dead_lettered(dead_letters, topic.split("/")[3]) for name, topic, _p, _r in poison}
    kept = {name: topic in quarantined or dead[name] for name, topic, _p, _r in poison}
    how = {name: quarantined.get(topic) or ("dead-letter" if dead[name] else "nowhere")
           for name, topic, _p, _r in poison}
    stored_keys = {(d, m, ts) for d, m, ts, _ in rows}
    outcome = compare(
        "poison-messages", published=pub.published(), acked=pub.acked_keys(), rows=rows, ignore=carried,
        poison=len(poison), poison_kept=sum(kept.values()),
        kept_as=";".join(f"{n}:{v}" for n, v in how.items()),
        first_instance="survived" if first_survived else f"exited({first.exit_codes})",
        first_exit_on_sigterm=first_exit, new_instance_births_received=int(births_seen),
        new_instance_stored=f"{len(wave2 & stored_keys)}/{len(wave2)}",
        new_instance="running" if second_alive else f"exited({second.popen.returncode if second.popen else None})",
        elapsed_s=round(elapsed, 1))
    report_fault(outcome)
    assert outcome.lost == 0, f"{outcome.lost} acknowledged valid readings are not stored"
    assert outcome.duplicated == 0
    assert first_survived, "ingest exited while consuming poison messages"
    assert first_exit == 0, "ingest did not stop cleanly on SIGTERM"
    assert all(kept.values()), f"poison messages neither quarantined nor dead-lettered: {kept}"
    assert second_alive, "a new ingest instance does not survive the retained poison births"
    assert births_seen >= 2, "the new instance did not receive the retained births"
    assert wave2 <= stored_keys, "the new instance did not store what came after it started"

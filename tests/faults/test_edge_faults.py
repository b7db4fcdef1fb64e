"""Faults with the edge agent as the publisher: ``parkpulse protocol-sim`` serves Modbus TCP meters that
``parkpulse edge --config ...`` polls, stores in its SQLite outbox and publishes; ``parkpulse ingest``
stores them. The outbox is the ledger: every reading the agent polled must be stored once the outbox has
drained (see :func:`~tests.faults.harness.prepare_outbox_ledger` for how the suite reads it).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from edge.outbox import Outbox, read_stats
from tests.faults.harness import (
    PARKPULSE,
    FaultBroker,
    IngestProcess,
    LedgerPublisher,
    OutboxLedger,
    Outcome,
    Proc,
    ProcessGroup,
    compare,
    count_stored,
    free_port,
    ingest_env,
    prepare_outbox_ledger,
    wait_for,
    wait_stored,
)

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.services]

Report = Callable[[Outcome], None]
N_METERS = 4
POLL_S = 0.5


@dataclass
class EdgeRig:
    ingest: IngestProcess
    edge: Proc
    config: Path
    outbox: Path


def _port_open(port: int) -> bool:
    with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@contextmanager
def edge_rig(broker: FaultBroker, park_id: str, database_url: str, procs: ProcessGroup,
             workdir: Path) -> Iterator[EdgeRig]:
    """Simulated meters, an ingest instance, and an agent (started, its outbox instrumented as the ledger)."""
    ingest = IngestProcess(procs, "ingest", client_id=f"fi-{park_id}", park_id=park_id,
                           env=ingest_env(database_url, broker.url, workdir / "dead-letter"))
    ingest.start()
    config = workdir / "edge.yaml"
    modbus_port = free_port()
    sim = procs.add(Proc("protocol-sim", [
        PARKPULSE, "protocol-sim", "--modbus", str(N_METERS), "--dlt645", "0", "--modbus-port", str(modbus_port),
        "--dlt645-port", str(free_port()), "--park-id", park_id, "--poll-interval-s", str(POLL_S),
        "--write-config", str(config)], os.environ, procs.log_dir))
    sim.start()
    wait_for(lambda: config.exists() and _port_open(modbus_port), timeout=30, what="the protocol simulator")
    outbox = workdir / "outbox.sqlite"
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data.update({
        "agent_id": "faults-agent",
        "mqtt": {"url": broker.url, "backoff": {"initial_s": 0.2, "max_s": 2.0}, "publish_timeout_s": 5.0},
        "outbox": {"path": str(outbox)},
        "status_interval_s": 2.0, "shutdown_grace_s": 15.0,
    })
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    prepare_outbox_ledger(outbox)
    ingest.wait_connected()
    probe = LedgerPublisher(broker.port, park_id, client_id=f"fprobe-{park_id}")
    try:
        probe.connect()
        probe.wait_subscriber()
    finally:
        probe.close()
    edge = procs.add(Proc("edge", [PARKPULSE, "edge", "--config", str(config), "--log-level", "INFO"],
                          {**os.environ, "COLUMNS": "200"}, procs.log_dir))
    edge.start()
    yield EdgeRig(ingest, edge, config, outbox)


def _finish(rig: EdgeRig, db_conn: psycopg.Connection, park_id: str, scenario: str,
            **figures: object) -> tuple[Outcome, int]:
    """Stop the agent cleanly (it drains), read its ledger and compare with the database."""
    ingest_alive = rig.ingest.alive
    edge_exit = rig.edge.terminate(timeout=40)
    stats = read_stats(rig.outbox)
    ledger = OutboxLedger.read(rig.outbox)
    rows = wait_stored(db_conn, park_id, ledger.acked, watch=None)
    with Outbox(rig.outbox) as box:
        integrity = box.integrity_check()
    outcome = compare(scenario, published=ledger.polled, acked=ledger.acked, rows=rows,
                      polled=len(ledger.polled), outbox_pending=stats.pending_messages,
                      dropped=stats.dropped_readings)
    outcome.other.update(figures)
    outcome.other.update(edge_starts=rig.edge.starts, edge_exit=edge_exit, outbox_integrity=integrity,
                         ingest_alive=ingest_alive, ledger_vs_counters=f"{ledger.readings}/{stats.enqueued_readings}")
    return outcome, edge_exit


def _assert_clean(outcome: Outcome) -> None:
    other = outcome.other
    assert outcome.acked > 0, "the agent published nothing"
    assert outcome.lost == 0, f"{outcome.lost} acknowledged readings are not stored"
    assert outcome.duplicated == 0
    assert other["outbox_pending"] == 0, "the outbox did not drain"
    assert other["dropped"] == 0
    assert outcome.acked == other["polled"], "polled readings that were never acknowledged"
    assert other["edge_exit"] == 0
    assert other["outbox_integrity"] == "ok"
    assert other["ingest_alive"] is True
    ledger, counters = str(other["ledger_vs_counters"]).split("/")
    assert ledger == counters, "the ledger and the outbox's own counters disagree"


def _wait_flowing(db_conn: psycopg.Connection, park_id: str) -> None:
    wait_for(lambda: count_stored(db_conn, park_id) > 0, timeout=45, what="the agent's first readings in the database")


@pytest.mark.parametrize(("mode", "outage_s"), [("sigterm", 8.0), ("kill9", 5.0)],
                         ids=["edge-broker-sigterm", "edge-broker-kill9"])
def test_broker_outage_edge_agent(mode: str, outage_s: float, fault_broker: FaultBroker, fault_park: str,
                                  database_url: str, db_conn: psycopg.Connection, procs: ProcessGroup,
                                  workdir: Path, report_fault: Report) -> None:
    """The broker goes down while the agent polls 4 meters every 0.5 s; it keeps polling into its outbox
    and drains it when the broker is back."""
    with edge_rig(fault_broker, fault_park, database_url, procs, workdir) as rig:
        _wait_flowing(db_conn, fault_park)
        time.sleep(3.0)
        down = time.monotonic()
        if mode == "sigterm":
            fault_broker.sigterm()
        else:
            fault_broker.kill9()
        time.sleep(max(0.0, down + outage_s - time.monotonic()))
        backlog = read_stats(rig.outbox).pending_messages
        fault_broker.start()
        outage = time.monotonic() - down
        wait_for(lambda: read_stats(rig.outbox).pending_messages <= N_METERS, timeout=60,
                 what="the outbox to drain after the outage")
        time.sleep(3.0)
        outcome, _ = _finish(rig, db_conn, fault_park, f"edge-broker-{mode}", outage_s=round(outage, 1),
                             backlog_at_restart=backlog)
    report_fault(outcome)
    _assert_clean(outcome)
    assert backlog > 0, "the outage left nothing in the outbox: it did not test store-and-forward"


def test_edge_kill9_during_broker_outage(fault_broker: FaultBroker, fault_park: str, database_url: str,
                                         db_conn: psycopg.Connection, procs: ProcessGroup, workdir: Path,
                                         report_fault: Report) -> None:
    """Broker down; the agent is SIGKILLed with a backlog in its outbox, restarted while the broker is
    still down, then the broker comes back: the backlog written before the kill is delivered."""
    with edge_rig(fault_broker, fault_park, database_url, procs, workdir) as rig:
        _wait_flowing(db_conn, fault_park)
        time.sleep(2.0)
        down = time.monotonic()
        fault_broker.sigterm()
        time.sleep(3.0)
        rig.edge.kill9()
        backlog_at_kill = read_stats(rig.outbox).pending_messages
        time.sleep(1.0)
        rig.edge.start()
        time.sleep(3.0)
        fault_broker.start()
        outage = time.monotonic() - down
        wait_for(lambda: read_stats(rig.outbox).pending_messages <= N_METERS, timeout=60,
                 what="the outbox to drain after the outage")
        time.sleep(3.0)
        outcome, _ = _finish(rig, db_conn, fault_park, "edge-kill9-during-broker-outage",
                             outage_s=round(outage, 1), backlog_at_kill=backlog_at_kill)
    report_fault(outcome)
    _assert_clean(outcome)
    assert backlog_at_kill > 0, "nothing was waiting in the outbox when the agent was killed"

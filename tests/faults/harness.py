"""The fault suite's harness: a publisher that keeps a ledger of PUBACK reason codes, real processes
(ingest, edge agent, protocol simulator) that can be killed, a private broker that can be SIGTERMed or
SIGKILLed, a cuttable database proxy, and the comparison of what was acknowledged with what was stored.

Accounting, shared by every scenario:

* ``acked``: readings whose QoS 1 message got a PUBACK with a reason code < 0x80, from the publisher's own
  ledger. 0x10 "no matching subscribers" counts as acknowledged: the broker accepted the message and
  dropped it, which is exactly the loss the suite must prove gone. For the edge agent the ledger is its
  outbox (every row it enqueued, and whether the row was removed after a PUBACK).
* ``stored``: distinct (device, metric, ts) of the test's park found in ``readings``.
* ``lost``: acknowledged readings that are not stored.
* ``duplicated``: rows stored more than once, rows whose value differs from what was published, and rows
  nobody published (the primary key is (series_id, ts), so the set (device, metric, ts, value) is compared).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.outbox import _SCHEMA as OUTBOX_SCHEMA
from parkpulse.services._mosquitto import MosquittoPaths, running_pid
from parkpulse.services._system import process_alive
from tests.fixtures.proxy import CuttableProxy
from tests.fixtures.services import PrivateBroker

ROOT = Path(__file__).resolve().parents[2]
PARKPULSE = str(Path(sys.executable).with_name("parkpulse"))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: (device, metric, ts) — the identity of a reading (the table's key is (series_id, ts)).
Key = tuple[str, str, datetime]
#: (device, metric, ts, value) as stored.
Row = tuple[str, str, datetime, float]

#: Metrics the synthetic publisher sends: name, canonical unit, value range.
METRIC_MIX: tuple[tuple[str, str, float, float], ...] = (
    ("active_power", "kW", 0.0, 500.0),
    ("reactive_power", "kvar", -100.0, 100.0),
    ("voltage_l1", "V", 215.0, 240.0),
    ("current_l1", "A", 0.0, 800.0),
    ("frequency", "Hz", 49.8, 50.2),
)
PUBACK_FAILURE = 0x80
NO_MATCHING_SUBSCRIBERS = 0x10


def free_port() -> int:
    """A TCP port nobody listens on right now (small race, fine for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def ts_text(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as devices send it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the broker ---------------------------------------------------------------------------------------------


class FaultBroker(PrivateBroker):
    """A private Mosquitto (the project's config, persistence on) that a test SIGTERMs or SIGKILLs."""

    @property
    def paths(self) -> MosquittoPaths:
        return MosquittoPaths.for_cache(self.base)

    @property
    def pid(self) -> int | None:
        return running_pid(self.paths)

    def sigterm(self) -> None:
        """Clean stop: Mosquitto saves its persistence file on SIGTERM (the shared helper waits for exit)."""
        assert self.pid is not None, "broker is not running"
        self.stop()

    def kill9(self) -> None:
        """Crash: SIGKILL, so only what the last autosave wrote survives."""
        pid = self.pid
        assert pid is not None, "broker is not running"
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not process_alive(pid, "mosquitto"), timeout=10, what=f"mosquitto {pid} to die")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.paths.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"


# -- processes ----------------------------------------------------------------------------------------------


class Proc:
    """A subprocess of the suite with its output in a log file; killed by pid, never by name."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        self.exit_codes: list[int] = []   # every exit we observed, including the ones we caused

    def start(self) -> None:
        assert not self.alive, f"{self.name} already runs"
        self._close_log()
        self._log = self.log_path.open("ab")
        self._log.write(f"---- start #{self.starts + 1}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=subprocess.STDOUT)
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def kill9(self) -> None:
        assert self.popen is not None
        assert self.alive, f"{self.name} is not running"
        os.kill(self.popen.pid, signal.SIGKILL)
        self.exit_codes.append(self.popen.wait(timeout=10))

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; SIGKILL after ``timeout``. Returns the exit code."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        code = int(self.popen.returncode)
        self.exit_codes.append(code)
        self._close_log()
        return code

    def cleanup(self) -> None:
        if self.alive:
            self.terminate(timeout=10)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ProcessGroup:
    """Every process a test starts; :meth:`cleanup` stops whatever still runs (tests call it in finally)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def cleanup(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                proc.cleanup()

    def logs(self) -> str:
        return "\n".join(f"==== {p.name} (starts {p.starts}, exits {p.exit_codes}, alive {p.alive})\n"
                         f"{p.log_tail()}" for p in self.procs)


def ingest_env(database_url: str, mqtt_url: str, dead_letter_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of an ingest subprocess: the caller's environment (so ``PARKPULSE_SHARE_GROUP=...`` set
    by a developer reaches it) with this test's database and broker.

    ``PARKPULSE_BACKOFF_MAX_S=5`` caps reconnect/retry delays (default 30 s) to keep the suite's run time
    bounded; it does not change what is delivered.
    """
    env = dict(os.environ)
    env.update({
        "PARKPULSE_DATABASE_URL": database_url, "PARKPULSE_MQTT_URL": mqtt_url,
        "PARKPULSE_DEAD_LETTER_DIR": str(dead_letter_dir), "PARKPULSE_BACKOFF_MAX_S": "5",
        "PARKPULSE_LOG_LEVEL": "INFO", "COLUMNS": "200", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


class IngestProcess(Proc):
    """``parkpulse ingest`` as a real process, with a known metrics port to tell when it is connected."""

    def __init__(self, group: ProcessGroup, name: str, *, client_id: str, park_id: str, env: Mapping[str, str]) -> None:
        self.metrics_port = free_port()
        super().__init__(name, [PARKPULSE, "ingest", "--client-id", client_id, "--park", park_id,
                                "--metrics-port", str(self.metrics_port)], env, group.log_dir)
        group.add(self)

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples (name with labels → value); empty while the endpoint is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def wait_connected(self, timeout: float = 30.0) -> None:
        def connected() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited with {self.popen.returncode if self.popen else None}"
                                     f" while starting:\n{self.log_tail()}")
            return self.metrics().get("parkpulse_ingest_mqtt_connected") == 1.0
        wait_for(connected, timeout=timeout, what=f"{self.name} to connect to the broker")


# -- the publisher and its ledger ---------------------------------------------------------------------------


@dataclass
class Sent:
    """One published message and what the broker said about it."""

    topic: str
    keys: dict[Key, float]
    publish_rc: int
    reason_code: int | None = None   # PUBACK reason code; None = no PUBACK (yet)

    @property
    def acked(self) -> bool:
        return self.reason_code is not None and self.reason_code < PUBACK_FAILURE


class LedgerPublisher:
    """A plain paho-mqtt 2.x MQTT v5 client, QoS 1, that records every PUBACK reason code per message.

    It behaves like an ordinary device client: a persistent session (``clean_start=False``), paho's own
    automatic reconnect and paho's unbounded in-memory queue for messages published while disconnected.
    """

    def __init__(self, broker_port: int, park_id: str, *, client_id: str, seed: int = 1) -> None:
        self.park_id = park_id
        self.port = broker_port
        self.sent: list[Sent] = []
        self.connects = 0
        self.disconnects = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._pending: dict[int, Sent] = {}     # mid → message awaiting its PUBACK
        self._early: dict[int, int] = {}        # mid → reason code of a PUBACK that beat the registration
        self._connected = threading.Event()
        self._seq: Counter[str] = Counter()
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)   # unbounded queue while disconnected
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client = client

    # paho callbacks (network thread)
    def _on_connect(self, _c: mqtt.Client, _u: Any, _flags: Any, reason_code: ReasonCode, _p: Any) -> None:
        if not reason_code.is_failure:
            self.connects += 1
            self._connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _flags: Any, _rc: ReasonCode, _p: Any) -> None:
        self.disconnects += 1
        self._connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason_code: ReasonCode, _p: Any) -> None:
        code = int(reason_code.value)
        with self._lock:
            sent = self._pending.pop(mid, None)
            if sent is None:
                self._early[mid] = code
            else:
                sent.reason_code = code

    # lifecycle
    def connect(self, timeout: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", self.port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise AssertionError("publisher did not connect")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.client.disconnect()
        self.client.loop_stop()

    # publishing
    def publish(self, topic: str, payload: bytes, *, keys: dict[Key, float] | None = None,
                retain: bool = False) -> Sent:
        """Publish one QoS 1 message and put it in the ledger."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        sent = Sent(topic, keys or {}, int(info.rc))
        with self._lock:
            self.sent.append(sent)
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = sent
            else:
                sent.reason_code = early
        return sent

    def topic(self, device: str, kind: str = "readings") -> str:
        return f"parkpulse/v1/{self.park_id}/{device}/{kind}"

    def readings_message(self, device: str, start: datetime, n: int, *,
                         spacing_ms: int) -> tuple[bytes, dict[Key, float]]:
        """A valid readings payload of ``n`` readings (the metric mix round-robin) and its keys → values."""
        seq = self._seq[device]
        self._seq[device] += 1
        items, keys = [], {}
        for i in range(n):
            metric, unit, low, high = METRIC_MIX[i % len(METRIC_MIX)]
            ts = start + timedelta(milliseconds=spacing_ms * (i // len(METRIC_MIX)))
            value = round(self._rng.uniform(low, high), 3)
            items.append({"ts": ts_text(ts), "metric": metric, "value": value, "unit": unit})
            keys[(device, metric, ts)] = value
        body = {"v": 1, "device": device, "seq": seq, "sent_at": ts_text(datetime.now(UTC)), "readings": items}
        return orjson.dumps(body), keys

    def publish_readings(self, device: str, start: datetime, n: int, *, spacing_ms: int) -> Sent:
        payload, keys = self.readings_message(device, start, n, spacing_ms=spacing_ms)
        return self.publish(self.topic(device), payload, keys=keys)

    def run_stream(self, devices: list[str], *, duration_s: float, readings_per_message: int,
                   interval_s: float = 1.0) -> None:
        """Every device publishes one message of ``readings_per_message`` readings per ``interval_s``,
        spread evenly over the interval, for ``duration_s``; readings of one message cover its interval."""
        slots = math.ceil(readings_per_message / len(METRIC_MIX))
        spacing_ms = int(interval_s * 1000) // slots
        now_ms = int(time.time() * 1000)
        base = EPOCH + timedelta(milliseconds=now_ms - now_ms % 1000 - int(interval_s * 1000))
        t0 = time.monotonic()
        ticks = int(duration_s / interval_s)
        for tick in range(ticks):
            start = base + timedelta(milliseconds=int(tick * interval_s * 1000))
            for j, device in enumerate(devices):
                delay = t0 + (tick + j / len(devices)) * interval_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                self.publish_readings(device, start, readings_per_message, spacing_ms=spacing_ms)

    def start_stream(self, devices: list[str], *, duration_s: float, readings_per_message: int,
                     interval_s: float = 1.0) -> None:
        """:meth:`run_stream` in a background thread; :meth:`join_stream` waits for it."""
        def target() -> None:
            try:
                self.run_stream(devices, duration_s=duration_s, readings_per_message=readings_per_message,
                                interval_s=interval_s)
            except BaseException as exc:  # noqa: BLE001 -- handed to join_stream in the test's thread
                self._thread_error = exc

        self._thread = threading.Thread(target=target, name="fault-publisher", daemon=True)
        self._thread.start()

    def join_stream(self, timeout: float = 120.0) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "publisher thread did not finish"
        if self._thread_error is not None:
            raise self._thread_error

    def wait_pubacks(self, timeout: float) -> None:
        """Wait until every message has its PUBACK (paho resends what the broker did not acknowledge)."""
        def done() -> bool:
            with self._lock:
                return not self._pending
        with contextlib.suppress(AssertionError):
            wait_for(done, timeout=timeout, what="PUBACKs")

    def wait_subscriber(self, device: str = "probe", timeout: float = 30.0) -> None:
        """Publish status probes until the broker answers a PUBACK 0x00: a subscriber matches the park."""
        deadline = time.monotonic() + timeout
        body = orjson.dumps({"v": 1, "device": device, "online": True})
        while time.monotonic() < deadline:
            probe = self.publish(self.topic(device, "status"), body)
            wait_for(lambda p=probe: p.reason_code is not None, timeout=10, what="probe PUBACK")  # type: ignore[misc]
            if probe.reason_code == 0:
                return
            time.sleep(0.2)
        raise AssertionError("no subscriber for the park's topics (ingest not subscribed)")

    # the ledger
    def published(self) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for sent in self.sent:
            out.update(sent.keys)
        return out

    def acked_keys(self) -> set[Key]:
        return {k for sent in self.sent if sent.acked for k in sent.keys}

    def reason_codes(self) -> Counter[str]:
        """Readings messages by PUBACK reason code (``none`` = never acknowledged)."""
        return Counter("none" if s.reason_code is None else f"0x{s.reason_code:02x}" for s in self.sent if s.keys)


# -- the edge agent's ledger: its outbox --------------------------------------------------------------------

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS fault_ledger (
    outbox_id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL,
    n_items INTEGER NOT NULL, removed INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS fault_ledger_enqueued AFTER INSERT ON outbox BEGIN
    INSERT INTO fault_ledger (outbox_id, device_id, seq, body, n_items)
    VALUES (NEW.id, NEW.device_id, NEW.seq, NEW.body, NEW.n_items);
END;
CREATE TRIGGER IF NOT EXISTS fault_ledger_removed AFTER DELETE ON outbox BEGIN
    UPDATE fault_ledger SET removed = 1 WHERE outbox_id = OLD.id;
END;
"""


def prepare_outbox_ledger(path: Path) -> None:
    """Create the agent's outbox file ahead of the agent, with triggers that copy every enqueued row into
    ``fault_ledger`` and flag it when the agent deletes it (after the broker's PUBACK).

    The triggers run inside the agent's own transactions, so the ledger is exactly what the agent committed
    (also across ``kill -9``). The agent creates its tables with ``IF NOT EXISTS`` and finds ours.
    """
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(OUTBOX_SCHEMA)
        db.executescript(_LEDGER_DDL)
    finally:
        db.close()


@dataclass
class OutboxLedger:
    """Everything the agent enqueued (its polled readings) and what it removed after a PUBACK."""

    polled: dict[Key, float] = field(default_factory=dict)
    acked: set[Key] = field(default_factory=set)
    messages: int = 0
    readings: int = 0
    pending_messages: int = 0

    @classmethod
    def read(cls, path: Path) -> OutboxLedger:
        ledger = cls()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for device, body, n_items, removed in db.execute(
                    "SELECT device_id, body, n_items, removed FROM fault_ledger"):
                ledger.messages += 1
                ledger.readings += n_items
                ledger.pending_messages += 0 if removed else 1
                for item in orjson.loads(body):
                    ts = datetime.fromisoformat(item["ts"]).astimezone(UTC)
                    key = (device, item["metric"], ts)
                    ledger.polled[key] = float(item["value"])
                    if removed:
                        ledger.acked.add(key)
        finally:
            db.close()
        return ledger


# -- the database --------------------------------------------------------------------------------------------

_PARK_ROWS = """SELECT d.device_id, s.metric, r.ts, r.value
                FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key)
                WHERE d.park_id = %s"""


def count_stored(conn: psycopg.Connection[Any], park_id: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM readings r JOIN series s USING (series_id) JOIN devices d USING (device_key) "
        "WHERE d.park_id = %s", (park_id,)).fetchone()
    return int(row[0]) if row else 0


def fetch_stored(conn: psycopg.Connection[Any], park_id: str) -> list[Row]:
    return [(d, m, ts.astimezone(UTC), float(v)) for d, m, ts, v in conn.execute(_PARK_ROWS, (park_id,))]


def wait_stored(conn: psycopg.Connection[Any], park_id: str, expected: set[Key], *, timeout: float = 90.0,
                stall: float = 25.0, watch: Callable[[], None] | None = None) -> list[Row]:
    """Wait until every ``expected`` key is stored, or nothing new was stored for ``stall`` seconds, or
    ``timeout``; return the park's rows either way (the comparison reports what is missing)."""
    deadline = time.monotonic() + timeout
    last_count, last_change = -1, time.monotonic()
    while True:
        if watch is not None:
            watch()
        count = count_stored(conn, park_id)
        now = time.monotonic()
        if count != last_count:
            last_count, last_change = count, now
        if count >= len(expected):
            rows = fetch_stored(conn, park_id)
            if expected <= {(d, m, ts) for d, m, ts, _ in rows}:
                return rows
        if now > deadline or now - last_change > stall:
            return fetch_stored(conn, park_id)
        time.sleep(0.5)


@dataclass
class Outcome:
    """The scenario's figures; :meth:`line` is what the suite prints."""

    scenario: str
    acked: int
    stored: int
    lost: int
    duplicated: int
    other: dict[str, object] = field(default_factory=dict)

    def line(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.other.items())
        return (f"FAULT {self.scenario}: acked={self.acked} stored={self.stored} lost={self.lost} "
                f"duplicated={self.duplicated}" + (f" ({extra})" if extra else ""))


def compare(scenario: str, *, published: Mapping[Key, float], acked: set[Key], rows: Iterable[Row],
            ignore: set[Key] | None = None, **other: object) -> Outcome:
    """Acknowledged vs stored: lost, duplicated (stored twice, changed, or never published)."""
    skip = ignore or set()
    counts: Counter[Key] = Counter()
    changed = foreign = 0
    for device, metric, ts, value in rows:
        key = (device, metric, ts)
        if key in skip:
            continue
        counts[key] += 1
        if key not in published:
            foreign += 1
        elif published[key] != value:
            changed += 1
    twice = sum(c - 1 for c in counts.values() if c > 1)
    lost_keys = acked - counts.keys()
    figures: dict[str, object] = {
        "published": len(published), "stored_unacked": len(counts.keys() - acked),
    }
    if twice or changed or foreign:
        figures.update(stored_twice=twice, changed=changed, foreign=foreign)
    if lost_keys:
        figures["lost_devices"] = len({k[0] for k in lost_keys})
        figures["first_lost_ts"] = ts_text(min(k[2] for k in lost_keys))
    figures.update(other)
    return Outcome(scenario, acked=len(acked), stored=len(counts), lost=len(lost_keys),
                   duplicated=twice + changed + foreign, other=figures)


# -- a cuttable database path -----------------------------------------------------------------------------


class ThreadedProxy:
    """:class:`~tests.fixtures.proxy.CuttableProxy` on its own event loop thread, for synchronous tests."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self.proxy = CuttableProxy(target_host, target_port)

    @property
    def port(self) -> int:
        return self.proxy.port

    def _run(self, fn: Callable[[], Any]) -> None:
        done: Future[None] = Future()

        def call() -> None:
            try:
                fn()
                done.set_result(None)
            except Exception as exc:  # noqa: BLE001 -- handed to the caller's thread
                done.set_exception(exc)
        self._loop.call_soon_threadsafe(call)
        done.result(timeout=5)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(timeout=5)

    def cut(self) -> None:
        self._run(self.proxy.cut)

    def restore(self) -> None:
        self._run(self.proxy.restore)

    def close(self) -> None:
        async def shutdown() -> None:
            await self.proxy.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()

"""Helpers for the edge tests: free ports, a settable clock, a private Mosquitto, an MQTT collector."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.agent import EdgeAgent
from edge.config import EdgeConfig, parse_config


def free_port() -> int:
    """A TCP port nobody listens on right now (small race, fine for tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections: bound but not listening, so no other socket can take it.

    (A merely free port can be reused as an ephemeral source port, and Linux then lets a TCP connection
    to it connect to itself.)
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@dataclass
class FakeClock:
    """A clock the test moves by hand (UTC)."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 20, 4, 0, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Mosquitto:
    """A private broker on a free port (persistence on) that a test may stop and restart.

    The shared test broker must never be stopped; outage tests use one of these instead.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, acl: str | None = None,
                 users: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            "user root", f"listener {self.port} 127.0.0.1", "persistence true",
            f"persistence_location {data}/", "autosave_interval 1", "max_queued_messages 0",
            "max_inflight_messages 100", "set_tcp_nodelay true", f"log_dest file {workdir / 'mosquitto.log'}",
        ]
        if users:
            pw = workdir / "passwd"
            pw.write_text("", encoding="utf-8")
            for user, password in users.items():
                subprocess.run([self._binary("mosquitto_passwd"), "-b", str(pw), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            (workdir / "acl").write_text(acl, encoding="utf-8")
            lines.append(f"acl_file {workdir / 'acl'}")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @staticmethod
    def _binary(name: str) -> str:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
        if found is None:
            raise RuntimeError(f"{name} is not installed")
        return found

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self._binary("mosquitto"), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM saves the persistence file: sessions survive the restart)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class Collected:
    """What a collector saw, by kind."""

    readings: list[dict[str, Any]] = field(default_factory=list)
    births: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def unique_readings(self) -> set[tuple[str, str, str]]:
        return {(m["device"], r["metric"], r["ts"]) for m in self.readings for r in m["readings"]}

    def seqs(self, device: str) -> set[int]:
        return {m["seq"] for m in self.readings if m["device"] == device}

    def reading_count(self, device: str | None = None) -> int:
        return len({k for k in self.unique_readings() if device is None or k[0] == device})


@contextlib.asynccontextmanager
async def collect(url_port: int, park_id: str, *, client_id: str) -> AsyncIterator[Collected]:
    """Subscribe to a park's topics with a persistent session that survives broker restarts."""
    seen = Collected()
    subscribed = asyncio.Event()

    async def run() -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", url_port, identifier=client_id,
                                          protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                                          properties=props) as client:
                    await client.subscribe(f"parkpulse/v1/{park_id}/#", qos=1)
                    subscribed.set()
                    async for message in client.messages:
                        body = orjson.loads(bytes(message.payload))  # type: ignore[arg-type, unused-ignore]
                        kind = str(message.topic).rsplit("/", 1)[-1]
                        if kind == "readings":
                            seen.readings.append(body)
                        elif kind == "birth":
                            seen.births[body["device"]] = body
                        else:
                            seen.statuses.append(body)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(predicate: Any, *, timeout: float, interval: float = 0.1) -> None:
    """Poll ``predicate()`` until it is true; fail the test with a clear message after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def agent_config(park_id: str, mqtt_url: str, outbox_path: Path, devices: list[dict[str, Any]],
                 **overrides: Any) -> EdgeConfig:
    """An :class:`EdgeConfig` for tests: fast polls, fast status, quick reconnects."""
    data: dict[str, Any] = {
        "agent_id": "test-agent", "park_id": park_id,
        "mqtt": {"url": mqtt_url, "backoff": {"initial_s": 0.2, "max_s": 1.0}, "publish_timeout_s": 5.0},
        "outbox": {"path": str(outbox_path)},
        "status_interval_s": 1.0, "offline_after_failures": 2, "shutdown_grace_s": 5.0,
        "devices": devices,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


@contextlib.asynccontextmanager
async def running_agent(config: EdgeConfig, **kwargs: Any) -> AsyncIterator[EdgeAgent]:
    """Run an :class:`EdgeAgent` in this loop; stop it gracefully (and check it exits) on leaving."""
    agent = EdgeAgent(config, **kwargs)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name="test-agent")
    await wait_until(lambda: agent.running.is_set() or task.done(), timeout=10)
    if task.done():
        task.result()  # re-raise the start-up error
    try:
        yield agent
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


class GatedProxy:
    """A TCP relay in front of a broker whose gate the test opens and closes.

    Mosquitto 2.0.11 does not restore *shared* subscriptions from its persistence file, so after a broker
    restart, messages published before the ingest instance has re-subscribed reach nobody. The outage
    test routes the agent through this relay and opens it only once ingest is back, so the test measures
    the agent's store-and-forward, not that broker limitation (reported separately).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.open = True
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self._writers.discard(dst)

        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

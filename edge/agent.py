"""The edge agent: poll every device on its own schedule, commit to the outbox, publish through sessions.

Data path for one poll of one meter::

    reader.read(ts)  ->  outbox.enqueue (durable, group commit)  ->  session.wake  ->  QoS 1 publish
                                                                                   ->  PUBACK  ->  delete

Each device has a poll task and a session task in one :class:`asyncio.TaskGroup`. A device error (no
answer, garbage frames, a Modbus exception) is recorded in that device's health and reported in its
status messages; it never touches another device's task. Timestamps are taken from the agent's clock in
UTC at the start of each poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.commands_agent import CommandService
from edge.config import (
    DeviceConfig,
    EdgeConfig,
    EdgeSettings,
    ModbusTcpTransport,
    OpcUaTransport,
    broker_url,
    device_credentials,
)
from edge.errors import ConfigError, DeviceError, OutboxError
from edge.mqtt import tls_parameters
from edge.outbox import NewMessage, Outbox
from edge.payload import encode_readings, format_ts
from edge.profile import DeviceProfile, find_profiles
from edge.readers import DeviceReader, EndpointPool, ReadResult, build_reader
from edge.session import DeviceSession, Pacer, SessionOptions
from edge.store import AsyncOutbox
from edge.timing import next_poll_at
from infra.settings import parse_mqtt_url

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The agent's wall clock in UTC (replaceable in tests to simulate a skewed agent clock)."""
    return datetime.now(UTC)


@dataclass
class DeviceHealth:
    """What the agent knows about one device's polls; reported in its status messages."""

    reads_ok: int = 0
    reads_failed: int = 0
    consecutive_failures: int = 0
    skipped_points: int = 0
    readings_read: int = 0
    missed_polls: int = 0
    outbox_errors: int = 0
    reachable: bool = True
    last_error: str | None = None
    last_read_at: datetime | None = None
    meter_clock_offset_s: float | None = None
    clock_read_at: float = 0.0

    def record_success(self, result: ReadResult, at: datetime) -> bool:
        """Book a successful poll; returns True when the device just became reachable again."""
        self.reads_ok += 1
        self.consecutive_failures = 0
        self.skipped_points += len(result.skipped)
        self.readings_read += len(result.readings)
        self.last_read_at = at
        if result.meter_clock is not None and result.meter_clock_read_at is not None:
            # meter clocks tick in whole seconds, so the offset is only meaningful to about 1 s
            self.meter_clock_offset_s = float(round((result.meter_clock - result.meter_clock_read_at).total_seconds()))
        changed = not self.reachable
        self.reachable = True
        return changed

    def record_failure(self, error: str, *, offline_after: int) -> bool:
        """Book a failed poll; returns True when the device just crossed into 'unreachable'."""
        self.reads_failed += 1
        self.consecutive_failures += 1
        self.last_error = error
        if self.reachable and self.consecutive_failures >= offline_after:
            self.reachable = False
            return True
        return False

    def as_status(self) -> dict[str, Any]:
        """Fields for the status message (``online`` = the device answers its polls)."""
        return {
            "online": self.reachable,
            "reads_ok": self.reads_ok,
            "reads_failed": self.reads_failed,
            "consecutive_failures": self.consecutive_failures,
            "skipped_points": self.skipped_points,
            "missed_polls": self.missed_polls,
            "outbox_errors": self.outbox_errors,
            "last_error": self.last_error,
            "last_read_at": format_ts(self.last_read_at) if self.last_read_at else None,
            "meter_clock_offset_s": self.meter_clock_offset_s,
        }


def birth_metadata(device: DeviceConfig, profile: DeviceProfile, agent_id: str) -> dict[str, Any]:
    """The birth message body of a device: profile, metering level, carrier, multipliers, firmware."""
    transport = device.transport
    endpoint: str | None = getattr(transport, "endpoint_uri", None)  # serial, CJ/T 188 and OPC UA transports
    if endpoint is not None:
        where = endpoint
    elif isinstance(transport, ModbusTcpTransport):
        where = f"modbus://{transport.host}:{transport.port}/{transport.unit_id}"
    else:
        where = f"dlt645://{transport.host}:{transport.port}/{transport.address}"
    return {
        "kind": profile.kind,
        "carrier": profile.carrier,
        "metering_level": device.metering_level,
        "site": device.site,
        "role": device.role,
        "profile": profile.name,
        "firmware": device.firmware,
        "register_max": profile.register_max(device.ct_ratio, device.pt_ratio),
        "multiplier": device.multiplier,
        "rated_power_kw": device.rated_power_kw,
        # beyond the BirthMessage contract (extra fields are allowed):
        "agent": agent_id,
        "protocol": profile.protocol,
        "manufacturer": profile.manufacturer,
        "model": profile.model,
        "ct_ratio": device.ct_ratio,
        "pt_ratio": device.pt_ratio,
        "multiplier_applied": True,
        "poll_interval_s": device.poll_interval_s,
        "metrics": sorted(p.metric for p in profile.points),
        "endpoint": where,
    }


class EdgeAgent:
    """Runs the agent for one ``edge.yaml`` until the stop event is set (see the module docstring)."""

    def __init__(self, config: EdgeConfig, *, settings: EdgeSettings | None = None, clock: Clock = utc_now,
                 base_dir: Path | None = None) -> None:
        """Validate profiles, transports and the broker URL; no I/O until :meth:`run`."""
        self.config = config
        self.clock = clock
        self.base_dir = base_dir or Path.cwd()
        profiles = find_profiles(config.profile_paths)
        self.profiles: dict[str, DeviceProfile] = {}
        for device in config.devices:
            if isinstance(device.transport, OpcUaTransport):
                continue  # an OPC UA device lists its nodes in edge.yaml: no profile file
            if device.profile not in profiles:
                raise ConfigError(f"device {device.id}: unknown profile {device.profile!r} "
                                  f"(known: {', '.join(sorted(profiles))})")
            self.profiles[device.id] = profiles[device.profile]
        self.endpoint = parse_mqtt_url(broker_url(config, settings))
        self.pool = EndpointPool()
        self.readers: dict[str, DeviceReader] = {
            d.id: build_reader(d, self.profiles.get(d.id), self.pool,
                               meter_utc_offset=timedelta(hours=config.meter_utc_offset_h), clock=clock)
            for d in config.devices
        }
        self.health = {d.id: DeviceHealth() for d in config.devices}
        self.commands = CommandService(config, self.profiles, self.readers, clock)  # setpoints (edge/commands.py)
        self.sessions: dict[str, DeviceSession] = {}
        self.store: AsyncOutbox | None = None
        self.running = asyncio.Event()
        self._background: set[asyncio.Task[bool]] = set()
        self.started_at = clock()

    def _open_outbox(self) -> Outbox:
        o = self.config.outbox
        return Outbox(o.path, max_messages=o.max_messages, max_bytes=o.max_bytes, policy=o.full_policy,
                      durability=o.durability)

    def _session(self, device: DeviceConfig, store: AsyncOutbox, pacer: Pacer,
                 options: SessionOptions) -> DeviceSession:
        username, password = device_credentials(self.config, device, self.endpoint, self.base_dir)
        certificate = device.mqtt.client_certificate(self.base_dir)
        if certificate is not None:  # this device proves its identity with its own certificate
            options = replace(options, tls_params=tls_parameters(self.endpoint, self.config.mqtt.ca_file, certificate))

        async def status() -> dict[str, Any]:
            return await self._status_fields(device.id)

        return DeviceSession(
            park_id=self.config.park_id, device_id=device.id, username=username, password=password,
            options=options, store=store, pacer=pacer, clock=self.clock,
            birth=self._birth(device), status=status, commands=self.commands.handlers.get(device.id),
        )

    def _birth(self, device: DeviceConfig) -> dict[str, Any]:
        if isinstance(device.transport, OpcUaTransport):  # asyncua is installed: its reader was built
            from edge.readers.opcua import opcua_birth_metadata  # noqa: PLC0415 - optional extra

            return opcua_birth_metadata(device, self.config.agent_id)
        return birth_metadata(device, self.profiles[device.id], self.config.agent_id)

    async def _status_fields(self, device_id: str) -> dict[str, Any]:
        assert self.store is not None
        stats = await self.store.stats()
        fields = self.health[device_id].as_status()
        fields.update({
            "agent": self.config.agent_id,
            "backlog": await self.store.device_backlog(device_id),
            "outbox_pending_messages": stats.pending_messages,
            "outbox_pending_bytes": stats.pending_bytes,
            "outbox_dropped_messages": stats.dropped_messages,
            "outbox_dropped_readings": stats.dropped_readings,
            "agent_started_at": format_ts(self.started_at),
        })
        handler = self.commands.handlers.get(device_id)
        if handler is not None:  # setpoint commands (edge/commands.py)
            fields["commands_applied"] = handler.stats.applied
            fields["commands_rejected"] = sum(handler.stats.rejected.values())
        session = self.sessions.get(device_id)
        if session is not None:  # what ingest told this device about its rejected messages
            fields["feedback_received"] = session.feedback_received
            fields["last_feedback_reason"] = session.last_feedback["reason"] if session.last_feedback else None
        return fields

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and publish until ``stop`` is set; then drain for up to ``shutdown_grace_s`` and exit."""
        cfg = self.config
        options = SessionOptions(
            endpoint=self.endpoint, keepalive_s=cfg.mqtt.keepalive_s, publish_timeout_s=cfg.mqtt.publish_timeout_s,
            max_inflight=cfg.mqtt.max_inflight, batch_size=cfg.drain.batch_size,
            backoff_initial_s=cfg.mqtt.backoff.initial_s, backoff_max_s=cfg.mqtt.backoff.max_s,
            tls_params=tls_parameters(self.endpoint, cfg.mqtt.ca_file), require_subscriber=cfg.mqtt.require_subscriber,
        )
        pacer = Pacer(cfg.drain.backlog_rate_msgs_per_s, cfg.drain.batch_size)
        async with AsyncOutbox(self._open_outbox) as store:
            self.store = store
            stats = await store.stats()
            logger.info("agent %s: %d device(s); outbox %s holds %d message(s) from before",
                        cfg.agent_id, len(cfg.devices), cfg.outbox.path, stats.pending_messages)
            self.sessions = {d.id: self._session(d, store, pacer, options) for d in cfg.devices}
            try:
                async with asyncio.TaskGroup() as tg:
                    session_tasks = [tg.create_task(s.run(), name=f"edge[{d}].session")
                                     for d, s in self.sessions.items()]
                    helper_tasks = [tg.create_task(self._status_loop(s), name=f"edge[{d}].status")
                                    for d, s in self.sessions.items()]
                    poll_tasks = [tg.create_task(self._poll_loop(d), name=f"edge[{d.id}].poll")
                                  for d in cfg.devices]
                    helper_tasks.append(tg.create_task(self.commands.run(), name="edge.commands"))
                    self.running.set()
                    await stop.wait()
                    logger.info("agent %s stopping: polls end, sessions drain for up to %.0fs",
                                cfg.agent_id, cfg.shutdown_grace_s)
                    for task in poll_tasks:
                        task.cancel()
                    await asyncio.wait(poll_tasks)
                    for session in self.sessions.values():
                        session.request_stop()
                    if cfg.shutdown_grace_s > 0:
                        await asyncio.wait(session_tasks, timeout=cfg.shutdown_grace_s)
                    for task in (*session_tasks, *helper_tasks):
                        task.cancel()
            finally:
                await self.pool.aclose()
                self.running.clear()

    async def _status_loop(self, session: DeviceSession) -> None:
        """Publish each device's status every ``status_interval_s`` (clock offset, backlog, health)."""
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            await session.publish_status()

    async def _poll_loop(self, device: DeviceConfig) -> None:
        """Poll one device on its wall-clock grid forever; every error stays inside this device."""
        reader, health = self.readers[device.id], self.health[device.id]
        interval, offset = device.poll_interval_s, device.poll_offset_s
        due = next_poll_at(self.clock().timestamp(), interval, offset)
        while True:
            await asyncio.sleep(max(0.0, due - self.clock().timestamp()))
            await self._poll_once(device, reader, health)
            now_s = self.clock().timestamp()
            following = next_poll_at(now_s, interval, offset)
            health.missed_polls += max(0, round((following - due) / interval) - 1)
            due = following

    async def _poll_once(self, device: DeviceConfig, reader: DeviceReader, health: DeviceHealth) -> None:
        ts = self.clock()
        read_clock = time.monotonic() - health.clock_read_at >= self.config.status_interval_s
        try:
            result = await reader.read(ts, read_clock=read_clock)
        except DeviceError as exc:
            self._failed(device.id, health, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            logger.exception("%s: unexpected error while polling", device.id)
            self._failed(device.id, health, f"{type(exc).__name__}: {exc}")
            return
        if read_clock:
            health.clock_read_at = time.monotonic()
        if health.record_success(result, ts):
            logger.info("%s: device answers again", device.id)
            self._status_soon(device.id)
        for metric, why in result.skipped:
            logger.debug("%s: %s skipped: %s", device.id, metric, why)
        if not result.readings:
            return
        message = NewMessage(device.id, encode_readings(result.readings), len(result.readings))
        assert self.store is not None
        try:
            await self.store.enqueue(message)
        except OutboxError:
            health.outbox_errors += 1
            logger.exception("%s: %d reading(s) LOST, outbox write failed", device.id, len(result.readings))
            return
        self.sessions[device.id].wake.set()

    def _failed(self, device_id: str, health: DeviceHealth, error: str) -> None:
        first = health.consecutive_failures == 0
        if health.record_failure(error, offline_after=self.config.offline_after_failures):
            logger.warning("%s: device unreachable after %d failed polls: %s", device_id,
                           health.consecutive_failures, error)
            self._status_soon(device_id)
        elif first:
            logger.warning("%s: poll failed: %s", device_id, error)

    def _status_soon(self, device_id: str) -> None:
        session = self.sessions.get(device_id)
        if session is not None:
            task = asyncio.get_running_loop().create_task(session.publish_status(),
                                                          name=f"edge[{device_id}].status_now")
            self._background.add(task)
            task.add_done_callback(self._background.discard)


__all__ = ["DeviceHealth", "EdgeAgent", "birth_metadata", "utc_now"]

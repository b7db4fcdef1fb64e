"""One device's MQTT session: its own connection, credentials and last will; drains its outbox lane.

Why one connection per device (not one per agent): MQTT allows one will per connection, and the will is
what tells ParkPulse that a device went silent because its agent, gateway link or power died. Per-device
connections also let the broker bind each device's credentials to its own topics (user name
``{park}/{device}`` and ``pattern write parkpulse/v1/%u/readings`` in deploy/mosquitto/parkpulse.acl), so
a compromised or misconfigured meter identity cannot write another meter's or another park's data. The
cost, one TCP connection per meter, is small for a broker (hundreds per agent are fine) and the sessions
share one event loop.

Publishing order per connection:

1. on connect: the retained birth message, then a retained status ``online: true``;
2. live messages first: everything enqueued after this connection came up;
3. the backlog (everything older) in id order, paced by the agent-wide :class:`TokenBucket`;
4. a row is deleted from the outbox only after its successful PUBACK.

Each session also subscribes to its device's feedback topic (``parkpulse/v1/{park}/{device}/errors``, which
the broker lets only this device read): ingest sends there why it quarantined one of the device's messages.
The session logs each at WARNING with the reason and what to fix, and counts it (the device's status
reports ``feedback_received``): otherwise a rejected device never learns why.

Reconnect backoff (capped, fully jittered, :func:`edge.mqtt.backoff_delay`) grows with every failed
session and resets only once the broker has *accepted* something that matters: a readings publish with a
successful PUBACK, or, when there is nothing to drain, the birth and status publishes. A CONNACK alone
proves nothing: right after a broker restart Mosquitto accepts connections but answers readings with
0x10 "no matching subscribers" until ingest is back, and resetting on CONNACK turned that window into a
reconnect storm (24 meters, 630 reconnects in 20 s, each republishing birth and status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt

from edge.commands import CommandHandler
from edge.errors import CommandAuditError, NoSubscribersError, PublishRejectedError
from edge.mqtt import ConfirmingClient, backoff_delay
from edge.outbox import StoredMessage
from edge.payload import assemble_readings_message, birth_payload, status_payload
from edge.store import AsyncOutbox
from edge.timing import TokenBucket
from infra.settings import MqttEndpoint
from schemas import TopicKind, build_topic
from schemas.commands import ack_topic, command_topic
from schemas.feedback import FeedbackMessage, InvalidFeedbackError, decode_feedback
from schemas.topics import feedback_topic

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Connection and drain settings shared by all sessions of an agent."""

    endpoint: MqttEndpoint
    keepalive_s: int = 30
    publish_timeout_s: float = 15.0
    max_inflight: int = 100
    batch_size: int = 100
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    tls_params: aiomqtt.TLSParameters | None = None
    require_subscriber: bool = True  # see edge.errors.NoSubscribersError


class Pacer:
    """The agent-wide backlog rate limit, shared by every session (async wrapper of :class:`TokenBucket`)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        """``rate_per_s`` backlog messages per second across all devices."""
        self.bucket = TokenBucket(rate=rate_per_s, burst=float(max(1, burst)))

    async def acquire(self, want: int) -> int:
        """Wait until at least one token is free; take up to ``want``."""
        while True:
            granted, wait_s = self.bucket.take(want, time.monotonic())
            if granted:
                return granted
            await asyncio.sleep(wait_s)

    def give_back(self, count: int) -> None:
        """Return tokens that were not used."""
        if count > 0:
            self.bucket.give_back(count)


def _no_delay(client: ConfirmingClient) -> None:
    """Send small packets at once (TCP_NODELAY) on a session that takes commands.

    paho leaves Nagle's algorithm on: the ack publish then waits for the TCP ACK of the PUBACK just sent, which
    the broker's host delays by ~40 ms; measured command -> ack round trip p50 88 ms with Nagle on both ends,
    3.4 ms with TCP_NODELAY on both (the dispatcher's client should set it too).
    """
    sock = client._client.socket()  # paho exposes the socket only on its client
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class DeviceSession:
    """MQTT session of one device (see the module docstring)."""

    def __init__(
        self,
        *,
        park_id: str,
        device_id: str,
        username: str | None,
        password: str | None,
        options: SessionOptions,
        store: AsyncOutbox,
        pacer: Pacer,
        clock: Clock,
        birth: dict[str, Any],
        status: Callable[[], Awaitable[dict[str, Any]]],
        commands: CommandHandler | None = None,
    ) -> None:
        """Prepare the session; :meth:`run` connects. With ``commands`` it also takes setpoint commands."""
        self.park_id, self.device_id = park_id, device_id
        self.username, self.password = username, password
        self.options, self.store, self.pacer, self.clock = options, store, pacer, clock
        self.birth, self.status = birth, status
        self.readings_topic = build_topic(park_id, device_id, TopicKind.READINGS)
        self.birth_topic = build_topic(park_id, device_id, TopicKind.BIRTH)
        self.status_topic = build_topic(park_id, device_id, TopicKind.STATUS)
        self.errors_topic = feedback_topic(park_id, device_id)
        self.commands = commands  # setpoint commands on …/cmd, acks on …/ack (edge/commands.py)
        self.cmd_topic, self.ack_topic = command_topic(park_id, device_id), ack_topic(park_id, device_id)
        self.wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.published_messages = 0
        self.connects = 0
        self.undelivered_retries = 0  # batches the broker had no subscriber for (kept, retried)
        self.backoff_attempt = 0  # failed sessions since the broker last accepted a publish that matters
        self.last_error: str | None = None
        self.feedback_received = 0  # quarantine reasons ingest sent back (see the module docstring)
        self.last_feedback: FeedbackMessage | None = None
        self._stopping = False
        self._client: ConfirmingClient | None = None

    def _make_client(self) -> ConfirmingClient:
        will = aiomqtt.Will(
            self.status_topic,
            status_payload(self.device_id, online=False, sent_at=None,
                           extra={"reason": "connection_lost"}),
            qos=1, retain=True,
        )
        o = self.options
        return ConfirmingClient(
            o.endpoint.host, o.endpoint.port, username=self.username, password=self.password,
            identifier=f"parkpulse-{self.park_id}-{self.device_id}", protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True, keepalive=o.keepalive_s, will=will, max_inflight_messages=o.max_inflight,
            tls_params=o.tls_params, timeout=o.publish_timeout_s,
        )

    async def run(self) -> None:
        """Connect, publish birth and status, drain; reconnect with capped jittered backoff, forever.

        Returns after :meth:`request_stop` once this device's outbox lane is empty. The backoff is reset
        by :meth:`_accepted`, not here (see the module docstring).
        """
        while True:
            client = self._make_client()
            try:
                async with client:
                    self._client = client
                    self.connects += 1
                    await self._on_connect(client)
                    self.connected.set()
                    listener = asyncio.create_task(self._listen(client), name=f"edge[{self.device_id}].feedback")
                    try:
                        await self._drain(client)
                        await self._publish_status(client, online=False, reason="agent_stopped")
                    finally:
                        # wait() neither raises the listener's own CancelledError nor swallows one aimed at
                        # this task (suppressing it here would keep a stopping session alive)
                        listener.cancel()
                        await asyncio.wait({listener})
                    return
            except NoSubscribersError as exc:
                self.last_error = str(exc)
                self.undelivered_retries += 1
                logger.warning("%s: broker had no subscriber for our readings (ingest not subscribed yet?); "
                               "data kept in the outbox, retrying: %s", self.device_id, exc)
            except PublishRejectedError as exc:
                self.last_error = str(exc)
                # a refusal is a configuration error: retry slowly, keep the data
                self.backoff_attempt = max(self.backoff_attempt, 5)
                logger.error("%s: MQTT session down, data kept in the outbox: %s", self.device_id, exc)  # noqa: TRY400
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                logger.warning("%s: MQTT session down: %s", self.device_id, exc)
            finally:
                self._client = None
                self.connected.clear()
                client.consume_disconnect_error()
            if self._stopping:
                return
            delay = backoff_delay(self.backoff_attempt, initial_s=self.options.backoff_initial_s,
                                  max_s=self.options.backoff_max_s)
            self.backoff_attempt += 1
            await asyncio.sleep(delay)

    def _accepted(self) -> None:
        """The broker accepted what this session exists for: the next failure starts the backoff anew."""
        self.backoff_attempt = 0

    def request_stop(self) -> None:
        """Finish: drain what is queued for this device, send ``online: false``, disconnect cleanly."""
        self._stopping = True
        self.wake.set()

    async def _on_connect(self, client: ConfirmingClient) -> None:
        timeout = self.options.publish_timeout_s
        await client.subscribe(self.errors_topic, qos=1, timeout=timeout)  # before anything ingest may reject
        if self.commands is not None:
            _no_delay(client)
            await client.subscribe(self.cmd_topic, qos=1, timeout=timeout)
        await client.publish_confirmed(self.birth_topic, birth_payload(self.device_id, self.clock(), self.birth),
                                       retain=True, timeout=timeout)
        await self._publish_status(client, online=None)
        logger.info("%s: MQTT session up (connect #%d)", self.device_id, self.connects)

    async def _publish_status(self, client: ConfirmingClient, *, online: bool | None,
                              reason: str | None = None) -> None:
        extra = await self.status()
        reachable = bool(extra.pop("online", True))
        is_online = reachable if online is None else online
        if reason is not None:
            extra["reason"] = reason
        await client.publish_confirmed(self.status_topic,
                                       status_payload(self.device_id, online=is_online, sent_at=self.clock(),
                                                      extra=extra),
                                       retain=True, timeout=self.options.publish_timeout_s)

    async def _listen(self, client: ConfirmingClient) -> None:
        """Handle feedback messages until the connection ends (the drain notices that and reconnects)."""
        try:
            async for message in client.messages:
                payload = message.payload
                raw = payload if isinstance(payload, bytes) else str(payload).encode()
                if message.topic.matches(self.errors_topic):
                    self.on_feedback(raw)
                elif self.commands is not None and message.topic.matches(self.cmd_topic):
                    await self._on_command(client, raw)
        except aiomqtt.MqttError:
            return

    async def _on_command(self, client: ConfirmingClient, raw: bytes) -> None:
        """Apply one command and publish its ack (an MQTT failure ends the listener; the ack stays audited)."""
        assert self.commands is not None
        try:
            ack = await self.commands.handle(raw)
        except CommandAuditError:
            logger.exception("%s: command not handled: the audit database failed", self.device_id)
            return
        except Exception:  # a bug in one command must not end this device's command and feedback listener
            logger.exception("%s: unexpected error while handling a command", self.device_id)
            return
        if ack is None:
            return
        try:
            await client.publish_confirmed(self.ack_topic, ack, timeout=self.options.publish_timeout_s)
        except PublishRejectedError as exc:
            logger.error("%s: ack refused by the broker (check the ACL grants %s): %s",  # noqa: TRY400
                         self.device_id, self.ack_topic, exc)

    def on_feedback(self, raw: bytes) -> None:
        """Log one feedback message from ingest at WARNING (reason, detail, what to fix) and count it."""
        try:
            feedback = decode_feedback(raw)
        except InvalidFeedbackError as exc:
            logger.warning("%s: unreadable message on %s: %s", self.device_id, self.errors_topic, exc)
            return
        self.feedback_received += 1
        self.last_feedback = feedback
        more = f" (+{feedback['suppressed']} more rejected since the last report)" if feedback["suppressed"] else ""
        logger.warning("%s: ingest rejected a message on %s: %s: %s; fix: %s; quarantine id %d, %d reading(s) "
                       "rejected, %d accepted%s", self.device_id, feedback["topic"], feedback["reason"],
                       feedback["detail"], feedback["hint"], feedback["quarantine_id"],
                       feedback["readings_rejected"], feedback["readings_accepted"], more)

    async def publish_status(self) -> bool:
        """Publish a status message now if connected; returns whether it went out."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        try:
            await self._publish_status(client, online=None)
        except (aiomqtt.MqttError, PublishRejectedError) as exc:
            logger.warning("%s: status not published: %s", self.device_id, exc)
            return False
        return True

    async def _drain(self, client: ConfirmingClient) -> None:
        """Publish live messages first, then the paced backlog; return when stopping and empty."""
        floor = await self.store.max_id()
        backlog_left = True
        batch = self.options.batch_size
        while True:
            self.wake.clear()
            live = await self.store.fetch(self.device_id, after_id=floor, limit=batch)
            if live:
                await self._publish_batch(client, live)
                continue
            if backlog_left:
                granted = await self.pacer.acquire(batch)
                rows = await self.store.fetch(self.device_id, up_to_id=floor, limit=granted)
                self.pacer.give_back(granted - len(rows))
                if rows:
                    await self._publish_batch(client, rows)
                    continue
                backlog_left = False
            self._accepted()  # birth and status went through and nothing is waiting: the session works
            if self._stopping:
                return
            await self.wake.wait()

    async def _publish_batch(self, client: ConfirmingClient, rows: list[StoredMessage]) -> None:
        """Publish ``rows`` concurrently at QoS 1; delete the acknowledged ones; re-raise the first failure."""
        sent_at = self.clock()
        timeout = self.options.publish_timeout_s
        results = await asyncio.gather(
            *(client.publish_confirmed(self.readings_topic,
                                       assemble_readings_message(self.device_id, r.seq, sent_at, r.body),
                                       timeout=timeout, require_subscriber=self.options.require_subscriber)
              for r in rows),
            return_exceptions=True,
        )
        acked = [r.id for r, res in zip(rows, results, strict=True) if res is None]
        if acked:
            self._accepted()
            await self.store.ack(acked)
            self.published_messages += len(acked)
        for res in results:
            if isinstance(res, BaseException):
                raise res


__all__ = ["DeviceSession", "Pacer", "SessionOptions"]

"""OPC UA client reader (asyncua): configured nodes of a DCS/SCADA/PLC server read as registry metrics.

A device's nodes (``transport.nodes``: metric, unit, scale, NodeId or browse path) are read by ``poll``
(one Read request per poll, like the meter readers) or by ``subscription`` (the server samples every
``sampling_interval_ms``; notifications wait in a bounded buffer that each poll empties). Values become
``value x scale`` in the node's unit, converted by :func:`schemas.conversion_factor`; the StatusCode
gives the quality (Good -> good, Uncertain -> suspect, Bad -> skipped and counted).

One :class:`OpcUaEndpoint` (secure channel and session) per server URL, security and identity is shared
by the server's devices, because DCS servers allow few sessions. After a break (server restart, network)
the next use reconnects after a capped, jittered backoff; nodes are resolved again and subscriptions
re-made (a subscription's keeper task reconnects at once; what it buffered is still delivered, and the
new subscription starts with every node's current value). asyncua is an optional extra: importing this
module without it raises an :class:`ImportError` naming ``pip install 'parkpulse[edge,opcua]'``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.config import DeviceConfig, OpcUaTransport
from edge.errors import DeviceConnectionError, DeviceError, DeviceTimeoutError
from edge.mqtt import backoff_delay
from edge.payload import QualityName, Reading
from edge.readers.base import ReadResult, tidy
from schemas import METRICS, conversion_factor

MISSING_EXTRA = ("the OPC UA reader needs the asyncua package, which is not installed here: "
                 "pip install 'parkpulse[edge,opcua]'")

try:
    from asyncua import ua
    from asyncua.client.client import Client
    from asyncua.common.node import Node
    from asyncua.crypto import security_policies
    from asyncua.ua.attribute_ids import AttributeIds
    from asyncua.ua.object_ids import ObjectIds
    from asyncua.ua.uaerrors import UaError
    from cryptography import x509
except ImportError as exc:  # the optional extra is missing: say which one
    raise ImportError(MISSING_EXTRA) from exc

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
DEFAULT_APPLICATION_URI = "urn:parkpulse:edge"
_SERVER_CURRENT_TIME = ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime))
_ROOT_FOLDER = ua.NodeId(ua.Int32(ObjectIds.RootFolder))
# Errors that mean "this connection is no good": socket errors (ConnectionError is an OSError), service
# faults such as BadSessionIdInvalid after a server restart, and asyncua's own protocol errors.
_LINK_ERRORS = (OSError, UaError)
_REFUSED_USER = {"BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected"}
_QUALITY: dict[int, QualityName] = {0: "good", 1: "suspect"}


class _RedactPasswords(logging.Filter):
    """Blank passwords out of asyncua's DEBUG log of sent requests: on a SignAndEncrypt channel the
    ActivateSession user token carries the password unencrypted (the channel encrypts it)."""

    _PASSWORD = re.compile(r"Password=b?(['\"]).*?\1(?=[,)])")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Password=" in message:
            record.msg, record.args = self._PASSWORD.sub("Password=<redacted>", message), ()
        return True


for _name in ("asyncua.client.ua_client.UASocketProtocol", "asyncua.client.ua_client.UaClient"):
    logging.getLogger(_name).addFilter(_RedactPasswords())
if logging.getLogger("asyncua").level == logging.NOTSET:  # unless configured: its INFO logs every request
    logging.getLogger("asyncua").setLevel(logging.WARNING)


# -- pure core ----------------------------------------------------------------------------------------------


def quality_of(status: int) -> QualityName | None:
    """Reading quality for a StatusCode by its severity (top two bits, Part 4 7.39): 00 Good -> good,
    01 Uncertain -> suspect, 10 Bad and 11 (reserved, treated as Bad) -> None: skip the value."""
    return _QUALITY.get((status >> 30) & 0b11)


def status_name(status: int) -> str:
    """The symbolic name of a StatusCode (``BadSensorFailure``), or its hex value when unknown."""
    name = ua.StatusCode(ua.UInt32(status & 0xFFFF0000)).name  # the low 16 bits are info flags, not part of the code
    return name if name not in {"Good", "Uncertain", "Bad"} else f"{name} {status:#010x}"


@dataclass(frozen=True, slots=True)
class NodePlan:
    """One configured node, ready to convert: where to find it and the factor to the canonical unit."""

    metric: str
    unit: str  # the metric's canonical unit
    factor: float  # scale x unit conversion
    node_id: str | None
    browse_path: str | None

    @classmethod
    def from_config(cls, transport: OpcUaTransport) -> list[NodePlan]:
        """Plans for every node of ``transport``, in configuration order."""
        return [cls(metric=n.metric, unit=METRICS[n.metric].unit,
                    factor=n.scale * conversion_factor(n.unit, METRICS[n.metric].unit),
                    node_id=n.node_id, browse_path=n.browse_path) for n in transport.nodes]

    @property
    def address(self) -> str:
        """The NodeId or browse path as configured (for messages)."""
        return self.node_id or self.browse_path or "?"


def convert_sample(plan: NodePlan, *, status: int, value: object, ts: datetime) -> Reading | str:
    """A :class:`Reading` for one sample of ``plan``'s node, or why there is none (pure).

    Booleans count as 0/1; strings, arrays, structures, NaN and infinities are not readings.
    """
    quality = quality_of(status)
    if quality is None:
        return f"{plan.address}: status {status_name(status)}"
    if not isinstance(value, int | float):  # bool is an int: 0/1
        return f"{plan.address}: not a number ({type(value).__name__})"
    number = float(value)
    converted = number * plan.factor
    if not math.isfinite(converted):
        return f"{plan.address}: non-finite value {converted}"
    return Reading(ts=ts, metric=plan.metric, value=tidy(converted), unit=plan.unit, quality=quality)


def sample_time(data_value: Any, agent_ts: datetime, timestamps: str) -> datetime:
    """The reading's timestamp: the agent's, or (``timestamps: source``) the source's, else the server's."""
    if timestamps == "source":
        for stamp in (data_value.SourceTimestamp, data_value.ServerTimestamp):
            if isinstance(stamp, datetime):
                return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    return agent_ts


def application_uri(cert_file: Path) -> str:
    """The URI in the certificate's subjectAltName: OPC UA servers check it against the client's."""
    data = cert_file.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if data.startswith(b"-----") else x509.load_der_x509_certificate(data)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return DEFAULT_APPLICATION_URI
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else DEFAULT_APPLICATION_URI


def opcua_birth_metadata(device: DeviceConfig, agent_id: str) -> dict[str, Any]:
    """The birth message body of an OPC UA device (it has no profile file: its nodes say what it is)."""
    transport = device.transport
    if not isinstance(transport, OpcUaTransport):
        raise TypeError(f"device {device.id} is not an OPC UA device")
    kind, carrier = transport.kind_and_carrier or ("heat_meter", "none")
    return {
        "kind": kind,
        "carrier": carrier,
        "metering_level": device.metering_level,
        "site": device.site,
        "role": device.role,
        "profile": device.profile or "opcua",
        "firmware": device.firmware,
        "multiplier": device.multiplier,
        "rated_power_kw": device.rated_power_kw,
        "agent": agent_id,
        "protocol": "opcua",
        "multiplier_applied": True,
        "poll_interval_s": device.poll_interval_s,
        "metrics": sorted(n.metric for n in transport.nodes),
        "endpoint": transport.url,
        "security": f"{transport.security.policy}/{transport.security.mode}",
        "acquisition": transport.acquisition,
        "nodes": {n.metric: n.node_id or n.browse_path for n in transport.nodes},
    }


# -- connection ---------------------------------------------------------------------------------------------


def _hint(exc: BaseException, transport: OpcUaTransport) -> str:
    """What to do about a failed connect, for the device's ``last_error`` and the log."""
    name = type(exc).__name__
    if name in _REFUSED_USER and transport.auth.cert_file is not None:
        return f"the server refused the user certificate {transport.auth.cert_file}: register it as a user there"
    if name in _REFUSED_USER:
        source = transport.auth.password_env or transport.auth.password_file or "none configured"
        return f"the server refused the user: check auth.username and the password ({source})"
    if "No matching endpoints" in str(exc):
        return (f"the server offers no endpoint for security {transport.security.policy}/"
                f"{transport.security.mode}: set security.policy and mode to one it lists")
    if "Certificate" in name or "Security" in name:
        return ("the server refused the secure channel: trust the agent's certificate "
                f"({transport.security.cert_file}) on the server, or check security.policy and mode")
    return "check the URL, that the server runs, and the firewall"


class OpcUaEndpoint:
    """One session with one OPC UA server, shared by its devices; reconnects with capped, jittered backoff.

    :meth:`session` returns the connected client and its *generation*, a number that changes with every
    new connection: readers resolve nodes and subscribe again when it does.
    """

    def __init__(self, transport: OpcUaTransport, *, environ: Mapping[str, str] | None = None,
                 rng: random.Random | None = None) -> None:
        """Remember the settings; nothing connects until the first :meth:`session`.

        ``environ`` is where ``auth.password_env`` is looked up (default: the process environment, read
        at each connect so a rotated secret is picked up).
        """
        self.transport = transport
        self.url = transport.url
        self._environ = environ
        self._rng = rng
        self._lock = asyncio.Lock()
        self._client: Client | None = None
        self._lost = asyncio.Event()
        self.generation = 0
        self.connects = 0
        self.losses = 0
        self.last_error: str | None = None
        self._attempt = 0
        self._retry_at = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"OpcUaEndpoint({self.url}, {self.transport.security.policy}/{self.transport.security.mode})"

    def retry_in(self) -> float:
        """Seconds until the next connection attempt is allowed (0 when now)."""
        return max(0.0, self._retry_at - time.monotonic())

    async def session(self, device_id: str) -> tuple[Client, int]:
        """The connected client and its generation; connects first when needed (raises :class:`DeviceError`)."""
        async with self._lock:
            if self._client is not None:
                return self._client, self.generation
            wait_s = self.retry_in()
            if wait_s > 0:
                raise DeviceConnectionError(f"{self.url} unreachable, next attempt in {wait_s:.1f} s "
                                            f"(last error: {self.last_error})", device_id=device_id)
            try:
                client = await self._connect()
            except DeviceError as exc:
                self._schedule_retry(str(exc))
                raise DeviceConnectionError(str(exc), device_id=device_id) from None
            self._client, self._lost = client, asyncio.Event()
            self.generation += 1
            self.connects += 1
            logger.info("%s: OPC UA session up (connect #%d)", self.url, self.connects)
            return client, self.generation

    def served(self) -> None:
        """The server answered a read: the next failure starts the backoff anew."""
        self._attempt = 0

    def lost(self, client: Client, error: str) -> None:
        """Mark ``client``'s connection broken (ignored for an already replaced one); disconnect it."""
        if client is not self._client:
            return
        self._client = None
        self._lost.set()
        self.losses += 1
        self._schedule_retry(error)
        logger.warning("%s: OPC UA connection lost (%s); reconnecting in %.1f s", self.url, error, self.retry_in())
        self._spawn(self._disconnect(client), "disconnect")

    async def wait_lost(self, generation: int) -> None:
        """Return once connection ``generation`` is gone (at once if it already is)."""
        if generation == self.generation and self._client is not None:
            await self._lost.wait()

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Keep a reader's background task; :meth:`aclose` cancels it."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_retry(self, error: str) -> None:
        self.last_error = error
        self._retry_at = time.monotonic() + backoff_delay(
            self._attempt, initial_s=self.transport.backoff.initial_s, max_s=self.transport.backoff.max_s,
            rng=self._rng)
        self._attempt += 1

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"opcua[{self.url}].{what}")
        self.adopt(task)

    def _password(self) -> str | None:
        auth = self.transport.auth
        if auth.password_env is not None:
            # The one place outside EdgeSettings that reads the environment: the variable's name is data.
            environ = self._environ if self._environ is not None else os.environ
            value = environ.get(auth.password_env)
            if value is None:
                raise DeviceConnectionError(f"environment variable {auth.password_env} (auth.password_env) is "
                                            "not set: set it in the agent's service environment")
            return str(value)
        if auth.password_file is not None:
            try:
                return auth.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DeviceConnectionError(f"cannot read auth.password_file {auth.password_file}: {exc}") from None
        return None

    async def _connect(self) -> Client:
        t = self.transport
        client = Client(self.url, timeout=t.timeout_s, watchdog_intervall=t.timeout_s)
        client.name = client.description = "ParkPulse edge agent"
        client.session_timeout = 600_000  # ms; servers cap it (asyncua's at 10 min) and a lost session is re-made
        try:
            sec = t.security
            if sec.policy != "None" and sec.cert_file is not None and sec.key_file is not None:
                client.application_uri = application_uri(sec.cert_file)
                await client.set_security(
                    getattr(security_policies, f"SecurityPolicy{sec.policy}"), str(sec.cert_file), str(sec.key_file),
                    server_certificate=str(sec.server_cert_file) if sec.server_cert_file else None,
                    mode=getattr(ua.MessageSecurityMode, sec.mode))
            if t.auth.username is not None:
                client.set_user(t.auth.username)
                password = self._password()
                if password is not None:
                    client.set_password(password)
            if t.auth.cert_file is not None and t.auth.key_file is not None:
                await client.load_client_certificate(str(t.auth.cert_file))
                await client.load_private_key(t.auth.key_file)
            async with asyncio.timeout(2 * t.timeout_s + 1.0):
                await client.connect()
        except TimeoutError:
            client.disconnect_socket()
            raise DeviceTimeoutError(f"{self.url}: no answer within {2 * t.timeout_s + 1.0:.0f} s; "
                                     f"{_hint(TimeoutError(), t)}") from None
        except (*_LINK_ERRORS, ValueError) as exc:
            client.disconnect_socket()
            raise DeviceConnectionError(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}; "
                                        f"{_hint(exc, t)}") from None
        client.connection_lost_callback = self._on_lost(client)
        return client

    def _on_lost(self, client: Client) -> Callable[[Exception], Any]:
        async def callback(exc: Exception) -> None:
            self.lost(client, f"{type(exc).__name__}: {exc}")
        return callback

    async def _disconnect(self, client: Client) -> None:
        try:
            async with asyncio.timeout(self.transport.timeout_s):
                await client.disconnect()
        except (TimeoutError, *_LINK_ERRORS) as exc:
            logger.debug("%s: disconnect: %s", self.url, exc)
            client.disconnect_socket()

    async def aclose(self) -> None:
        """Stop the readers' background tasks and close the session cleanly."""
        client, self._client = self._client, None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if client is not None:
            await self._disconnect(client)
        if tasks:
            await asyncio.wait(tasks)

    def close(self) -> None:
        """Best-effort synchronous close (from a running loop the session is closed in the background)."""
        client, self._client = self._client, None
        for task in list(self._tasks):
            task.cancel()
        if client is None:
            return
        try:
            self._spawn(self._disconnect(client), "close")
        except RuntimeError:  # no running loop: just drop the socket
            client.disconnect_socket()


# -- reader -------------------------------------------------------------------------------------------------


class OpcUaReader:
    """Reads one device's nodes from an OPC UA server (see the module docstring)."""

    def __init__(self, device_id: str, transport: OpcUaTransport, endpoint: OpcUaEndpoint, *,
                 clock: Clock = lambda: datetime.now(UTC)) -> None:
        """Plan the nodes; ``endpoint`` may be shared with the server's other devices."""
        self.device_id = device_id
        self.transport = transport
        self.endpoint = endpoint
        self.clock = clock
        self.plans = NodePlan.from_config(transport)
        self._nodes: list[Node | None] = [None] * len(self.plans)
        self._unresolved: dict[str, str] = {}
        self._resolved_generation = -1
        self._subscribed_generation = -1
        self._by_node: dict[Any, NodePlan] = {}
        self._buffer: deque[Reading | tuple[str, str]] = deque()
        self._keeper: asyncio.Task[None] | None = None
        self.link_error: DeviceError | None = None
        self.bad_samples = 0  # Bad StatusCodes seen (readings skipped)
        self.dropped_samples = 0  # notifications dropped because the buffer was full (data lost)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Poll the nodes, or (subscription) hand over what the subscription buffered since the last call."""
        if self.transport.acquisition == "subscription":
            return self._drain()
        client, generation = await self.endpoint.session(self.device_id)
        try:
            async with asyncio.timeout(2 * self.transport.timeout_s):
                await self._resolve(client, generation)
                targets = [(p, n) for p, n in zip(self.plans, self._nodes, strict=True) if n is not None]
                ids = [n.nodeid for _, n in targets] + ([_SERVER_CURRENT_TIME] if read_clock else [])
                values = await client.uaclient.read_attributes(ids, AttributeIds.Value) if ids else []
        except TimeoutError:
            self.endpoint.lost(client, "read timed out")
            raise DeviceTimeoutError(f"{self.endpoint.url}: no answer to a read within "
                                     f"{2 * self.transport.timeout_s:.0f} s", device_id=self.device_id) from None
        except _LINK_ERRORS as exc:
            self.endpoint.lost(client, f"{type(exc).__name__}: {exc}")
            raise DeviceConnectionError(f"{self.endpoint.url}: {type(exc).__name__}: {exc}",
                                        device_id=self.device_id) from None
        self.endpoint.served()
        result = ReadResult(skipped=list(self._unresolved.items()))
        for (plan, _), data_value in zip(targets, values, strict=False):
            self._book(result, plan, data_value, sample_time(data_value, ts, self.transport.timestamps))
        if read_clock and len(values) > len(targets):
            server_time = values[-1].Value.Value if values[-1].Value is not None else None
            if isinstance(server_time, datetime):
                result.meter_clock = server_time if server_time.tzinfo else server_time.replace(tzinfo=UTC)
                result.meter_clock_read_at = ts
        return result

    def _book(self, result: ReadResult, plan: NodePlan, data_value: Any, ts: datetime) -> None:
        status = data_value.StatusCode.value if data_value.StatusCode is not None else 0
        value = data_value.Value.Value if data_value.Value is not None else None
        outcome = convert_sample(plan, status=status, value=value, ts=ts)
        if isinstance(outcome, Reading):
            result.readings.append(outcome)
            return
        if quality_of(status) is None:
            self.bad_samples += 1
        result.skipped.append((plan.metric, outcome))

    async def _resolve(self, client: Client, generation: int) -> None:
        """Turn NodeIds (``nsu=`` too) and browse paths into nodes, once per connection."""
        if self._resolved_generation == generation:
            return
        nodes: list[Node | None] = [None] * len(self.plans)
        problems: dict[str, str] = {}
        namespaces: list[str] | None = None
        paths: list[tuple[int, str]] = []
        for i, plan in enumerate(self.plans):
            if plan.browse_path is not None:
                paths.append((i, "/" + plan.browse_path.lstrip("/")))
                continue
            nodeid = ua.NodeId.from_string(plan.address)  # syntax checked by the config
            uri = getattr(nodeid, "NamespaceUri", None)
            if uri:
                namespaces = namespaces or await client.get_namespace_array()
                if uri not in namespaces:
                    problems[plan.metric] = f"{plan.address}: namespace {uri} is not on the server"
                    continue
                nodeid = ua.NodeId(nodeid.Identifier, ua.Int16(namespaces.index(uri)), nodeid.NodeIdType)
            nodes[i] = client.get_node(nodeid)
        if paths:
            found = await client.translate_browsepaths(_ROOT_FOLDER, [p for _, p in paths])
            for (i, path), answer in zip(paths, found, strict=True):
                if answer.StatusCode.is_good() and answer.Targets:
                    target = answer.Targets[0].TargetId
                    nodes[i] = client.get_node(ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType))
                else:
                    problems[self.plans[i].metric] = f"browse path {path} not found ({answer.StatusCode.name})"
        for metric, why in problems.items():
            logger.warning("%s: %s: %s; fix the node in edge.yaml", self.device_id, metric, why)
        self._nodes, self._unresolved, self._resolved_generation = nodes, problems, generation

    # -- subscription -----------------------------------------------------------------------------------

    def _drain(self) -> ReadResult:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep_subscribed(),
                                                                  name=f"edge[{self.device_id}].opcua")
            self.endpoint.adopt(self._keeper)
        result = ReadResult(skipped=list(self._unresolved.items()))
        while self._buffer:
            item = self._buffer.popleft()
            if isinstance(item, Reading):
                result.readings.append(item)
            else:
                result.skipped.append(item)
        if not result.readings and self.link_error is not None:
            raise self.link_error
        return result

    async def _keep_subscribed(self) -> None:
        """Connect and subscribe; after a break reconnect (backoff) and subscribe again, until cancelled."""
        while True:
            client: Client | None = None
            try:
                client, generation = await self.endpoint.session(self.device_id)
                if self._subscribed_generation != generation:
                    async with asyncio.timeout(4 * self.transport.timeout_s):
                        await self._subscribe(client, generation)
                self.link_error = None
                self.endpoint.served()
                await self.endpoint.wait_lost(generation)
            except DeviceError as exc:
                self.link_error = exc
                await asyncio.sleep(max(0.05, self.endpoint.retry_in()))
            except (TimeoutError, *_LINK_ERRORS) as exc:
                self.link_error = DeviceConnectionError(f"{self.endpoint.url}: subscription failed: "
                                                        f"{type(exc).__name__}: {exc}", device_id=self.device_id)
                if client is not None:
                    self.endpoint.lost(client, f"subscription failed: {type(exc).__name__}: {exc}")

    async def _subscribe(self, client: Client, generation: int) -> None:
        await self._resolve(client, generation)
        t = self.transport
        targets = [(p, n) for p, n in zip(self.plans, self._nodes, strict=True) if n is not None]
        if not targets:
            self._subscribed_generation = generation
            return
        subscription = await client.create_subscription(t.publishing_interval_ms, _Handler(self))
        # keep every sample the server takes between two publishes (queue 1 would keep only the last)
        queue = math.ceil(t.publishing_interval_ms / t.sampling_interval_ms) + 1
        self._by_node = {n.nodeid: p for p, n in targets}
        handles = await subscription.subscribe_data_change([n for _, n in targets], queuesize=queue,
                                                           sampling_interval=ua.Double(t.sampling_interval_ms))
        for (plan, _), handle in zip(targets, handles, strict=True):
            if isinstance(handle, ua.StatusCode):
                self._unresolved[plan.metric] = f"{plan.address}: monitored item refused ({handle.name})"
                logger.warning("%s: %s: %s", self.device_id, plan.metric, self._unresolved[plan.metric])
        self._subscribed_generation = generation
        logger.info("%s: subscribed to %d node(s) on %s", self.device_id, len(targets), self.endpoint.url)

    def on_sample(self, node: Node, data_value: Any) -> None:
        """Buffer one data change notification (called by asyncua's subscription dispatch)."""
        plan = self._by_node.get(node.nodeid)
        if plan is None:
            return
        status = data_value.StatusCode.value if data_value.StatusCode is not None else 0
        value = data_value.Value.Value if data_value.Value is not None else None
        ts = sample_time(data_value, self.clock(), self.transport.timestamps)
        outcome = convert_sample(plan, status=status, value=value, ts=ts)
        if not isinstance(outcome, Reading) and quality_of(status) is None:
            self.bad_samples += 1
        if len(self._buffer) >= self.transport.max_buffered:
            self._buffer.popleft()
            self.dropped_samples += 1
            if self.dropped_samples == 1 or self.dropped_samples % 1000 == 0:
                logger.error("%s: subscription buffer full (%d): %d sample(s) LOST so far; poll more often",
                             self.device_id, self.transport.max_buffered, self.dropped_samples)
        self._buffer.append(outcome if isinstance(outcome, Reading) else (plan.metric, outcome))


class _Handler:
    """asyncua subscription callbacks, forwarded to the reader."""

    def __init__(self, reader: OpcUaReader) -> None:
        self.reader = reader

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        """One monitored item changed (``data.monitored_item.Value`` is the DataValue with its status)."""
        del val
        self.reader.on_sample(node, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        """The subscription's status changed (the server went away); the endpoint handles the reconnect."""
        logger.debug("%s: subscription status %s", self.reader.device_id, status)


__all__ = ["MISSING_EXTRA", "NodePlan", "OpcUaEndpoint", "OpcUaReader", "application_uri", "convert_sample",
           "opcua_birth_metadata", "quality_of", "sample_time", "status_name"]

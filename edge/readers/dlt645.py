"""DL/T 645-2007 over TCP (transparent RS-485 gateway) or a local RS-485 bus: transports and meter reader.

The TCP transport keeps its own receive buffer (an :class:`asyncio.Protocol`), so it can throw away stale
bytes before each request and skip replies that do not belong to the request: gateways on a shared bus
deliver duplicated and late frames, and a meter that answers the previous question must not have that
answer booked under the current data identifier. The serial transport (:class:`Dlt645SerialEndpoint`)
does the same through :class:`edge.serial_bus.SerialBus`, which adds per-bus timing and retries.
:func:`discover_addresses` asks the meter on a line for its address (13H), for commissioning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from edge.config import Dlt645SerialTransport, Dlt645TcpTransport
from edge.dlt645 import (
    address_reply_value,
    decode_meter_clock,
    encode_address_query,
    encode_read_request,
    read_reply_value,
    scan_frame,
)
from edge.errors import (
    BcdError,
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    FrameError,
    MeterReplyError,
    UnexpectedReplyError,
)
from edge.profile import Dlt645Profile
from edge.readers.base import ReadResult, dlt645_value, make_reading
from edge.serial_bus import SerialBus

logger = logging.getLogger(__name__)


class Dlt645Link(Protocol):
    """What :class:`Dlt645Reader` needs from a transport (TCP gateway or serial bus)."""

    @property
    def lock(self) -> asyncio.Lock:
        """Held by the reader around each request."""
        ...

    async def request(self, address: str, di: int, *, device_id: str) -> bytes:
        """Read ``di`` from meter ``address``; the value bytes of its reply."""
        ...


class _BufferProtocol(asyncio.Protocol):
    """Collects received bytes and wakes the waiting request."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self.lost = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.arrived.set()


class Dlt645Endpoint:
    """One TCP connection to a DL/T 645 gateway; serialise requests with :attr:`lock`."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 3.0) -> None:
        """Remember where to connect; the connection opens on the first request."""
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.lock = asyncio.Lock()
        self._proto: _BufferProtocol | None = None
        self.discarded_bytes = 0
        self.stale_frames = 0

    def __repr__(self) -> str:
        return f"Dlt645Endpoint({self.host}:{self.port})"

    async def _connected(self, device_id: str) -> _BufferProtocol:
        if self._proto is not None and not self._proto.lost:
            return self._proto
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, proto = await loop.create_connection(_BufferProtocol, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise DeviceConnectionError(f"cannot connect to {self.host}:{self.port}: {exc!r}",
                                        device_id=device_id) from None
        self._proto = proto
        return proto

    async def request(self, address: str, di: int, *, device_id: str) -> bytes:
        """Send a read of ``di`` to meter ``address`` and return the value bytes of its reply.

        Frames that answer something else are skipped; a corrupt frame (checksum, end byte, BCD) or a
        ``D1H`` error reply raises at once; silence raises :class:`DeviceTimeoutError` after the timeout.
        """
        proto = await self._connected(device_id)
        if proto.buffer:
            self.discarded_bytes += len(proto.buffer)
            proto.buffer.clear()
        assert proto.transport is not None
        proto.transport.write(encode_read_request(address, di))
        junk = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    try:
                        frame, used = scan_frame(bytes(proto.buffer))
                    except FrameError as exc:
                        self.discarded_bytes += len(proto.buffer)
                        proto.buffer.clear()
                        exc.device_id = device_id
                        raise
                    if frame is None:
                        junk += used
                    del proto.buffer[:used]
                    if frame is not None:
                        try:
                            return read_reply_value(frame, address=address, di=di)
                        except UnexpectedReplyError as exc:
                            self.stale_frames += 1
                            logger.debug("%s: skipped a frame that is not our reply: %s", device_id, exc)
                            continue
                        except MeterReplyError as exc:
                            exc.device_id = device_id
                            raise
                    if proto.lost:
                        self.close()
                        raise DeviceConnectionError(f"{self.host}:{self.port} closed the connection",
                                                    device_id=device_id)
                    proto.arrived.clear()
                    await proto.arrived.wait()
        except TimeoutError:
            self.discarded_bytes += junk
            detail = f" ({junk} byte(s) of noise discarded)" if junk else ""
            raise DeviceTimeoutError(f"no reply from meter {address} to DI {di:08X} within {self.timeout_s}s"
                                     f"{detail}", device_id=device_id) from None

    def close(self) -> None:
        """Close the connection; the next request reconnects."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class _ReplyMatcher:
    """``expect`` for :meth:`SerialBus.transact`: the reply to one read, skipping noise and stale frames."""

    def __init__(self, endpoint: Dlt645SerialEndpoint, address: str, di: int, device_id: str) -> None:
        self.endpoint, self.address, self.di, self.device_id = endpoint, address, di, device_id

    def __call__(self, buffer: bytes) -> tuple[bytes | None, int]:
        skipped = 0
        while True:
            try:
                frame, used = scan_frame(buffer[skipped:])
            except FrameError as exc:
                exc.device_id = self.device_id
                raise
            if frame is None:
                return None, skipped + used
            try:
                return read_reply_value(frame, address=self.address, di=self.di), skipped + used
            except UnexpectedReplyError as exc:
                self.endpoint.stale_frames += 1
                logger.debug("%s: skipped a frame that is not our reply: %s", self.device_id, exc)
                skipped += used
            except MeterReplyError as exc:
                exc.device_id = self.device_id
                raise


def _address_reply(buffer: bytes) -> tuple[str | None, int]:
    """``expect`` for the address query: the address of the first 93H frame, other frames skipped."""
    skipped = 0
    while True:
        frame, used = scan_frame(buffer[skipped:])
        if frame is None:
            return None, skipped + used
        skipped += used
        try:
            return address_reply_value(frame), skipped
        except UnexpectedReplyError:
            continue


class Dlt645SerialEndpoint:
    """DL/T 645 meters on a local RS-485 bus: every request goes through the bus (lock, timing, retries)."""

    def __init__(self, bus: SerialBus) -> None:
        """Share ``bus`` (one per configured ``serial_buses`` entry) with every meter on it."""
        self.bus = bus
        #: Readers hold this around a request, as for TCP; the bus lock inside keeps the wire to one exchange.
        self.lock = asyncio.Lock()
        self.stale_frames = 0

    def __repr__(self) -> str:
        return f"Dlt645SerialEndpoint({self.bus!r})"

    async def request(self, address: str, di: int, *, device_id: str, timeout_s: float | None = None) -> bytes:
        """Read ``di`` from meter ``address`` (the wildcard ``AAAAAAAAAAAA`` reads the only meter on a line).

        Raises :class:`DeviceTimeoutError` after the bus's retries, :class:`MeterReplyError` at once for a
        ``D1H`` answer, a wire :class:`FrameError` after the retries.
        """
        return await self.bus.transact(encode_read_request(address, di),
                                       expect=_ReplyMatcher(self, address, di, device_id),
                                       timeout_s=timeout_s, device_id=device_id)

    async def discover(self, *, window_s: float = 2.0) -> list[str]:
        """Send the address query (13H to ``AAAAAAAAAAAA``) and return every address announced in the window."""
        found = await self.bus.collect(encode_address_query(), expect=_address_reply, window_s=window_s)
        return list(dict.fromkeys(found))

    def close(self) -> None:
        """Close the bus's port (reopened by the next request)."""
        self.bus.close()


async def discover_addresses(bus: SerialBus, *, window_s: float = 2.0) -> list[str]:
    """Commissioning: the DL/T 645 address(es) answering the address query on ``bus``.

    Connect one meter at a time: every meter answers the wildcard query, so several at once collide on a
    real line (you may see none, one, or a damaged answer that is skipped).
    """
    return await Dlt645SerialEndpoint(bus).discover(window_s=window_s)


class _SerialLink:
    """Binds a device's own timeout to a shared :class:`Dlt645SerialEndpoint`."""

    def __init__(self, endpoint: Dlt645SerialEndpoint, timeout_s: float | None) -> None:
        self.endpoint, self.timeout_s = endpoint, timeout_s

    @property
    def lock(self) -> asyncio.Lock:
        return self.endpoint.lock

    async def request(self, address: str, di: int, *, device_id: str) -> bytes:
        return await self.endpoint.request(address, di, device_id=device_id, timeout_s=self.timeout_s)


class Dlt645Reader:
    """Reads one DL/T 645 meter, one data identifier per request, through a shared endpoint."""

    def __init__(self, device_id: str, profile: Dlt645Profile, transport: Dlt645TcpTransport | Dlt645SerialTransport,
                 endpoint: Dlt645Endpoint | Dlt645SerialEndpoint, *, ct_ratio: float = 1.0, pt_ratio: float = 1.0,
                 meter_utc_offset: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Bind the meter address and profile to a (possibly shared) endpoint."""
        self.device_id = device_id
        self.profile = profile
        self.address = transport.address
        self.read_clock_enabled = transport.read_clock and profile.clock is not None
        self.endpoint = endpoint
        self._link: Dlt645Link = (_SerialLink(endpoint, transport.timeout_s)
                                  if isinstance(endpoint, Dlt645SerialEndpoint) else endpoint)
        self.ct_ratio, self.pt_ratio = ct_ratio, pt_ratio
        self.meter_utc_offset = meter_utc_offset
        self.clock = clock

    async def _request(self, di: int) -> bytes:
        async with self._link.lock:
            return await self._link.request(self.address, di, device_id=self.device_id)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Read every point; per-point errors skip the point, a silent or unreachable meter aborts the poll.

        On a serial bus the whole poll is one turn on the bus; the readings are stamped ``ts`` plus the time
        spent waiting for that turn, i.e. when this meter was actually read.
        """
        turn = (self.endpoint.bus.turn() if isinstance(self.endpoint, Dlt645SerialEndpoint)
                else contextlib.nullcontext(0.0))
        async with turn as waited_s:
            return await self._read(ts + timedelta(seconds=waited_s) if waited_s else ts, read_clock=read_clock)

    async def _read(self, ts: datetime, *, read_clock: bool) -> ReadResult:
        result = ReadResult()
        first_error: DeviceError | None = None
        for point in self.profile.points:
            try:
                value = dlt645_value(point, await self._request(point.di),
                                     ct_ratio=self.ct_ratio, pt_ratio=self.pt_ratio)
            except (MeterReplyError, FrameError) as exc:
                first_error = first_error or exc
                result.skipped.append((point.metric, str(exc)))
                continue
            make_reading(ts, point.metric, value, result)
        if not result.readings and first_error is not None:
            raise first_error
        if read_clock and self.read_clock_enabled and self.profile.clock is not None:
            try:
                date_value = await self._request(self.profile.clock.date_di)
                time_value = await self._request(self.profile.clock.time_di)
                result.meter_clock_read_at = self.clock()
                result.meter_clock = decode_meter_clock(date_value, time_value, utc_offset=self.meter_utc_offset)
            except (MeterReplyError, FrameError, BcdError) as exc:
                result.skipped.append(("meter_clock", str(exc)))
        return result


__all__ = ["Dlt645Endpoint", "Dlt645Link", "Dlt645Reader", "Dlt645SerialEndpoint", "discover_addresses"]

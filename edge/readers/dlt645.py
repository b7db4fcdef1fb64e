"""DL/T 645-2007 over TCP (transparent RS-485 gateway): request/reply transport and meter reader.

The transport keeps its own receive buffer (an :class:`asyncio.Protocol`), so it can throw away stale
bytes before each request and skip replies that do not belong to the request: gateways on a shared bus
deliver duplicated and late frames, and a meter that answers the previous question must not have that
answer booked under the current data identifier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from edge.config import Dlt645TcpTransport
from edge.dlt645 import decode_meter_clock, encode_read_request, read_reply_value, scan_frame
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

logger = logging.getLogger(__name__)


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


class Dlt645Reader:
    """Reads one DL/T 645 meter, one data identifier per request, through a shared endpoint."""

    def __init__(self, device_id: str, profile: Dlt645Profile, transport: Dlt645TcpTransport,
                 endpoint: Dlt645Endpoint, *, ct_ratio: float = 1.0, pt_ratio: float = 1.0,
                 meter_utc_offset: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Bind the meter address and profile to a (possibly shared) endpoint."""
        self.device_id = device_id
        self.profile = profile
        self.address = transport.address
        self.read_clock_enabled = transport.read_clock and profile.clock is not None
        self.endpoint = endpoint
        self.ct_ratio, self.pt_ratio = ct_ratio, pt_ratio
        self.meter_utc_offset = meter_utc_offset
        self.clock = clock

    async def _request(self, di: int) -> bytes:
        async with self.endpoint.lock:
            return await self.endpoint.request(self.address, di, device_id=self.device_id)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """Read every point; per-point errors skip the point, a silent or unreachable meter aborts the poll."""
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


__all__ = ["Dlt645Endpoint", "Dlt645Reader"]

"""CJ/T 188 water, gas and heat meters over a transparent TCP converter or a local RS-485 bus.

One poll is one read of DI ``901FH``: the reply carries every value of the meter (volume or heat
registers, power, flow, temperatures), its clock and its status bytes. The reader turns the fields its
profile names into readings, converting each value from the unit code in the reply to the metric's
canonical unit (:func:`schemas.units.conversion_factor`); a heat meter that counts kWh, MWh or GJ all end
up as ``heat_energy`` in GJ.

Both transports offer the same ``transact(request, expect=..., timeout_s=..., device_id=...)``:
:class:`edge.serial_bus.SerialBus` for RS-485, :class:`GatewayEndpoint` here for a serial-to-TCP converter.
``expect`` (:class:`_ReplyMatcher`) skips noise, echoes and frames of other meters on a shared line and
raises at once on a corrupt reply, so a late answer is never booked as this meter's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol, TypeVar

from edge.cjt188 import encode_read_request, normalise_address, scan_frame
from edge.cjt188_data import VALVE_STATE_VALUES, CurrentData, FieldSpec, read_reply
from edge.errors import DeviceConnectionError, DeviceTimeoutError, FrameError, UnexpectedReplyError
from edge.profile import Cjt188Profile
from edge.readers.base import ReadResult, make_reading
from schemas import METRICS, UnitError, conversion_factor

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Link(Protocol):
    """A request/reply line to one or more meters: a serial bus or a TCP converter."""

    async def transact(self, request: bytes, *, expect: Callable[[bytes], tuple[T | None, int]],
                       timeout_s: float | None = None, device_id: str | None = None) -> T:
        """Write ``request``, feed every received byte to ``expect`` until it returns a value."""
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


class GatewayEndpoint:
    """One TCP connection to a transparent serial-to-TCP converter; one exchange on its line at a time.

    Bytes left over from an earlier exchange (a late or duplicated reply) are thrown away before each
    request. The connection opens on the first request and again after the converter closed it.
    """

    def __init__(self, host: str, port: int, *, timeout_s: float = 3.0) -> None:
        """Remember where to connect and the default per-request timeout."""
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.lock = asyncio.Lock()
        self._proto: _BufferProtocol | None = None
        self.requests = 0
        self.discarded_bytes = 0

    def __repr__(self) -> str:
        return f"GatewayEndpoint({self.host}:{self.port})"

    async def _connected(self, device_id: str | None) -> _BufferProtocol:
        if self._proto is not None and not self._proto.lost:
            return self._proto
        self.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, proto = await loop.create_connection(_BufferProtocol, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise DeviceConnectionError(f"cannot connect to {self.host}:{self.port}: {exc!r}; check the converter's "
                                        f"address and that it runs as a transparent TCP server",
                                        device_id=device_id) from None
        self._proto = proto
        return proto

    async def transact(self, request: bytes, *, expect: Callable[[bytes], tuple[T | None, int]],
                       timeout_s: float | None = None, device_id: str | None = None) -> T:
        """Send ``request`` and return what ``expect`` makes of the reply (see :class:`Link`).

        Raises :class:`DeviceConnectionError` when the converter cannot be reached or hangs up,
        :class:`DeviceTimeoutError` when no complete reply arrives in time, and whatever ``expect`` raises.
        """
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        async with self.lock:
            proto = await self._connected(device_id)
            if proto.buffer:
                self.discarded_bytes += len(proto.buffer)
                proto.buffer.clear()
            assert proto.transport is not None
            proto.transport.write(request)
            self.requests += 1
            try:
                async with asyncio.timeout(timeout):
                    return await self._reply(proto, expect, device_id)
            except TimeoutError:
                pending = len(proto.buffer)
                self.discarded_bytes += pending
                proto.buffer.clear()
                detail = f" ({pending} byte(s) without a complete frame)" if pending else ""
                raise DeviceTimeoutError(f"no reply through {self.host}:{self.port} within {timeout:g}s{detail}",
                                         device_id=device_id) from None

    async def _reply(self, proto: _BufferProtocol, expect: Callable[[bytes], tuple[T | None, int]],
                     device_id: str | None) -> T:
        while True:
            if proto.buffer:
                try:
                    value, used = expect(bytes(proto.buffer))
                except FrameError:
                    self.discarded_bytes += len(proto.buffer)
                    proto.buffer.clear()
                    raise
                self.discarded_bytes += used if value is None else 0
                del proto.buffer[:used]
                if value is not None:
                    return value
            if proto.lost:
                self.close()
                raise DeviceConnectionError(f"{self.host}:{self.port} closed the connection", device_id=device_id)
            proto.arrived.clear()
            await proto.arrived.wait()

    def close(self) -> None:
        """Close the connection; the next request reconnects."""
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()
        self._proto = None


class _ReplyMatcher:
    """``expect`` for one 901FH read: the first frame that is this meter's reply, decoded."""

    def __init__(self, reader: Cjt188Reader) -> None:
        self.reader = reader

    def __call__(self, buffer: bytes) -> tuple[CurrentData | None, int]:
        reader = self.reader
        consumed = 0
        while True:
            try:
                frame, used = scan_frame(buffer[consumed:])
            except FrameError as exc:
                exc.device_id = reader.device_id
                raise
            if frame is None:
                return None, consumed + used
            consumed += used
            try:
                return read_reply(frame, address=reader.address, meter_type=reader.profile.meter_type,
                                  layout=reader.layout), consumed
            except UnexpectedReplyError as exc:
                reader.stale_frames += 1
                logger.debug("%s: skipped a frame that is not our reply: %s", reader.device_id, exc)
            except FrameError as exc:  # Cjt188ReplyError and decoding errors of our own reply
                exc.device_id = reader.device_id
                raise


class Cjt188Reader:
    """Reads one CJ/T 188 meter (one 901FH request per poll) through a shared link."""

    def __init__(self, device_id: str, profile: Cjt188Profile, address: str, link: Link, *,
                 timeout_s: float | None = None, meter_utc_offset: timedelta = timedelta(hours=8),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Bind the meter's address and profile to a (possibly shared) link."""
        self.device_id = device_id
        self.profile = profile
        self.address = normalise_address(address)
        self.link = link
        self.timeout_s = timeout_s
        self.layout: tuple[FieldSpec, ...] = profile.layout()
        self.meter_zone = timezone(meter_utc_offset)
        self.clock = clock
        self.stale_frames = 0
        self._request = encode_read_request(profile.meter_type, self.address, order=profile.wire_di_order)

    async def read(self, ts: datetime, *, read_clock: bool = False) -> ReadResult:
        """One 901FH read; every profile point becomes a reading stamped ``ts`` (UTC).

        A silent, unreachable or garbling meter, or its error reply, raises (the agent books a failed
        poll); a field that cannot be converted is skipped with the reason.
        """
        data = await self.link.transact(self._request, expect=_ReplyMatcher(self), timeout_s=self.timeout_s,
                                        device_id=self.device_id)
        received_at = self.clock()
        result = ReadResult()
        for metric, value, why in point_values(self.profile, data):
            if value is None:
                result.skipped.append((metric, why))
            else:
                make_reading(ts, metric, value, result)
        if read_clock and data.meter_time is not None:
            result.meter_clock = data.meter_time.replace(tzinfo=self.meter_zone).astimezone(UTC)
            result.meter_clock_read_at = received_at
        return result


def point_values(profile: Cjt188Profile, data: CurrentData) -> list[tuple[str, float | None, str]]:
    """``(metric, value in its canonical unit or None, why not)`` for every point of ``profile``.

    Pure: the unit of each value is the one the meter sent (its unit code), so a heat meter switched from
    kWh to GJ keeps reporting correct ``heat_energy``.
    """
    out: list[tuple[str, float | None, str]] = []
    for point in profile.points:
        if point.field == "battery_low":
            out.append((point.metric, 1.0 if data.status.battery_low else 0.0, ""))
            continue
        if point.field == "valve_state":
            state = VALVE_STATE_VALUES.get(data.status.valve)
            out.append((point.metric, state, "" if state is not None else "valve status bits 10 (reserved)"))
            continue
        quantity = data.values.get(point.field)
        if quantity is None:
            out.append((point.metric, None, f"field {point.field} is not in the reply"))
            continue
        try:
            factor = conversion_factor(quantity.unit, METRICS[point.metric].unit)
        except UnitError as exc:
            out.append((point.metric, None, f"{point.field}: {exc}"))
            continue
        out.append((point.metric, quantity.value * factor, ""))
    return out


__all__ = ["Cjt188Reader", "GatewayEndpoint", "Link", "point_values"]

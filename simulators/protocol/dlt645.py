"""A DL/T 645-2007 simulated bus: served over TCP (a transparent RS-485 gateway) or a real serial port.

Each TCP connection, or the serial port, is the bus: requests are decoded with the same codec the agent
uses (:mod:`edge.dlt645`), every meter whose address matches answers (like on RS-485, a request for an
unknown address gets no reply; the wildcard ``AAAAAAAAAAAA`` reaches every meter). Reads of a data
identifier the profile lists answer ``91H`` with the BCD value; unknown identifiers answer ``D1H`` with
error bit 02H (no data requested). ``04000101``/``04000102`` answer the meter's clock, skew included.
``13H`` (read address) is answered by every meter for discovery.

Fault injection per meter (:class:`simulators.protocol.physics.Faults`): offline (silence), garbage
(bad checksum or random noise), duplicate replies, out-of-order replies (the previous answer first), and
a reply delay. On top, :attr:`Dlt645SimMeter.wire_fault` damages replies on the wire, for every reply or
only the next ``wire_fault_replies``: ``checksum`` (wrong CS byte), ``noise`` (random bytes), ``cut``
(the frame stops half-way).

Over a serial port (:meth:`Dlt645SimServer.start_serial`, e.g. one end of a ``socat`` pty pair) the
server can pace itself like a real line (``pace=True``): a pty moves bytes instantly, so each answer is
held back by the wire time of the request and of the reply at the configured baud rate and framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from edge.dlt645 import (
    BROADCAST_ADDRESS,
    Control,
    Frame,
    encode_address_reply,
    encode_bcd,
    encode_error_reply,
    encode_meter_clock,
    encode_read_reply,
    scan_frame,
)
from edge.errors import DeviceConnectionError, FrameError
from edge.profile import Dlt645PointSpec, Dlt645Profile
from edge.serial_bus import SerialBusSettings, SerialPort
from simulators.protocol.physics import SimMeter

logger = logging.getLogger(__name__)

_ERR_OTHER = 0x01
_ERR_NO_DATA = 0x02


@dataclass
class Dlt645SimMeter:
    """One meter on the simulated bus."""

    address: str
    profile: Dlt645Profile
    meter: SimMeter
    ct_ratio: float = 1.0
    pt_ratio: float = 1.0
    utc_offset: timedelta = timedelta(hours=8)
    #: Damage replies on the wire: wrong checksum, random bytes, or a frame cut off half-way.
    wire_fault: Literal["checksum", "noise", "cut"] | None = None
    #: With ``wire_fault``: damage only the next n replies (None: every reply).
    wire_fault_replies: int | None = None
    replies: int = 0
    last_reply: bytes | None = field(default=None, repr=False)

    def damage(self, reply: bytes) -> bytes:
        """``reply`` as it leaves the meter, after the configured :attr:`wire_fault` (if any applies)."""
        if self.wire_fault is None or self.wire_fault_replies == 0:
            return reply
        if self.wire_fault_replies is not None:
            self.wire_fault_replies -= 1
        return corrupt(reply, self.wire_fault)


def bcd_value(point: Dlt645PointSpec, primary: float, *, ct_ratio: float, pt_ratio: float) -> bytes:
    """The BCD bytes a meter shows for ``primary`` (canonical unit); raises ValueError if it overflows."""
    raw = primary / point.unit_factor / point.scaling.factor(ct_ratio, pt_ratio)
    return encode_bcd(raw, n_bytes=point.n_bytes, decimals=point.decimals, signed=point.signed)


def reply_for(sim: Dlt645SimMeter, frame: Frame) -> bytes:
    """The meter's answer to one request frame (normal or error reply)."""
    if frame.control == Control.READ_ADDRESS:
        return encode_address_reply(sim.address)
    if frame.control != Control.READ_DATA or len(frame.data) < 4:
        return encode_error_reply(sim.address, _ERR_OTHER)
    di = int.from_bytes(frame.data[:4], "little")
    clock = sim.profile.clock
    if clock is not None and di in (clock.date_di, clock.time_di):
        date_value, time_value = encode_meter_clock(sim.meter.meter_time(), utc_offset=sim.utc_offset)
        return encode_read_reply(sim.address, di, date_value if di == clock.date_di else time_value)
    point = next((p for p in sim.profile.points if p.di == di), None)
    if point is None:
        return encode_error_reply(sim.address, _ERR_NO_DATA)
    values = sim.meter.sample()
    try:
        value = bcd_value(point, values[point.metric], ct_ratio=sim.ct_ratio, pt_ratio=sim.pt_ratio)
    except (KeyError, ValueError):
        return encode_error_reply(sim.address, _ERR_OTHER)
    return encode_read_reply(sim.address, di, value)


def corrupt(reply: bytes, mode: str) -> bytes:
    """A garbled reply: wrong checksum byte, the same number of random bytes, or its first half (``cut``)."""
    if mode == "noise":
        return bytes(random.getrandbits(8) for _ in reply)
    if mode == "cut":
        return reply[:len(reply) // 2]
    return reply[:-2] + bytes([(reply[-2] + 1) & 0xFF]) + reply[-1:]


Send = Callable[[bytes], Awaitable[None]]


def address_matches(requested: str, address: str) -> bool:
    """Whether a meter at ``address`` answers a request to ``requested`` (``AA`` pairs match any two digits)."""
    return all(want in ("AA", have) for want, have in zip(
        (requested[i:i + 2] for i in range(0, 12, 2)), (address[i:i + 2] for i in range(0, 12, 2)), strict=True))


class Dlt645SimServer:
    """An asyncio TCP server for DL/T 645 meters (one bus per connection)."""

    def __init__(self, meters: list[Dlt645SimMeter], *, host: str = "127.0.0.1", port: int = 8899) -> None:
        """Register the meters by address; nothing listens until :meth:`start`."""
        self.host, self.port = host, port
        self.meters = {m.address: m for m in meters}
        self.requests = 0
        #: Serial: requests that arrived while a meter was still answering (two talkers on a half-duplex bus).
        self.collisions = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._serial_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on ``host:port``."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        logger.info("DL/T 645 simulator on %s:%d serving meters %s", self.host, self.port, sorted(self.meters))

    async def start_serial(self, line: SerialBusSettings, *, pace: bool = True) -> None:
        """Serve the meters on the serial port ``line.port`` (in the background, until :meth:`stop`).

        With ``pace`` every answer waits for the request's and its own wire time at ``line``'s baud rate.
        Raises :class:`edge.errors.DeviceConnectionError` when the port cannot be opened.
        """
        port = SerialPort.open(line)
        task = asyncio.get_running_loop().create_task(self._serve_serial(port, line if pace else None),
                                                      name=f"dlt645-sim[{line.port}]")
        self._serial_tasks.add(task)
        logger.info("DL/T 645 simulator on serial %s (%s) serving meters %s", line.port, line.line,
                    sorted(self.meters))

    async def _serve_serial(self, port: SerialPort, pace: SerialBusSettings | None) -> None:
        async def send(data: bytes) -> None:
            if port.buffer:  # the master spoke again before this answer went out
                self.collisions += 1
            port.write(data)

        buffer = b""
        try:
            while True:
                await port.wait()
                buffer += port.take()
                buffer = await self._handle(buffer, send, pace)
        except DeviceConnectionError as exc:
            logger.warning("DL/T 645 simulator: serial port lost: %s", exc)
        finally:
            port.close()

    async def _handle(self, buffer: bytes, send: Send, pace: SerialBusSettings | None) -> bytes:
        """Answer every complete request in ``buffer``; returns the bytes still waiting for more."""
        while True:
            try:
                frame, used = scan_frame(buffer)
            except FrameError as exc:
                logger.debug("simulator dropped a corrupt request: %s", exc)
                return b""
            buffer = buffer[used:]
            if frame is None:
                return buffer
            if not frame.is_reply:
                await self._answer(frame, send, pace=pace, request_len=used)

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        for task in list(self._serial_tasks):
            task.cancel()
        if self._serial_tasks:
            await asyncio.wait(list(self._serial_tasks), timeout=2.0)
            self._serial_tasks.clear()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        async def send(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        buffer = b""
        try:
            while data := await reader.read(4096):
                buffer = await self._handle(buffer + data, send, None)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _answer(self, frame: Frame, send: Send, *, pace: SerialBusSettings | None = None,
                      request_len: int = 0) -> None:
        self.requests += 1
        if frame.address == BROADCAST_ADDRESS:  # broadcast commands (time sync) are never answered
            targets = []
        elif frame.control == Control.READ_ADDRESS:
            targets = list(self.meters.values())
        else:
            targets = [m for a, m in self.meters.items() if address_matches(frame.address, a)]
        for sim in targets:
            faults = sim.meter.faults
            if faults.offline:
                continue
            reply = reply_for(sim, frame)
            if faults.reply_delay_s:
                await asyncio.sleep(faults.reply_delay_s)
            out = [reply]
            if faults.out_of_order and sim.last_reply is not None:
                out.insert(0, sim.last_reply)
            if faults.duplicate:
                out.append(reply)
            sim.last_reply = reply
            sim.replies += 1
            if faults.garbage is not None:
                out = [corrupt(r, faults.garbage) for r in out]
            wire = b"".join(b"\xfe\xfe\xfe\xfe" + sim.damage(r) for r in out)
            if pace is not None:  # a pty is instant: wait as long as the request and this answer take on a line
                await asyncio.sleep(pace.wire_time_s(request_len + len(wire)))
                request_len = 0
            await send(wire)


__all__ = ["Dlt645SimMeter", "Dlt645SimServer", "address_matches", "bcd_value", "corrupt", "reply_for"]

"""A DL/T 645-2007 TCP server: a transparent RS-485 gateway with simulated meters on its bus.

Each connection is the bus: requests are decoded with the same codec the agent uses (:mod:`edge.dlt645`),
every meter whose address matches answers (like on RS-485, a request for an unknown address gets no
reply). Reads of a data identifier the profile lists answer ``91H`` with the BCD value; unknown
identifiers answer ``D1H`` with error bit 02H (no data requested). ``04000101``/``04000102`` answer the
meter's clock, skew included. ``13H`` (read address) is answered by every meter for discovery.

Fault injection per meter (:class:`simulators.protocol.physics.Faults`): offline (silence), garbage
(bad checksum or random noise), duplicate replies, out-of-order replies (the previous answer first), and
a reply delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

from edge.dlt645 import (
    BROADCAST_ADDRESS,
    Control,
    Frame,
    address_to_bytes,
    encode_bcd,
    encode_error_reply,
    encode_frame,
    encode_meter_clock,
    encode_read_reply,
    scan_frame,
)
from edge.errors import FrameError
from edge.profile import Dlt645PointSpec, Dlt645Profile
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
    last_reply: bytes | None = field(default=None, repr=False)


def bcd_value(point: Dlt645PointSpec, primary: float, *, ct_ratio: float, pt_ratio: float) -> bytes:
    """The BCD bytes a meter shows for ``primary`` (canonical unit); raises ValueError if it overflows."""
    raw = primary / point.unit_factor / point.scaling.factor(ct_ratio, pt_ratio)
    return encode_bcd(raw, n_bytes=point.n_bytes, decimals=point.decimals, signed=point.signed)


def reply_for(sim: Dlt645SimMeter, frame: Frame) -> bytes:
    """The meter's answer to one request frame (normal or error reply)."""
    if frame.control == Control.READ_ADDRESS:
        return encode_frame(sim.address, Control.REPLY_ADDRESS, address_to_bytes(sim.address), preamble=False)
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
    """A garbled reply: wrong checksum byte, or the same number of random bytes."""
    if mode == "noise":
        return bytes(random.getrandbits(8) for _ in reply)
    return reply[:-2] + bytes([(reply[-2] + 1) & 0xFF]) + reply[-1:]


class Dlt645SimServer:
    """An asyncio TCP server for DL/T 645 meters (one bus per connection)."""

    def __init__(self, meters: list[Dlt645SimMeter], *, host: str = "127.0.0.1", port: int = 8899) -> None:
        """Register the meters by address; nothing listens until :meth:`start`."""
        self.host, self.port = host, port
        self.meters = {m.address: m for m in meters}
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on ``host:port``."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        logger.info("DL/T 645 simulator on %s:%d serving meters %s", self.host, self.port, sorted(self.meters))

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
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
        buffer = b""
        try:
            while data := await reader.read(4096):
                buffer += data
                while True:
                    try:
                        frame, used = scan_frame(buffer)
                    except FrameError as exc:
                        logger.debug("simulator dropped a corrupt request: %s", exc)
                        buffer = b""
                        break
                    buffer = buffer[used:]
                    if frame is None:
                        break
                    if not frame.is_reply:
                        await self._answer(frame, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _answer(self, frame: Frame, writer: asyncio.StreamWriter) -> None:
        self.requests += 1
        if frame.address == BROADCAST_ADDRESS or "AA" in frame.address:
            targets = list(self.meters.values()) if frame.control == Control.READ_ADDRESS else []
        else:
            targets = [m for a, m in self.meters.items() if a == frame.address]
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
            if faults.garbage is not None:
                out = [corrupt(r, faults.garbage) for r in out]
            writer.write(b"".join(b"\xfe\xfe\xfe\xfe" + r for r in out))
            await writer.drain()


__all__ = ["Dlt645SimMeter", "Dlt645SimServer", "bcd_value", "corrupt", "reply_for"]

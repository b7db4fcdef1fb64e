"""RS-485 serial buses: per-bus settings, an asyncio wrapper around pyserial, and the half-duplex bus.

An RS-485 bus is half-duplex and shared: every meter on it hears every request, and only one exchange may
be on the wire at a time. :class:`SerialBus` is the one object per configured bus; every reader of every
device on that bus (DL/T 645, Modbus RTU, CJ/T 188) goes through it, so requests are sent strictly in turn::

    reader A ─┐                     ┌─ quiet (turnaround) ─ write request ─ read until expect() has a frame
    reader B ─┼─▶ SerialBus.lock ──▶┤  or the timeout passes (retries), or the reply stops half-way
    reader C ─┘                     └─ (frame gap) ─▶ retry / error; then the next request

Devices take turns per poll: a reader holds :meth:`SerialBus.turn` for one device's whole poll (all its
requests), so each poll reads one meter within its own short window and the bus serves the devices one
after the other (FIFO). A device that never answers costs only its own ``timeout_s x (1 + retries)`` (its
poll stops at the first silent request); the others wait for their turn, not for the dead meter's next poll.

Raw protocols (DL/T 645, CJ/T 188) use :meth:`SerialBus.transact`; Modbus RTU uses pymodbus' own serial
client, which opens the port itself, so the bus hands the port over with :meth:`SerialBus.claim_port`
(ports are opened exclusively, one owner at a time).

:class:`SerialPort` reads with ``loop.add_reader`` on the port's file descriptor (POSIX; on Windows a 2 ms
poll), so a waiting request costs no thread and no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Final, Literal, TypeVar

import serial
from pydantic import BaseModel, ConfigDict, Field

from edge.errors import (
    BcdError,
    ChecksumError,
    DeviceConnectionError,
    DeviceError,
    DeviceTimeoutError,
    FrameEndError,
    FrameSyncError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``expect(buffer) -> (result or None, bytes consumed)``: see :meth:`SerialBus.transact`.
Expect = Callable[[bytes], tuple[T | None, int]]

#: Errors that mean "the reply was damaged on the wire": worth sending the request again.
WIRE_ERRORS: Final[tuple[type[DeviceError], ...]] = (ChecksumError, FrameEndError, FrameSyncError, BcdError)

_MIN_FRAME_GAP_S: Final = 0.05   # USB-RS485 adapters deliver bytes in bursts up to 16 ms apart (FTDI latency)
_MIN_TURNAROUND_S: Final = 0.00175  # Modbus RTU's fixed 3.5-character interval above 19200 baud
_POLL_S: Final = 0.002

if os.name == "posix":
    import termios

    _PortSetupError: tuple[type[Exception], ...] = (OSError, ValueError, termios.error)
else:  # pragma: no cover - Windows has no termios
    _PortSetupError = (OSError, ValueError)


def _is_pty(port: str) -> bool:
    """Whether ``port`` is (a link to) a Unix pseudo-terminal (``/dev/pts/N``)."""
    return os.path.realpath(port).startswith("/dev/pts/")


class SerialBusSettings(BaseModel):
    """One RS-485 bus as ``edge.yaml`` describes it (``serial_buses:``); devices name it by ``id``.

    ``baudrate`` and ``parity`` have no default on purpose: a wrong guess looks exactly like a dead meter.
    DL/T 645-2007 meters usually run 2400 baud 8E1, Modbus RTU meters whatever their menu says (often 9600 8N1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    port: Annotated[str, Field(min_length=1)]
    baudrate: Annotated[int, Field(ge=300, le=921_600)]
    parity: Literal["N", "E", "O"]
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1
    #: From the last request byte on the wire to the complete reply (the request's own wire time is added).
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    #: Extra attempts after a timeout or a reply damaged on the wire (checksum, end byte, cut-off frame).
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    #: Silence kept on the bus after each exchange before the next request (default 3.5 character times).
    turnaround_s: Annotated[float, Field(ge=0, le=5)] | None = None
    #: Silence after which a half-received reply counts as cut off (default 3.5 characters, at least 50 ms).
    frame_gap_s: Annotated[float, Field(gt=0, le=5)] | None = None

    @property
    def char_time_s(self) -> float:
        """Wire time of one character: start bit, data bits, parity bit, stop bits (11 bits for 8E1)."""
        bits = 1 + self.bytesize + (self.parity != "N") + self.stopbits
        return bits / self.baudrate

    def wire_time_s(self, n_bytes: int) -> float:
        """How long ``n_bytes`` occupy the line at this baud rate and framing."""
        return n_bytes * self.char_time_s

    @property
    def turnaround(self) -> float:
        """Effective quiet time between exchanges, in seconds."""
        if self.turnaround_s is not None:
            return self.turnaround_s
        return max(3.5 * self.char_time_s, _MIN_TURNAROUND_S)

    @property
    def frame_gap(self) -> float:
        """Effective end-of-reply silence, in seconds."""
        if self.frame_gap_s is not None:
            return self.frame_gap_s
        return max(3.5 * self.char_time_s, _MIN_FRAME_GAP_S)

    @property
    def line(self) -> str:
        """``2400 8E1``-style summary for logs and birth messages."""
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


class SerialPort:
    """A pyserial port read without blocking the event loop; bytes collect in :attr:`buffer`."""

    def __init__(self, port: serial.Serial, name: str) -> None:
        """Wrap an open, non-blocking pyserial port; use :meth:`open`."""
        self._serial = port
        self.name = name
        self.buffer = bytearray()
        self.error: OSError | None = None
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._poller: asyncio.Task[None] | None = None
        self._fd: int | None = None
        if os.name == "posix":
            # pyserial opened the descriptor non-blocking; plain os.read/os.write skip its select() per call
            self._fd = port.fileno()
            self._loop.add_reader(self._fd, self._read_ready)
        else:  # no selectable serial handles: poll
            self._poller = self._loop.create_task(self._poll(), name=f"serial[{name}].poll")

    @classmethod
    def open(cls, settings: SerialBusSettings, *, device_id: str | None = None) -> SerialPort:
        """Open ``settings.port`` exclusively with its line settings; call from the event loop.

        Raises:
            DeviceConnectionError: the port does not exist, is busy or may not be opened by this user.
        """
        parity = settings.parity
        try:
            try:
                port = serial.Serial(settings.port, baudrate=settings.baudrate, bytesize=settings.bytesize,
                                     parity=parity, stopbits=settings.stopbits, timeout=0,
                                     write_timeout=max(1.0, settings.timeout_s), exclusive=True)
            except _PortSetupError:
                # a pty has no parity (Linux clears PARENB) and some kernels refuse to set it a second time
                if parity == "N" or not _is_pty(settings.port):
                    raise
                port = serial.Serial(settings.port, baudrate=settings.baudrate, bytesize=settings.bytesize,
                                     parity="N", stopbits=settings.stopbits, timeout=0,
                                     write_timeout=max(1.0, settings.timeout_s), exclusive=True)
        except _PortSetupError as exc:
            raise DeviceConnectionError(
                f"cannot open serial port {settings.port} (bus {settings.id}): {exc}; check the device name "
                f"(ls /dev/ttyUSB* /dev/serial/by-id), that no other program holds the port and that this user "
                f"may open it (group dialout)", device_id=device_id) from None
        return cls(port, settings.port)

    def _read_ready(self) -> None:
        try:
            data = os.read(self._fd, 4096) if self._fd is not None else self._serial.read(self._serial.in_waiting or 1)
        except BlockingIOError:
            return
        except OSError as exc:  # serial.SerialException is an OSError: adapter unplugged, port gone
            self._fail(exc)
            return
        if data:
            self.buffer += data
            self._arrived.set()

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        self._arrived.set()
        if self._poller is None:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(self._serial.fileno())

    async def _poll(self) -> None:
        while self.error is None:
            self._read_ready()
            await asyncio.sleep(_POLL_S)

    async def wait(self) -> None:
        """Return once :attr:`buffer` holds bytes (possibly at once); raises when the port failed."""
        while not self.buffer:
            if self.error is not None:
                raise DeviceConnectionError(f"serial port {self.name} failed: {self.error}")
            self._arrived.clear()
            await self._arrived.wait()

    def take(self) -> bytes:
        """Remove and return everything received so far."""
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (the UART drains it at the line rate)."""
        try:
            sent = os.write(self._fd, data) if self._fd is not None else 0
            if sent < len(data):  # the driver's buffer is full (or not POSIX): let pyserial wait for room
                self._serial.write(data[sent:])
        except OSError as exc:
            self._fail(exc)
            raise DeviceConnectionError(f"cannot write to serial port {self.name}: {exc}") from None

    def discard_input(self) -> int:
        """Drop bytes nobody asked for (late replies, line noise); returns how many."""
        before = -1
        while len(self.buffer) != before and self.error is None:  # read until the driver has nothing more
            before = len(self.buffer)
            self._read_ready()
        return len(self.take())

    def close(self) -> None:
        """Stop reading and close the port."""
        if self._poller is not None:
            self._poller.cancel()
        else:
            with contextlib.suppress(OSError, ValueError):
                self._loop.remove_reader(self._serial.fileno())
        with contextlib.suppress(OSError):
            self._serial.close()


class SerialBus:
    """One RS-485 bus shared by every device configured on it (see the module docstring).

    Counters for status and benchmarks: :attr:`requests`, :attr:`timeouts`, :attr:`retries_used`,
    :attr:`discarded_bytes`, :attr:`bytes_written`, :attr:`bytes_read` (reply bytes handed to ``expect``).
    """

    def __init__(self, settings: SerialBusSettings) -> None:
        """Remember the settings; the port opens on the first request."""
        self.settings = settings
        self.lock = asyncio.Lock()
        self.poll_lock = asyncio.Lock()
        self._port: SerialPort | None = None
        self._release_other: Callable[[], None] | None = None
        self._owner: object | None = None
        self._quiet_until = 0.0
        self.requests = 0
        self.timeouts = 0
        self.retries_used = 0
        self.discarded_bytes = 0
        self.bytes_written = 0
        self.bytes_read = 0

    def __repr__(self) -> str:
        return f"SerialBus({self.settings.id}: {self.settings.port} {self.settings.line})"

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[float]:
        """Hold the bus for one device's whole poll (FIFO among devices); yields the seconds waited for it.

        Only readers take it, around all the requests of one poll; :meth:`transact` still locks each
        exchange, so a protocol that polls with one request need not take a turn.
        """
        started = time.monotonic()
        async with self.poll_lock:
            yield time.monotonic() - started

    @contextlib.asynccontextmanager
    async def exchange(self) -> AsyncIterator[None]:
        """Hold the bus for one exchange: wait for the lock and the turnaround silence, keep it afterwards."""
        async with self.lock:
            quiet = self._quiet_until - time.monotonic()
            if quiet > 0:
                await asyncio.sleep(quiet)
            try:
                yield
            finally:
                self._quiet_until = time.monotonic() + self.settings.turnaround

    def claim_port(self, owner: object, release: Callable[[], None]) -> None:
        """Make ``owner`` the port's user (call under :attr:`lock`); the previous owner's port is closed.

        Modbus RTU's pymodbus client opens the port itself; a bus that also carries DL/T 645 or CJ/T 188
        meters (same line settings) hands the port back and forth through this.
        """
        if self._owner is owner:
            return
        if self._release_other is not None:
            self._release_other()
        self._owner, self._release_other = owner, release

    def _raw_port(self, device_id: str | None) -> SerialPort:
        if self._port is not None and self._port.error is None:
            return self._port
        self._close_raw()
        self.claim_port(self, self._close_raw)
        self._port = SerialPort.open(self.settings, device_id=device_id)
        logger.info("serial bus %s: opened %s at %s", self.settings.id, self.settings.port, self.settings.line)
        return self._port

    def _close_raw(self) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None
        if self._owner is self:
            self._owner = self._release_other = None

    async def transact(self, request: bytes, *, expect: Expect[T], timeout_s: float | None = None,
                       device_id: str | None = None,
                       retry_on: tuple[type[Exception], ...] = WIRE_ERRORS) -> T:
        """Send ``request`` and return what ``expect`` makes of the reply.

        ``expect(buffer)`` sees every byte received since the request was written and returns
        ``(None, n)`` to wait for more after dropping the first ``n`` bytes (noise, a stale frame), or
        ``(value, n)`` when the reply is complete; it raises a :class:`DeviceError` for a corrupt reply.

        Raises:
            DeviceTimeoutError: no complete reply within the timeout, or the reply stopped half-way (after
                ``retries`` extra attempts).
            DeviceConnectionError: the port cannot be opened or failed (it is reopened next time).
            Exception: whatever ``expect`` raised; instances of ``retry_on`` only after the last attempt.
        """
        timeout = timeout_s if timeout_s is not None else self.settings.timeout_s
        attempts = 1 + self.settings.retries
        retryable: tuple[type[Exception], ...] = (DeviceTimeoutError, *retry_on)
        async with self.exchange():
            for attempt in range(attempts):
                port = self._raw_port(device_id)
                try:
                    return await self._attempt(port, request, expect, timeout, device_id)
                except retryable as exc:
                    if attempt + 1 == attempts:
                        raise
                    self.retries_used += 1
                    logger.debug("bus %s: %s; sending again (%d/%d)", self.settings.id, exc, attempt + 1,
                                 self.settings.retries)
                    await asyncio.sleep(self.settings.turnaround)
                except DeviceConnectionError:
                    self._close_raw()
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _attempt(self, port: SerialPort, request: bytes, expect: Expect[T], timeout: float,
                       device_id: str | None) -> T:
        self.discarded_bytes += port.discard_input()
        port.write(request)
        self.requests += 1
        self.bytes_written += len(request)
        deadline = time.monotonic() + self.settings.wire_time_s(len(request)) + timeout
        received = bytearray()
        while True:
            if received:
                value, used = expect(bytes(received))
                if value is not None:
                    self.bytes_read += used
                    return value
                if used:
                    self.discarded_bytes += used
                    del received[:used]
            remaining = deadline - time.monotonic()
            wait = min(remaining, self.settings.frame_gap) if received else remaining
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    await port.wait()
            except TimeoutError:
                self.timeouts += 1
                if received:
                    self.discarded_bytes += len(received)
                    raise DeviceTimeoutError(
                        f"reply on bus {self.settings.id} stopped after {len(received)} byte(s) without a complete "
                        f"frame (cut off or garbled)", device_id=device_id) from None
                raise DeviceTimeoutError(f"no reply on bus {self.settings.id} within {timeout:g}s",
                                         device_id=device_id) from None
            received += port.take()

    async def collect(self, request: bytes, *, expect: Expect[T], window_s: float,
                      device_id: str | None = None) -> list[T]:
        """Send ``request`` once and gather every answer ``expect`` recognises within ``window_s``.

        For broadcasts and discovery (several meters may answer one wildcard request). Corrupt frames are
        logged and skipped, not raised.
        """
        found: list[T] = []
        async with self.exchange():
            port = self._raw_port(device_id)
            self.discarded_bytes += port.discard_input()
            port.write(request)
            self.requests += 1
            self.bytes_written += len(request)
            deadline = time.monotonic() + self.settings.wire_time_s(len(request)) + window_s
            received = bytearray()
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    async with asyncio.timeout(remaining):
                        await port.wait()
                except TimeoutError:
                    break
                received += port.take()
                while received:
                    try:
                        value, used = expect(bytes(received))
                    except DeviceError as exc:
                        logger.info("bus %s: skipped a damaged answer: %s", self.settings.id, exc)
                        self.discarded_bytes += len(received)
                        received.clear()
                        break
                    del received[:used]
                    if value is None:
                        break
                    self.bytes_read += used
                    found.append(value)
        return found

    def close(self) -> None:
        """Close the port (and release it from a Modbus client holding it)."""
        self._close_raw()
        if self._release_other is not None:
            self._release_other()
            self._owner = self._release_other = None


__all__ = ["WIRE_ERRORS", "Expect", "SerialBus", "SerialBusSettings", "SerialPort"]

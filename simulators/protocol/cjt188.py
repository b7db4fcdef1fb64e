"""A CJ/T 188 simulated bus of water, gas and heat meters, served over TCP or a real serial port.

Each TCP connection, or the serial port, is the line: requests are decoded with the agent's own codec
(:mod:`edge.cjt188`), and the meter whose type family and address match answers a 901FH read with its
current data in the layout and edition of its profile (a request for an unknown address gets no reply, as
on a real line). The broadcast read-address request (``03H`` to ``AA..AA``) is answered by every meter.

The values come from the park simulator's physics (:mod:`simulators._devices`): a gas or water meter
is a :class:`GasMeter` (a flow following a daily shape, integrated into the volume register), a heat meter
a :class:`HeatMeter` (thermal power on a hot-water loop at constant flow, supply and return temperatures,
the energy register). They are stepped by the wall clock (or the clock a test passes) at each request, so
registers grow exactly as the flows and powers say.

Faults per meter: everything of :class:`simulators.protocol.physics.Faults` that applies (``offline``:
silence; ``garbage``: bad checksum or random bytes; ``duplicate``, ``out_of_order``, ``reply_delay_s``,
``stuck``, ``clock_skew_s``), plus :attr:`Cjt188SimMeter.wire_fault` (``checksum``, ``noise``, ``cut``:
the frame stops half-way; for every reply or the next ``wire_fault_replies``) and
:attr:`Cjt188SimMeter.error_reply` (the meter answers ``C1H``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from edge.cjt188 import (
    BROADCAST_ADDRESS,
    DI_CURRENT_DATA,
    Control,
    DiOrder,
    Frame,
    di_to_bytes,
    encode_frame,
    meter_family,
    scan_frame,
)
from edge.cjt188_data import CurrentData, MeterStatus, Quantity, encode_current_data_reply
from edge.errors import DeviceConnectionError, FrameError
from edge.profile import Cjt188Profile, builtin_profiles
from edge.serial_bus import SerialBusSettings, SerialPort
from simulators import _physics as phy
from simulators._device_base import HOUR_S, StepContext
from simulators._device_specs import GasMeterSpec, HeatMeterSpec
from simulators._devices import GasMeter, HeatMeter
from simulators.protocol.physics import Clock, Faults, wall_clock

logger = logging.getLogger(__name__)

#: Heat carried by one m3 of water per kelvin (4.186 kJ/(kg K) x ~1000 kg/m3), kWh/(m3 K).
KWH_PER_M3_K = 1.163
#: A XXXXXX.XX register shows 0 again one step after 999999.99.
REGISTER_SPAN = 1_000_000.0


class MeterPhysics(Protocol):
    """What a simulated CJ/T 188 meter shows: its record fields (in canonical units) at ``now``."""

    def sample(self, now: datetime) -> dict[str, Quantity]:
        """Advance to ``now`` and return every field of the meter's 901FH record."""
        ...


class _Stepper:
    """Steps a park-simulator device model by wall-clock intervals, in the park's local time."""

    def __init__(self, utc_offset: timedelta, start: datetime) -> None:
        self.zone = timezone(utc_offset)
        self.last = start

    def context(self, now: datetime) -> StepContext | None:
        """The interval since the last sample, or None when no time passed."""
        dt_s = (now - self.last).total_seconds()
        if dt_s <= 0:
            return None
        mid = self.last + (now - self.last) / 2
        local = mid.astimezone(self.zone)
        self.last = now
        return StepContext(ts=now, mid=mid, local_hour=local.hour + local.minute / 60 + local.second / 3600,
                           is_weekend=local.weekday() >= 5, dt_s=dt_s)


class VolumePhysics:
    """A gas or water meter: :class:`GasMeter`'s shaped flow integrated into the volume register.

    ``working_per_standard`` (gas with a volume converter) turns the standard register into the line
    (working) condition one, reported as the ``working_volume`` field.
    """

    def __init__(self, spec: GasMeterSpec, *, start: datetime, utc_offset: timedelta = timedelta(hours=8),
                 seed: int = 1, working_per_standard: float = 0.91) -> None:
        """Build the model; ``spec.initial_registers['gas_volume']`` sets the register's start."""
        self.model = GasMeter(spec, seed, 60.0)
        self.stepper = _Stepper(utc_offset, start)
        self.working_per_standard = working_per_standard
        self.settlement_m3 = self.model.register.reading
        self.flow_m3_per_h = 0.0

    def sample(self, now: datetime) -> dict[str, Quantity]:
        """Current and settlement-day volume, flow, working-condition volume."""
        ctx = self.stepper.context(now)
        if ctx is not None:
            self.flow_m3_per_h = self.model.step(ctx)["gas_flow"]
        volume = self.model.register.reading % REGISTER_SPAN
        return {"current_volume": Quantity(round(volume, 2), "m3"),
                "settlement_volume": Quantity(round(self.settlement_m3, 2), "m3"),
                "working_volume": Quantity(round(volume * self.working_per_standard, 2), "m3")}


class HeatPhysics:
    """A heat meter: :class:`HeatMeter`'s power and temperatures, the loop's flow and volume, working time."""

    def __init__(self, spec: HeatMeterSpec, *, start: datetime, utc_offset: timedelta = timedelta(hours=8),
                 seed: int = 1, energy_unit: Literal["kWh", "MWh", "GJ"] = "kWh") -> None:
        """Build the model; the heat registers are shown in ``energy_unit`` (the meter's unit code)."""
        self.model = HeatMeter(spec, seed, 60.0)
        self.stepper = _Stepper(utc_offset, start)
        self.energy_unit = energy_unit
        self.settlement_gj = self.model.register.reading
        self.flow_m3_per_h = spec.peak_power_kw / (KWH_PER_M3_K * spec.design_delta_t_c)  # constant-flow loop
        self.volume = phy.Register(round(self.flow_m3_per_h * 24 * 30, 2), None)
        self.working_h = 1000.0
        self.values: dict[str, float] = {"heat_power": 0.0, "supply_temperature": spec.supply_temperature_c,
                                         "return_temperature": spec.supply_temperature_c}

    def _energy(self, gj: float) -> Quantity:
        factor = {"kWh": 1e6 / 3600.0, "MWh": 1e3 / 3600.0, "GJ": 1.0}[self.energy_unit]
        return Quantity(round(gj * factor, 2) % REGISTER_SPAN, self.energy_unit)  # XXXXXX.XX wraps, like a meter

    def sample(self, now: datetime) -> dict[str, Quantity]:
        """Every field of the heat record; the energy registers in :attr:`energy_unit`."""
        ctx = self.stepper.context(now)
        if ctx is not None:
            self.values = self.model.step(ctx)
            self.volume.add(self.flow_m3_per_h * ctx.dt_s / HOUR_S)
            self.working_h += ctx.dt_s / HOUR_S
        v = self.values
        return {
            "settlement_heat": self._energy(self.settlement_gj),
            "current_heat": self._energy(self.model.register.reading),
            "heat_power": Quantity(round(v["heat_power"], 2), "kW"),
            "flow_rate": Quantity(round(self.flow_m3_per_h, 4), "m3/h"),
            "cumulative_volume": Quantity(round(self.volume.reading, 2), "m3"),
            "supply_temperature": Quantity(round(v["supply_temperature"], 2), "degC"),
            "return_temperature": Quantity(round(v["return_temperature"], 2), "degC"),
            "working_time": Quantity(float(int(self.working_h)), "h"),
        }


@dataclass
class Cjt188SimMeter:
    """One meter on the simulated line."""

    address: str
    profile: Cjt188Profile
    physics: MeterPhysics
    clock: Clock = wall_clock
    utc_offset: timedelta = timedelta(hours=8)
    faults: Faults = field(default_factory=Faults)
    status: MeterStatus = field(default_factory=MeterStatus)
    #: Damage replies on the wire: wrong checksum, random bytes, or a frame cut off half-way.
    wire_fault: Literal["checksum", "noise", "cut"] | None = None
    #: With ``wire_fault``: damage only the next n replies (None: every reply).
    wire_fault_replies: int | None = None
    #: Answer reads with the error reply ``C1H`` (a meter that refuses the request).
    error_reply: bool = False
    replies: int = 0
    last_reply: bytes | None = field(default=None, repr=False)
    _last: dict[str, Quantity] = field(default_factory=dict, init=False, repr=False)

    def record(self) -> CurrentData:
        """The meter's current data now (frozen while ``faults.stuck``)."""
        now = self.clock()
        if not (self.faults.stuck and self._last):
            self._last = self.physics.sample(now)
        local = (now + timedelta(seconds=self.faults.clock_skew_s)).astimezone(timezone(self.utc_offset))
        values = {spec.name: self._last[spec.name] for spec in self.profile.layout() if spec.kind == "value"}
        return CurrentData(meter_type=self.profile.meter_type, address=self.address, ser=0, values=values,
                           meter_time=local.replace(tzinfo=None, microsecond=0), status=self.status)

    def damage(self, reply: bytes) -> bytes:
        """``reply`` as it leaves the meter, after :attr:`wire_fault` (if any applies)."""
        if self.wire_fault is None or self.wire_fault_replies == 0:
            return reply
        if self.wire_fault_replies is not None:
            self.wire_fault_replies -= 1
        return corrupt(reply, self.wire_fault)


def corrupt(reply: bytes, mode: str) -> bytes:
    """A garbled reply: wrong checksum byte, the same number of random bytes, or its first half (``cut``)."""
    if mode == "noise":
        return bytes(random.getrandbits(8) for _ in reply)
    if mode == "cut":
        return reply[:len(reply) // 2]
    return reply[:-2] + bytes([(reply[-2] + 1) & 0xFF]) + reply[-1:]


def reply_for(sim: Cjt188SimMeter, frame: Frame) -> bytes | None:
    """The meter's answer to one request frame, or None when a real meter would stay silent."""
    order = sim.profile.wire_di_order
    if frame.control == Control.READ_ADDRESS:
        return encode_frame(sim.profile.meter_type, sim.address, Control.REPLY_ADDRESS, frame.data[:3], preamble=False)
    if frame.control != Control.READ_DATA:
        return None
    if sim.error_reply or frame.data[:2] not in (di_to_bytes(DI_CURRENT_DATA, o) for o in DiOrder):
        ser = frame.data[2:3] or b"\x00"
        return encode_frame(sim.profile.meter_type, sim.address, Control.ERROR_DATA, ser + sim.status.raw,
                            preamble=False)
    try:
        return encode_current_data_reply(sim.record(), sim.profile.layout(), order=order)
    except ValueError as exc:  # a value beyond its BCD digits: a real meter would show garbage; refuse instead
        logger.warning("simulated meter %s cannot encode its record: %s", sim.address, exc)
        return encode_frame(sim.profile.meter_type, sim.address, Control.ERROR_DATA, b"\x00" + sim.status.raw,
                            preamble=False)


Send = Callable[[bytes], Awaitable[None]]


class Cjt188SimServer:
    """CJ/T 188 meters on one simulated line: TCP (one line per connection) and/or a serial port."""

    def __init__(self, meters: list[Cjt188SimMeter], *, host: str = "127.0.0.1", port: int = 9188) -> None:
        """Register the meters by address; nothing listens until :meth:`start` or :meth:`start_serial`."""
        self.host, self.port = host, port
        self.meters = {m.address.upper(): m for m in meters}
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._serial_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen on ``host:port``."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        logger.info("CJ/T 188 simulator on %s:%d serving meters %s", self.host, self.port, sorted(self.meters))

    async def start_serial(self, line: SerialBusSettings, *, pace: bool = True) -> None:
        """Serve the meters on the serial port ``line.port`` (in the background, until :meth:`stop`).

        With ``pace`` every answer waits for the request's and its own wire time at ``line``'s baud rate (a
        pty moves bytes instantly). Raises :class:`edge.errors.DeviceConnectionError` if the port will not open.
        """
        port = SerialPort.open(line)
        task = asyncio.get_running_loop().create_task(self._serve_serial(port, line if pace else None),
                                                      name=f"cjt188-sim[{line.port}]")
        self._serial_tasks.add(task)
        logger.info("CJ/T 188 simulator on serial %s (%s) serving meters %s", line.port, line.line,
                    sorted(self.meters))

    async def stop(self) -> None:
        """Stop listening and drop every connection and port."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._serial_tasks):
            task.cancel()
        pending = [*self._handlers, *self._serial_tasks]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self._serial_tasks.clear()
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

    async def _serve_serial(self, port: SerialPort, pace: SerialBusSettings | None) -> None:
        async def send(data: bytes) -> None:
            port.write(data)

        buffer = b""
        try:
            while True:
                await port.wait()
                buffer = await self._handle(buffer + port.take(), send, pace)
        except DeviceConnectionError as exc:
            logger.warning("CJ/T 188 simulator: serial port lost: %s", exc)
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
                await self._answer(frame, send, pace, used)

    def _targets(self, frame: Frame) -> list[Cjt188SimMeter]:
        if frame.address == BROADCAST_ADDRESS:
            return list(self.meters.values()) if frame.control == Control.READ_ADDRESS else []
        sim = self.meters.get(frame.address)
        if sim is None or meter_family(frame.meter_type) != meter_family(sim.profile.meter_type):
            return []
        return [sim]

    async def _answer(self, frame: Frame, send: Send, pace: SerialBusSettings | None, request_len: int) -> None:
        self.requests += 1
        for sim in self._targets(frame):
            faults = sim.faults
            if faults.offline:
                continue
            reply = reply_for(sim, frame)
            if reply is None:
                continue
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
            wire = b"".join(b"\xfe\xfe" + sim.damage(r) for r in out)
            if pace is not None:
                await asyncio.sleep(pace.wire_time_s(request_len + len(wire)))
                request_len = 0
            await send(wire)


@dataclass
class Cjt188Line:
    """A simulated line of CJ/T 188 meters and the ``edge.yaml`` device entries that poll it."""

    server: Cjt188SimServer
    meters: dict[str, Cjt188SimMeter]
    entries: list[dict[str, Any]]

    def device_entries(self, *, poll_interval_s: float = 15.0, timeout_s: float = 2.0,
                       bus: str | None = None) -> list[dict[str, Any]]:
        """``edge.yaml`` device entries: over TCP, or over the serial bus ``bus`` of ``serial_buses``."""
        out = []
        for entry in self.entries:
            transport = dict(entry["transport"])
            if bus is not None:
                transport = {"kind": "cjt188_serial", "bus": bus, "address": transport["address"]}
            transport["timeout_s"] = timeout_s
            out.append({**entry, "transport": transport, "poll_interval_s": poll_interval_s})
        return out


GAS_PROFILE, HEAT_PROFILE, WATER_PROFILE = "cjt188_2004_gas", "cjt188_2018_heat", "cjt188_2004_water"


def build_cjt188_line(*, gas: int = 1, heat: int = 1, water: int = 0, host: str = "127.0.0.1", port: int = 9188,
                      clock: Clock = wall_clock, seed: int = 1, prefix: str = "c",
                      heat_unit: Literal["kWh", "MWh", "GJ"] = "kWh") -> Cjt188Line:
    """Gas, heat and water meters with the park simulator's physics on one line (deterministic per seed).

    Device ids are ``{prefix}-gas-001``, ``{prefix}-heat-001``, ``{prefix}-water-001``; addresses encode the
    family (``00000000300001`` is the first gas meter). Heat meters report their registers in ``heat_unit``.
    """
    profiles = builtin_profiles()
    start = clock()
    meters: dict[str, Cjt188SimMeter] = {}
    entries: list[dict[str, Any]] = []
    plan = [("gas", GAS_PROFILE, 0x30, gas), ("heat", HEAT_PROFILE, 0x20, heat), ("water", WATER_PROFILE, 0x10, water)]
    for family, name, type_code, count in plan:
        profile = profiles[name]
        assert isinstance(profile, Cjt188Profile)
        for i in range(count):
            device_id = f"{prefix}-{family}-{i + 1:03d}"
            physics: MeterPhysics
            if family == "heat":
                spec_h = HeatMeterSpec(id=device_id, kind="heat_meter", peak_power_kw=250.0 + 50.0 * i,
                                       base_power_kw=40.0, supply_temperature_c=80.0,
                                       initial_registers={"heat_energy": 400.0 + 10.0 * i})
                physics = HeatPhysics(spec_h, start=start, seed=seed + i, energy_unit=heat_unit)
            else:
                spec_g = GasMeterSpec(id=device_id, kind="gas_meter", base_flow_m3_per_h=2.0,
                                      peak_flow_m3_per_h=30.0 + 5.0 * i,
                                      initial_registers={"gas_volume": 12000.0 + 100.0 * i})
                physics = VolumePhysics(spec_g, start=start, seed=seed + i)
            address = f"{type_code:010X}{i + 1:04d}"
            meters[device_id] = Cjt188SimMeter(address, profile, physics, clock=clock)
            entries.append({"id": device_id, "profile": name, "metering_level": 2,
                            "transport": {"kind": "cjt188_tcp", "host": host, "port": port, "address": address}})
    server = Cjt188SimServer(list(meters.values()), host=host, port=port)
    return Cjt188Line(server=server, meters=meters, entries=entries)


def cli_line(meters: int, *, host: str = "127.0.0.1", port: int = 9188) -> Cjt188Line:
    """``parkpulse protocol-sim --cjt188 N``: N meters on one line, gas, heat and water in turn."""
    return build_cjt188_line(gas=(meters + 2) // 3, heat=(meters + 1) // 3, water=meters // 3, host=host, port=port,
                             prefix="m")


__all__ = [
    "Cjt188Line",
    "Cjt188SimMeter",
    "Cjt188SimServer",
    "HeatPhysics",
    "MeterPhysics",
    "VolumePhysics",
    "build_cjt188_line",
    "cli_line",
    "corrupt",
    "reply_for",
]

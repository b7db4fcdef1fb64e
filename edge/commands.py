"""Edge command handling: validate a setpoint command, apply it through the device's writer, ack it.

Each device session whose profile has a ``writable:`` section subscribes (QoS 1, with the device's own
credentials) to ``parkpulse/v1/{park}/{device}/cmd`` and hands every message to its
:class:`CommandHandler`, which answers exactly once per ``command_id`` on ``…/ack``:

1. undecodable -> ``rejected invalid_command`` when a command id can be recovered from the bytes (else the
   message is only logged and counted: there is nothing to correlate an ack with);
2. a command id seen before (QoS 1 redelivery, a dispatcher resend) -> the *same* ack again, no second write;
3. :func:`check_command` (pure): names another park/device -> ``invalid_command``; past ``expires_at`` ->
   ``expired``; no register for the action -> ``unsupported_action``; local override -> ``override_active``;
   outside the device's own limits or the site's safety limits -> ``out_of_range``;
4. the writer writes and reads back: ``applied`` with the read-back value, or ``device_offline`` /
   ``write_failed``.

A setpoint with ``hold_until`` is released (mode register to local) when that time passes, unless a newer
command arrived; :meth:`CommandHandler.run` keeps that timer. Every command, ack and hold release is
written to the local audit (:mod:`edge.commands_store`) before the ack leaves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from edge.commands_config import DeviceLimits
from edge.commands_store import CommandAudit
from edge.errors import CommandAuditError, DeviceOfflineError, SetpointWriteError
from edge.profile_writable import WritableSection
from edge.writers import SetpointWriter
from schemas.commands import (
    ACTION_UNITS,
    AckStatus,
    CommandAction,
    CommandMessage,
    InvalidCommandError,
    RejectCode,
    build_ack,
    decode_command,
    encode_ack,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
_COMMAND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
RELEASE_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command is refused, as the ack says it."""

    code: RejectCode
    detail: str


def recover_command_id(raw: bytes) -> str | None:
    """The ``command_id`` of an undecodable command, if the bytes are JSON with a valid one; else None."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    value = data.get("command_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and _COMMAND_ID.fullmatch(value) else None


def check_command(message: CommandMessage, *, park_id: str, device_id: str, now: datetime,
                  writable: WritableSection, limits: DeviceLimits, overridden: str | None) -> Rejection | None:
    """Pure validation of a decoded command for this device (see the module docstring, step 3).

    ``overridden`` is the reason of a local override in force, None when there is none.
    """
    return (_check_address(message, park_id, device_id) or _check_time(message, now)
            or _check_action(message, device_id, writable, overridden) or _check_value(message, writable, limits))


def _check_address(message: CommandMessage, park_id: str, device_id: str) -> Rejection | None:
    if message["park"] != park_id or message["device"] != device_id:
        return Rejection(RejectCode.INVALID_COMMAND, f"addressed to {message['park']}/{message['device']}, "
                                                     f"this is {park_id}/{device_id}")
    return None


def _check_time(message: CommandMessage, now: datetime) -> Rejection | None:
    if message["expires_at"] <= now:
        return Rejection(RejectCode.EXPIRED, f"expired at {message['expires_at'].isoformat()}, "
                                             f"arrived {now.isoformat()}")
    hold = message["hold_until"]
    if hold is not None and hold <= now:
        return Rejection(RejectCode.EXPIRED, f"hold_until {hold.isoformat()} has already passed")
    return None


def _check_action(message: CommandMessage, device_id: str, writable: WritableSection,
                  overridden: str | None) -> Rejection | None:
    action = CommandAction(message["action"])
    if not writable.supports(action):
        offered = ", ".join(a.value for a in CommandAction if writable.supports(a))
        return Rejection(RejectCode.UNSUPPORTED_ACTION, f"{device_id} supports {offered}, not {action.value}")
    if overridden is not None:
        return Rejection(RejectCode.OVERRIDE_ACTIVE, f"local override in force: {overridden}")
    return None


def _check_value(message: CommandMessage, writable: WritableSection, limits: DeviceLimits) -> Rejection | None:
    action = CommandAction(message["action"])
    if action is CommandAction.RELEASE:
        return None
    value, unit = message["value"], ACTION_UNITS[action]
    reg = writable.setpoints()[action]
    if not reg.minimum <= value <= reg.maximum:
        return Rejection(RejectCode.OUT_OF_RANGE, f"{value:g} {unit} is outside the device's limits "
                                                  f"[{reg.minimum:g}, {reg.maximum:g}] {unit}")
    local = limits.get(action)
    if local is not None and not local.allows(value):
        low = "-inf" if local.minimum is None else f"{local.minimum:g}"
        high = "+inf" if local.maximum is None else f"{local.maximum:g}"
        return Rejection(RejectCode.OUT_OF_RANGE, f"{value:g} {unit} is outside the site's safety limits "
                                                  f"[{low}, {high}] {unit}")
    return None


@dataclass
class CommandStats:
    """What the handler did; reported in the device's status and by tests."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    unreadable: int = 0  # undecodable and no command id to ack
    hold_releases: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Hold:
    command_id: str
    until: datetime


class CommandHandler:
    """Commands of one device (see the module docstring)."""

    def __init__(self, *, park_id: str, device_id: str, writable: WritableSection, writer: SetpointWriter,
                 audit: CommandAudit, clock: Clock, limits: DeviceLimits | None = None,
                 config_override: bool = False) -> None:
        """Nothing is written until a command arrives."""
        self.park_id, self.device_id, self.writable, self.writer = park_id, device_id, writable, writer
        self.audit, self.clock = audit, clock
        self.limits: DeviceLimits = limits or {}
        self.config_override = config_override
        self.stats = CommandStats()
        self._lock = asyncio.Lock()
        self._hold: _Hold | None = None
        self._hold_changed = asyncio.Event()

    async def _override(self) -> str | None:
        if self.config_override:
            return "edge.yaml commands.override"
        found = await self.audit.aoverride_for(self.device_id)
        return None if found is None else f"{found.reason} (set by {found.set_by} at {found.set_at})"

    async def handle(self, raw: bytes) -> bytes | None:
        """Process one message from the cmd topic; returns the ack to publish (None: nothing to ack)."""
        async with self._lock:
            return await self._handle(raw)

    async def _handle(self, raw: bytes) -> bytes | None:
        received_at = self.clock()
        self.stats.received += 1
        try:
            message = decode_command(raw)
        except InvalidCommandError as exc:
            return await self._invalid(raw, exc, received_at)
        command_id, action = message["command_id"], CommandAction(message["action"])
        fields = {k: message[k] for k in ("value", "issued_by", "event_id", "expires_at", "hold_until")}
        row_id, previous = await self.audit.arecord(self.device_id, command_id, raw, received_at,
                                                    {**fields, "action": action.value})
        if previous is not None:
            self.stats.duplicates += 1
            logger.info("%s: command %s delivered again; same ack, no second write", self.device_id, command_id)
            return previous
        rejection = check_command(message, park_id=self.park_id, device_id=self.device_id, now=received_at,
                                  writable=self.writable, limits=self.limits, overridden=await self._override())
        if rejection is not None:
            return await self._ack(row_id, command_id, action, rejection)
        return await self._apply(row_id, message)

    async def _invalid(self, raw: bytes, exc: InvalidCommandError, received_at: datetime) -> bytes | None:
        command_id = recover_command_id(raw)
        row_id, previous = await self.audit.arecord(self.device_id, command_id, raw, received_at)
        if command_id is None:
            self.stats.unreadable += 1
            logger.warning("%s: unreadable command (no command id to ack), audit row %d: %s",
                           self.device_id, row_id, exc)
            return None
        if previous is not None:
            self.stats.duplicates += 1
            return previous
        rejection = Rejection(RejectCode.INVALID_COMMAND, str(exc))
        return await self._ack(row_id, command_id, CommandAction.RELEASE, rejection)

    async def _apply(self, row_id: int, message: CommandMessage) -> bytes:
        command_id, action = message["command_id"], CommandAction(message["action"])
        try:
            if action is CommandAction.RELEASE:
                await self.writer.release()
                applied: float | None = None
            else:
                applied = await self.writer.apply(action, message["value"])
        except DeviceOfflineError as exc:
            return await self._ack(row_id, command_id, action, Rejection(RejectCode.DEVICE_OFFLINE, str(exc)))
        except SetpointWriteError as exc:
            return await self._ack(row_id, command_id, action, Rejection(RejectCode.WRITE_FAILED, str(exc)))
        hold = message["hold_until"]
        self._set_hold(None if action is CommandAction.RELEASE or hold is None else _Hold(command_id, hold))
        return await self._ack(row_id, command_id, action, None, applied)

    async def _ack(self, row_id: int, command_id: str, action: CommandAction, rejection: Rejection | None,
                   applied: float | None = None) -> bytes:
        acked_at = self.clock()
        if rejection is None:
            self.stats.applied += 1
            ack = build_ack(command_id=command_id, device=self.device_id, status=AckStatus.APPLIED, acked_at=acked_at,
                            applied_value=applied, unit=ACTION_UNITS[action])
            logger.info("%s: command %s applied: %s %s", self.device_id, command_id, action.value,
                        "" if applied is None else f"{applied:g} {ACTION_UNITS[action]}")
        else:
            self.stats.rejected[rejection.code.value] += 1
            ack = build_ack(command_id=command_id, device=self.device_id, status=AckStatus.REJECTED,
                            acked_at=acked_at, reason=rejection.code, detail=rejection.detail,
                            unit=ACTION_UNITS[action])
            logger.warning("%s: command %s rejected %s: %s", self.device_id, command_id, rejection.code.value,
                           rejection.detail)
        payload = encode_ack(ack)
        await self.audit.arecord_ack(row_id, status=ack["status"].value, reason=ack["reason"], detail=ack["detail"],
                                     applied_value=applied, acked_at=acked_at, ack=payload)
        return payload

    # -- hold_until -------------------------------------------------------------------------------------

    def _set_hold(self, hold: _Hold | None) -> None:
        self._hold = hold
        self._hold_changed.set()

    @property
    def hold(self) -> tuple[str, datetime] | None:
        """``(command_id, hold_until)`` of the setpoint in force with a hold time, if any."""
        return None if self._hold is None else (self._hold.command_id, self._hold.until)

    async def run(self) -> None:
        """Release the device when a setpoint's ``hold_until`` passes with no newer command (runs forever)."""
        while True:
            self._hold_changed.clear()
            hold = self._hold
            if hold is None:
                await self._hold_changed.wait()
                continue
            wait_s = (hold.until - self.clock()).total_seconds()
            if wait_s > 0:
                try:
                    async with asyncio.timeout(wait_s):
                        await self._hold_changed.wait()
                    continue  # a newer command replaced the hold
                except TimeoutError:
                    pass
            if not await self._release_hold(hold):
                await asyncio.sleep(RELEASE_RETRY_S)

    async def _release_hold(self, hold: _Hold) -> bool:
        """Release for an expired hold; returns False when it must be retried (device unreachable)."""
        async with self._lock:
            if self._hold != hold:
                return True
            now = self.clock()
            payload = json.dumps({"hold_expired": hold.command_id, "hold_until": hold.until.isoformat()}).encode()
            try:
                row_id, _ = await self.audit.arecord(self.device_id, f"hold-release.{hold.command_id}"[:128], payload,
                                                     now, {"action": CommandAction.RELEASE.value,
                                                           "issued_by": "edge-hold-timer"})
                overridden = await self._override()
                if overridden is None:
                    await self.writer.release()
                status, detail = "applied", "" if overridden is None else f"not written, {overridden}"
            except SetpointWriteError as exc:
                logger.warning("%s: hold of %s ended but the release failed, retrying: %s",
                               self.device_id, hold.command_id, exc)
                return False
            except CommandAuditError:
                logger.exception("%s: command audit failed while releasing a hold", self.device_id)
                return False
            await self.audit.arecord_ack(row_id, status=status, reason=None, detail=detail, applied_value=None,
                                         acked_at=now, ack=b"")
            self.stats.hold_releases += 1
            self._hold = None
            logger.info("%s: hold of command %s ended at %s: released to local control", self.device_id,
                        hold.command_id, hold.until.isoformat())
            return True


__all__ = ["CommandHandler", "CommandStats", "Rejection", "check_command", "recover_command_id"]

"""From a dispatch plan to the commands each device gets at each interval boundary (pure).

Mapping asset kind → action (schemas/commands.py): battery → ``set_active_power`` (its planned power, + charge /
− discharge); EV charger → ``set_power_limit`` (the sessions' planned total); HVAC → ``set_temperature_setpoint``
(the zone temperature the plan lets it drift to by the interval's end: shedding ΔP kW for Δt h moves the zone
by ΔP·Δt / (C/COP) °C, the thermal model's kWh per °C); process → ``set_power_limit``. Only assets the plan
actually moves get commands (a device left at its baseline keeps its own control); each of those gets one
command per interval, sent at the interval's start and held until its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flex._plan_model import Plan
from schemas.commands import CommandAction

#: An asset whose planned power never moves further than this from its baseline is not commanded.
MOVE_THRESHOLD_KW = 0.01

ACTION_BY_KIND = {
    "battery": CommandAction.SET_ACTIVE_POWER,
    "ev_charger": CommandAction.SET_POWER_LIMIT,
    "hvac": CommandAction.SET_TEMPERATURE_SETPOINT,
    "process": CommandAction.SET_POWER_LIMIT,
}


@dataclass(frozen=True, slots=True)
class PlannedCommand:
    """One command to send at ``send_at`` (its id, issue and expiry times are set when it is sent)."""

    send_at: datetime
    hold_until: datetime | None
    device_id: str
    asset_id: str | None
    interval_index: int | None
    interval_start: datetime | None
    action: CommandAction
    value: float
    reason: str
    planned_kw: float = 0.0


def plan_commands(plan: Plan, event_id: str, *, not_before: datetime | None = None) -> list[PlannedCommand]:
    """The commands of a plan, in sending order. Intervals ending at or before ``not_before`` are skipped;
    one already running is sent at ``not_before``."""
    out: list[PlannedCommand] = []
    for sched in plan.schedules:
        if sched.device_id is None or sched.kind not in ACTION_BY_KIND:
            continue
        if max((abs(p - b) for p, b in zip(sched.power_kw, sched.baseline_kw, strict=True)), default=0.0) \
                <= MOVE_THRESHOLD_KW:
            continue
        action = ACTION_BY_KIND[sched.kind]
        for t, iv in enumerate(plan.intervals):
            if not_before is not None and iv.end <= not_before:
                continue
            value = round(sched.temp_c[t], 2) if action == CommandAction.SET_TEMPERATURE_SETPOINT and sched.temp_c \
                else round(max(0.0, sched.power_kw[t]) if action == CommandAction.SET_POWER_LIMIT
                           else sched.power_kw[t], 3)
            send_at = iv.start if not_before is None else max(iv.start, not_before)
            out.append(PlannedCommand(
                send_at=send_at, hold_until=iv.end, device_id=sched.device_id, asset_id=sched.asset_id,
                interval_index=t, interval_start=iv.start, action=action, value=value,
                reason=f"DR event {event_id} interval {t}"[:300],
                planned_kw=plan.direction_sign * (sched.baseline_kw[t] - sched.power_kw[t])))
    out.sort(key=lambda c: (c.send_at, c.device_id))
    return out


def release_command(device_id: str, event_id: str, at: datetime, why: str) -> PlannedCommand:
    """Hand a device back to its own control (event cancelled, modified away, or opted out)."""
    return PlannedCommand(send_at=at, hold_until=None, device_id=device_id, asset_id=None, interval_index=None,
                          interval_start=None, action=CommandAction.RELEASE, value=0.0,
                          reason=f"DR event {event_id} {why}"[:300])

"""The operator's registry of parks and devices, which ingest enforces (migration 0004).

A device is accepted by ingest only when it is registered here, or when its park is set to
auto-register (then ingest registers it on first sight, ``registered_by = 'auto'``). Devices added by
the operator are ``registered_by = 'operator'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


class RegistryError(ValueError):
    """A registry change that cannot be made; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """What an operator states about a device when registering it (None: leave as it is)."""

    park_id: str
    device_id: str
    kind: str | None = None
    carrier: str | None = None
    metering_level: int | None = None
    site_id: str | None = None
    role: str | None = None
    register_max: float | None = None
    multiplier: float | None = None


def register_park(conn: psycopg.Connection[Any], park_id: str, *, name: str | None = None,
                  timezone: str | None = None, province: str | None = None, grid_region: str | None = None,
                  auto_register: bool | None = None) -> bool:
    """Create the park, or update the given attributes of an existing one; True when it was created."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT 1 FROM parks WHERE park_id = %s FOR UPDATE", (park_id,))
        exists = cur.fetchone() is not None
        if not exists:
            cur.execute("INSERT INTO parks (park_id, timezone, auto_register) VALUES (%s, %s, %s)",
                        (park_id, timezone or "Asia/Shanghai", bool(auto_register)))
        cur.execute(
            """UPDATE parks SET name = coalesce(%s, name), timezone = coalesce(%s, timezone),
                   province = coalesce(%s, province), grid_region = coalesce(%s, grid_region),
                   auto_register = coalesce(%s, auto_register)
               WHERE park_id = %s""", (name, timezone, province, grid_region, auto_register, park_id))
    return not exists


def register_device(conn: psycopg.Connection[Any], device: DeviceRegistration) -> bool:
    """Register a device of a registered park (or update what is given); True when it was created."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT 1 FROM parks WHERE park_id = %s", (device.park_id,))
        if cur.fetchone() is None:
            raise RegistryError(f"park {device.park_id!r} is not registered; register it first with "
                                f"`parkpulse registry park add {device.park_id}`")
        cur.execute(
            """INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, %s, 'operator')
               ON CONFLICT (park_id, device_id) DO NOTHING""", (device.park_id, device.device_id))
        created = cur.rowcount == 1
        cur.execute(
            """UPDATE devices SET kind = coalesce(%s, kind), carrier = coalesce(%s, carrier),
                   metering_level = coalesce(%s, metering_level), site_id = coalesce(%s, site_id),
                   role = coalesce(%s, role), register_max = coalesce(%s, register_max),
                   multiplier = coalesce(%s, multiplier), registered_by = 'operator'
               WHERE park_id = %s AND device_id = %s""",
            (device.kind, device.carrier, device.metering_level, device.site_id, device.role, device.register_max,
             device.multiplier, device.park_id, device.device_id))
    return created


def list_parks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every park with its registry attributes and device count."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT p.park_id, p.name, p.timezone, p.province, p.grid_region, p.auto_register,
                              count(d.device_key) AS devices
                       FROM parks p LEFT JOIN devices d USING (park_id)
                       GROUP BY p.park_id ORDER BY p.park_id""")
        return list(cur.fetchall())


def list_devices(conn: psycopg.Connection[Any], park_id: str) -> list[dict[str, Any]]:
    """The devices of one park with their registry attributes and last activity."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT d.device_id, d.kind, d.carrier, d.metering_level, d.site_id, d.role, d.register_max,
                              d.multiplier, d.registered_by, d.registered_at, s.last_seen_at
                       FROM devices d LEFT JOIN device_status s USING (device_key)
                       WHERE d.park_id = %s ORDER BY d.device_id""", (park_id,))
        rows = list(cur.fetchall())
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat()
    return rows

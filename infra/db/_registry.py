"""The operator's registry of parks, sites and devices, which ingest enforces (migrations 0004 and 0005).

A device is accepted by ingest only when it is registered here, or when its park is set to
auto-register (then ingest registers it on first sight, ``registered_by = 'auto'``). Devices added by
the operator (CLI, API, registry file) are ``registered_by = 'operator'``.

Precedence between the operator's registry and a device's birth message
------------------------------------------------------------------------
A device describes itself in its retained birth message (kind, carrier, metering level, site, role,
profile, register maximum, multiplier, rated power); the operator may state the same attributes.

1. **The operator wins.** Every attribute the operator sets is recorded in ``devices.operator_fields``;
   a birth never changes it, whatever it says and however often it is published (ingest's birth update,
   ``ingest/_store.py``, keeps those columns).
2. **A birth fills the rest.** Attributes the operator did not set are the birth's: each birth sets them
   (an attribute it omits becomes empty, the multiplier 1), exactly as before the registry existed.
3. **Handing an attribute back.** Clearing an operator attribute (``registry device update --unset F``, an
   empty cell in a registry file, ``null`` in the API) empties it and removes it from
   ``operator_fields``: the next birth fills it again.
4. Firmware and the birth's extra metadata are the device's alone.

Parks and sites have no birth: all their attributes are the operator's. Values are validated by the
models of :mod:`schemas.registry` before they reach these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from infra.db.errors import RegistryConflictError, RegistryNotFoundError
from schemas.registry import (
    DEVICE_FIELDS,
    PARK_FIELDS,
    SITE_FIELDS,
    DeviceEntry,
    ParkEntry,
    RegistryDocument,
    SiteEntry,
)

WriteMode = Literal["upsert", "create", "update"]
#: Device columns whose empty value is not NULL (NOT NULL DEFAULT in the schema).
_DEVICE_EMPTY: Final[dict[str, Any]] = {"multiplier": 1.0}


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


def _check_mode(exists: bool, mode: WriteMode, what: str, create_hint: str, update_hint: str) -> None:
    if exists and mode == "create":
        raise RegistryConflictError(f"{what} is registered already; change it with `{update_hint}`")
    if not exists and mode == "update":
        raise RegistryNotFoundError(f"{what} is not registered; register it first with `{create_hint}`")


def _assignments(fields: Mapping[str, Any], allowed: tuple[str, ...]) -> tuple[sql.Composable, list[Any]]:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise ValueError(f"not registry attributes: {sorted(unknown)}")
    names = sorted(fields)
    clause = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in names)
    return clause, [fields[n] for n in names]


def _require_park(cur: psycopg.Cursor[Any], park_id: str) -> None:
    cur.execute("SELECT 1 FROM parks WHERE park_id = %s", (park_id,))
    if cur.fetchone() is None:
        raise RegistryNotFoundError(f"park {park_id!r} is not registered; register it first with "
                                    f"`parkpulse registry park add {park_id}`")


def save_park(conn: psycopg.Connection[Any], park_id: str, fields: Mapping[str, Any], *,
              mode: WriteMode = "upsert") -> bool:
    """Create the park or change the attributes in ``fields`` (others stay); True when it was created."""
    clause, values = _assignments(fields, PARK_FIELDS)
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT 1 FROM parks WHERE park_id = %s FOR UPDATE", (park_id,))
        exists = cur.fetchone() is not None
        _check_mode(exists, mode, f"park {park_id!r}", f"parkpulse registry park add {park_id}",
                    f"parkpulse registry park update {park_id} …")
        if not exists:
            cur.execute("INSERT INTO parks (park_id) VALUES (%s)", (park_id,))
        if values:
            cur.execute(sql.SQL("UPDATE parks SET {} WHERE park_id = %s").format(clause), [*values, park_id])
    return not exists


def register_park(conn: psycopg.Connection[Any], park_id: str, *, name: str | None = None,
                  timezone: str | None = None, province: str | None = None, grid_region: str | None = None,
                  auto_register: bool | None = None) -> bool:
    """Create the park, or update the given (not None) attributes of an existing one; True when created."""
    given = {"name": name, "timezone": timezone, "province": province, "grid_region": grid_region,
             "auto_register": auto_register}
    return save_park(conn, park_id, {k: v for k, v in given.items() if v is not None})


def save_site(conn: psycopg.Connection[Any], park_id: str, site_id: str, fields: Mapping[str, Any], *,
              mode: WriteMode = "upsert") -> bool:
    """Create the site of a registered park or change the attributes in ``fields``; True when created."""
    clause, values = _assignments(fields, SITE_FIELDS)
    with conn.transaction(), conn.cursor() as cur:
        _require_park(cur, park_id)
        cur.execute("SELECT 1 FROM sites WHERE park_id = %s AND site_id = %s FOR UPDATE", (park_id, site_id))
        exists = cur.fetchone() is not None
        _check_mode(exists, mode, f"site {park_id}/{site_id}", f"parkpulse registry site add {park_id} {site_id}",
                    f"parkpulse registry site update {park_id} {site_id} …")
        if not exists:
            cur.execute("INSERT INTO sites (park_id, site_id) VALUES (%s, %s)", (park_id, site_id))
        if values:
            cur.execute(sql.SQL("UPDATE sites SET {} WHERE park_id = %s AND site_id = %s").format(clause),
                        [*values, park_id, site_id])
    return not exists


def save_device(conn: psycopg.Connection[Any], park_id: str, device_id: str, fields: Mapping[str, Any], *,
                mode: WriteMode = "upsert") -> bool:
    """Register a device of a registered park as the operator's, setting the attributes in ``fields``.

    A value sets the attribute and marks it the operator's; ``None`` hands an operator attribute back to
    the device (emptied, no longer in ``operator_fields``) and leaves a device-set one alone. Attributes
    not in ``fields`` stay as they are. True when the device was created.
    """
    unknown = set(fields) - set(DEVICE_FIELDS)
    if unknown:
        raise ValueError(f"not device attributes: {sorted(unknown)}")
    with conn.transaction(), conn.cursor() as cur:
        _require_park(cur, park_id)
        site_id = fields.get("site_id")
        if site_id is not None:
            cur.execute("SELECT 1 FROM sites WHERE park_id = %s AND site_id = %s", (park_id, site_id))
            if cur.fetchone() is None:
                raise RegistryNotFoundError(f"site {site_id!r} is not registered in park {park_id!r}; add it first "
                                            f"with `parkpulse registry site add {park_id} {site_id}`")
        cur.execute("SELECT operator_fields FROM devices WHERE park_id = %s AND device_id = %s FOR UPDATE",
                    (park_id, device_id))
        row = cur.fetchone()
        _check_mode(row is not None, mode, f"device {park_id}/{device_id}",
                    f"parkpulse registry device add {park_id} {device_id}",
                    f"parkpulse registry device update {park_id} {device_id} …")
        if row is None:
            cur.execute("INSERT INTO devices (park_id, device_id, registered_by) VALUES (%s, %s, 'operator')",
                        (park_id, device_id))
        owned = set(row[0]) if row is not None else set()
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if value is not None:
                changes[name] = value
                owned.add(name)
            elif name in owned:
                changes[name] = _DEVICE_EMPTY.get(name)
                owned.discard(name)
        names = sorted(changes)
        assignments = [*(sql.SQL("{} = %s").format(sql.Identifier(n)) for n in names),
                       sql.SQL("registered_by = 'operator'"), sql.SQL("operator_fields = %s")]
        cur.execute(sql.SQL("UPDATE devices SET {} WHERE park_id = %s AND device_id = %s").format(
            sql.SQL(", ").join(assignments)), [*(changes[n] for n in names), sorted(owned), park_id, device_id])
    return row is None


def register_device(conn: psycopg.Connection[Any], device: DeviceRegistration) -> bool:
    """Register a device of a registered park (or set the given, not None, attributes); True when created."""
    given = {name: getattr(device, name) for name in DEVICE_FIELDS if hasattr(device, name)}
    return save_device(conn, device.park_id, device.device_id, {k: v for k, v in given.items() if v is not None})


def _iso(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for key, value in row.items():
            if isinstance(value, datetime):
                row[key] = value.isoformat()
    return rows


def list_parks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every park with its registry attributes and its site and device counts."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT p.park_id, p.name, p.timezone, p.province, p.grid_region, p.auto_register,
                              (SELECT count(*) FROM sites s WHERE s.park_id = p.park_id) AS sites,
                              (SELECT count(*) FROM devices d WHERE d.park_id = p.park_id) AS devices
                       FROM parks p ORDER BY p.park_id""")
        return _iso(list(cur.fetchall()))


def get_park(conn: psycopg.Connection[Any], park_id: str) -> dict[str, Any]:
    """One park's registry attributes and counts; :class:`RegistryNotFoundError` when it is not registered."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT p.park_id, p.name, p.timezone, p.province, p.grid_region, p.auto_register,
                              p.created_at,
                              (SELECT count(*) FROM sites s WHERE s.park_id = p.park_id) AS sites,
                              (SELECT count(*) FROM devices d WHERE d.park_id = p.park_id) AS devices
                       FROM parks p WHERE p.park_id = %s""", (park_id,))
        row = cur.fetchone()
    if row is None:
        raise RegistryNotFoundError(f"park {park_id!r} is not registered; `parkpulse registry park list` "
                                    "shows the registered ones")
    return _iso([row])[0]


def list_sites(conn: psycopg.Connection[Any], park_id: str, site_id: str | None = None) -> list[dict[str, Any]]:
    """The sites of one park (or just ``site_id``) with their attributes and device counts."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT s.site_id, s.name, s.kind, s.floor_area_m2, s.roof_area_m2, s.is_public_building,
                              (SELECT count(*) FROM devices d WHERE d.park_id = s.park_id AND d.site_id = s.site_id)
                                  AS devices
                       FROM sites s WHERE s.park_id = %s AND (%s::text IS NULL OR s.site_id = %s)
                       ORDER BY s.site_id""", (park_id, site_id, site_id))
        return list(cur.fetchall())


def get_site(conn: psycopg.Connection[Any], park_id: str, site_id: str) -> dict[str, Any]:
    """One site; :class:`RegistryNotFoundError` when it is not registered."""
    rows = list_sites(conn, park_id, site_id)
    if not rows:
        raise RegistryNotFoundError(f"site {site_id!r} is not registered in park {park_id!r}; "
                                    f"`parkpulse registry site list {park_id}` shows its sites")
    return rows[0]


def list_devices(conn: psycopg.Connection[Any], park_id: str, device_id: str | None = None) -> list[dict[str, Any]]:
    """The devices of one park (or just ``device_id``): attributes, who set each, last activity."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("""SELECT d.device_id, d.kind, d.carrier, d.metering_level, d.site_id, d.role, d.register_max,
                              d.multiplier, d.rated_power_kw, d.profile, d.firmware, d.operator_fields,
                              d.registered_by, d.registered_at, d.birth_at, s.last_seen_at
                       FROM devices d LEFT JOIN device_status s USING (device_key)
                       WHERE d.park_id = %s AND (%s::text IS NULL OR d.device_id = %s)
                       ORDER BY d.device_id""", (park_id, device_id, device_id))
        return _iso(list(cur.fetchall()))


def get_device(conn: psycopg.Connection[Any], park_id: str, device_id: str) -> dict[str, Any]:
    """One device; :class:`RegistryNotFoundError` when it is not registered."""
    rows = list_devices(conn, park_id, device_id)
    if not rows:
        raise RegistryNotFoundError(f"device {device_id!r} is not registered in park {park_id!r}; "
                                    f"`parkpulse registry device list {park_id}` shows its devices")
    return rows[0]


def read_registry(conn: psycopg.Connection[Any], park_id: str, *, include_auto: bool = False) -> RegistryDocument:
    """The park's registry as the operator states it: park, sites, and the operator's devices with only
    the attributes the operator set (``include_auto`` adds auto-registered devices, with none set).

    Importing the result changes nothing (the export → import round trip). Values are taken as stored
    (not re-validated), so an export never fails; a value the registry would refuse shows up at import.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.SQL("SELECT park_id, {} FROM parks WHERE park_id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, PARK_FIELDS))), (park_id,))
        park = cur.fetchone()
        if park is None:
            raise RegistryNotFoundError(f"park {park_id!r} is not registered; `parkpulse registry park list` "
                                        "shows the registered ones")
        cur.execute(sql.SQL("SELECT site_id, {} FROM sites WHERE park_id = %s ORDER BY site_id").format(
            sql.SQL(", ").join(map(sql.Identifier, SITE_FIELDS))), (park_id,))
        sites = list(cur.fetchall())
        cur.execute(sql.SQL("""SELECT device_id, operator_fields, {} FROM devices
                               WHERE park_id = %s AND (registered_by = 'operator' OR %s) ORDER BY device_id""").format(
            sql.SQL(", ").join(map(sql.Identifier, DEVICE_FIELDS))), (park_id, include_auto))
        devices = list(cur.fetchall())
    return RegistryDocument.model_construct(
        park=ParkEntry.model_construct(**park),
        sites=tuple(SiteEntry.model_construct(**site) for site in sites),
        devices=tuple(DeviceEntry.model_construct(device_id=d["device_id"], **{
            name: d[name] if name in d["operator_fields"] else None for name in DEVICE_FIELDS}) for d in devices),
    )

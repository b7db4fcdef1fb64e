"""The unit's basic information and instrument register, uploaded to each endpoint when they change.

The register is built from the device registry (:func:`uplink._mapping.instrument_register`); its content
hash is kept per endpoint in ``uplink_register_deliveries`` so an unchanged register is not re-sent, and a
rejected one keeps the platform's reason (and is retried only when it changes).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import psycopg

from schemas import uplink_wire as wire
from schemas.uplink_record import InstrumentEntry
from schemas.uplink_wire_types import RegisterAck, UnitInfo, WireProfile
from uplink._endpoints import EndpointConfig
from uplink._inputs import load_meters
from uplink._items import load_items
from uplink._mapping import instrument_register

Post = Callable[[str, bytes, str], Awaitable[tuple[int, bytes]]]
_UNIT_FIELDS = ("name", "industry_code", "region_code", "address", "contact_name", "contact_phone")


def build_register(conn: psycopg.Connection[Any], endpoint: EndpointConfig) -> list[InstrumentEntry]:
    """The endpoint's park's instrument register under the endpoint's profile."""
    return instrument_register(load_items(endpoint.profile), load_meters(conn, endpoint.park))


def unit_info(endpoint: EndpointConfig) -> UnitInfo | None:
    """The unit's basic information from the endpoint's ``unit:`` mapping (None when not configured)."""
    if endpoint.unit is None:
        return None
    return UnitInfo(endpoint.enterprise_code, *(endpoint.unit.get(k, "") for k in _UNIT_FIELDS))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


def _already(conn: psycopg.Connection[Any], endpoint: str, kind: str, digest: str) -> bool:
    row = conn.execute("""SELECT 1 FROM uplink_register_deliveries WHERE endpoint = %s AND kind = %s
                          AND content_sha256 = %s AND state IN ('acked', 'rejected')""",
                       (endpoint, kind, digest)).fetchone()
    return row is not None


def _record(conn: psycopg.Connection[Any], endpoint: str, kind: str, digest: str, ack: RegisterAck) -> None:
    reason = ack.reason
    if ack.rejected_meters:
        reason = "; ".join([reason or "meters rejected", *(f"{m}: {r}" for m, r in ack.rejected_meters)])
    conn.execute("""INSERT INTO uplink_register_deliveries (endpoint, kind, content_sha256, state, attempts,
                                                            platform_reason, updated_at, acked_at)
                    VALUES (%s, %s, %s, %s, 1, %s, now(), CASE WHEN %s THEN now() END)
                    ON CONFLICT (endpoint, kind) DO UPDATE SET content_sha256 = EXCLUDED.content_sha256,
                        state = EXCLUDED.state, attempts = uplink_register_deliveries.attempts + 1,
                        platform_reason = EXCLUDED.platform_reason, last_error = NULL, updated_at = now(),
                        acked_at = COALESCE(EXCLUDED.acked_at, uplink_register_deliveries.acked_at)""",
                 (endpoint, kind, digest, "acked" if ack.accepted and not ack.rejected_meters else "rejected",
                  reason, ack.accepted))


async def sync_registers(conn: psycopg.Connection[Any], endpoint: EndpointConfig, profile: WireProfile,
                         post: Post) -> int:
    """Upload the unit info and the instrument register when changed since their last answer; returns uploads."""
    sent = 0
    entries = await asyncio.to_thread(build_register, conn, endpoint)
    info = unit_info(endpoint)
    jobs: list[tuple[str, str, str, bytes, str]] = []
    if info is not None:
        body, ctype = wire.encode_unit_info_request(profile, info, upload_id=uuid.uuid4().hex)
        jobs.append(("unit_info", _digest(asdict(info)), profile.paths.unit_info, body, ctype))
    if entries:
        body, ctype = wire.encode_instrument_request(profile, endpoint.enterprise_code, entries,
                                                     upload_id=uuid.uuid4().hex)
        jobs.append(("instruments", _digest([asdict(e) for e in entries]), profile.paths.instruments, body, ctype))
    for kind, digest, path, body, ctype in jobs:
        if await asyncio.to_thread(_already, conn, endpoint.name, kind, digest):
            continue
        status, content = await post(path, body, ctype)
        ack = wire.decode_register_response(profile, status, content)
        await asyncio.to_thread(_record, conn, endpoint.name, kind, digest, ack)
        sent += 1
    return sent

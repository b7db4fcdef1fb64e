"""Export what was (or would have been) sent for a window, as the profile's request bodies.

From the retained records (the latest revision of each, as queued; records are never pruned, so at least
the 6 months the specification asks for are available), or recomputed from the database with
``recompute``. Bodies are chunked by the profile's ``max_records_per_request`` so each chunk is exactly a
request the platform would accept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import psycopg

from schemas import uplink_wire as wire
from schemas.errors import UplinkWireError
from uplink._endpoints import EndpointConfig
from uplink._enqueue import compute_park
from uplink._inputs import park_timezone
from uplink._store import stored_records
from uplink.errors import UplinkError


def export_bodies(database_url: str, endpoints: Sequence[EndpointConfig], *, park: str, profile: str, start: date,
                  end: date, recompute: bool = False) -> list[tuple[bytes, int]]:
    """(body, record count) per chunk of ``park``'s ``profile`` records starting in local ``[start, end)``."""
    try:
        spec = wire.load_wire_profile(profile)
    except UplinkWireError as exc:
        raise UplinkError(str(exc)) from None
    code = next((e.enterprise_code for e in endpoints if e.park == park and e.profile == profile), park)
    with psycopg.connect(database_url) as conn:
        tz = park_timezone(conn, park)
        if recompute:
            records = compute_park(conn, park, profile, enterprise_code=code, start=start, end=end,
                                   now=datetime.now(UTC))
        else:
            records = stored_records(conn, profile, park, start=start, end=end, timezone=tz)
    size = max(1, spec.max_records_per_request)
    out: list[tuple[bytes, int]] = []
    for i in range(0, len(records), size):
        chunk = records[i:i + size]
        body, _ = wire.encode_data_request(spec, chunk, upload_id=f"export-{park}-{start}-{i // size + 1:04d}")
        out.append((body, len(chunk)))
    return out

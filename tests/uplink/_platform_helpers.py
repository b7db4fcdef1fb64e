"""Shared helpers of helper B's uplink tests: records, an HTTPS client of the simulated platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from schemas.uplink_record import RecordAck, UplinkRecord
from schemas.uplink_wire import (
    WireProfile,
    auth_headers,
    decode_data_response,
    decode_token_response,
    encode_data_request,
    token_request,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
ENTERPRISE = "91440300MA5TEST01X"


def day_record(item: str, day: int, value: float, *, revision: int = 1, park: str = "park-b",
               enterprise: str = ENTERPRISE) -> UplinkRecord:
    """A daily value of ``item`` for December ``day`` 2026, local midnight."""
    start = datetime(2026, 12, day, tzinfo=SHANGHAI)
    return UplinkRecord(enterprise_code=enterprise, record_key=f"{park}|{item}|day|{start.isoformat()}",
                        revision=revision, data_item_code=item, period="day", period_start=start, value=value,
                        unit="kWh", quality="measured", completeness=1.0, meter_codes=("m-1",),
                        computed_at=datetime(2026, 12, 5, tzinfo=UTC) + timedelta(seconds=revision))


class PlatformClient:
    """The client half of a profile over httpx: token, then data uploads (what A's worker does)."""

    def __init__(self, profile: WireProfile, base_url: str, client: httpx.AsyncClient, *,
                 client_id: str = ENTERPRISE, secret: str = "s3cret") -> None:
        self.profile, self.base_url, self.http = profile, base_url, client
        self.client_id, self.secret = client_id, secret
        self.token: str | None = None

    async def login(self) -> float:
        path, body, content_type = token_request(self.profile, self.client_id, self.secret)
        answer = await self.http.post(self.base_url + path, content=body, headers={"Content-Type": content_type})
        self.token, expires_in_s = decode_token_response(self.profile, answer.status_code, answer.content)
        return expires_in_s

    async def send(self, records: list[UplinkRecord], upload_id: str = "u-1") -> list[RecordAck]:
        body, _ = encode_data_request(self.profile, records, upload_id=upload_id)
        answer = await self.http.post(self.base_url + self.profile.paths.data, content=body,
                                      headers=auth_headers(self.profile, self.token))
        return decode_data_response(self.profile, answer.status_code, answer.content, records)

"""The simulated platform's HTTP surface (FastAPI): the profile's endpoints plus ``/admin``.

Platform endpoints read the raw body and decode it with the profile's codec (:mod:`schemas.uplink_wire`),
so a body the real platform would refuse is refused here with HTTP 400 and the decoder's message.
Faults are drawn per request from :class:`~simulators.platform._state.Faults`. The ``/admin`` endpoints
(JSON, no auth, never faulty) let tests and operators read what was stored and change faults at run time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from schemas.errors import UplinkDecodeError, UplinkWireError
from schemas.uplink_wire import (
    DataRequest,
    DataResponse,
    InstrumentRequest,
    PlatformError,
    RegisterAck,
    TokenGrant,
    TokenRequest,
    UnitInfoRequest,
    WireProfile,
    decode_body,
    encode_body,
)
from simulators.platform._state import Faults, PlatformState

_MAX_BODY_BYTES = 8 * 1024 * 1024


def _answer(profile: WireProfile, status: int, message: Any) -> Response:
    return Response(encode_body(profile, message), status_code=status, media_type=profile.content_type)


def _error(profile: WireProfile, status: int, kind: str, text: str) -> Response:
    return _answer(profile, status, PlatformError(profile.error_code(kind), text[:500]))


def _token_of(profile: WireProfile, request: Request) -> str | None:
    value = request.headers.get(profile.auth.header)
    if value is None or not value.startswith(profile.auth.header_prefix):
        return None
    return value[len(profile.auth.header_prefix):] or None


def record_json(record: Any) -> dict[str, Any]:
    """A stored record as admin JSON."""
    return {"enterprise_code": record.enterprise_code, "record_key": record.record_key, "revision": record.revision,
            "data_item_code": record.data_item_code, "period": record.period,
            "period_start": record.period_start.isoformat(), "value": record.value, "unit": record.unit,
            "quality": record.quality, "completeness": record.completeness, "meter_codes": list(record.meter_codes),
            "computed_at": record.computed_at.isoformat()}


def make_platform_app(profile: WireProfile, state: PlatformState) -> FastAPI:  # noqa: PLR0915 -- one closure per route
    """The FastAPI app of one simulated platform speaking ``profile``."""
    app = FastAPI(title=f"ParkPulse platform simulator ({profile.name})", openapi_url=None, docs_url=None,
                  redoc_url=None)

    async def body_of(request: Request) -> bytes | Response:
        body = await request.body()
        if len(body) > _MAX_BODY_BYTES:
            return _error(profile, 413, "BAD_REQUEST", f"body of {len(body)} bytes is too large")
        return body

    def gate(request: Request, *, needs_token: bool) -> Response | str | None:
        """Down mode and token check; returns an answer to send, the token's client, or None (no auth)."""
        state.stats.requests += 1
        if state.is_down() != "up":
            state.stats.down_answers += 1
            return _error(profile, 503, "UNAVAILABLE", "platform is down for maintenance; resend later")
        if not needs_token or profile.auth.kind != "token":
            return None
        token = _token_of(profile, request)
        verdict = state.check_token(token)
        if verdict == "expired":
            return _error(profile, 401, "TOKEN_EXPIRED", "access token expired; request a new one")
        if verdict == "invalid" or token is None:
            return _error(profile, 401, "TOKEN_INVALID", "missing or unknown access token")
        return state.token_client(token)

    def decode(body: bytes, kind: str) -> Any:
        try:
            return decode_body(profile, body, kind)
        except UplinkDecodeError as error:
            state.stats.invalid_requests += 1
            return _error(profile, 400, "BAD_REQUEST", str(error))

    if profile.auth.kind == "token" and profile.auth.token_path:
        @app.post(profile.auth.token_path)
        async def token(request: Request) -> Response:
            gated = gate(request, needs_token=False)
            if isinstance(gated, Response):
                return gated
            body = await body_of(request)
            if isinstance(body, Response):
                return body
            asked = decode(body, "token_request")
            if isinstance(asked, Response):
                return asked
            assert isinstance(asked, TokenRequest)
            issued = state.issue_token(asked.client_id, asked.secret)
            if issued is None:
                return _error(profile, 401, "BAD_CREDENTIALS", f"unknown unit {asked.client_id} or wrong secret")
            return _answer(profile, 200, TokenGrant(*issued))

    @app.post(profile.paths.data)
    async def data(request: Request) -> Response:  # noqa: PLR0911 -- each fault or check answers early
        gated = gate(request, needs_token=True)
        if isinstance(gated, Response):
            return gated
        if state.draw(state.faults.error_rate):
            state.stats.injected_errors += 1
            return _error(profile, state.faults.error_status, "UNAVAILABLE", "internal error (injected fault)")
        if state.draw(state.faults.hang_rate):
            state.stats.injected_hangs += 1
            await asyncio.sleep(state.faults.hang_s)
            return _error(profile, 504, "UNAVAILABLE", "upstream timeout (injected fault)")
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        upload = decode(body, "data_request")
        if isinstance(upload, Response):
            return upload
        assert isinstance(upload, DataRequest)
        if gated is not None and gated != upload.enterprise_code:
            return _error(profile, 403, "BAD_CREDENTIALS",
                          f"token of {gated} cannot upload for {upload.enterprise_code}")
        refused = [r.record_key for r in upload.records if r.data_item_code in state.faults.refuse_batch_item_codes]
        if refused:   # a platform validating the batch as a whole: one bad record refuses the request
            state.stats.invalid_requests += 1
            return _error(profile, 400, "BAD_REQUEST", f"request refused: invalid record {refused[0]}")
        acks = state.receive(upload.records)
        if state.draw(state.faults.lost_ack_rate):
            state.stats.lost_acks += 1
            return _error(profile, 502, "UNAVAILABLE", "answer lost on the way back (injected fault)")
        return _answer(profile, 200, DataResponse(tuple(acks)))

    async def register(request: Request, kind: str) -> Response:
        gated = gate(request, needs_token=True)
        if isinstance(gated, Response):
            return gated
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        upload = decode(body, kind)
        if isinstance(upload, Response):
            return upload
        if isinstance(upload, InstrumentRequest):
            state.registers[upload.enterprise_code] = upload
        elif isinstance(upload, UnitInfoRequest):
            state.units[upload.info.enterprise_code] = upload.info
        return _answer(profile, 200, RegisterAck(True, None, ()))

    @app.post(profile.paths.instruments)
    async def instruments(request: Request) -> Response:
        return await register(request, "instrument_request")

    @app.post(profile.paths.unit_info)
    async def unit_info(request: Request) -> Response:
        return await register(request, "unit_info_request")

    add_admin_routes(app, profile, state)

    @app.exception_handler(UplinkWireError)
    async def wire_error(request: Request, error: UplinkWireError) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=500)

    return app


def add_admin_routes(app: FastAPI, profile: WireProfile, state: PlatformState) -> None:
    """``/admin``: stored records, rejects, registers, counters, and the fault set (GET and POST)."""

    @app.get("/admin/records")
    async def records() -> dict[str, Any]:
        return {"profile": profile.name, "records": [
            {**record_json(stored.record), "receipts": stored.receipts, "duplicates": stored.duplicates,
             "replaced": stored.replaced} for stored in state.records.values()]}

    @app.get("/admin/rejects")
    async def rejects() -> dict[str, Any]:
        return {"rejects": [{**record_json(record), "reason": reason} for record, reason in state.rejects]}

    @app.get("/admin/registers")
    async def registers() -> dict[str, Any]:
        return {"instruments": {code: [entry.meter_code for entry in upload.entries]
                                for code, upload in state.registers.items()},
                "units": {code: info.name for code, info in state.units.items()}}

    @app.get("/admin/stats")
    async def stats() -> dict[str, Any]:
        return {"profile": profile.name, "stored": len(state.records), "down": state.is_down(),
                **vars(state.stats)}

    @app.get("/admin/faults")
    async def faults() -> Faults:
        return state.faults

    @app.post("/admin/faults")
    async def set_faults(faults: Faults) -> Faults:
        state.set_faults(faults)
        return state.faults

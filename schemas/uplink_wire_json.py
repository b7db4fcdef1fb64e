"""JSON bodies of the national-style profile: pydantic models (the schema) and the codec built on them.

Every request and response is one model with ``extra="forbid"`` and strict types, so the platform
simulator's decode *is* the schema validation; :func:`json_schemas` exports the same models as JSON
Schema files next to ``wire.yaml`` (a test keeps the files equal to the models). Responses share one
envelope ``{"code", "message", "data"}``; ``code`` is ``"OK"`` or one of the profile's error codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model

from schemas.errors import UplinkDecodeError, UplinkWireError
from schemas.uplink_record import InstrumentEntry, RecordAck, UplinkRecord
from schemas.uplink_wire_types import (
    DataRequest,
    DataResponse,
    InstrumentRequest,
    PlatformError,
    RegisterAck,
    TokenGrant,
    TokenRequest,
    UnitInfo,
    UnitInfoRequest,
    WireProfile,
)

Code = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(max_length=500)]
Key = Annotated[str, Field(min_length=1, max_length=256)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TokenRequestBody(_Strict):
    """POST token_path: the unit's platform code and secret."""

    enterprise_code: Code
    secret: Annotated[str, Field(min_length=1, max_length=256)]


class TokenData(_Strict):
    """The token and its lifetime in seconds."""

    access_token: Annotated[str, Field(min_length=1, max_length=2048)]
    expires_in: Annotated[int, Field(ge=1, le=10_000_000)]


class RecordBody(_Strict):
    """One data item's value for one period."""

    record_key: Key
    revision: Annotated[int, Field(ge=1, le=2**31 - 1)]
    data_item_code: Code
    period: Code
    period_start: AwareDatetime
    value: Finite
    unit: Annotated[str, Field(min_length=1, max_length=32)]
    quality: Code
    completeness: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    meter_codes: Annotated[list[Code], Field(max_length=1000)]
    computed_at: AwareDatetime


class DataRequestBody(_Strict):
    """POST paths.data: a batch of records of one unit."""

    upload_id: Key
    enterprise_code: Code
    records: Annotated[list[RecordBody], Field(min_length=1, max_length=10_000)]


class RecordResult(_Strict):
    """The platform's result for one (record_key, revision)."""

    record_key: Key
    revision: Annotated[int, Field(ge=1, le=2**31 - 1)]
    status: Literal["accepted", "rejected"]
    reason: Text | None = None


class DataResults(_Strict):
    """Per-record results of a data upload."""

    results: list[RecordResult]


class InstrumentBody(_Strict):
    """One line of the instrument register."""

    meter_code: Code
    name: Annotated[str, Field(max_length=200)]
    carrier: Code
    instrument_type: Code
    accuracy_class: Code | None
    calibration_date: date | None
    metering_level: Annotated[int, Field(ge=1, le=3)] | None
    data_item_codes: Annotated[list[Code], Field(max_length=1000)]


class InstrumentRequestBody(_Strict):
    """POST paths.instruments: the whole register."""

    upload_id: Key
    enterprise_code: Code
    instruments: Annotated[list[InstrumentBody], Field(max_length=100_000)]


class UnitInfoBody(_Strict):
    """The unit's basic information."""

    enterprise_code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    industry_code: Code
    region_code: Code
    address: Text
    contact_name: Annotated[str, Field(max_length=100)]
    contact_phone: Annotated[str, Field(max_length=64)]


class UnitInfoRequestBody(_Strict):
    """POST paths.unit_info."""

    upload_id: Key
    unit: UnitInfoBody


class RejectedMeter(_Strict):
    """A register line the platform refused."""

    meter_code: Code
    reason: Text


class RegisterResult(_Strict):
    """Answer to a register or unit-info upload."""

    accepted: bool
    reason: Text | None = None
    rejected_meters: list[RejectedMeter] = []


Data = TypeVar("Data", bound=BaseModel)


def _envelope(data_model: type[BaseModel] | None, name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {"code": (Code, ...), "message": (Text, ...),
                              "data": ((data_model | None) if data_model else None, None)}
    return create_model(name, __base__=_Strict, **fields)


TokenResponseBody = _envelope(TokenData, "TokenResponseBody")
DataResponseBody = _envelope(DataResults, "DataResponseBody")
RegisterResponseBody = _envelope(RegisterResult, "RegisterResponseBody")
ErrorBody = _envelope(None, "ErrorBody")

#: Schema file name -> model (``schemas/uplink_profiles/national-json/<name>.schema.json``).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "token_request": TokenRequestBody, "token_response": TokenResponseBody,
    "data_request": DataRequestBody, "data_response": DataResponseBody,
    "instrument_request": InstrumentRequestBody, "unit_info_request": UnitInfoRequestBody,
    "register_response": RegisterResponseBody, "error_response": ErrorBody,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of every body, keyed like :data:`SCHEMA_MODELS`."""
    return {name: model.model_json_schema() for name, model in SCHEMA_MODELS.items()}


def _parse(model: type[Data], body: bytes, what: str) -> Data:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(body)"
        raise UplinkDecodeError(f"{what}: {where}: {first['msg']} ({error.error_count()} problem(s); "
                                f"see the profile's {what.replace(' ', '_')}.schema.json)") from None


def _dump(model: BaseModel) -> bytes:
    return json.dumps(model.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def _ok(code: str, message: str, what: str) -> None:
    if code != "OK":
        raise UplinkDecodeError(f"{what}: the platform answered code {code!r} ({message}) with a success status")


def _record_body(profile: WireProfile, record: UplinkRecord) -> RecordBody:
    try:
        period = profile.period_codes[record.period]
        quality = profile.quality_codes[record.quality]
    except KeyError as missing:
        raise UplinkWireError(f"profile {profile.name} has no wire code for {missing}; add it to wire.yaml") from None
    return RecordBody.model_validate({
        "record_key": record.record_key, "revision": record.revision, "data_item_code": record.data_item_code,
        "period": period, "period_start": record.period_start, "value": record.value, "unit": record.unit,
        "quality": quality, "completeness": record.completeness, "meter_codes": list(record.meter_codes),
        "computed_at": record.computed_at}, strict=False)


def _record(profile: WireProfile, enterprise_code: str, body: RecordBody, index: int) -> UplinkRecord:
    period = profile.period_from_code(body.period)
    quality = profile.quality_from_code(body.quality)
    if period is None:
        raise UplinkDecodeError(f"data request: records.{index}.period: unknown period code {body.period!r}")
    if quality is None:
        raise UplinkDecodeError(f"data request: records.{index}.quality: unknown quality code {body.quality!r}")
    return UplinkRecord(enterprise_code=enterprise_code, record_key=body.record_key, revision=body.revision,
                        data_item_code=body.data_item_code, period=period, period_start=body.period_start,
                        value=body.value, unit=body.unit, quality=quality, completeness=body.completeness,
                        meter_codes=tuple(body.meter_codes), computed_at=body.computed_at)


def _instrument(body: InstrumentBody) -> InstrumentEntry:
    return InstrumentEntry(meter_code=body.meter_code, name=body.name, carrier=body.carrier,
                           instrument_type=body.instrument_type, accuracy_class=body.accuracy_class,
                           calibration_date=body.calibration_date, metering_level=body.metering_level,
                           data_item_codes=tuple(body.data_item_codes))


def _validated(build: Callable[[], BaseModel], what: str) -> BaseModel:
    """Encode-side validation: a value the schema would refuse is refused before it is sent."""
    try:
        return build()
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UplinkWireError(f"cannot encode {what}: {where}: {first['msg']}") from None


class JsonCodec:
    """The national-json body format."""

    def encode(self, profile: WireProfile, message: Any) -> bytes:
        """Serialize any message type of :mod:`schemas.uplink_wire_types`."""
        model = _validated(lambda: self._model(profile, message), type(message).__name__)
        try:
            return _dump(model)
        except (ValueError, UnicodeEncodeError) as error:
            raise UplinkWireError(f"cannot encode {type(message).__name__}: {error}") from None

    def _model(self, profile: WireProfile, message: Any) -> BaseModel:  # noqa: PLR0911 -- one return per message type
        if isinstance(message, TokenRequest):
            return TokenRequestBody(enterprise_code=message.client_id, secret=message.secret)
        if isinstance(message, TokenGrant):
            return TokenResponseBody(code="OK", message="ok", data=TokenData(
                access_token=message.access_token, expires_in=message.expires_in_s))
        if isinstance(message, DataRequest):
            return DataRequestBody(upload_id=message.upload_id, enterprise_code=message.enterprise_code,
                                   records=[_record_body(profile, record) for record in message.records])
        if isinstance(message, DataResponse):
            return DataResponseBody(code="OK", message="ok", data=DataResults(results=[
                RecordResult(record_key=ack.record_key, revision=ack.revision,
                             status="accepted" if ack.accepted else "rejected", reason=ack.reason)
                for ack in message.acks]))
        if isinstance(message, InstrumentRequest):
            return InstrumentRequestBody.model_validate({
                "upload_id": message.upload_id, "enterprise_code": message.enterprise_code,
                "instruments": [{"meter_code": e.meter_code, "name": e.name, "carrier": e.carrier,
                                 "instrument_type": e.instrument_type, "accuracy_class": e.accuracy_class,
                                 "calibration_date": e.calibration_date, "metering_level": e.metering_level,
                                 "data_item_codes": list(e.data_item_codes)} for e in message.entries]})
        if isinstance(message, UnitInfoRequest):
            info = message.info
            return UnitInfoRequestBody(upload_id=message.upload_id, unit=UnitInfoBody(
                enterprise_code=info.enterprise_code, name=info.name, industry_code=info.industry_code,
                region_code=info.region_code, address=info.address, contact_name=info.contact_name,
                contact_phone=info.contact_phone))
        if isinstance(message, RegisterAck):
            return RegisterResponseBody(code="OK", message="ok", data=RegisterResult(
                accepted=message.accepted, reason=message.reason,
                rejected_meters=[RejectedMeter(meter_code=m, reason=r) for m, r in message.rejected_meters]))
        if isinstance(message, PlatformError):
            return ErrorBody(code=message.code, message=message.message, data=None)
        raise TypeError(f"not a wire message: {type(message).__name__}")

    def decode_token_request(self, profile: WireProfile, body: bytes) -> TokenRequest:
        """The platform side of the token exchange."""
        parsed = _parse(TokenRequestBody, body, "token request")
        return TokenRequest(client_id=parsed.enterprise_code, secret=parsed.secret)

    def decode_token_grant(self, profile: WireProfile, body: bytes) -> TokenGrant:
        """The client side of the token exchange."""
        parsed: Any = _parse(TokenResponseBody, body, "token response")
        _ok(parsed.code, parsed.message, "token response")
        if parsed.data is None:
            raise UplinkDecodeError("token response: data: missing token")
        return TokenGrant(access_token=parsed.data.access_token, expires_in_s=parsed.data.expires_in)

    def decode_data_request(self, profile: WireProfile, body: bytes) -> DataRequest:
        """A data upload, validated field by field."""
        parsed = _parse(DataRequestBody, body, "data request")
        return DataRequest(upload_id=parsed.upload_id, enterprise_code=parsed.enterprise_code,
                           records=tuple(_record(profile, parsed.enterprise_code, record, index)
                                         for index, record in enumerate(parsed.records)))

    def decode_data_response(self, profile: WireProfile, body: bytes) -> DataResponse:
        """The per-record results of a data upload."""
        parsed: Any = _parse(DataResponseBody, body, "data response")
        _ok(parsed.code, parsed.message, "data response")
        results = parsed.data.results if parsed.data is not None else []
        return DataResponse(acks=tuple(RecordAck(record_key=r.record_key, revision=r.revision,
                                                 accepted=r.status == "accepted", reason=r.reason)
                                       for r in results))

    def decode_instrument_request(self, profile: WireProfile, body: bytes) -> InstrumentRequest:
        """An instrument-register upload."""
        parsed = _parse(InstrumentRequestBody, body, "instrument request")
        return InstrumentRequest(upload_id=parsed.upload_id, enterprise_code=parsed.enterprise_code,
                                 entries=tuple(_instrument(entry) for entry in parsed.instruments))

    def decode_unit_info_request(self, profile: WireProfile, body: bytes) -> UnitInfoRequest:
        """A unit basic-information upload."""
        parsed = _parse(UnitInfoRequestBody, body, "unit info request")
        unit = parsed.unit
        return UnitInfoRequest(upload_id=parsed.upload_id, info=UnitInfo(
            enterprise_code=unit.enterprise_code, name=unit.name, industry_code=unit.industry_code,
            region_code=unit.region_code, address=unit.address, contact_name=unit.contact_name,
            contact_phone=unit.contact_phone))

    def decode_register_ack(self, profile: WireProfile, body: bytes) -> RegisterAck:
        """The answer to a register or unit-info upload."""
        parsed: Any = _parse(RegisterResponseBody, body, "register response")
        _ok(parsed.code, parsed.message, "register response")
        if parsed.data is None:
            raise UplinkDecodeError("register response: data: missing result")
        return RegisterAck(accepted=parsed.data.accepted, reason=parsed.data.reason,
                           rejected_meters=tuple((m.meter_code, m.reason) for m in parsed.data.rejected_meters))

    def decode_error(self, profile: WireProfile, body: bytes) -> PlatformError:
        """An error answer (any non-2xx status)."""
        parsed: Any = _parse(ErrorBody, body, "error response")
        return PlatformError(code=parsed.code, message=parsed.message)

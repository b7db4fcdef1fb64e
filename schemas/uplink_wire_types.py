"""The messages exchanged with an energy online-monitoring platform, independent of JSON or XML.

Each profile's codec (:mod:`schemas.uplink_wire_json`, :mod:`schemas.uplink_wire_xml`) turns these into
bytes and back; :mod:`schemas.uplink_wire` is the public entry point. Keeping the messages neutral lets
the delivery worker and the platform simulator share one vocabulary and lets the property tests check
that every encode → decode round-trips, whatever the body format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from schemas.uplink_record import InstrumentEntry, Period, Quality, RecordAck, UplinkRecord

BodyFormat = Literal["json", "xml"]
AuthKind = Literal["token", "client_cert", "none"]

#: Error codes every profile maps to its own spelling (``wire.yaml`` ``error_codes`` or the codec's table).
ERROR_KINDS = ("TOKEN_EXPIRED", "TOKEN_INVALID", "BAD_CREDENTIALS", "BAD_REQUEST", "UNAVAILABLE")


@dataclass(frozen=True)
class WireAuth:
    """How the access-side system authenticates: a token from ``token_path`` sent in ``header``, or TLS."""

    kind: AuthKind
    token_path: str | None
    header: str = "Authorization"
    header_prefix: str = "Bearer "


@dataclass(frozen=True)
class WirePaths:
    """Request paths, relative to an endpoint's base URL."""

    data: str
    instruments: str
    unit_info: str


@dataclass(frozen=True)
class WireProfile:
    """One platform profile's wire format, as ``schemas/uplink_profiles/<name>/wire.yaml`` states it."""

    name: str
    auth: WireAuth
    paths: WirePaths
    content_type: str
    body_format: BodyFormat = "json"
    version: str = "1"
    max_body_bytes: int = 4 * 1024 * 1024
    max_records_per_request: int = 500
    error_codes: dict[str, str] = field(default_factory=dict)     # ERROR_KINDS -> the profile's spelling
    period_codes: dict[Period, str] = field(default_factory=dict)
    quality_codes: dict[Quality, str] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)

    def error_code(self, kind: str) -> str:
        """The profile's spelling of one of :data:`ERROR_KINDS`."""
        return self.error_codes.get(kind, kind)

    def period_from_code(self, code: str) -> Period | None:
        """The period a wire code stands for, or None if the profile has no such code."""
        return next((period for period, wire in self.period_codes.items() if wire == code), None)

    def quality_from_code(self, code: str) -> Quality | None:
        """The quality a wire code stands for, or None if the profile has no such code."""
        return next((quality for quality, wire in self.quality_codes.items() if wire == code), None)


@dataclass(frozen=True)
class TokenRequest:
    """The unit asks for an access token with its platform code and secret."""

    client_id: str
    secret: str


@dataclass(frozen=True)
class TokenGrant:
    """The platform's token and how many seconds it stays valid."""

    access_token: str
    expires_in_s: int


@dataclass(frozen=True)
class DataRequest:
    """A batch of data-item values for one unit (``upload_id`` names the batch for logs and dedup)."""

    upload_id: str
    enterprise_code: str
    records: tuple[UplinkRecord, ...]


@dataclass(frozen=True)
class DataResponse:
    """The platform's per-record results for one :class:`DataRequest`."""

    acks: tuple[RecordAck, ...]


@dataclass(frozen=True)
class InstrumentRequest:
    """The unit's instrument register (计量器具台账), sent whole."""

    upload_id: str
    enterprise_code: str
    entries: tuple[InstrumentEntry, ...]


@dataclass(frozen=True)
class UnitInfo:
    """The unit's basic information (用能单位基本信息)."""

    enterprise_code: str
    name: str
    industry_code: str
    region_code: str
    address: str
    contact_name: str
    contact_phone: str


@dataclass(frozen=True)
class UnitInfoRequest:
    """The unit's basic information, as one upload."""

    upload_id: str
    info: UnitInfo


@dataclass(frozen=True)
class RegisterAck:
    """The platform's answer to an instrument-register or unit-info upload."""

    accepted: bool
    reason: str | None = None
    rejected_meters: tuple[tuple[str, str], ...] = ()   # (meter_code, reason)


@dataclass(frozen=True)
class PlatformError:
    """An error answer: the profile's code (``TOKEN_EXPIRED`` or its spelling) and the platform's message."""

    code: str
    message: str


class Codec(Protocol):
    """What each body format provides: one encode and one decode per message type."""

    def encode(self, profile: WireProfile, message: Any) -> bytes: ...

    def decode_token_request(self, profile: WireProfile, body: bytes) -> TokenRequest: ...

    def decode_token_grant(self, profile: WireProfile, body: bytes) -> TokenGrant: ...

    def decode_data_request(self, profile: WireProfile, body: bytes) -> DataRequest: ...

    def decode_data_response(self, profile: WireProfile, body: bytes) -> DataResponse: ...

    def decode_instrument_request(self, profile: WireProfile, body: bytes) -> InstrumentRequest: ...

    def decode_unit_info_request(self, profile: WireProfile, body: bytes) -> UnitInfoRequest: ...

    def decode_register_ack(self, profile: WireProfile, body: bytes) -> RegisterAck: ...

    def decode_error(self, profile: WireProfile, body: bytes) -> PlatformError: ...

"""Wire formats of the energy online-monitoring platforms: load a profile, encode and decode its bodies.

Two sides use this module. The access-side client (``uplink``'s delivery worker) encodes requests and
decodes the platform's answers into :class:`~schemas.uplink_record.RecordAck` s, and learns from the
errors it raises what to do next (resend later, re-authenticate, or tell the operator). The platform
simulator decodes and validates requests (the decoders *are* the schema check) and encodes answers.
``schemas/uplink_profiles/<profile>/wire.yaml`` holds each profile's paths, auth and codes, with what is
verified from a public source and what is assumed; the body format (JSON or XML) picks the codec.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, get_args

import yaml

from schemas.errors import (
    UplinkAuthError,
    UplinkDecodeError,
    UplinkProfileError,
    UplinkRequestRejected,
    UplinkTokenExpired,
    UplinkTransientError,
    UplinkWireError,
)
from schemas.uplink_record import InstrumentEntry, Period, Quality, RecordAck, UplinkRecord
from schemas.uplink_wire_json import JsonCodec
from schemas.uplink_wire_types import (
    Codec,
    DataRequest,
    DataResponse,
    InstrumentRequest,
    PlatformError,
    RegisterAck,
    TokenGrant,
    TokenRequest,
    UnitInfo,
    UnitInfoRequest,
    WireAuth,
    WirePaths,
    WireProfile,
)
from schemas.uplink_wire_xml import XmlCodec

__all__ = [
    "PROFILES_DIR",
    "DataRequest",
    "DataResponse",
    "InstrumentRequest",
    "PlatformError",
    "RegisterAck",
    "TokenGrant",
    "TokenRequest",
    "UnitInfo",
    "UnitInfoRequest",
    "WireAuth",
    "WirePaths",
    "WireProfile",
    "auth_headers",
    "codec",
    "decode_body",
    "decode_data_response",
    "decode_register_response",
    "decode_token_response",
    "encode_body",
    "encode_data_request",
    "encode_instrument_request",
    "encode_unit_info_request",
    "load_wire_profile",
    "profile_names",
    "raise_for_error",
    "token_request",
]

PROFILES_DIR = Path(__file__).resolve().parent / "uplink_profiles"
_CODECS: dict[str, Codec] = {"json": JsonCodec(), "xml": XmlCodec()}
_TRANSIENT_STATUSES = frozenset({408, 425, 429})


# ------------------------------------------------------------------------------------------ profiles
def profile_names(root: Path = PROFILES_DIR) -> list[str]:
    """Every profile with a ``wire.yaml``."""
    return sorted(path.parent.name for path in root.glob("*/wire.yaml"))


def _str_map(raw: Any, what: str, keys: tuple[str, ...] | None = None) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise UplinkProfileError(f"{what}: expected a mapping of strings to strings")
    if keys is not None and set(raw) != set(keys):
        raise UplinkProfileError(f"{what}: expected exactly the keys {sorted(keys)}, found {sorted(raw)}")
    if len(set(raw.values())) != len(raw):
        raise UplinkProfileError(f"{what}: two keys share one wire code")
    return dict(raw)


def parse_wire_profile(raw: Any, source: str) -> WireProfile:
    """A :class:`WireProfile` from a parsed ``wire.yaml`` document; errors name the file and the field."""
    if not isinstance(raw, dict):
        raise UplinkProfileError(f"{source}: expected a mapping at the top level")
    try:
        auth, paths = raw["auth"], raw["paths"]
        body_format = raw["body_format"]
        if body_format not in _CODECS:
            raise UplinkProfileError(f"{source}: body_format {body_format!r} is not one of {sorted(_CODECS)}")
        if auth["kind"] not in ("token", "client_cert", "none"):
            raise UplinkProfileError(f"{source}: auth.kind {auth['kind']!r} is not token, client_cert or none")
        if auth["kind"] == "token" and not str(auth.get("token_path", "")).startswith("/"):
            raise UplinkProfileError(f"{source}: auth.token_path must be an absolute path for token auth")
        for name in ("data", "instruments", "unit_info"):
            if not isinstance(paths[name], str) or not paths[name].startswith("/"):
                raise UplinkProfileError(f"{source}: paths.{name} must be a path starting with /")
        profile = WireProfile(
            name=str(raw["profile"]), version=str(raw["version"]), body_format=body_format,
            content_type=str(raw["content_type"]), max_body_bytes=int(raw["max_body_bytes"]),
            max_records_per_request=int(raw["max_records_per_request"]),
            auth=WireAuth(kind=auth["kind"], token_path=auth.get("token_path"),
                          header=str(auth.get("header", "Authorization")),
                          header_prefix=str(auth.get("header_prefix", "Bearer "))),
            paths=WirePaths(data=paths["data"], instruments=paths["instruments"], unit_info=paths["unit_info"]),
            error_codes=_str_map(raw["error_codes"], f"{source}: error_codes",
                                 ("TOKEN_EXPIRED", "TOKEN_INVALID", "BAD_CREDENTIALS", "BAD_REQUEST", "UNAVAILABLE")),
            period_codes=_str_map(raw["period_codes"], f"{source}: period_codes", get_args(Period)),  # type: ignore[arg-type]
            quality_codes=_str_map(raw["quality_codes"], f"{source}: quality_codes", get_args(Quality)),  # type: ignore[arg-type]
            provenance=_str_map(raw.get("provenance", {}), f"{source}: provenance"))
    except KeyError as missing:
        raise UplinkProfileError(f"{source}: missing field {missing}") from None
    except (TypeError, ValueError) as error:
        raise UplinkProfileError(f"{source}: {error}") from None
    for field, text in profile.provenance.items():
        if not text.startswith(("verified:", "assumed:", "not found:")):
            raise UplinkProfileError(f"{source}: provenance.{field} must start with verified:, assumed: or not found:")
    return profile


@cache
def load_wire_profile(name: str, root: Path = PROFILES_DIR) -> WireProfile:
    """Read ``<root>/<name>/wire.yaml``; raises :class:`UplinkProfileError` naming what to fix."""
    path = root / name / "wire.yaml"
    if not path.is_file():
        known = ", ".join(profile_names(root))
        raise UplinkProfileError(f"no wire profile {name!r} (looked for {path}); known: {known}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UplinkProfileError(f"{path}: not valid YAML ({error})") from None
    profile = parse_wire_profile(raw, str(path))
    if profile.name != name:
        raise UplinkProfileError(f"{path}: profile is {profile.name!r}, but the folder is {name!r}")
    return profile


def codec(profile: WireProfile) -> Codec:
    """The body codec of ``profile`` (JSON or XML)."""
    return _CODECS[profile.body_format]


def encode_body(profile: WireProfile, message: Any) -> bytes:
    """Any message as the profile's body bytes; refuses bodies over ``max_body_bytes``."""
    body = codec(profile).encode(profile, message)
    if len(body) > profile.max_body_bytes:
        raise UplinkWireError(f"{type(message).__name__} is {len(body)} bytes, over the profile's "
                              f"{profile.max_body_bytes}; send fewer records per request")
    return body


def decode_body(profile: WireProfile, body: bytes, kind: str) -> Any:
    """Decode ``body`` as ``kind`` (token_request, data_request, instrument_request, unit_info_request,
    token_grant, data_response, register_ack, error); raises :class:`UplinkDecodeError`, never anything else."""
    if len(body) > profile.max_body_bytes:
        raise UplinkDecodeError(f"body of {len(body)} bytes is over the profile's limit of {profile.max_body_bytes}")
    decoder = getattr(codec(profile), f"decode_{kind}", None)
    if decoder is None:
        raise ValueError(f"unknown body kind {kind!r}")
    try:
        return decoder(profile, body)
    except UplinkDecodeError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError) as error:
        raise UplinkDecodeError(f"{kind}: {type(error).__name__}: {error}") from None


# ------------------------------------------------------------------------------------- client side
def auth_headers(profile: WireProfile, token: str | None) -> dict[str, str]:
    """Headers of every data request: content type, plus the token in the profile's header."""
    headers = {"Content-Type": profile.content_type, "Accept": profile.content_type.split(";")[0]}
    if token is not None and profile.auth.kind == "token":
        headers[profile.auth.header] = f"{profile.auth.header_prefix}{token}"
    return headers


def token_request(profile: WireProfile, client_id: str, secret: str) -> tuple[str, bytes, str]:
    """(path, body, content type) of the token request."""
    if profile.auth.kind != "token" or profile.auth.token_path is None:
        raise UplinkWireError(f"profile {profile.name} does not use token auth")
    return profile.auth.token_path, encode_body(profile, TokenRequest(client_id, secret)), profile.content_type


def raise_for_error(profile: WireProfile, status_code: int, body: bytes) -> None:
    """Raise the error that tells the caller what to do for a non-2xx answer; return for a 2xx."""
    if 200 <= status_code < 300:
        return
    try:
        error: PlatformError | None = decode_body(profile, body, "error")
    except UplinkDecodeError:
        error = None
    detail = f"{error.code}: {error.message}" if error else body[:200].decode("utf-8", "replace")
    if status_code >= 500 or status_code in _TRANSIENT_STATUSES:
        raise UplinkTransientError(f"platform answered HTTP {status_code} ({detail}); will resend")
    if status_code == 401 and error is not None and error.code == profile.error_code("TOKEN_EXPIRED"):
        raise UplinkTokenExpired(f"platform says the token expired ({detail}); requesting a new one")
    if status_code in (401, 403):
        raise UplinkAuthError(f"platform refused the credentials (HTTP {status_code}, {detail}); check the "
                              f"endpoint's client_id/secret or client certificate")
    raise UplinkRequestRejected(status_code, detail)


def decode_token_response(profile: WireProfile, status_code: int, body: bytes) -> tuple[str, float]:
    """(access token, seconds it stays valid) from the token answer."""
    raise_for_error(profile, status_code, body)
    try:
        grant: TokenGrant = decode_body(profile, body, "token_grant")
    except UplinkDecodeError as error:
        raise UplinkTransientError(f"unreadable token answer: {error}") from None
    return grant.access_token, float(grant.expires_in_s)


def encode_data_request(profile: WireProfile, records: Sequence[UplinkRecord], *, upload_id: str) -> tuple[bytes, str]:
    """(body, content type) of a data upload; every record must belong to one enterprise."""
    if not records:
        raise UplinkWireError("a data upload needs at least one record")
    enterprises = {record.enterprise_code for record in records}
    if len(enterprises) != 1:
        raise UplinkWireError(f"one data upload carries one enterprise's records, got {sorted(enterprises)}")
    body = encode_body(profile, DataRequest(upload_id, enterprises.pop(), tuple(records)))
    return body, profile.content_type


def decode_data_response(profile: WireProfile, status_code: int, body: bytes,
                         sent: Sequence[UplinkRecord]) -> list[RecordAck]:
    """One :class:`RecordAck` per sent record, in ``sent`` order.

    Raises :class:`UplinkTransientError` (5xx, unreadable or incomplete answer: resend the batch; the
    platform keeps one copy per key), :class:`UplinkTokenExpired`, :class:`UplinkAuthError` or
    :class:`UplinkRequestRejected`.
    """
    raise_for_error(profile, status_code, body)
    try:
        response: DataResponse = decode_body(profile, body, "data_response")
    except UplinkDecodeError as error:
        raise UplinkTransientError(f"unreadable data answer: {error}") from None
    by_key = {(ack.record_key, ack.revision): ack for ack in response.acks}
    missing = [record.record_key for record in sent if (record.record_key, record.revision) not in by_key]
    if missing:
        raise UplinkTransientError(f"platform answered for {len(sent) - len(missing)} of {len(sent)} records "
                                   f"(first missing: {missing[0]}); will resend")
    return [by_key[(record.record_key, record.revision)] for record in sent]


def encode_instrument_request(profile: WireProfile, enterprise_code: str, entries: Sequence[InstrumentEntry], *,
                              upload_id: str) -> tuple[bytes, str]:
    """(body, content type) of the instrument-register upload."""
    return encode_body(profile, InstrumentRequest(upload_id, enterprise_code, tuple(entries))), profile.content_type


def encode_unit_info_request(profile: WireProfile, info: UnitInfo, *, upload_id: str) -> tuple[bytes, str]:
    """(body, content type) of the unit basic-information upload."""
    return encode_body(profile, UnitInfoRequest(upload_id, info)), profile.content_type


def decode_register_response(profile: WireProfile, status_code: int, body: bytes) -> RegisterAck:
    """The platform's answer to an instrument-register or unit-info upload."""
    raise_for_error(profile, status_code, body)
    try:
        ack: RegisterAck = decode_body(profile, body, "register_ack")
    except UplinkDecodeError as error:
        raise UplinkTransientError(f"unreadable register answer: {error}") from None
    return ack

"""XML bodies of the older provincial profiles (guangdong-2013) and their structure check.

Every body is ``<root><common>…</common><data>…</data></root>``; ``common/type`` names the message. The
reader is the schema: each element lists the children it allows, required ones must be present once,
unknown ones are refused, numbers, dates and codes are checked — the Python equivalent of an XSD, since no
XSD validator is installed. Documents with a DOCTYPE are refused outright (no entity expansion, no
external entities). Text that XML 1.0 cannot carry faithfully (C0 controls, ``\\r``, surrogates, U+FFFE/F)
is refused on encode rather than silently changed.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from typing import Any

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

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_INT = re.compile(r"-?[0-9]{1,10}")
_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
OK_CODE = "0"


# ------------------------------------------------------------------------------------------ writing
def _text(parent: ET.Element, tag: str, value: str | None) -> None:
    if value is None:
        return
    if _UNSAFE.search(value):
        raise UplinkWireError(f"cannot encode <{tag}>: {value!r} holds a character XML 1.0 cannot carry")
    ET.SubElement(parent, tag).text = value


def _document(kind: str, common: dict[str, str | None]) -> tuple[ET.Element, ET.Element]:
    root = ET.Element("root")
    head = ET.SubElement(root, "common")
    _text(head, "type", kind)
    for tag, value in common.items():
        _text(head, tag, value)
    return root, ET.SubElement(root, "data")


def _bytes(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _finite(value: float, tag: str) -> str:
    if not math.isfinite(value):
        raise UplinkWireError(f"cannot encode <{tag}>: {value} is not a finite number")
    return repr(float(value))


def _record_xml(profile: WireProfile, parent: ET.Element, record: UplinkRecord) -> None:
    try:
        period, quality = profile.period_codes[record.period], profile.quality_codes[record.quality]
    except KeyError as missing:
        raise UplinkWireError(f"profile {profile.name} has no wire code for {missing}; add it to wire.yaml") from None
    if record.period_start.tzinfo is None or record.computed_at.tzinfo is None:
        raise UplinkWireError(f"cannot encode record {record.record_key!r}: timestamps must be timezone-aware")
    element = ET.SubElement(parent, "record")
    for tag, value in (("key", record.record_key), ("revision", str(record.revision)),
                       ("item_code", record.data_item_code), ("period", period),
                       ("start", record.period_start.isoformat()), ("value", _finite(record.value, "value")),
                       ("unit", record.unit), ("quality", quality),
                       ("completeness", _finite(record.completeness, "completeness"))):
        _text(element, tag, value)
    meters = ET.SubElement(element, "meters")
    for code in record.meter_codes:
        _text(meters, "meter", code)
    _text(element, "computed_at", record.computed_at.isoformat())


def _instrument_xml(parent: ET.Element, entry: InstrumentEntry) -> None:
    element = ET.SubElement(parent, "meter")
    _text(element, "code", entry.meter_code)
    _text(element, "name", entry.name)
    _text(element, "carrier", entry.carrier)
    _text(element, "type", entry.instrument_type)
    _text(element, "accuracy", entry.accuracy_class)
    _text(element, "calibration_date", entry.calibration_date.isoformat() if entry.calibration_date else None)
    _text(element, "level", str(entry.metering_level) if entry.metering_level is not None else None)
    items = ET.SubElement(element, "items")
    for code in entry.data_item_codes:
        _text(items, "item", code)


# ------------------------------------------------------------------------------------------ reading
class _Reader:
    """Strict access to one element's children; every error names the path of the bad element."""

    def __init__(self, element: ET.Element, path: str, allowed: set[str]) -> None:
        self.element, self.path = element, path
        if element.attrib:
            raise UplinkDecodeError(f"{path}: unexpected attribute(s) {sorted(element.attrib)}")
        for child in element:
            if child.tag not in allowed:
                raise UplinkDecodeError(f"{path}: unexpected element <{child.tag}>")

    def all(self, tag: str) -> list[ET.Element]:
        return self.element.findall(tag)

    def one(self, tag: str) -> ET.Element:
        found = self.all(tag)
        if len(found) != 1:
            raise UplinkDecodeError(f"{self.path}/{tag}: expected exactly one element, found {len(found)}")
        return found[0]

    def text(self, tag: str, *, max_length: int = 256, min_length: int = 0) -> str:
        element = self.one(tag)
        if len(element):
            raise UplinkDecodeError(f"{self.path}/{tag}: expected text, found child elements")
        value = element.text or ""
        if not min_length <= len(value) <= max_length:
            raise UplinkDecodeError(f"{self.path}/{tag}: length {len(value)} outside {min_length}..{max_length}")
        return value

    def optional(self, tag: str, *, max_length: int = 256) -> str | None:
        return self.text(tag, max_length=max_length) if self.all(tag) else None

    def integer(self, tag: str, low: int, high: int) -> int:
        value = self.text(tag, max_length=11)
        if not _INT.fullmatch(value) or not low <= int(value) <= high:
            raise UplinkDecodeError(f"{self.path}/{tag}: {value!r} is not an integer in {low}..{high}")
        return int(value)

    def number(self, tag: str) -> float:
        value = self.text(tag, max_length=64)
        if not _FLOAT.fullmatch(value):
            raise UplinkDecodeError(f"{self.path}/{tag}: {value!r} is not a decimal number")
        number = float(value)
        if number in (float("inf"), float("-inf")):
            raise UplinkDecodeError(f"{self.path}/{tag}: {value!r} is out of range")
        return number

    def timestamp(self, tag: str) -> datetime:
        value = self.text(tag, max_length=64)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise UplinkDecodeError(f"{self.path}/{tag}: {value!r} is not an ISO 8601 timestamp") from None
        if parsed.tzinfo is None:
            raise UplinkDecodeError(f"{self.path}/{tag}: {value!r} has no UTC offset")
        return parsed

    def strings(self, tag: str, item: str) -> tuple[str, ...]:
        reader = _Reader(self.one(tag), f"{self.path}/{tag}", {item})
        return tuple(_Reader(e, f"{reader.path}/{item}", set()).element.text or "" for e in reader.all(item))


def _parse(body: bytes, kind: str) -> tuple[_Reader, ET.Element | None]:
    """Parse ``body`` and check the envelope: root, common/type == ``kind``; returns (common, data)."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise UplinkDecodeError("xml body: DOCTYPE/ENTITY declarations are not accepted")
    try:
        root = ET.fromstring(body)  # noqa: S314 -- DOCTYPE/ENTITY refused above; expat >= 2.4 caps expansion
    except ET.ParseError as error:
        raise UplinkDecodeError(f"xml body: not well-formed XML ({error})") from None
    except (ValueError, UnicodeError, LookupError) as error:  # LookupError: an unknown declared encoding
        raise UplinkDecodeError(f"xml body: cannot be read ({error})") from None
    if root.tag != "root":
        raise UplinkDecodeError(f"xml body: root element is <{root.tag}>, expected <root>")
    top = _Reader(root, "/root", {"common", "data"})
    common = _Reader(top.one("common"), "/root/common",
                     {"type", "enterprise_id", "upload_id", "code", "message"})
    found = common.text("type", max_length=64)
    if found != kind:
        raise UplinkDecodeError(f"/root/common/type: {found!r}, expected {kind!r}")
    data = top.all("data")
    if len(data) > 1:
        raise UplinkDecodeError("/root/data: more than one element")
    return common, (data[0] if data else None)


def _data(data: ET.Element | None, kind: str) -> ET.Element:
    if data is None:
        raise UplinkDecodeError(f"/root/data: missing in a {kind} message")
    return data


def _ok(common: _Reader, what: str) -> None:
    code = common.text("code", max_length=64)
    if code != OK_CODE:
        raise UplinkDecodeError(f"{what}: the platform answered code {code!r} "
                                f"({common.optional('message', max_length=500)}) with a success status")


def _record(profile: WireProfile, enterprise: str, element: ET.Element, path: str) -> UplinkRecord:
    r = _Reader(element, path, {"key", "revision", "item_code", "period", "start", "value", "unit", "quality",
                                "completeness", "meters", "computed_at"})
    period = profile.period_from_code(r.text("period", max_length=64))
    quality = profile.quality_from_code(r.text("quality", max_length=64))
    if period is None or quality is None:
        raise UplinkDecodeError(f"{path}: unknown {'period' if period is None else 'quality'} code")
    completeness = r.number("completeness")
    if not 0.0 <= completeness <= 1.0:
        raise UplinkDecodeError(f"{path}/completeness: {completeness} outside 0..1")
    return UplinkRecord(enterprise_code=enterprise, record_key=r.text("key", min_length=1),
                        revision=r.integer("revision", 1, 2**31 - 1),
                        data_item_code=r.text("item_code", min_length=1, max_length=64), period=period,
                        period_start=r.timestamp("start"), value=r.number("value"),
                        unit=r.text("unit", min_length=1, max_length=32), quality=quality,
                        completeness=completeness, meter_codes=r.strings("meters", "meter"),
                        computed_at=r.timestamp("computed_at"))


def _instrument(element: ET.Element, path: str) -> InstrumentEntry:
    r = _Reader(element, path, {"code", "name", "carrier", "type", "accuracy", "calibration_date", "level", "items"})
    calibration = r.optional("calibration_date", max_length=10)
    try:
        calibration_date = date.fromisoformat(calibration) if calibration is not None else None
    except ValueError:
        raise UplinkDecodeError(f"{path}/calibration_date: {calibration!r} is not YYYY-MM-DD") from None
    return InstrumentEntry(meter_code=r.text("code", min_length=1, max_length=64), name=r.text("name", max_length=200),
                           carrier=r.text("carrier", min_length=1, max_length=64),
                           instrument_type=r.text("type", min_length=1, max_length=64),
                           accuracy_class=r.optional("accuracy", max_length=64), calibration_date=calibration_date,
                           metering_level=r.integer("level", 1, 3) if r.all("level") else None,
                           data_item_codes=r.strings("items", "item"))


class XmlCodec:
    """The guangdong-2013 body format."""

    def encode(self, profile: WireProfile, message: Any) -> bytes:  # noqa: PLR0912 -- one branch per message type
        """Serialize any message type of :mod:`schemas.uplink_wire_types`."""
        if isinstance(message, TokenRequest):
            root, data = _document("login", {"enterprise_id": message.client_id})
            _text(data, "password", message.secret)
        elif isinstance(message, TokenGrant):
            root, data = _document("login_ack", {"code": OK_CODE, "message": "ok"})
            _text(data, "token", message.access_token)
            _text(data, "expires_in", str(message.expires_in_s))
        elif isinstance(message, DataRequest):
            root, data = _document("energy_data", {"enterprise_id": message.enterprise_code,
                                                   "upload_id": message.upload_id})
            for record in message.records:
                _record_xml(profile, data, record)
        elif isinstance(message, DataResponse):
            root, data = _document("energy_data_ack", {"code": OK_CODE, "message": "ok"})
            for ack in message.acks:
                result = ET.SubElement(data, "result")
                _text(result, "key", ack.record_key)
                _text(result, "revision", str(ack.revision))
                _text(result, "status", "accepted" if ack.accepted else "rejected")
                _text(result, "reason", ack.reason)
        elif isinstance(message, InstrumentRequest):
            root, data = _document("meter", {"enterprise_id": message.enterprise_code, "upload_id": message.upload_id})
            for entry in message.entries:
                _instrument_xml(data, entry)
        elif isinstance(message, UnitInfoRequest):
            info = message.info
            root, data = _document("unit", {"enterprise_id": info.enterprise_code, "upload_id": message.upload_id})
            for tag, value in (("name", info.name), ("industry", info.industry_code), ("region", info.region_code),
                               ("address", info.address), ("contact", info.contact_name),
                               ("phone", info.contact_phone)):
                _text(data, tag, value)
        elif isinstance(message, RegisterAck):
            root, data = _document("register_ack", {"code": OK_CODE, "message": "ok"})
            _text(data, "accepted", "true" if message.accepted else "false")
            _text(data, "reason", message.reason)
            rejected = ET.SubElement(data, "rejected")
            for meter, reason in message.rejected_meters:
                item = ET.SubElement(rejected, "meter")
                _text(item, "code", meter)
                _text(item, "reason", reason)
        elif isinstance(message, PlatformError):
            root, _ = _document("error", {"code": message.code, "message": message.message})
            root.remove(root.find("data"))  # type: ignore[arg-type]
        else:
            raise TypeError(f"not a wire message: {type(message).__name__}")
        return _bytes(root)

    def decode_token_request(self, profile: WireProfile, body: bytes) -> TokenRequest:
        """The platform side of the login."""
        common, data = _parse(body, "login")
        r = _Reader(_data(data, "login"), "/root/data", {"password"})
        return TokenRequest(client_id=common.text("enterprise_id", min_length=1, max_length=64),
                            secret=r.text("password", min_length=1))

    def decode_token_grant(self, profile: WireProfile, body: bytes) -> TokenGrant:
        """The client side of the login."""
        common, data = _parse(body, "login_ack")
        _ok(common, "login answer")
        r = _Reader(_data(data, "login_ack"), "/root/data", {"token", "expires_in"})
        return TokenGrant(access_token=r.text("token", min_length=1, max_length=2048),
                          expires_in_s=r.integer("expires_in", 1, 10_000_000))

    def decode_data_request(self, profile: WireProfile, body: bytes) -> DataRequest:
        """A data upload, checked element by element."""
        common, data = _parse(body, "energy_data")
        enterprise = common.text("enterprise_id", min_length=1, max_length=64)
        r = _Reader(_data(data, "energy_data"), "/root/data", {"record"})
        records = tuple(_record(profile, enterprise, element, f"/root/data/record[{index + 1}]")
                        for index, element in enumerate(r.all("record")))
        if not records:
            raise UplinkDecodeError("/root/data: no <record>")
        return DataRequest(upload_id=common.text("upload_id", min_length=1), enterprise_code=enterprise,
                           records=records)

    def decode_data_response(self, profile: WireProfile, body: bytes) -> DataResponse:
        """The per-record results of a data upload."""
        common, data = _parse(body, "energy_data_ack")
        _ok(common, "data answer")
        acks: list[RecordAck] = []
        if data is not None:
            for index, element in enumerate(_Reader(data, "/root/data", {"result"}).all("result")):
                r = _Reader(element, f"/root/data/result[{index + 1}]", {"key", "revision", "status", "reason"})
                status = r.text("status", max_length=16)
                if status not in ("accepted", "rejected"):
                    raise UplinkDecodeError(f"{r.path}/status: {status!r}, expected accepted or rejected")
                acks.append(RecordAck(record_key=r.text("key", min_length=1),
                                      revision=r.integer("revision", 1, 2**31 - 1), accepted=status == "accepted",
                                      reason=r.optional("reason", max_length=500)))
        return DataResponse(acks=tuple(acks))

    def decode_instrument_request(self, profile: WireProfile, body: bytes) -> InstrumentRequest:
        """An instrument-register upload."""
        common, data = _parse(body, "meter")
        r = _Reader(_data(data, "meter"), "/root/data", {"meter"})
        return InstrumentRequest(upload_id=common.text("upload_id", min_length=1),
                                 enterprise_code=common.text("enterprise_id", min_length=1, max_length=64),
                                 entries=tuple(_instrument(e, f"/root/data/meter[{i + 1}]")
                                               for i, e in enumerate(r.all("meter"))))

    def decode_unit_info_request(self, profile: WireProfile, body: bytes) -> UnitInfoRequest:
        """A unit basic-information upload."""
        common, data = _parse(body, "unit")
        r = _Reader(_data(data, "unit"), "/root/data", {"name", "industry", "region", "address", "contact", "phone"})
        return UnitInfoRequest(upload_id=common.text("upload_id", min_length=1), info=UnitInfo(
            enterprise_code=common.text("enterprise_id", min_length=1, max_length=64),
            name=r.text("name", min_length=1, max_length=200),
            industry_code=r.text("industry", min_length=1, max_length=64),
            region_code=r.text("region", min_length=1, max_length=64), address=r.text("address", max_length=500),
            contact_name=r.text("contact", max_length=100), contact_phone=r.text("phone", max_length=64)))

    def decode_register_ack(self, profile: WireProfile, body: bytes) -> RegisterAck:
        """The answer to a register or unit-info upload."""
        common, data = _parse(body, "register_ack")
        _ok(common, "register answer")
        r = _Reader(_data(data, "register_ack"), "/root/data", {"accepted", "reason", "rejected"})
        accepted = r.text("accepted", max_length=5)
        if accepted not in ("true", "false"):
            raise UplinkDecodeError(f"/root/data/accepted: {accepted!r}, expected true or false")
        rejected = _Reader(r.one("rejected"), "/root/data/rejected", {"meter"})
        meters = []
        for index, element in enumerate(rejected.all("meter")):
            m = _Reader(element, f"/root/data/rejected/meter[{index + 1}]", {"code", "reason"})
            meters.append((m.text("code", min_length=1, max_length=64), m.text("reason", max_length=500)))
        return RegisterAck(accepted=accepted == "true", reason=r.optional("reason", max_length=500),
                           rejected_meters=tuple(meters))

    def decode_error(self, profile: WireProfile, body: bytes) -> PlatformError:
        """An error answer (any non-2xx status)."""
        common, _ = _parse(body, "error")
        return PlatformError(code=common.text("code", min_length=1, max_length=64),
                             message=common.optional("message", max_length=500) or "")

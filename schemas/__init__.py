"""ParkPulse contracts: MQTT topics, payloads, the metric registry, units and the SQL schema.

Pure code only (no I/O): devices, ingest, import and aggregation all depend on these definitions.
"""

from schemas.errors import InvalidTopicError, SchemaError, UnitError, UnknownMetricError
from schemas.metrics import METRICS, Carrier, MetricKind, MetricSpec, get_metric
from schemas.payload import (
    BIRTH_ADAPTER,
    PAYLOAD_VERSION,
    READINGS_ADAPTER,
    STATUS_ADAPTER,
    BirthMessage,
    DecodedMessage,
    Quality,
    ReadingIn,
    ReadingsMessage,
    Rejection,
    RejectReason,
    StatusMessage,
    ValidationPolicy,
    ValidReading,
    decode_birth,
    decode_readings,
    decode_status,
    payload_json_schemas,
)
from schemas.topics import TopicAddress, TopicKind, build_topic, is_valid_id, parse_topic, subscription_filter
from schemas.units import UNITS, Unit, conversion_factor, convert, get_unit

__all__ = [
    "BIRTH_ADAPTER",
    "METRICS",
    "PAYLOAD_VERSION",
    "READINGS_ADAPTER",
    "STATUS_ADAPTER",
    "UNITS",
    "BirthMessage",
    "Carrier",
    "DecodedMessage",
    "InvalidTopicError",
    "MetricKind",
    "MetricSpec",
    "Quality",
    "ReadingIn",
    "ReadingsMessage",
    "RejectReason",
    "Rejection",
    "SchemaError",
    "StatusMessage",
    "TopicAddress",
    "TopicKind",
    "Unit",
    "UnitError",
    "UnknownMetricError",
    "ValidReading",
    "ValidationPolicy",
    "build_topic",
    "conversion_factor",
    "convert",
    "decode_birth",
    "decode_readings",
    "decode_status",
    "get_metric",
    "get_unit",
    "is_valid_id",
    "parse_topic",
    "payload_json_schemas",
    "subscription_filter",
]

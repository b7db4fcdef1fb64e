"""Errors of the uplink package.

Hierarchy::

    UplinkError
    ├── ItemsFileError          a profile's items.yaml is malformed (the message names the entry and field)
    ├── EndpointConfigError     the endpoints file is malformed or names an unknown profile / missing file
    ├── RecordKeyError          a record key that does not follow ``{park}|{item}|{period}|{local ISO start}``
    └── UplinkStoreError        the database refused or is unreachable (the message says what to run)

Wire-level failures (5xx, expired token, rejected request) are :mod:`schemas.errors` ``UplinkWireError``
subclasses raised by :mod:`schemas.uplink_wire`; the worker handles them per endpoint.
"""

from __future__ import annotations


class UplinkError(Exception):
    """Base class for every error of the ``uplink`` package."""


class ItemsFileError(UplinkError):
    """``schemas/uplink_profiles/<profile>/items.yaml`` does not follow its format."""

    def __init__(self, path: str, where: str, reason: str) -> None:
        super().__init__(f"{path}: {where}: {reason}")
        self.path = path
        self.where = where
        self.reason = reason


class EndpointConfigError(UplinkError):
    """The endpoints file (``PARKPULSE_UPLINK_ENDPOINTS_FILE``) is missing or malformed."""


class RecordKeyError(UplinkError):
    """A record key that is not ``{park}|{item}|{period}|{local ISO start}``."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"record key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class UplinkStoreError(UplinkError):
    """The uplink tables are unreachable or missing (run `parkpulse db migrate`)."""

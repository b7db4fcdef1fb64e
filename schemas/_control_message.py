"""Decoding the small control messages ParkPulse sends to devices (feedback, commands, acknowledgements).

Each is a pydantic ``TypedDict`` behind a ``TypeAdapter``; a bad message raises the caller's
:class:`~schemas.errors.SchemaError` subclass naming the first bad field, never pydantic's own error. The
checks run cheapest first: size, UTF-8, JSON syntax, then the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from schemas._strict_json import printable
from schemas.errors import SchemaError

_T = TypeVar("_T")
ErrorFactory = Callable[[str, str], SchemaError]  # (field, reason) -> the exception to raise


def first_error(exc: ValidationError, error: ErrorFactory) -> SchemaError:
    """The caller's exception for the first problem pydantic found, with its field path and message."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"]) or "<message>"
    return error(printable(field[:80]), printable(first["msg"][:200]))


def validated(adapter: TypeAdapter[_T], message: object, error: ErrorFactory) -> _T:
    """``message`` validated by ``adapter``; raises the caller's exception on the first bad field."""
    try:
        return adapter.validate_python(message)
    except ValidationError as exc:
        raise first_error(exc, error) from None


def decode_control_message(adapter: TypeAdapter[_T], raw: bytes, *, max_bytes: int, error: ErrorFactory) -> _T:
    """Parse and validate ``raw``: size, UTF-8 and JSON first, so the error says what is wrong with it."""
    if len(raw) > max_bytes:
        raise error("<message>", f"{len(raw)} bytes is over the {max_bytes}-byte limit")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("<message>", f"not UTF-8 at byte {exc.start}") from None
    try:
        pydantic_core.from_json(raw)
    except ValueError as exc:
        raise error("<message>", f"not JSON: {printable(str(exc)[:120])}") from None
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        raise first_error(exc, error) from None

"""Strict-JSON checks the payload decoder adds on top of pydantic's parser (jiter).

jiter, like orjson, msgspec and the standard library, accepts an object with a repeated key and keeps the
last value. A payload such as ``{"device": "other", "device": "mine"}`` is then read differently by tools
that keep the first value, so ParkPulse rejects it. No parser in use reports duplicates, and parsing a
second time with a hook would double the cost of ingest's hot loop; instead this module *counts*.

For syntactically valid JSON (the decoder only calls this after the parse succeeded):

* every object member has exactly one string token as its name, so the raw text holds
  ``members + string values`` string tokens;
* a parsed ``dict`` holds one entry per *distinct* member name, so repeated names make the parsed count
  smaller than the raw count, and only repeated names can;
* string tokens are cheap to count in the raw bytes: each one has two unescaped ``"``, and an escaped
  quote is a ``"`` preceded by an odd run of backslashes.

So ``raw string tokens == parsed keys + parsed string values`` proves there is no duplicate (one
``bytes.count``, about 10 µs for a 200-reading message of 20 kB; a payload with a backslash costs one
``replace`` and one more count). When the decoder cannot tell for sure which parsed values were strings in
the raw text (a lax field turned ``"7"`` into ``7``), it passes a lower bound; a mismatch then falls back to
an exact count of the members in the raw text (:func:`object_key_count`, a regex pass that tokenizes every
string) compared with the parsed keys. Counting unescaped ``"`` followed by ``:`` is *not* exact: the opening
quote of a value such as ``": x"`` matches too.

The module also holds the other strict rules of the payload contract: timestamps must be ISO-8601 strings
(:data:`StrictTimestamp`), strings stored as PostgreSQL ``text``/``jsonb`` must not hold C0 control characters
or surrogates (:func:`find_unsafe_string`), and rejection details quote input escaped (:func:`printable`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Final

import pydantic_core
from pydantic import AwareDatetime, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = [
    "StrictTimestamp",
    "count_keys_and_strings",
    "find_unsafe_string",
    "has_duplicate_keys",
    "json_has_duplicate_keys",
    "object_key_count",
    "printable",
    "string_token_count",
]

# One JSON string token: quote, then runs of plain bytes or backslash escapes, then the closing quote.
# In valid JSON a '"' outside a string always opens one, so a left-to-right scan sees exactly the tokens.
_STRING_TOKEN: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def string_token_count(raw: bytes) -> int:
    """Number of string tokens (member names and string values) in valid JSON ``raw``.

    Every token has two unescaped quotes. A quote inside a string is escaped as ``\\"``; removing the
    ``\\\\`` pairs first (an escaped backslash, left to right as a parser reads them) leaves exactly one
    backslash before each escaped quote, so those are counted and subtracted.
    """
    quotes = raw.count(b'"')
    if b"\\" in raw:
        quotes -= raw.replace(b"\\\\", b"").count(b'\\"')
    return quotes // 2


def object_key_count(raw: bytes) -> int:
    """Exact number of object members (``name: value`` pairs, at any depth) in valid JSON ``raw``.

    A ``:`` outside strings is always a name separator, so the count is the colons left once the string
    tokens are cut out. Slower than :func:`string_token_count` (a regex pass): used only to settle a mismatch.
    """
    return _STRING_TOKEN.sub(b"", raw).count(b":")


def count_keys_and_strings(value: object) -> tuple[int, int]:
    """Object keys and string tokens of a parsed JSON value, at any depth (iterative: no recursion limit).

    Keys are counted as string tokens too. A ``datetime`` counts as a string: in validated payloads it only
    comes from a timestamp field, which accepts nothing but a JSON string (:data:`StrictTimestamp`).
    """
    keys = strings = 0
    stack: list[object] = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, dict):
            keys += len(item)
            extend(item.values())
        elif isinstance(item, list):
            extend(item)
        elif isinstance(item, str | datetime):
            strings += 1
    return keys, keys + strings


def has_duplicate_keys(raw: bytes, n_keys: int, n_strings: int) -> bool:
    """True when valid JSON ``raw`` repeats a member name in some object.

    ``n_keys`` is the exact number of keys of the parsed document (all its dicts), ``n_strings`` the number
    of its string tokens (keys included), or a lower bound of it: strings a lax validator may have
    converted to another type can be left out. Exact in both cases (see the module docstring).
    """
    if string_token_count(raw) == n_strings:
        return False
    return object_key_count(raw) != n_keys


def json_has_duplicate_keys(raw: bytes) -> bool:
    """True when the JSON document ``raw`` repeats a member name in some object (parses it once).

    For callers that hold no parsed copy of ``raw``; raises ``ValueError`` on invalid JSON.
    """
    return has_duplicate_keys(raw, *count_keys_and_strings(pydantic_core.from_json(raw, allow_inf_nan=True)))


# C0 control characters: PostgreSQL rejects NUL in text and jsonb, and the others have no business in
# identifiers or firmware names. Surrogate code points cannot be encoded as UTF-8 at all.
_UNSAFE_CHAR: Final = re.compile("[\x00-\x1f\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every non-printable character (controls, surrogates, ...) written as a Python escape.

    Rejection details quote device input; escaped, they never carry a NUL or a surrogate into the database.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _unsafe_char_text(text: str) -> str | None:
    match = _UNSAFE_CHAR.search(text)
    if match is None:
        return None
    code = ord(match.group())
    kind = "a surrogate code point" if code >= 0xD800 else "a control character"
    return f"{kind} (U+{code:04X})"


def find_unsafe_string(value: object) -> str | None:
    """Where a key or string of ``value`` holds a C0 control character or a surrogate, else None.

    The answer names the place (``kind``, ``meta.tags[1]``, ``key 'a\\x00' in meta``) with keys escaped,
    so it can be used as a rejection detail. Iterative, in document order.
    """
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            bad = _unsafe_char_text(item)
            if bad is not None:
                return f"{path or '<root>'} contains {bad}"
        elif isinstance(item, dict):
            children: list[tuple[str, object]] = []
            for key, child in item.items():
                name = str(key)
                bad = _unsafe_char_text(name)
                if bad is not None:
                    return f"key {printable(repr(name))}{f' in {path}' if path else ''} contains {bad}"
                children.append((f"{path}.{printable(name)}" if path else printable(name), child))
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(f"{path}[{i}]", child) for i, child in enumerate(item)]))
    return None


# A year and a dash: enough to refuse Unix time spelled as a string ("1700000000", "-1.5e9"), which pydantic
# would read as a datetime; the date-time parser then checks the rest, as before. Kept minimal: this regex
# runs once per reading inside pydantic-core, and a longer one costs measurably more.
_ISO_DATETIME_PREFIX: Final = r"^[0-9]{4}-"
_ISO_DATETIME_PREFIX_RE: Final = re.compile(_ISO_DATETIME_PREFIX)
_TIMESTAMP_MESSAGE: Final = "Input should be an ISO-8601 date-time string with a UTC offset"


def _timestamp_input(value: Any) -> Any:
    if (type(value) is str and _ISO_DATETIME_PREFIX_RE.match(value)) or isinstance(value, datetime):
        return value
    raise PydanticCustomError("timestamp_type", _TIMESTAMP_MESSAGE)


class _StrictTimestampMarker:
    """Pydantic annotation: the timestamp must be an ISO-8601 date-time *string*, never a number.

    Plain ``AwareDatetime`` also takes a number (or a numeric string such as ``"1700000000"``) as Unix
    time. From JSON the field now accepts only a string that starts with a year and a dash, checked inside
    pydantic-core (no Python call per reading: ingest's hot loop); date, time and the required UTC offset
    are then checked by ``AwareDatetime`` as before. From Python objects (the decoder's
    slow path, tests) the same rule applies and ``datetime`` instances are accepted too.
    """

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        aware = handler(source)
        text = core_schema.custom_error_schema(core_schema.str_schema(strict=True, pattern=_ISO_DATETIME_PREFIX),
                                               custom_error_type="timestamp_type",
                                               custom_error_message=_TIMESTAMP_MESSAGE)
        return core_schema.json_or_python_schema(
            json_schema=core_schema.chain_schema([text, aware]),
            python_schema=core_schema.no_info_before_validator_function(_timestamp_input, aware),
            serialization=aware.get("serialization"),
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time"}


StrictTimestamp = Annotated[AwareDatetime, _StrictTimestampMarker()]
"""A timezone-aware datetime that JSON must spell as an ISO-8601 string (``2026-11-20T08:00:00Z``)."""

"""Showing quarantined bytes to a person without letting the bytes act on the terminal or the page.

Quarantine holds whatever a device (or a CSV file) sent: invalid UTF-8, NUL bytes, ANSI escape sequences,
bidirectional overrides. Printed raw, such bytes can rewrite an operator's terminal or disguise text, so
everything shown goes through :func:`escape_text`: control and format characters become visible escapes
(``\\x00``, ``\\x1b``, ``\\u202e``), undecodable bytes become ``\\xNN``. :func:`render_payload` picks the
clearest safe view: pretty JSON, escaped text (CSV import lines), or a hex dump for binary data.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any, Final, Literal

PayloadKind = Literal["json", "text", "binary"]

#: Unicode categories never printed as-is: controls, format (bidi overrides, zero width), surrogates,
#: private use, unassigned, and the line/paragraph separators that break single-line output.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_HEX_WIDTH: Final = 16


class _DuplicateKeyError(ValueError):
    """A JSON object repeats a key: pretty-printing would silently hide one of the values."""


def _escape_char(ch: str, *, json_escapes: bool) -> str:
    code = ord(ch)
    if json_escapes:
        if code > 0xFFFF:  # JSON has no \U escape: a UTF-16 surrogate pair
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(text: str, *, multiline: bool = False, json_escapes: bool = False) -> str:
    """``text`` with every character that could act on a terminal or hide content made visible.

    ``multiline`` keeps ``\\n`` and ``\\t`` (for payload views); otherwise they are escaped too (table cells).
    Undecodable bytes carried as surrogate escapes (``errors="surrogateescape"``) come out as ``\\xNN``.
    With ``json_escapes`` (for text that is already JSON) only ``\\uXXXX`` escapes are used and backslashes
    are left alone, so the result is still valid JSON meaning the same thing; otherwise a literal
    backslash is doubled so an escape in the output is never confused with one in the data.
    """
    out: list[str] = []
    for ch in text:
        code = ord(ch)
        if multiline and ch in "\n\t":
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF and not json_escapes:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\" and not json_escapes:
            out.append("\\\\")
        elif code < 0x80 and (code >= 0x20 and code != 0x7F):
            out.append(ch)
        elif code < 0x80 or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(_escape_char(ch, json_escapes=json_escapes))
        else:
            out.append(ch)
    return "".join(out)


def escape_bytes(raw: bytes, *, multiline: bool = False) -> str:
    """``raw`` decoded as UTF-8 where it can be, with invalid bytes and unsafe characters escaped."""
    return escape_text(raw.decode("utf-8", errors="surrogateescape"), multiline=multiline)


def short(text: str | None, width: int = 80) -> str:
    """One escaped line of at most ``width`` characters (an ellipsis marks the cut)."""
    if not text:
        return ""
    line = escape_text(text)
    return line if len(line) <= width else line[: width - 1] + "…"


def hexdump(raw: bytes, *, limit: int | None = None) -> str:
    """Classic ``offset  hex bytes  |ascii|`` dump; ``limit`` caps the bytes shown (the rest is counted)."""
    shown = raw if limit is None else raw[:limit]
    lines = []
    for offset in range(0, len(shown), _HEX_WIDTH):
        chunk = shown[offset:offset + _HEX_WIDTH]
        hex_part = " ".join(f"{b:02x}" for b in chunk)
        ascii_part = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {hex_part:<{_HEX_WIDTH * 3 - 1}}  |{ascii_part}|")
    if len(shown) < len(raw):
        lines.append(f"… {len(raw) - len(shown):,} more bytes not shown")
    return "\n".join(lines)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKeyError("duplicate key")
    return dict(pairs)


def _is_text(text: str) -> bool:
    """True when ``text`` has no control characters besides line breaks and tabs."""
    return all(ch in "\n\r\t" or unicodedata.category(ch) != "Cc" for ch in text)


def render_payload(raw: bytes, *, hex_limit: int | None = None) -> tuple[PayloadKind, str]:
    """The safest readable view of ``raw`` and what kind it is.

    * ``json``: UTF-8 JSON object or array, pretty-printed (2-space indent), unsafe characters as ``\\uXXXX``
      (numbers are shown as Python parses them; the exact bytes are in the hex dump and ``--raw-out``);
    * ``text``: other valid UTF-8 without control characters (CSV import lines, truncated JSON), escaped;
    * ``binary``: everything else, as a hex dump.

    JSON with a repeated key is shown as text, so no value is hidden by the re-serialisation.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "binary", hexdump(raw, limit=hex_limit)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(text, object_pairs_hook=_no_duplicates)
        except ValueError:  # JSONDecodeError and _DuplicateKeyError
            pass
        else:
            pretty = json.dumps(parsed, indent=2, ensure_ascii=False)
            return "json", escape_text(pretty, multiline=True, json_escapes=True)
    if _is_text(text):
        return "text", escape_text(text, multiline=True)
    return "binary", hexdump(raw, limit=hex_limit)

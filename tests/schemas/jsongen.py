"""Hypothesis strategies and a randomising JSON writer for the strict-JSON tests.

Documents are trees where an object is a list of (name, value) pairs, so a test can hold an object with a
repeated name, which a dict cannot. :func:`write_json` spells the same tree many ways: random whitespace
between tokens and, per character, a literal or an escape (``\\uXXXX``, surrogate pairs for astral
characters, short escapes, ``\\/``), so the raw bytes exercise backslash runs, escaped quotes and names that
only become equal once decoded (``"a"`` and ``"\\u0061"``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from hypothesis import strategies as st

_WS = " \t\n\r"
_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "/": "\\/"}


@dataclass(frozen=True)
class Obj:
    """A JSON object as written: its members in order, names possibly repeated."""

    pairs: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Arr:
    """A JSON array."""

    items: tuple[object, ...]


@dataclass(frozen=True)
class RawNumber:
    """A number written verbatim (``1e999``, ``-0``, 40-digit integers)."""

    text: str


# Text that stresses the tokenizer: quotes, backslashes, colons, braces, controls, non-ASCII, astral.
TRICKY_TEXT = st.text(
    alphabet=st.sampled_from('""\\\\\\:/{}[],ab \x00\x01\x1f\x7fé中😀\u2028') | st.characters(codec="utf-8"),
    max_size=8,
)


def _escape_char(ch: str, rnd: random.Random) -> str:
    code = ord(ch)
    if ch in _SHORT and (code < 0x20 or ch in '"\\' or rnd.random() < 0.5):
        return _SHORT[ch] if rnd.random() < 0.7 else f"\\u{code:04x}"
    if code < 0x20 or rnd.random() < 0.15:
        if code > 0xFFFF:  # astral: a surrogate pair of escapes
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}" if rnd.random() < 0.5 else f"\\u{code:04X}"
    return ch


def write_string(text: str, rnd: random.Random) -> str:
    """``text`` as a JSON string token, each character spelled literally or escaped at random."""
    return '"' + "".join(_escape_char(ch, rnd) for ch in text) + '"'


def write_json(value: object, rnd: random.Random) -> str:
    """``value`` (a tree of :class:`Obj`, :class:`Arr`, :class:`RawNumber` and JSON scalars) as JSON text."""

    def ws() -> str:
        return "".join(rnd.choice(_WS) for _ in range(rnd.choice((0, 0, 0, 1, 2))))

    if isinstance(value, Obj):
        members = [f"{ws()}{write_string(k, rnd)}{ws()}:{ws()}{write_json(v, rnd)}{ws()}" for k, v in value.pairs]
        return "{" + ",".join(members) + ws() + "}"
    if isinstance(value, Arr):
        return "[" + ",".join(ws() + write_json(v, rnd) + ws() for v in value.items) + ws() + "]"
    if isinstance(value, RawNumber):
        return value.text
    if isinstance(value, str):
        return write_string(value, rnd)
    return json.dumps(value)


def scalars() -> st.SearchStrategy[object]:
    """JSON scalars, numbers included in odd spellings."""
    return (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
            | st.sampled_from(["1e999", "-1e999", "-0", "12345678901234567890123456789012345678901", "-1E-400",
                               "0.000001e+5"]).map(RawNumber)
            | TRICKY_TEXT)


def trees(unique: bool = True, max_leaves: int = 25) -> st.SearchStrategy[object]:
    """JSON trees; with ``unique`` every object's names are distinct once decoded."""

    def extend(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        members = st.lists(st.tuples(TRICKY_TEXT, inner), max_size=5,
                           unique_by=(lambda kv: kv[0]) if unique else None)
        return st.lists(inner, max_size=4).map(lambda xs: Arr(tuple(xs))) | members.map(lambda ps: Obj(tuple(ps)))

    return st.recursive(scalars(), extend, max_leaves=max_leaves)


def objects_in(value: object) -> list[Obj]:
    """Every object of a tree, outermost first."""
    found: list[Obj] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Obj):
            found.append(item)
            stack.extend(v for _, v in item.pairs)
        elif isinstance(item, Arr):
            stack.extend(item.items)
    return found


def replace_object(value: object, target: Obj, new: Obj) -> object:
    """The tree with the object ``target`` (by identity) replaced by ``new``."""
    if value is target:
        return new
    if isinstance(value, Obj):
        return Obj(tuple((k, replace_object(v, target, new)) for k, v in value.pairs))
    if isinstance(value, Arr):
        return Arr(tuple(replace_object(v, target, new) for v in value.items))
    return value


def has_duplicates(value: object) -> bool:
    """Ground truth: does some object of the tree repeat a (decoded) name?"""
    return any(len({k for k, _ in o.pairs}) != len(o.pairs) for o in objects_in(value))


def token_counts(value: object) -> tuple[int, int]:
    """Ground truth: (members, string tokens) as written, repeated members included."""
    members = strings = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Obj):
            members += len(item.pairs)
            strings += len(item.pairs)
            stack.extend(v for _, v in item.pairs)
        elif isinstance(item, Arr):
            stack.extend(item.items)
        elif isinstance(item, str):
            strings += 1
    return members, strings
